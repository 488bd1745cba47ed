package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func headers(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return h
}

func newTestSecret(t *testing.T) string {
	t.Helper()
	s, err := NewSecret()
	if err != nil {
		t.Fatalf("NewSecret: %v", err)
	}
	return s
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := newTestSecret(t), newTestSecret(t)
	if a == b {
		t.Fatalf("two secrets are equal: %q", a)
	}
	enc, ok := strings.CutPrefix(a, "whsec_")
	if !ok {
		t.Fatalf("got %q, want prefix whsec_", a)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		t.Fatalf("secret %q: base64: %v", a, err)
	}
	if got, want := len(key), 32; got != want {
		t.Errorf("key length: got %d, want %d", got, want)
	}
}

func TestSignVerifiesWithOfficialLibrary(t *testing.T) {
	t.Parallel()
	s1, s2 := newTestSecret(t), newTestSecret(t)
	id := "msg_2fAbc"
	ts := time.Now()
	body := []byte(`{"type":"call.ended","timestamp":"2025-01-01T00:00:00Z","data":{"id":"x"}}`)

	sig, err := Sign([]string{s1, s2}, id, ts, body)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	parts := strings.Split(sig, " ")
	if got, want := len(parts), 2; got != want {
		t.Fatalf("signature %q: got %d parts, want %d", sig, got, want)
	}
	for i, secret := range []string{s1, s2} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatalf("NewWebhook: %v", err)
		}
		if err := wh.Verify(body, headers(id, ts, sig)); err != nil {
			t.Errorf("secret %d, both signatures: Verify: got %v, want nil", i+1, err)
		}
		if err := wh.Verify(body, headers(id, ts, parts[i])); err != nil {
			t.Errorf("secret %d, its own signature alone: Verify: got %v, want nil", i+1, err)
		}
		if err := wh.Verify(body, headers(id, ts, parts[1-i])); err == nil {
			t.Errorf("secret %d, the other secret's signature: Verify: got nil, want an error", i+1)
		}
		tampered := append([]byte(nil), body...)
		tampered[len(tampered)-3] = 'y'
		if err := wh.Verify(tampered, headers(id, ts, sig)); err == nil {
			t.Errorf("secret %d, tampered body: Verify: got nil, want an error", i+1)
		}
		if err := wh.Verify(body, headers("msg_other", ts, sig)); err == nil {
			t.Errorf("secret %d, other id: Verify: got nil, want an error", i+1)
		}
		if err := wh.Verify(body, headers(id, ts.Add(time.Second), sig)); err == nil {
			t.Errorf("secret %d, other timestamp: Verify: got nil, want an error", i+1)
		}
		// The official library signs the same bytes.
		want, err := wh.Sign(id, ts, body)
		if err != nil {
			t.Fatalf("official Sign: %v", err)
		}
		if got := parts[i]; got != want {
			t.Errorf("secret %d: got %q, want %q (official library)", i+1, got, want)
		}
	}
}

// TestSignMatchesCryptoHMAC checks the hand-rolled HMAC against crypto/hmac
// for key sizes around the SHA-256 block size, ids longer than a chunk and
// empty bodies.
func TestSignMatchesCryptoHMAC(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1700000000, 0)
	for _, keyLen := range []int{1, 16, 32, 63, 64, 65, 66, 100, 200} {
		for _, id := range []string{"", "a", strings.Repeat("id", 80)} {
			for _, body := range [][]byte{nil, []byte("{}"), []byte(strings.Repeat("x", 5000))} {
				key := make([]byte, keyLen)
				for i := range key {
					key[i] = byte(i*7 + keyLen)
				}
				secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
				got, err := Sign([]string{secret}, id, ts, body)
				if err != nil {
					t.Fatalf("key %d bytes: Sign: %v", keyLen, err)
				}
				m := hmac.New(sha256.New, key)
				fmt.Fprintf(m, "%s.%d.%s", id, ts.Unix(), body)
				want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
				if got != want {
					t.Errorf("key %d bytes, id %d bytes, body %d bytes: got %q, want %q",
						keyLen, len(id), len(body), got, want)
				}
			}
		}
	}
}

func TestSignErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
	}{
		{"no secrets", nil},
		{"no prefix", []string{base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))}},
		{"bad base64", []string{"whsec_!!!not-base64!!!"}},
		{"empty key", []string{"whsec_"}},
		{"second bad", []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("k")), "whsec_%%"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Sign(tt.secrets, "id", time.Unix(1, 0), []byte("{}"))
			if err == nil {
				t.Errorf("Sign: got %q, nil; want an error", got)
			}
		})
	}
}

func TestSignAllocations(t *testing.T) {
	secrets := []string{newTestSecret(t), newTestSecret(t)}
	body := []byte(strings.Repeat(`{"a":1}`, 200))
	ts := time.Unix(1700000000, 0)
	got := testing.AllocsPerRun(100, func() {
		if _, err := Sign(secrets, "msg_abcdefghijklmnopqrstuvwxyz0123456789", ts, body); err != nil {
			t.Fatal(err)
		}
	})
	if want := 3.0; got > want {
		t.Errorf("allocations per Sign with two secrets: got %v, want at most %v", got, want)
	}
}

func BenchmarkSign(b *testing.B) {
	body := []byte(strings.Repeat(`{"id":"0192f1a0-7c1e-7d3a-9a4b-1234567890ab","x":1}`, 40)) // ~2 KiB, a typical call
	ts := time.Unix(1700000000, 0)
	id := "0192f1a0-7c1e-7d3a-9a4b-1234567890ab"
	for _, n := range []int{1, 2} {
		secrets := make([]string, n)
		for i := range secrets {
			s, err := NewSecret()
			if err != nil {
				b.Fatal(err)
			}
			secrets[i] = s
		}
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := Sign(secrets, id, ts, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The official library's way (fmt.Sprintf of the whole message, a new
	// HMAC per signature), for comparison.
	b.Run("official-library", func(b *testing.B) {
		s, _ := NewSecret()
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := wh.Sign(id, ts, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/endcall/endcall/api"
)

// jwksServer serves a JWK set that a test can add keys to, and counts
// the fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []map[string]string
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, _ := json.Marshal(map[string]any{"keys": s.keys})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// add publishes a public key as a JWK (RFC 7517/7518), written out by hand
// so that the test does not lean on the library under test.
func (s *jwksServer) add(t *testing.T, kid string, pub any) {
	t.Helper()
	var jwk map[string]string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		jwk = map[string]string{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
			"n": b64url(k.N.Bytes()), "e": b64url(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		point, err := k.Bytes() // 0x04 || X || Y
		if err != nil {
			t.Fatal(err)
		}
		jwk = map[string]string{"kty": "EC", "alg": "ES256", "use": "sig", "kid": kid, "crv": "P-256",
			"x": b64url(point[1:33]), "y": b64url(point[33:])}
	default:
		t.Fatalf("unsupported key %T", pub)
	}
	s.mu.Lock()
	s.keys = append(s.keys, jwk)
	s.mu.Unlock()
}

// signJWT signs claims with key under kid ("" for no kid).
func signJWT(t *testing.T, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwksSetup starts a bundle whose JWTs are verified against jwks with the
// given issuer and audience.
func jwksSetup(t *testing.T, jwks *jwksServer, unknownKIDInterval time.Duration) *bundle {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	kf, err := api.NewJWKS(ctx, jwks.URL, api.JWKSOptions{UnknownKIDInterval: unknownKIDInterval, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return setup(t, func(o *options) {
		o.deps = func(d *api.Deps) {
			d.JWT = api.JWTConfig{Keyfunc: kf, Issuer: "https://issuer.example", Audience: "endcall"}
		}
	})
}

func TestJWKSTokens(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := newJWKSServer(t)
	jwks.add(t, "rsa-1", &rsaKey.PublicKey)
	jwks.add(t, "ec-1", &ecKey.PublicKey)
	b := jwksSetup(t, jwks, time.Hour)
	rsaPublicDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	future, past := time.Now().Add(time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"workspace_id": b.workspace, "exp": future, "iss": "https://issuer.example", "aud": "endcall"}
		if mod != nil {
			mod(c)
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		token string
		want  int
	}{
		{"RS256", signJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(nil)), 200},
		{"ES256", signJWT(t, jwt.SigningMethodES256, "ec-1", ecKey, claims(nil)), 200},
		{"audience in a list", signJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { c["aud"] = []string{"other", "endcall"} })), 200},
		{"wrong issuer", signJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), 401},
		{"no issuer", signJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { delete(c, "iss") })), 401},
		{"wrong audience", signJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { c["aud"] = "billing" })), 401},
		{"expired", signJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { c["exp"] = past })), 401},
		{"no exp", signJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { delete(c, "exp") })), 401},
		{"no workspace", signJWT(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(func(c jwt.MapClaims) { delete(c, "workspace_id") })), 401},
		{"signed by another key under a known kid", signJWT(t, jwt.SigningMethodRS256, "rsa-1", impostor, claims(nil)), 401},
		{"EC signature under the RSA kid", signJWT(t, jwt.SigningMethodES256, "rsa-1", ecKey, claims(nil)), 401},
		{"RS384", signJWT(t, jwt.SigningMethodRS384, "rsa-1", rsaKey, claims(nil)), 401},
		{"HS256 keyed with the RSA public key", signJWT(t, jwt.SigningMethodHS256, "rsa-1", rsaPublicDER, claims(nil)), 401},
		{"alg none", signJWT(t, jwt.SigningMethodNone, "rsa-1", jwt.UnsafeAllowNoneSignatureType, claims(nil)), 401},
		{"unknown kid", signJWT(t, jwt.SigningMethodRS256, "rsa-9", impostor, claims(nil)), 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do("GET", "/v1/calls/query", tc.token, nil)
			if r.Status != tc.want {
				t.Errorf("got %d, want %d; body %s", r.Status, tc.want, r.Body)
			}
		})
	}
}

func TestJWKSRefreshesOnUnknownKIDAtBoundedRate(t *testing.T) {
	t.Parallel()
	oldKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := newJWKSServer(t)
	jwks.add(t, "old", &oldKey.PublicKey)
	b := jwksSetup(t, jwks, time.Hour)
	claims := jwt.MapClaims{"workspace_id": b.workspace, "exp": time.Now().Add(time.Hour).Unix(),
		"iss": "https://issuer.example", "aud": "endcall"}

	b.do("GET", "/v1/calls/query", signJWT(t, jwt.SigningMethodRS256, "old", oldKey, claims), nil).want(t, 200, "")
	if got := jwks.fetches.Load(); got != 1 {
		t.Fatalf("fetches after start and a known kid: got %d, want 1 (cached)", got)
	}
	// The issuer rotates in a new key: the first token under it makes the
	// set be fetched again.
	jwks.add(t, "new", &newKey.PublicKey)
	b.do("GET", "/v1/calls/query", signJWT(t, jwt.SigningMethodES256, "new", newKey, claims), nil).want(t, 200, "")
	if got := jwks.fetches.Load(); got != 2 {
		t.Fatalf("fetches after a rotated-in kid: got %d, want 2", got)
	}
	// Forged kids cannot make it fetch again within the interval, nor
	// make requests wait for it.
	for _, kid := range []string{"forged-1", "forged-2", "forged-3"} {
		start := time.Now()
		b.do("GET", "/v1/calls/query", signJWT(t, jwt.SigningMethodES256, kid, newKey, claims), nil).want(t, 401, "unauthorized")
		if d := time.Since(start); d > time.Second {
			t.Errorf("kid %s: answered after %s", kid, d)
		}
	}
	if got := jwks.fetches.Load(); got != 2 {
		t.Errorf("fetches after forged kids: got %d, want still 2", got)
	}
	b.do("GET", "/v1/calls/query", signJWT(t, jwt.SigningMethodRS256, "old", oldKey, claims), nil).want(t, 200, "")
}

// A flood of tokens under forged kids, each new, cannot spend the fetches
// that a genuinely rotated-in key needs: under the flood, a token under the
// new key is accepted within a few fetch intervals.
func TestJWKSRotationUnderForgedKIDFlood(t *testing.T) {
	t.Parallel()
	oldKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A JWKS server that takes a moment to answer, as a real one does.
	var mu sync.Mutex
	keys := []map[string]string{}
	var fetches atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		body, _ := json.Marshal(map[string]any{"keys": keys})
		mu.Unlock()
		w.Write(body)
	}))
	t.Cleanup(slow.Close)
	publish := &jwksServer{}
	publish.add(t, "old", &oldKey.PublicKey)
	keys = publish.keys

	const interval = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	kf, err := api.NewJWKS(ctx, slow.URL, api.JWKSOptions{UnknownKIDInterval: interval, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, func(o *options) {
		o.deps = func(d *api.Deps) {
			d.JWT = api.JWTConfig{Keyfunc: kf, Issuer: "https://issuer.example", Audience: "endcall"}
		}
	})
	claims := jwt.MapClaims{"workspace_id": b.workspace, "exp": time.Now().Add(time.Hour).Unix(),
		"iss": "https://issuer.example", "aud": "endcall"}
	status := func(token string) int {
		req, _ := http.NewRequest("GET", b.url+"/v1/webhooks", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := status(signJWT(t, jwt.SigningMethodRS256, "old", oldKey, claims)); s != 200 {
		t.Fatalf("old key: %d", s)
	}

	// The flood: every request a new forged kid.
	forger, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := make([]string, 400)
	for i := range forged {
		forged[i] = signJWT(t, jwt.SigningMethodES256, fmt.Sprintf("forged-%d", i), forger, claims)
	}
	stop := make(chan struct{})
	var flood sync.WaitGroup
	var next atomic.Int32
	for range 16 {
		flood.Add(1)
		go func() {
			defer flood.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if s := status(forged[int(next.Add(1))%len(forged)]); s == 200 {
					t.Error("a forged kid was accepted")
				}
			}
		}()
	}
	defer func() { close(stop); flood.Wait() }()
	time.Sleep(3 * interval)

	// The issuer rotates in a new key; its tokens get through within a few intervals.
	mu.Lock()
	publish.add(t, "new", &newKey.PublicKey)
	keys = publish.keys
	mu.Unlock()
	genuine := signJWT(t, jwt.SigningMethodES256, "new", newKey, claims)
	deadline := time.Now().Add(15 * interval)
	for status(genuine) != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("a token under the rotated-in key was still refused %s after the rotation (%d fetches)", 15*interval, fetches.Load())
		}
		time.Sleep(interval / 4)
	}
	if n := fetches.Load(); n > 40 {
		t.Errorf("the flood made %d fetches", n)
	}
}

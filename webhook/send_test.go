package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/endcall/endcall/webhook/webhooktest"
)

func TestClientRefusesPrivateAtConnect(t *testing.T) {
	t.Parallel()
	rc := webhooktest.New(t)
	secret := newTestSecret(t)
	rc.SetSecret(secret)
	now := time.Now()
	sig, err := Sign([]string{secret}, "msg_1", now, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}

	a := Send(context.Background(), NewHTTPClient(5*time.Second, false), rc.URL, "msg_1", now, []byte("{}"), sig)
	if a.OK() || a.StatusCode != 0 {
		t.Errorf("allowPrivate=false: got status %d, want no response", a.StatusCode)
	}
	if want := "127.0.0.1 is a loopback address"; !strings.Contains(a.Err, want) {
		t.Errorf("allowPrivate=false: got Err %q, want it to contain %q", a.Err, want)
	}
	if got := rc.Count(); got != 0 {
		t.Errorf("allowPrivate=false: server got %d requests, want 0", got)
	}

	// The sentinel is reachable from the raw client error.
	_, err = NewHTTPClient(5*time.Second, false).Get(rc.URL)
	if !errors.Is(err, ErrBlockedAddress) {
		t.Errorf("client.Get: got %v, want an error wrapping ErrBlockedAddress", err)
	}

	a = Send(context.Background(), NewHTTPClient(5*time.Second, true), rc.URL, "msg_1", now, []byte("{}"), sig)
	if !a.OK() || a.Err != "" {
		t.Errorf("allowPrivate=true: got %+v, want a 2xx without error", a)
	}
	if got := rc.Count(); got != 1 {
		t.Errorf("allowPrivate=true: server got %d requests, want 1", got)
	}
}

func TestControlPublicOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		address string
		wantErr bool
	}{
		{"127.0.0.1:80", true},
		{"[::1]:443", true},
		{"[::ffff:127.0.0.1]:443", true},
		{"10.1.2.3:80", true},
		{"169.254.169.254:80", true},
		{"[fe80::1%eth0]:80", true},
		{"93.184.216.34:443", false},
		{"[2606:2800:220:1:248:1893:25c8:1946]:443", false},
		{"not-an-address", true},
	}
	for _, tt := range tests {
		err := controlPublicOnly("tcp", tt.address, nil)
		if gotErr := err != nil; gotErr != tt.wantErr {
			t.Errorf("controlPublicOnly(%q): got %v, want error %v", tt.address, err, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("controlPublicOnly(%q): got %v, want it to wrap ErrBlockedAddress", tt.address, err)
		}
	}
}

func TestClientConfiguration(t *testing.T) {
	t.Parallel()
	c := NewHTTPClient(15*time.Second, false)
	if got, want := c.Timeout, 15*time.Second; got != want {
		t.Errorf("Timeout: got %v, want %v", got, want)
	}
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport: got %T, want *http.Transport", c.Transport)
	}
	if tr.Proxy != nil {
		t.Errorf("Proxy: got a proxy function, want none")
	}
	if tr.MaxIdleConnsPerHost < 8 {
		t.Errorf("MaxIdleConnsPerHost: got %d, want at least 8", tr.MaxIdleConnsPerHost)
	}
}

func TestSend(t *testing.T) {
	t.Parallel()
	secret := newTestSecret(t)
	body := []byte(`{"type":"call.ended","timestamp":"2025-01-01T00:00:00Z","data":{}}`)
	ts := time.Now()
	id := "0192f1a0-7c1e-7d3a-9a4b-1234567890ab"
	sig, err := Sign([]string{secret}, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("200 with the specified headers", func(t *testing.T) {
		t.Parallel()
		rc := webhooktest.New(t)
		rc.SetSecret(secret)
		rc.Script(webhooktest.Reply{Status: 200, Body: `{"ok":true}`})

		a := Send(context.Background(), NewHTTPClient(5*time.Second, true), rc.URL+"/hook", id, ts, body, sig)
		if !a.OK() || a.StatusCode != 200 || a.Err != "" || a.Gone || a.RetryAfter != 0 {
			t.Errorf("got %+v, want a plain 200", a)
		}
		if a.Duration <= 0 {
			t.Errorf("Duration: got %v, want > 0", a.Duration)
		}
		if a.Body != `{"ok":true}` {
			t.Errorf("Body: got %q, want the answer's", a.Body)
		}
		// The fake verified the signature with the official library.
		got := rc.Deliveries()
		if len(got) != 1 || got[0].VerifyErr != nil || got[0].Path != "/hook" {
			t.Fatalf("received %+v, want one verified delivery to /hook", got)
		}
		r := got[0]
		wantHeaders := map[string]string{
			"Content-Type":      "application/json",
			"User-Agent":        "endcall-webhooks/1",
			"Webhook-Id":        id,
			"Webhook-Timestamp": strconv.FormatInt(ts.Unix(), 10),
			"Webhook-Signature": sig,
		}
		for k, want := range wantHeaders {
			if got := r.Header.Values(k); len(got) != 1 || got[0] != want {
				t.Errorf("header %s: got %q, want exactly [%q]", k, got, want)
			}
		}
		if string(r.Body) != string(body) {
			t.Errorf("body: got %q, want %q", r.Body, body)
		}
	})

	statusTests := []struct {
		name           string
		status         int
		retryAfter     string
		wantRetryAfter [2]time.Duration // inclusive range
		wantGone       bool
	}{
		{name: "500", status: 500},
		{name: "503 without Retry-After", status: 503},
		{name: "503 with seconds", status: 503, retryAfter: "120", wantRetryAfter: [2]time.Duration{2 * time.Minute, 2 * time.Minute}},
		{name: "429 with seconds", status: 429, retryAfter: "30", wantRetryAfter: [2]time.Duration{30 * time.Second, 30 * time.Second}},
		{name: "429 with seconds over the cap", status: 429, retryAfter: "86400", wantRetryAfter: [2]time.Duration{time.Hour, time.Hour}},
		{name: "429 with an HTTP date", status: 429, retryAfter: time.Now().Add(3 * time.Minute).UTC().Format(http.TimeFormat),
			wantRetryAfter: [2]time.Duration{3*time.Minute - 5*time.Second, 3 * time.Minute}},
		{name: "429 with garbage", status: 429, retryAfter: "soon"},
		{name: "500 Retry-After ignored", status: 500, retryAfter: "60"},
		{name: "410", status: 410, wantGone: true},
		{name: "404", status: 404},
	}
	for _, tt := range statusTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := webhooktest.New(t)
			rc.SetSecret(secret)
			rc.Script(webhooktest.Reply{Status: tt.status, RetryAfter: tt.retryAfter, Body: `{"error":"nope"}`})
			a := Send(context.Background(), NewHTTPClient(5*time.Second, true), rc.URL, id, ts, body, sig)
			if a.OK() {
				t.Errorf("OK: got true, want false")
			}
			if a.StatusCode != tt.status {
				t.Errorf("StatusCode: got %d, want %d", a.StatusCode, tt.status)
			}
			if !strings.Contains(a.Err, strconv.Itoa(tt.status)) {
				t.Errorf("Err: got %q, want it to name status %d", a.Err, tt.status)
			}
			if a.RetryAfter < tt.wantRetryAfter[0] || a.RetryAfter > tt.wantRetryAfter[1] {
				t.Errorf("RetryAfter: got %v, want in [%v, %v]", a.RetryAfter, tt.wantRetryAfter[0], tt.wantRetryAfter[1])
			}
			if a.Gone != tt.wantGone {
				t.Errorf("Gone: got %v, want %v", a.Gone, tt.wantGone)
			}
		})
	}

	t.Run("302 not followed", func(t *testing.T) {
		t.Parallel()
		target := webhooktest.New(t)
		target.SetSecret(secret)
		rc := webhooktest.New(t)
		rc.SetSecret(secret)
		rc.Script(webhooktest.Reply{Status: http.StatusFound, Location: target.URL})
		a := Send(context.Background(), NewHTTPClient(5*time.Second, true), rc.URL, id, ts, body, sig)
		if a.OK() || a.StatusCode != http.StatusFound {
			t.Errorf("got status %d OK=%v, want 302 and not OK", a.StatusCode, a.OK())
		}
		if !strings.Contains(a.Err, "not followed") {
			t.Errorf("Err: got %q, want it to say the redirect was not followed", a.Err)
		}
		if got := target.Count(); got != 0 {
			t.Errorf("redirect target got %d requests, want 0", got)
		}
	})

	t.Run("slow server times out", func(t *testing.T) {
		t.Parallel()
		rc := webhooktest.New(t)
		rc.SetSecret(secret)
		rc.Script(webhooktest.Reply{Delay: time.Minute})
		timeout := 300 * time.Millisecond
		start := time.Now()
		a := Send(context.Background(), NewHTTPClient(timeout, true), rc.URL, id, ts, body, sig)
		elapsed := time.Since(start)
		if a.OK() || a.StatusCode != 0 {
			t.Errorf("got status %d, want none", a.StatusCode)
		}
		if !strings.Contains(a.Err, "timeout") {
			t.Errorf("Err: got %q, want a timeout", a.Err)
		}
		if elapsed > timeout+time.Second {
			t.Errorf("Send took %v, want about %v", elapsed, timeout)
		}
	})

	// A receiver that sends its status and then stalls: the fake always
	// answers whole, so this one is written by hand.
	t.Run("slow body times out", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}))
		defer srv.Close()
		timeout := 300 * time.Millisecond
		start := time.Now()
		a := Send(context.Background(), NewHTTPClient(timeout, true), srv.URL, id, ts, body, sig)
		if elapsed := time.Since(start); elapsed > timeout+time.Second {
			t.Errorf("Send took %v, want about %v", elapsed, timeout)
		}
		if !a.OK() {
			t.Errorf("got %+v, want OK: the status decides even when the body stalls", a)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		a := Send(context.Background(), NewHTTPClient(time.Second, true), url, id, ts, body, sig)
		if a.OK() || a.StatusCode != 0 || a.Err == "" {
			t.Errorf("got %+v, want a failed attempt with an error", a)
		}
		if strings.Contains(a.Err, url) {
			t.Errorf("Err %q repeats the URL", a.Err)
		}
	})

	t.Run("canceled context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		a := Send(ctx, NewHTTPClient(time.Second, true), "http://127.0.0.1:1/", id, ts, body, sig)
		if a.OK() || a.Err != "canceled" {
			t.Errorf("got %+v, want Err canceled", a)
		}
	})

	t.Run("invalid URL", func(t *testing.T) {
		t.Parallel()
		a := Send(context.Background(), NewHTTPClient(time.Second, true), "http://bad url/", id, ts, body, sig)
		if a.OK() || a.Err == "" {
			t.Errorf("got %+v, want a failed attempt", a)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"1", time.Second},
		{"3600", time.Hour},
		{"3601", time.Hour},
		{"99999999999999999999", 0},
		{"1.5", 0},
		{"Sat, 01 Mar 2025 12:10:00 GMT", 10 * time.Minute},
		{"Sat, 01 Mar 2025 11:00:00 GMT", 0},
		{"Sun, 02 Mar 2025 12:00:00 GMT", time.Hour},
		{"Saturday, 01-Mar-25 12:00:30 GMT", 30 * time.Second},
		{"tomorrow", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}

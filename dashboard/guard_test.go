package dashboard_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall/dashboard"
)

// A page on another site that posts to the dashboard: the browser adds the
// operator's Basic credentials, but the change is refused.
func TestChangesMustComeFromTheDashboardsOrigin(t *testing.T) {
	t.Parallel()
	base, redisOpt := setup(t, false)
	pause := base + "/monitoring/api/queues/default:pause"
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"cross-origin", []string{"Origin", "https://evil.example"}, 403},
		{"cross-origin referer", []string{"Referer", "https://evil.example/page"}, 403},
		{"opaque origin", []string{"Origin", "null"}, 403},
		{"neither origin nor referer", nil, 403},
		{"same origin, other scheme", []string{"Origin", "https" + base[len("http"):]}, 403},
		{"cross-origin with a same-origin referer", []string{"Origin", "https://evil.example", "Referer", base + "/monitoring/"}, 403},
	} {
		res, body := request(t, "POST", pause, user, password, tc.header...)
		if res.StatusCode != tc.want {
			t.Errorf("%s: got %d %s, want %d", tc.name, res.StatusCode, body, tc.want)
		}
	}
	inspector := asynq.NewInspector(redisOpt)
	defer inspector.Close()
	if info, err := inspector.GetQueueInfo("default"); err != nil || info.Paused {
		t.Fatalf("after cross-origin posts: paused %v, err %v", info != nil && info.Paused, err)
	}
	// Reads need no origin.
	if res, body := request(t, "GET", base+"/monitoring/api/queues", user, password, "Origin", "https://evil.example"); res.StatusCode != 200 {
		t.Errorf("cross-origin GET: got %d %s, want 200", res.StatusCode, body)
	}
	if res, body := request(t, "POST", pause, user, password, "Referer", base+"/monitoring/queues/default"); res.StatusCode != 204 {
		t.Errorf("same-origin referer: got %d %s, want 204", res.StatusCode, body)
	}
	if res, body := request(t, "POST", base+"/monitoring/api/queues/default:resume", user, password, "Origin", base); res.StatusCode != 204 {
		t.Errorf("same origin: got %d %s, want 204", res.StatusCode, body)
	}
}

// Behind a proxy that ends TLS, the browser's origin is PUBLIC_BASE_URL's.
func TestPublicBaseURLIsTheDashboardsOrigin(t *testing.T) {
	t.Parallel()
	_, redisOpt := setup(t, false)
	h := dashboard.New(dashboard.Config{Redis: redisOpt, Username: user, Password: password, PublicBaseURL: "https://ops.example.com"})
	t.Cleanup(func() { h.Close() })
	for _, tc := range []struct {
		host, origin string
		allowed      bool
	}{
		{"ops.example.com", "https://ops.example.com", true},
		{"ops.example.com", "https://ops.example.com:443", true},
		{"ops.example.com", "http://ops.example.com", false},
		{"10.0.0.5:8080", "https://ops.example.com", true},
		{"10.0.0.5:8080", "http://10.0.0.5:8080", true},
		{"ops.example.com", "https://evil.example", false},
	} {
		// Pausing a paused queue is Asynqmon's error, not a refusal.
		req := httptest.NewRequest("POST", "/monitoring/api/queues/critical:pause", nil)
		req.Host = tc.host
		req.Header.Set("Origin", tc.origin)
		req.SetBasicAuth(user, password)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if (rec.Code != http.StatusForbidden) != tc.allowed || rec.Code == http.StatusUnauthorized {
			t.Errorf("Host %s, Origin %s: got %d %s, want allowed %v", tc.host, tc.origin, rec.Code, rec.Body, tc.allowed)
		}
	}
}

func TestFailedLoginsAreSlowedDown(t *testing.T) {
	t.Parallel()
	_, redisOpt := setup(t, false)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	h := dashboard.New(dashboard.Config{Redis: redisOpt, Username: user, Password: password, Now: func() time.Time { return now }})
	t.Cleanup(func() { h.Close() })
	login := func(addr, pass string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/monitoring/api/queues", nil)
		req.RemoteAddr = addr
		req.SetBasicAuth(user, pass)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	attacker, other := "203.0.113.7:5555", "198.51.100.9:4444"
	refused := 0
	for range 50 {
		switch rec := login(attacker, "guess"); rec.Code {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			refused++
			if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 {
				t.Fatalf("429 with Retry-After %q, want whole seconds", rec.Header().Get("Retry-After"))
			}
		default:
			t.Fatalf("bad login: got %d", rec.Code)
		}
	}
	if refused < 30 {
		t.Fatalf("50 bad logins in a row: %d refused, want most of them", refused)
	}
	// While it waits, the address is refused even with the right password;
	// another address is not affected.
	if rec := login(attacker, password); rec.Code != http.StatusTooManyRequests {
		t.Errorf("right password from the refused address: got %d, want 429", rec.Code)
	}
	if rec := login(other, "typo"); rec.Code != http.StatusUnauthorized {
		t.Errorf("bad login from another address: got %d, want 401", rec.Code)
	}
	if rec := login(other, password); rec.Code != http.StatusOK {
		t.Errorf("right password from another address: got %d, want 200", rec.Code)
	}
	// A browser's first visit, without credentials, is no failed login.
	for range 50 {
		req := httptest.NewRequest("GET", "/monitoring/", nil)
		req.RemoteAddr = "192.0.2.1:1"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("visit without credentials: got %d, want 401", rec.Code)
		}
	}
	// In time the allowance comes back.
	now = now.Add(time.Minute)
	if rec := login(attacker, password); rec.Code != http.StatusOK {
		t.Errorf("right password a minute later: got %d, want 200", rec.Code)
	}
}

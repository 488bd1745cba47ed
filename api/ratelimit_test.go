package api_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/internal/testenv"
)

// Two servers sharing one Redis share each workspace's budget, answer 429
// with the retry headers beyond it, and leave other workspaces alone.
func TestRateLimitSharedAcrossServers(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	var deps api.Deps
	b := setup(t, func(o *options) {
		o.deps = func(d *api.Deps) {
			d.RateLimit = api.RateLimit{Redis: rdb, PerSecond: 1, Burst: 10}
			deps = *d
		}
	})
	second := httptest.NewServer(api.NewServer(deps))
	t.Cleanup(second.Close)
	first := b.url

	allowed := 0
	var refused response
	for i := range 16 {
		b.url = []string{first, second.URL}[i%2]
		r := b.do("GET", "/v1/webhooks", "", nil)
		switch r.Status {
		case 200:
			allowed++
		case 429:
			refused = r
		default:
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	// 8 requests each: within the burst of either alone, over it together
	// (the rate may add a request or two while the test runs).
	if allowed < 10 || allowed > 12 {
		t.Fatalf("two servers sharing one budget of 10 let %d of 16 requests through", allowed)
	}
	refused.want(t, 429, "rate_limited")

	// The headers, as a client sees them.
	req, _ := http.NewRequest("POST", second.URL+"/v1/webhook-deliveries/msg_00000000000000000000000000000000/redeliver", nil)
	req.Header.Set("Authorization", "Bearer "+b.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 429 {
		t.Fatalf("redeliver over the limit: got %d, want 429", res.StatusCode)
	}
	if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("Retry-After: %q", res.Header.Get("Retry-After"))
	}
	if res.Header.Get("RateLimit-Limit") != "10" || res.Header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("RateLimit-Limit %q, RateLimit-Remaining %q", res.Header.Get("RateLimit-Limit"), res.Header.Get("RateLimit-Remaining"))
	}
	if n, err := strconv.Atoi(res.Header.Get("RateLimit-Reset")); err != nil || n < 1 {
		t.Errorf("RateLimit-Reset: %q", res.Header.Get("RateLimit-Reset"))
	}

	// Another workspace has its own budget; the Twilio callback is not limited.
	_, otherKey, err := b.store.CreateAPIKey(t.Context(), "other-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	b.do("GET", "/v1/webhooks", otherKey, nil).want(t, 200, "")
	if r := b.do("POST", "/v1/providers/twilio/status", "-", nil); r.Status == 429 {
		t.Errorf("the Twilio callback is rate limited")
	}
}

// While Redis does not answer, the limit is not enforced: requests, and
// above all ends, succeed.
func TestRateLimitFailsOpen(t *testing.T) {
	t.Parallel()
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { down.Close() })
	b := setup(t, func(o *options) {
		o.deps = func(d *api.Deps) { d.RateLimit = api.RateLimit{Redis: down, PerSecond: 1, Burst: 1} }
	})
	for range 5 {
		b.do("GET", "/v1/webhooks", "", nil).want(t, 200, "")
	}
	_, sid := b.phone("+15550001111", false)
	c := b.activeCall("+15550001111", sid, "in-progress", nil)
	r := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID})
	r.want(t, 200, "")
	if r.Message != "Call ended" {
		t.Errorf("end: %s", r.Body)
	}
}

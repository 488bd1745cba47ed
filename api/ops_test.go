package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/api"
)

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/v1/calls/0b7e2a39-6c3b-4a2f-9a44-3f1f6a7d2c11", "GET, PATCH"},
		{"PUT", "/v1/calls/anything", "GET, PATCH"},
		{"GET", "/v1/calls/end", "POST"},
		{"DELETE", "/v1/calls/query", "GET"},
		{"GET", "/v1/calls/make-call", "POST"},
		{"PATCH", "/v1/webhooks", "GET, POST"},
		{"GET", "/v1/webhook-deliveries/0b7e2a39-6c3b-4a2f-9a44-3f1f6a7d2c11/redeliver", "POST"},
		{"POST", "/openapi.json", "GET"},
	} {
		req, _ := http.NewRequest(tc.method, b.url+tc.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Error struct{ Code, RequestID string } `json:"error"`
		}
		json.NewDecoder(res.Body).Decode(&env)
		res.Body.Close()
		if res.StatusCode != 405 || env.Error.Code != "method_not_allowed" || res.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: got %d %q Allow %q, want 405 method_not_allowed Allow %q",
				tc.method, tc.path, res.StatusCode, env.Error.Code, res.Header.Get("Allow"), tc.allow)
		}
	}
	// An unknown path is still a 404, and a right method still reaches its handler.
	b.do("DELETE", "/v1/nothing-here", "", nil).want(t, 404, "not_found")
	b.do("GET", "/v1/calls/0b7e2a39-6c3b-4a2f-9a44-3f1f6a7d2c11", "", nil).want(t, 404, "not_found")
}

func TestUnknownQueryParameters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		method, path, unknown string
		accepted              []string
	}{
		{"GET", "/v1/calls/query?filter_columns=call_status&filter_operator[]=eq&filter_values[]=busy", "filter_columns",
			[]string{"filter_columns[]", "filter_operator[]", "filter_values[]", "sort_column", "per_page"}},
		{"GET", "/v1/calls/query?pagesize=5", "pagesize", []string{"page", "per_page"}},
		{"GET", "/v1/phone-numbers?limit=5", "limit", nil},
		{"POST", "/v1/calls/end?call_id=x", "call_id", nil},
		{"GET", "/v1/webhooks?verbose", "verbose", nil},
	} {
		r := b.do(tc.method, tc.path, "", map[string]any{})
		r.want(t, 400, "invalid_request")
		if !strings.Contains(r.Message, `"`+tc.unknown+`"`) {
			t.Errorf("%s %s: message %q does not name %q", tc.method, tc.path, r.Message, tc.unknown)
		}
		for _, a := range tc.accepted {
			if !strings.Contains(r.Message, a) {
				t.Errorf("%s %s: message %q does not list %q", tc.method, tc.path, r.Message, a)
			}
		}
		if tc.accepted == nil && !strings.Contains(r.Message, "accepts no query parameters") {
			t.Errorf("%s %s: message %q", tc.method, tc.path, r.Message)
		}
	}
	// Every accepted parameter is accepted; column errors list the columns.
	b.do("GET", "/v1/calls/query?campaign_id=&ai_agent_id=&status=&search=&disconnect_reason=&start_date=&end_date=&page=0&per_page=10&sort_column=created_at&order=asc", "", nil).want(t, 200, "")
	r := b.do("GET", "/v1/calls/query?sort_column=nope", "", nil)
	r.want(t, 400, "invalid_request")
	if !strings.Contains(r.Message, "call_duration") || !strings.Contains(r.Message, "analysis_sentiment") {
		t.Errorf("sort_column error does not list the columns: %q", r.Message)
	}
	r = b.do("GET", "/v1/calls/query?filter_columns[]=nope&filter_operator[]=eq&filter_values[]=x", "", nil)
	r.want(t, 400, "invalid_request")
	if !strings.Contains(r.Message, "call_duration") || !strings.Contains(r.Message, "is_test") {
		t.Errorf("filter_columns error does not list the columns: %q", r.Message)
	}
	// Without credentials the answer is 401, whatever the query.
	b.do("GET", "/v1/calls/query?bogus=1", "-", nil).want(t, 401, "unauthorized")
}

// TestRequestIDs follows one request id from the request through the
// response header and error body to the request's log line.
func TestRequestIDs(t *testing.T) {
	t.Parallel()
	var deps api.Deps
	setup(t, func(o *options) { o.deps = func(d *api.Deps) { deps = *d } })
	var logs bytes.Buffer
	deps.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	srv := api.NewServer(deps)

	serve := func(method, path, id, auth string) (*httptest.ResponseRecorder, map[string]any) {
		logs.Reset()
		req := httptest.NewRequest(method, path, strings.NewReader(`{}`))
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var line map[string]any
		for l := range strings.Lines(logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "http request" {
				line = m
			}
		}
		if line == nil {
			t.Fatalf("%s %s: no request log line in %s", method, path, logs.String())
		}
		return rec, line
	}
	errorID := func(rec *httptest.ResponseRecorder) string {
		var env struct {
			Error struct {
				RequestID string `json:"request_id"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			t.Fatalf("body %s: %v", rec.Body, err)
		}
		return env.Error.RequestID
	}

	// The caller's own id.
	rec, line := serve("GET", "/v1/calls/query", "trace-42/abc", "")
	if rec.Code != 401 || rec.Header().Get("X-Request-Id") != "trace-42/abc" || errorID(rec) != "trace-42/abc" || line["request_id"] != "trace-42/abc" {
		t.Errorf("caller's id: %d header %q body %s log %v", rec.Code, rec.Header().Get("X-Request-Id"), rec.Body, line)
	}
	if rec.Header().Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("401 without WWW-Authenticate: Bearer: %v", rec.Header())
	}
	// Ids that are too long, empty or not visible ASCII are replaced.
	seen := map[string]bool{}
	for _, bad := range []string{"", strings.Repeat("x", 129), "has space", "tab\tid", "é"} {
		rec, line := serve("POST", "/v1/nothing", bad, "")
		id := rec.Header().Get("X-Request-Id")
		if id == "" || id == bad || seen[id] || errorID(rec) != id || line["request_id"] != id || rec.Code != 404 {
			t.Errorf("id %q: got %d header %q body %s log %v", bad, rec.Code, id, rec.Body, line)
		}
		seen[id] = true
	}
	rec, _ = serve("GET", "/v1/calls/query", strings.Repeat("y", 128), "")
	if rec.Header().Get("X-Request-Id") != strings.Repeat("y", 128) {
		t.Errorf("a 128-character id was replaced by %q", rec.Header().Get("X-Request-Id"))
	}
	// Success responses carry one too; 405s carry it in the body.
	rec, line = serve("GET", "/openapi.json", "ok-1", "")
	if rec.Code != 200 || rec.Header().Get("X-Request-Id") != "ok-1" || line["request_id"] != "ok-1" {
		t.Errorf("success: %d header %q log %v", rec.Code, rec.Header().Get("X-Request-Id"), line)
	}
	rec, line = serve("DELETE", "/v1/calls/end", "m-1", "")
	if rec.Code != 405 || errorID(rec) != "m-1" || line["request_id"] != "m-1" {
		t.Errorf("405: %d body %s log %v", rec.Code, rec.Body, line)
	}
}

func TestBearerScheme(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
		req, _ := http.NewRequest("GET", b.url+"/v1/phone-numbers", nil)
		req.Header.Set("Authorization", scheme+" "+b.key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("scheme %q: got %d", scheme, res.StatusCode)
		}
	}
	for _, auth := range []string{"", "Basic " + b.key, "Bearer", "Bearer ek_nope", b.key} {
		req, _ := http.NewRequest("GET", b.url+"/v1/phone-numbers", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("Authorization %q: got %d WWW-Authenticate %q", auth, res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestTranscriptAssistantRole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.phone("+15550700000", false)
	r := b.do("POST", "/v1/calls", "", map[string]any{"call_from": "+15550700000", "call_to": "+15550700001", "call_direction": "outbound",
		"transcript_object": []map[string]any{{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Hello"}}})
	r.want(t, 201, "")
	c := r.call(t)
	if endcall.Deref(c.Transcript) != "agent: Hi\nuser: Hello" || len(c.TranscriptObject) != 2 || c.TranscriptObject[0].Role != "agent" {
		t.Errorf("created: transcript %q turns %+v", endcall.Deref(c.Transcript), c.TranscriptObject)
	}
	r = b.do("PATCH", "/v1/calls/"+c.ID, "", map[string]any{"transcript_object": []map[string]any{{"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye"}}})
	r.want(t, 200, "")
	got := b.do("GET", "/v1/calls/"+c.ID, "", nil).call(t)
	if endcall.Deref(got.Transcript) != "user: Bye\nagent: Goodbye" || len(got.TranscriptObject) != 2 || got.TranscriptObject[1].Role != "agent" {
		t.Errorf("patched and read back: transcript %q turns %+v", endcall.Deref(got.Transcript), got.TranscriptObject)
	}
	b.do("POST", "/v1/calls", "", map[string]any{"call_from": "+15550700000", "call_to": "+15550700001", "call_direction": "outbound",
		"transcript_object": []map[string]any{{"role": "system", "content": "x"}}}).want(t, 400, "invalid_request")
}

// TestRevokedKeyRefusedOnEveryServer revokes a key that two servers on one
// database have just verified and cached: both refuse it once
// api.KeyCacheTTL has passed on their (driven) clock.
func TestRevokedKeyRefusedOnEveryServer(t *testing.T) {
	t.Parallel()
	var deps api.Deps
	b := setup(t, func(o *options) { o.deps = func(d *api.Deps) { deps = *d } })
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 10, 0, 5, 0, time.UTC)
	deps.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	servers := []*api.Server{api.NewServer(deps), api.NewServer(deps)}
	status := func(srv *api.Server) int {
		req := httptest.NewRequest("GET", "/v1/phone-numbers", nil)
		req.Header.Set("Authorization", "Bearer "+b.key)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code
	}
	for i, srv := range servers {
		if got := status(srv); got != 200 {
			t.Fatalf("server %d before revocation: %d", i, got)
		}
	}
	keys, err := b.store.ListAPIKeys(context.Background(), "ws-"+t.Name())
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys: %v %v", keys, err)
	}
	if _, err := b.store.RevokeAPIKey(context.Background(), keys[0].ID); err != nil {
		t.Fatal(err)
	}
	// Within the bound the cached key may still pass; at the bound it may not.
	advance(api.KeyCacheTTL - time.Second)
	for i, srv := range servers {
		if got := status(srv); got != 200 {
			t.Fatalf("server %d before its cache expired: %d (the test no longer shows the cache)", i, got)
		}
	}
	advance(time.Second)
	for i, srv := range servers {
		if got := status(srv); got != 401 {
			t.Errorf("server %d %s after revocation: %d, want 401", i, api.KeyCacheTTL, got)
		}
	}
	if api.KeyCacheTTL > 30*time.Second {
		t.Errorf("KeyCacheTTL %s exceeds the 30 s within which a revoked key must be refused", api.KeyCacheTTL)
	}
}

// TestKeyUseRecordedEachMinute checks that a cached key still reaches the
// database in each new minute of use, so that last_used_at is exact to the
// minute.
func TestKeyUseRecordedEachMinute(t *testing.T) {
	t.Parallel()
	var deps api.Deps
	b := setup(t, func(o *options) { o.deps = func(d *api.Deps) { deps = *d } })
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 10, 0, 55, 0, time.UTC)
	deps.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := api.NewServer(deps)
	use := func() {
		req := httptest.NewRequest("GET", "/v1/phone-numbers", nil)
		req.Header.Set("Authorization", "Bearer "+b.key)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
	}
	use()
	// Forget the recorded minute, as if the key had not been used this minute.
	if _, err := b.pool.Exec(context.Background(), `UPDATE api_keys SET last_used_at = NULL`); err != nil {
		t.Fatal(err)
	}
	use() // cached: no database round trip
	var used *time.Time
	b.pool.QueryRow(context.Background(), `SELECT last_used_at FROM api_keys`).Scan(&used)
	if used != nil {
		t.Fatalf("a cached use reached the database: %v", used)
	}
	mu.Lock()
	now = now.Add(6 * time.Second) // 10:01:01, well within the TTL
	mu.Unlock()
	use()
	b.pool.QueryRow(context.Background(), `SELECT last_used_at FROM api_keys`).Scan(&used)
	if used == nil || used.Second() != 0 || used.Nanosecond() != 0 {
		t.Errorf("last_used_at after a use in a new minute: %v, want a whole minute", used)
	}
}

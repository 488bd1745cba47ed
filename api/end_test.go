package api_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/twilio/twiliotest"
)

func TestEndCallHangsUpRecordsAndQueues(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550001111", false)
	c := b.activeCall("+15550001111", account, "in-progress", nil)

	r := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID})
	r.want(t, 200, "")
	if r.Message != "Call ended" {
		t.Errorf("message: got %q, want %q", r.Message, "Call ended")
	}
	got := r.call(t)
	if got.CallStatus != "completed" || endcall.Deref(got.DisconnectReason) != "Ended Via API call" ||
		endcall.Deref(got.ProviderHangupStatus) != "succeeded" || got.EndedAt == nil || got.CallDuration == nil {
		t.Errorf("ended call: got status %q reason %q hangup %q ended_at %v duration %v",
			got.CallStatus, endcall.Deref(got.DisconnectReason), endcall.Deref(got.ProviderHangupStatus), got.EndedAt, got.CallDuration)
	}
	if endcall.Deref(got.RoomStatus) != "pending" || endcall.Deref(got.AnalysisStatus) != "pending" {
		t.Errorf("owed work: got room %q analysis %q, want pending, pending", endcall.Deref(got.RoomStatus), endcall.Deref(got.AnalysisStatus))
	}
	hangups := b.twilio.Hangups(*c.CallSID)
	if len(hangups) != 1 {
		t.Fatalf("hangups: got %d, want 1", len(hangups))
	}
	h := hangups[0]
	if h.Form.Get("Status") != "completed" || h.AccountSID != b.platformSID || h.AuthUser != b.platformSID || !h.Authenticated {
		t.Errorf("hangup request: got status %q account %q user %q authenticated %v", h.Form.Get("Status"), h.AccountSID, h.AuthUser, h.Authenticated)
	}
	wantPath := fmt.Sprintf("/2010-04-01/Accounts/%s/Calls/%s.json", b.platformSID, *c.CallSID)
	if h.Path != wantPath {
		t.Errorf("hangup path: got %s, want %s", h.Path, wantPath)
	}
	wantTasks := []string{"analyze:" + c.ID, "room:" + c.ID}
	if got := sorted(b.tasks("default")); !slices.Equal(got, wantTasks) {
		t.Errorf("default queue: got %v, want %v", got, wantTasks)
	}
	if got := b.tasks("critical"); len(got) != 0 {
		t.Errorf("critical queue: got %v, want none", got)
	}
	stored, err := b.store.GetCall(context.Background(), b.workspace, c.ID)
	if err != nil || stored.CallStatus != "completed" {
		t.Fatalf("stored call: %v %v", stored, err)
	}
}

func TestEndCallReasons(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550001112", false)
	long := strings.Repeat("é", 500)
	for _, tc := range []struct {
		name   string
		reason any
		want   string
	}{
		{"absent", nil, "Ended Via API call"},
		{"null", "null", "Ended Via API call"},
		{"blank", "   ", "Ended Via API call"},
		{"given", "Customer asked to stop", "Customer asked to stop"},
		{"500 characters", long, long},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := b.activeCall("+15550001112", account, "in-progress", nil)
			body := map[string]any{"call_id": c.ID}
			switch tc.reason {
			case nil:
			case "null":
				body["disconnect_reason"] = nil
			default:
				body["disconnect_reason"] = tc.reason
			}
			r := b.do("POST", "/v1/calls/end", "", body)
			r.want(t, 200, "")
			if got := endcall.Deref(r.call(t).DisconnectReason); got != tc.want {
				t.Errorf("disconnect_reason: got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEndCallUsesBYOTCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550002222", true)
	if account == b.platformSID {
		t.Fatal("BYOT account equals the platform's")
	}
	c := b.activeCall("+15550002222", account, "in-progress", nil)
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID}).want(t, 200, "")
	hangups := b.twilio.Hangups(*c.CallSID)
	if len(hangups) != 1 || hangups[0].AccountSID != account || hangups[0].AuthUser != account || !hangups[0].Authenticated {
		t.Fatalf("hangups: got %v, want one authenticated as %s", hangups, account)
	}
}

func TestEndQueuedOrRingingCallCancels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550003333", false)
	for _, status := range []string{"queued", "ringing"} {
		c := b.activeCall("+15550003333", account, status, nil)
		r := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID})
		r.want(t, 200, "")
		got := r.call(t)
		if got.CallStatus != "canceled" || got.CallDuration == nil || *got.CallDuration != 0 {
			t.Errorf("%s: got status %q duration %v, want canceled 0", status, got.CallStatus, got.CallDuration)
		}
		if h := b.twilio.Hangups(*c.CallSID); len(h) != 1 || h[0].Form.Get("Status") != "canceled" {
			t.Errorf("%s: hangups %v, want one with Status=canceled", status, h)
		}
	}
}

func TestEndCallTwiceIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550004444", false)
	c := b.activeCall("+15550004444", account, "in-progress", nil)
	first := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID, "disconnect_reason": "first"})
	first.want(t, 200, "")
	before := b.snapshot()
	tasksBefore := sorted(b.tasks("default"))

	second := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID, "disconnect_reason": "second"})
	second.want(t, 200, "")
	if second.Message != "Call already ended" {
		t.Errorf("message: got %q, want %q", second.Message, "Call already ended")
	}
	if got := endcall.Deref(second.call(t).DisconnectReason); got != "first" {
		t.Errorf("disconnect_reason: got %q, want first", got)
	}
	if n := b.twilio.HangupCount(*c.CallSID); n != 1 {
		t.Errorf("hangups: got %d, want 1", n)
	}
	if b.snapshot() != before {
		t.Error("second end changed the database")
	}
	if got := sorted(b.tasks("default")); !slices.Equal(got, tasksBefore) {
		t.Errorf("tasks: got %v, want %v", got, tasksBefore)
	}
}

func TestConcurrentEndsTransitionOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550005555", false)
	b.endpoint("https://hooks.example.com/a", []string{"call.ended"})
	c := b.activeCall("+15550005555", account, "in-progress", nil)
	// A slow provider widens the window in which the ends overlap.
	b.twilio.SetDelay(*c.CallSID, 100*time.Millisecond)

	const n = 20
	var wg sync.WaitGroup
	messages := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID, "disconnect_reason": fmt.Sprint("end ", i)})
			if r.Status != 200 {
				t.Errorf("end %d: status %d %s", i, r.Status, r.Body)
			}
			messages[i] = r.Message
		}()
	}
	wg.Wait()
	ended := 0
	for _, m := range messages {
		if m == "Call ended" {
			ended++
		}
	}
	if ended != 1 {
		t.Errorf("transitions: got %d, want 1 (%v)", ended, messages)
	}
	if h := b.twilio.HangupCount(*c.CallSID); h != 1 {
		t.Errorf("hangups: got %d, want 1", h)
	}
	if got := sorted(b.tasks("default")); len(got) != 2 {
		t.Errorf("default tasks: got %v, want room and analyze once", got)
	}
	if got := b.tasks("webhooks"); len(got) != 1 {
		t.Errorf("webhook tasks: got %v, want 1", got)
	}
	var deliveries int
	b.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE call_id = $1`, c.ID).Scan(&deliveries)
	if deliveries != 1 {
		t.Errorf("deliveries: got %d, want 1", deliveries)
	}
}

func TestEndCallQueuesOneDeliveryPerSubscribedEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550006666", false)
	both := b.endpoint("https://hooks.example.com/both", []string{"call.ended", "call.analyzed"})
	ended := b.endpoint("https://hooks.example.com/ended", []string{"call.ended"})
	b.endpoint("https://hooks.example.com/analyzed", []string{"call.analyzed"})
	disabled := b.endpoint("https://hooks.example.com/disabled", []string{"call.ended"})
	deleted := b.endpoint("https://hooks.example.com/deleted", []string{"call.ended"})
	ctx := context.Background()
	b.pool.Exec(ctx, `UPDATE webhook_endpoints SET enabled = false WHERE id = $1`, disabled)
	b.pool.Exec(ctx, `UPDATE webhook_endpoints SET deleted_at = now() WHERE id = $1`, deleted)
	other := setup(t) // another workspace's endpoint on another database must not matter
	other.endpoint("https://hooks.example.com/other", []string{"call.ended"})

	c := b.activeCall("+15550006666", account, "in-progress", nil)
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID}).want(t, 200, "")

	rows, err := b.pool.Query(ctx, `SELECT id, endpoint_id::text, event, status FROM webhook_deliveries WHERE call_id = $1`, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var endpoints, wantTasks []string
	for rows.Next() {
		var id, endpoint, event, status string
		if err := rows.Scan(&id, &endpoint, &event, &status); err != nil {
			t.Fatal(err)
		}
		if event != "call.ended" || status != "pending" || !strings.HasPrefix(id, "msg_") {
			t.Errorf("delivery %s: event %q status %q", id, event, status)
		}
		endpoints = append(endpoints, endpoint)
		wantTasks = append(wantTasks, "deliver:"+id)
	}
	if want := sorted([]string{both, ended}); !slices.Equal(sorted(endpoints), want) {
		t.Errorf("delivery endpoints: got %v, want %v", sorted(endpoints), want)
	}
	if got := sorted(b.tasks("webhooks")); !slices.Equal(got, sorted(wantTasks)) {
		t.Errorf("webhook tasks: got %v, want %v", got, sorted(wantTasks))
	}
}

func TestEndCallOfAnotherWorkspaceIsNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550007777", false)
	c := b.activeCall("+15550007777", account, "in-progress", nil)
	_, otherKey, err := b.store.CreateAPIKey(context.Background(), "intruder")
	if err != nil {
		t.Fatal(err)
	}
	before := b.snapshot()
	r := b.do("POST", "/v1/calls/end", otherKey, map[string]any{"call_id": c.ID})
	r.want(t, 404, "not_found")
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": "7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11"}).want(t, 404, "not_found")
	b.do("GET", "/v1/calls/"+c.ID, otherKey, nil).want(t, 404, "not_found")
	if b.snapshot() != before || b.twilio.HangupCount(*c.CallSID) != 0 {
		t.Error("a refused end changed something")
	}
}

func TestEndCallBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550008888", false)
	c := b.activeCall("+15550008888", account, "in-progress", nil)
	before := b.snapshot()
	for _, tc := range []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"malformed JSON", `{"call_id": `, 400, "invalid_request"},
		{"not an object", `["` + c.ID + `"]`, 400, "invalid_request"},
		{"empty body", ``, 400, "invalid_request"},
		{"trailing data", `{"call_id":"` + c.ID + `"} {}`, 400, "invalid_request"},
		{"missing call_id", `{"disconnect_reason":"x"}`, 400, "invalid_request"},
		{"null call_id", `{"call_id":null}`, 400, "invalid_request"},
		{"number call_id", `{"call_id":42}`, 400, "invalid_request"},
		{"non-UUID call_id", `{"call_id":"call-1"}`, 400, "invalid_request"},
		{"reason not a string", `{"call_id":"` + c.ID + `","disconnect_reason":7}`, 400, "invalid_request"},
		{"reason too long", `{"call_id":"` + c.ID + `","disconnect_reason":"` + strings.Repeat("x", 501) + `"}`, 400, "invalid_request"},
		// Postgres text cannot hold it: it would fail the batch of ends.
		{"reason with NUL", `{"call_id":"` + c.ID + `","disconnect_reason":"x\u0000y"}`, 400, "invalid_request"},
		{"oversize body", `{"call_id":"` + c.ID + `","pad":"` + strings.Repeat("x", 65<<10) + `"}`, 413, "payload_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do("POST", "/v1/calls/end", "", tc.body)
			r.want(t, tc.status, tc.code)
			if r.Message == "" {
				t.Error("error without a message")
			}
		})
	}
	if b.snapshot() != before || b.twilio.HangupCount(*c.CallSID) != 0 {
		t.Error("bad input changed something")
	}
}

func TestEndCallIgnoresUnknownFields(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550008889", false)
	c := b.activeCall("+15550008889", account, "in-progress", nil)
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID, "extra": []int{1}}).want(t, 200, "")
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	secret := []byte("a-test-secret-of-reasonable-length")
	b := setup(t, func(o *options) { o.jwtSecret = secret })
	_, account := b.phone("+15550009999", false)
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	future, past := time.Now().Add(time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"API key", "", 200},
		{"no token", "-", 401},
		{"unknown key", "ek_not-a-real-key", 401},
		{"garbage", "Basic abc", 401},
		{"valid HS256 JWT", sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"workspace_id": b.workspace, "exp": future}), 200},
		{"expired JWT", sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"workspace_id": b.workspace, "exp": past}), 401},
		{"JWT without exp", sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"workspace_id": b.workspace}), 401},
		{"JWT with wrong secret", sign(jwt.SigningMethodHS256, []byte("another-secret-entirely-0123456789"), jwt.MapClaims{"workspace_id": b.workspace, "exp": future}), 401},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"workspace_id": b.workspace, "exp": future}), 401},
		{"HS384 JWT", sign(jwt.SigningMethodHS384, secret, jwt.MapClaims{"workspace_id": b.workspace, "exp": future}), 401},
		{"JWT without workspace", sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"exp": future}), 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := b.activeCall("+15550009999", account, "in-progress", nil)
			before := b.snapshot()
			r := b.do("POST", "/v1/calls/end", tc.token, map[string]any{"call_id": c.ID})
			if r.Status != tc.status {
				t.Fatalf("got %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if tc.status == 401 {
				r.want(t, 401, "unauthorized")
				if b.snapshot() != before {
					t.Error("an unauthenticated request changed the database")
				}
			}
		})
	}
}

func TestLegacyEmptyErrorResponses(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.legacy = true })
	_, account := b.phone("+15550010000", false)
	c := b.activeCall("+15550010000", account, "in-progress", nil)
	for _, tc := range []struct {
		name, token, body string
	}{
		{"malformed", "", `{`},
		{"no token", "-", `{"call_id":"` + c.ID + `"}`},
		{"unknown call", "", `{"call_id":"7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11"}`},
		{"oversize", "", `{"pad":"` + strings.Repeat("x", 70<<10) + `"}`},
	} {
		r := b.do("POST", "/v1/calls/end", tc.token, tc.body)
		if r.Status != 200 || len(r.Body) != 0 {
			t.Errorf("%s: got %d %q, want 200 and an empty body", tc.name, r.Status, r.Body)
		}
	}
	r := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID})
	if r.Status != 200 || r.Message != "Call ended" {
		t.Errorf("success under legacy mode: got %d %s", r.Status, r.Body)
	}
	// Legacy mode covers only the end route.
	b.do("GET", "/v1/calls/not-a-uuid", "", nil).want(t, 404, "not_found")
}

func TestProviderAlreadyEndedCountsAsSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550011111", false)
	c := b.activeCall("+15550011111", account, "in-progress", nil)
	b.twilio.FailNextWith(*c.CallSID, 1, twiliotest.ErrNotInProgress)
	r := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID})
	r.want(t, 200, "")
	if got := endcall.Deref(r.call(t).ProviderHangupStatus); got != "already_ended" {
		t.Errorf("provider_hangup_status: got %q, want already_ended", got)
	}
	if got := b.tasks("critical"); len(got) != 0 {
		t.Errorf("critical tasks: got %v, want none", got)
	}
}

func TestProviderFailureIsRetriedInBackground(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550012222", false)
	c := b.activeCall("+15550012222", account, "in-progress", nil)
	b.twilio.FailNext(*c.CallSID, 1, 500)
	r := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID})
	r.want(t, 200, "")
	got := r.call(t)
	if endcall.Deref(got.ProviderHangupStatus) != "retrying" || got.CallStatus != "completed" || got.EndedAt == nil {
		t.Errorf("got hangup %q status %q ended_at %v, want retrying, completed, set", endcall.Deref(got.ProviderHangupStatus), got.CallStatus, got.EndedAt)
	}
	if want := []string{"hangup:" + c.ID}; !slices.Equal(b.tasks("critical"), want) {
		t.Errorf("critical tasks: got %v, want %v", b.tasks("critical"), want)
	}
}

func TestProviderTimeoutDoesNotFailTheEnd(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.providerTimeout = 200 * time.Millisecond })
	_, account := b.phone("+15550013333", false)
	c := b.activeCall("+15550013333", account, "in-progress", nil)
	b.twilio.SetDelay(*c.CallSID, 3*time.Second)
	start := time.Now()
	r := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID})
	r.want(t, 200, "")
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("end took %v; PROVIDER_TIMEOUT is 200ms", elapsed)
	}
	if got := endcall.Deref(r.call(t).ProviderHangupStatus); got != "retrying" {
		t.Errorf("provider_hangup_status: got %q, want retrying", got)
	}
}

func TestEndWhileRedisIsDownStillSucceeds(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.redisURL = "redis://127.0.0.1:1/0" })
	_, account := b.phone("+15550014444", false)
	b.endpoint("https://hooks.example.com/x", []string{"call.ended"})
	c := b.activeCall("+15550014444", account, "in-progress", nil)
	r := b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID})
	r.want(t, 200, "")
	got := r.call(t)
	if endcall.Deref(got.RoomStatus) != "pending" || endcall.Deref(got.AnalysisStatus) != "pending" {
		t.Errorf("owed work: room %q analysis %q, want pending", endcall.Deref(got.RoomStatus), endcall.Deref(got.AnalysisStatus))
	}
	var pending int
	b.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE call_id = $1 AND status = 'pending'`, c.ID).Scan(&pending)
	if pending != 1 {
		t.Errorf("pending deliveries: got %d, want 1", pending)
	}
}

func TestEndWhileDatabaseIsDownIs503(t *testing.T) {
	t.Parallel()
	secret := []byte("a-test-secret-of-reasonable-length")
	b := setup(t, func(o *options) {
		o.databaseURL = "postgres://postgres@127.0.0.1:1/none?connect_timeout=1"
		o.jwtSecret = secret
	})
	// The API's store points at a dead server; the call is created through
	// the healthy one, and a JWT authenticates without the database.
	ctx := context.Background()
	_, token, err := b.store.CreateAPIKey(ctx, "unused")
	if err != nil || token == "" {
		t.Fatal(err)
	}
	if _, err := b.store.CreatePhoneNumber(ctx, b.workspace, "+15550015555", "twilio", nil); err != nil {
		t.Fatal(err)
	}
	c := b.createCallDirect("+15550015555", b.platformSID)
	jwtToken, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"workspace_id": b.workspace, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := b.do("POST", "/v1/calls/end", jwtToken, map[string]any{"call_id": c.ID})
	r.want(t, 503, "unavailable")
	// An API key cannot be checked either: that is 503 too, never 401.
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID}).want(t, 503, "unavailable")
	if strings.Contains(string(r.Body), "127.0.0.1") || strings.Contains(string(r.Body), "dial") {
		t.Errorf("503 leaks internals: %s", r.Body)
	}
	if b.twilio.HangupCount(*c.CallSID) != 0 {
		t.Error("a hangup was made although nothing could be recorded")
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// endpoint inserts a webhook endpoint directly; the endpoints API is tested
// with the webhook pipeline.
func (b *bundle) endpoint(url string, events []string) string {
	b.t.Helper()
	var id string
	err := b.pool.QueryRow(context.Background(), `INSERT INTO webhook_endpoints (workspace_id, url, events, secret)
		VALUES ($1, $2, $3, 'whsec_' || $4) RETURNING id`, b.workspace, url, events, b64([]byte("0123456789abcdef0123456789abcdef"))).Scan(&id)
	if err != nil {
		b.t.Fatal(err)
	}
	return id
}

// createCallDirect registers an active call through the store, bypassing the
// API (whose store may be deliberately broken).
func (b *bundle) createCallDirect(from, accountSID string) *endcall.Call {
	b.t.Helper()
	ctx := context.Background()
	p, err := b.store.FindPhoneNumber(ctx, b.workspace, "", from)
	if err != nil {
		b.t.Fatal(err)
	}
	sid := b.twilio.NewCall(accountSID, "in-progress")
	now := time.Now().UTC()
	c, err := b.store.CreateCall(ctx, &endcall.Call{WorkspaceID: b.workspace, PhoneNumberID: &p.ID, CallSID: &sid,
		CallProvider: "twilio", CallFrom: from, CallTo: "+15557654321", CallDirection: "outbound",
		CallStatus: "in-progress", StartedAt: &now, CreatedAt: now})
	if err != nil {
		b.t.Fatal(err)
	}
	return c
}

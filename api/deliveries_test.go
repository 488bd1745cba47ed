package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/jobs"
)

// page decodes a paged delivery listing.
func (r response) page(t *testing.T) ([]endcall.Delivery, *string) {
	t.Helper()
	var env struct {
		Data       []endcall.Delivery `json:"data"`
		NextCursor *string            `json:"next_cursor"`
	}
	if err := json.Unmarshal(r.Body, &env); err != nil || !strings.Contains(string(r.Body), `"next_cursor"`) {
		t.Fatalf("not a page: %v: %s", err, r.Body)
	}
	return env.Data, env.NextCursor
}

// seedDeliveries stores n deliveries to the endpoint, the first failed of
// them failed (with an attempt) and the rest succeeded. The first two are
// the call's (call.ended and call.analyzed); the rest are test events.
func (b *bundle) seedDeliveries(endpointID, callID string, n, failed int) {
	b.t.Helper()
	_, err := b.pool.Exec(context.Background(), `INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, call_id, event, status, attempts, created_at)
		SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), $1, $2, CASE WHEN i < 2 THEN $3::uuid END, CASE WHEN i % 2 = 0 THEN 'call.ended' ELSE 'call.analyzed' END,
			CASE WHEN i < $5 THEN 'failed' ELSE 'succeeded' END,
			CASE WHEN i < $5 THEN '[{"attempt":1,"at":"2026-01-01T00:00:00Z","status_code":401,"error":"unexpected status 401","response_body":"bad signature","duration_ms":3,"next_attempt_at":null}]'::jsonb ELSE '[]' END,
			now() - i * interval '1 second'
		FROM generate_series(0, $4 - 1) i`, b.workspace, endpointID, callID, n, failed)
	if err != nil {
		b.t.Fatal(err)
	}
}

func TestDeliveryLogPagesAndFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := b.do("POST", "/v1/webhooks", "", map[string]any{"url": "https://93.184.216.34/hook"})
	e.want(t, 201, "")
	ep := e.endpoint(t)
	_, sid := b.phone("+15550001111", false)
	c := b.activeCall("+15550001111", sid, "in-progress", nil)
	b.seedDeliveries(ep.ID, c.ID, 120, 7)

	seen := map[string]bool{}
	path := "/v1/webhooks/" + ep.ID + "/deliveries"
	var sizes []int
	for cursor := ""; ; {
		r := b.do("GET", path+"?limit=50"+cursor, "", nil)
		r.want(t, 200, "")
		list, next := r.page(t)
		sizes = append(sizes, len(list))
		for i, d := range list {
			if seen[d.ID] {
				t.Fatalf("delivery %s on two pages", d.ID)
			}
			seen[d.ID] = true
			if i > 0 && d.CreatedAt.After(list[i-1].CreatedAt) {
				t.Fatalf("not newest first")
			}
		}
		if next == nil {
			break
		}
		cursor = "&cursor=" + *next
	}
	if fmt.Sprint(sizes) != "[50 50 20]" || len(seen) != 120 {
		t.Errorf("pages: %v, %d deliveries", sizes, len(seen))
	}
	list, _ := b.do("GET", path, "", nil).page(t)
	if len(list) != 50 {
		t.Errorf("default limit: got %d", len(list))
	}

	r := b.do("GET", "/v1/webhook-deliveries?status=failed&event=call.ended&endpoint_id="+ep.ID+"&call_id="+c.ID, "", nil)
	r.want(t, 200, "")
	failed, next := r.page(t)
	if len(failed) != 1 || next != nil {
		t.Fatalf("the call's failed call.ended deliveries: got %d (next %v), want 1", len(failed), next)
	}
	a := failed[0].Attempts[0]
	if a.ResponseBody == nil || *a.ResponseBody != "bad signature" || a.StatusCode == nil || *a.StatusCode != 401 {
		t.Errorf("attempt: %+v", a)
	}
	all, _ := b.do("GET", "/v1/webhook-deliveries?status=failed", "", nil).page(t)
	if len(all) != 7 {
		t.Errorf("failed across the workspace: got %d, want 7", len(all))
	}

	cd := b.do("GET", "/v1/calls/"+c.ID+"/deliveries", "", nil)
	cd.want(t, 200, "")
	var callDeliveries []endcall.Delivery
	json.Unmarshal(cd.Data, &callDeliveries)
	if len(callDeliveries) != 2 || *callDeliveries[0].CallID != c.ID || callDeliveries[0].Event != "call.ended" {
		t.Errorf("the call's deliveries: got %+v, want its two, newest first", callDeliveries)
	}

	for _, q := range []string{"limit=0", "limit=101", "limit=x", "cursor=nope", "status=weird", "event=call.started", "endpoint_id=1", "call_id=x"} {
		b.do("GET", "/v1/webhook-deliveries?"+q, "", nil).want(t, 400, "invalid_request")
	}
	_, otherKey, _ := b.store.CreateAPIKey(context.Background(), "other")
	b.do("GET", "/v1/calls/"+c.ID+"/deliveries", otherKey, nil).want(t, 404, "not_found")
	if list, _ := b.do("GET", "/v1/webhook-deliveries", otherKey, nil).page(t); len(list) != 0 {
		t.Errorf("another workspace sees %d deliveries", len(list))
	}
}

func TestWebhookPatchTestAndReplayRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ep := b.do("POST", "/v1/webhooks", "", map[string]any{"url": "https://93.184.216.34/hook", "rate_limit": 10}).endpoint(t)
	path := "/v1/webhooks/" + ep.ID
	before := b.snapshot()
	for _, body := range []string{`{"rate_limit":0}`, `{"rate_limit":1001}`, `{"enabled":null}`, `{"url":null}`, `{"url":"http://127.0.0.1/x"}`, `{"events":[]}`, `[]`} {
		b.do("PATCH", path, "", body).want(t, 400, "invalid_request")
	}
	for _, body := range []string{`{}`, `{"type":"call.started"}`, `{"type":5}`} {
		b.do("POST", path+"/test", "", body).want(t, 400, "invalid_request")
	}
	for _, body := range []string{`{}`, `{"since":"yesterday"}`, `{"since":"2026-01-01T00:00:00Z","status":"pending"}`,
		`{"since":"2026-01-02T00:00:00Z","until":"2026-01-01T00:00:00Z"}`} {
		b.do("POST", path+"/replay", "", body).want(t, 400, "invalid_request")
	}
	if b.snapshot() != before {
		t.Errorf("a refused request changed something")
	}
	r := b.do("PATCH", path, "", map[string]any{"description": "new", "rate_limit": nil, "events": []string{"call.ended"}})
	r.want(t, 200, "")
	var got struct {
		Description *string
		RateLimit   *int `json:"rate_limit"`
		Events      []string
		URL         string
	}
	json.Unmarshal(r.Data, &got)
	if got.Description == nil || *got.Description != "new" || got.RateLimit != nil || len(got.Events) != 1 || got.URL != ep.URL {
		t.Errorf("after PATCH: %s", r.Data)
	}
	b.do("PATCH", path, "", map[string]any{"enabled": false}).want(t, 200, "")
	b.do("POST", path+"/test", "", map[string]any{"type": "call.ended"}).want(t, 409, "conflict")
	b.do("POST", path+"/replay", "", map[string]any{"since": "2026-01-01T00:00:00Z"}).want(t, 409, "conflict")

	b.phone("+15550002222", false)
	c := b.activeCall("+15550002222", b.platformSID, "in-progress", nil)
	b.do("PATCH", path, "", map[string]any{"enabled": true}).want(t, 200, "")
	b.seedDeliveries(ep.ID, c.ID, 10001, 10001)
	b.do("POST", path+"/replay", "", map[string]any{"since": "2000-01-01T00:00:00Z"}).want(t, 400, "invalid_request")
}

// A queued delivery's task names its workspace, call, endpoint, URL host
// and event, and no secret.
func TestDeliveryTaskPayloadNamesItsSubject(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ep := b.do("POST", "/v1/webhooks", "", map[string]any{"url": "https://93.184.216.34:8443/hook?token=s3cret"}).endpoint(t)
	r := b.do("POST", "/v1/webhooks/"+ep.ID+"/test", "", map[string]any{"type": "call.ended"})
	r.want(t, 202, "")
	var d endcall.Delivery
	json.Unmarshal(r.Data, &d)
	info, err := b.inspector.GetTaskInfo(jobs.QueueWebhooks, "deliver:"+d.ID)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	json.Unmarshal(info.Payload, &p)
	want := map[string]any{"delivery_id": d.ID, "workspace_id": b.workspace, "endpoint_id": ep.ID, "url_host": "93.184.216.34:8443", "event": "call.ended"}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("payload %s: got %v, want %v (%s)", k, p[k], v, info.Payload)
		}
	}
	if strings.Contains(string(info.Payload), "whsec_") || strings.Contains(string(info.Payload), "s3cret") {
		t.Errorf("payload holds a secret: %s", info.Payload)
	}
}

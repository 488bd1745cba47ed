package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/jobs"
)

// The first call.ended attempt fails and is retried a second later; the
// call.analyzed delivery, ready long before, waits for it, and is woken when
// it succeeds rather than at its own next look, half a minute later.
func TestCallAnalyzedWaitsForCallEnded(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 0 {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(204)
	})
	p.subscribe(rc.srv.URL)
	p.endCall(happyTranscript)
	waitFor(t, 15*time.Second, "both events", func() bool { return len(rc.byType("call.analyzed")) == 1 })
	got := rc.requests()
	var order []string
	for _, r := range got {
		var ev struct{ Type string }
		json.Unmarshal(r.body, &ev)
		order = append(order, ev.Type)
	}
	if want := []string{"call.ended", "call.ended", "call.analyzed"}; !slices.Equal(order, want) {
		t.Fatalf("order: got %v, want %v", order, want)
	}
	if lag := got[2].at.Sub(got[1].at); lag > 2*time.Second {
		t.Errorf("call.analyzed came %v after call.ended succeeded: not woken", lag)
	}
}

// A receiver limited to 5 requests a second gets that pace from two worker
// processes, with no failed attempt.
func TestRateLimitHoldsAcrossTwoWorkers(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t)
	second := p.newWorker()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	rc := newReceiver(t, nil)
	var e struct{ ID string }
	if code := p.do("POST", "/v1/webhooks", map[string]any{"url": rc.srv.URL, "events": []string{"call.ended"}, "rate_limit": 5}, &e); code != 201 {
		t.Fatalf("subscribe: %d", code)
	}
	const calls = 15
	for range calls {
		p.endCall(nil)
	}
	waitFor(t, 20*time.Second, "every delivery", func() bool { return len(rc.requests()) == calls })
	got := rc.requests()
	for i := range got {
		// Any 6 consecutive requests span at least a second (5 a second,
		// with a little slack for the network).
		if i+5 < len(got) {
			if span := got[i+5].at.Sub(got[i].at); span < 950*time.Millisecond {
				t.Errorf("requests %d..%d came within %v: faster than 5 a second", i, i+5, span)
			}
		}
	}
	if total := got[len(got)-1].at.Sub(got[0].at); total > 4*time.Second {
		t.Errorf("%d requests took %v: slower than the limit allows", calls, total)
	}
	for _, d := range p.deliveries(e.ID) {
		if d.Status != endcall.DeliverySucceeded || len(d.Attempts) != 1 {
			t.Errorf("delivery %s: %s with %d attempts, want succeeded at the first", d.ID, d.Status, len(d.Attempts))
		}
	}
}

type endpointView struct {
	ID             string                  `json:"id"`
	Enabled        bool                    `json:"enabled"`
	DisabledReason *endcall.DisabledReason `json:"disabled_reason"`
	RateLimit      *int                    `json:"rate_limit"`
	Health         endcall.EndpointHealth  `json:"health"`
}

// An endpoint that fails every attempt for WEBHOOK_DISABLE_AFTER is
// disabled as failing, its pending delivery ends failed, and re-enabling it
// clears the reason.
func TestFailingEndpointIsDisabledAndReEnabled(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) {
		o.schedule = []time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second}
		o.disableAfter = 1500 * time.Millisecond
	})
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"error":"bad signature"}`)
	})
	id, _ := p.subscribe(rc.srv.URL, "call.ended")
	p.endCall(nil)
	var e endpointView
	waitFor(t, 15*time.Second, "the endpoint to be disabled", func() bool {
		p.do("GET", "/v1/webhooks/"+id, nil, &e)
		return !e.Enabled
	})
	if e.DisabledReason == nil || *e.DisabledReason != endcall.DisabledFailing {
		t.Errorf("disabled_reason: got %v, want failing", e.DisabledReason)
	}
	if h := e.Health; h.Attempts < 2 || h.Failures != h.Attempts || h.FailingSince == nil || h.LastSuccessAt != nil {
		t.Errorf("health: got %+v", h)
	}
	ds := p.deliveries(id)
	if len(ds) != 1 || ds[0].Status != endcall.DeliveryFailed {
		t.Fatalf("deliveries: %+v", ds)
	}
	a := ds[0].Attempts[0]
	if a.ResponseBody == nil || *a.ResponseBody != `{"error":"bad signature"}` {
		t.Errorf("response_body: got %v", a.ResponseBody)
	}
	n := len(rc.requests())
	p.endCall(nil)
	time.Sleep(time.Second)
	if len(rc.requests()) != n {
		t.Errorf("a disabled endpoint got a new delivery")
	}
	if code := p.do("PATCH", "/v1/webhooks/"+id, map[string]any{"enabled": true, "rate_limit": 7}, &e); code != 200 {
		t.Fatalf("PATCH: %d", code)
	}
	if !e.Enabled || e.DisabledReason != nil || e.Health.FailingSince != nil || e.RateLimit == nil || *e.RateLimit != 7 {
		t.Errorf("after re-enabling: %+v", e)
	}
}

// A test event reaches the receiver signed so that the official library
// verifies it, with is_test true, and shows in the delivery log; a replay
// resends the endpoint's deliveries with their own webhook-ids.
func TestTestEventAndReplay(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t)
	rc := newReceiver(t, nil)
	id, secret := p.subscribe(rc.srv.URL)
	var d endcall.Delivery
	if code := p.do("POST", "/v1/webhooks/"+id+"/test", map[string]any{"type": "call.analyzed"}, &d); code != 202 {
		t.Fatalf("test: %d", code)
	}
	waitFor(t, 10*time.Second, "the test event", func() bool { return len(rc.requests()) == 1 })
	r := rc.requests()[0]
	verify(t, secret, r)
	var ev struct {
		Type string
		Data endcall.Call
	}
	json.Unmarshal(r.body, &ev)
	if ev.Type != "call.analyzed" || !ev.Data.IsTest || ev.Data.Analysis == nil || r.header.Get("webhook-id") != d.ID {
		t.Errorf("test event: %s (webhook-id %s, delivery %s)", r.body, r.header.Get("webhook-id"), d.ID)
	}
	waitFor(t, 5*time.Second, "the test delivery to be logged", func() bool {
		ds := p.deliveries(id)
		return len(ds) == 1 && ds[0].ID == d.ID && ds[0].Status == endcall.DeliverySucceeded && ds[0].CallID == nil
	})

	p.endCall(happyTranscript)
	waitFor(t, 10*time.Second, "the call's events", func() bool { return len(rc.requests()) == 3 })
	ids := map[string]bool{}
	for _, d := range p.deliveries(id) {
		ids[d.ID] = true
	}
	var replay struct{ Count int }
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if code := p.do("POST", "/v1/webhooks/"+id+"/replay", map[string]any{"since": since}, &replay); code != 202 || replay.Count != 0 {
		t.Fatalf("replay of failed: %d %+v", code, replay)
	}
	if code := p.do("POST", "/v1/webhooks/"+id+"/replay", map[string]any{"since": since, "status": "all"}, &replay); code != 202 || replay.Count != 3 {
		t.Fatalf("replay of all: %d %+v", code, replay)
	}
	waitFor(t, 10*time.Second, "the replayed deliveries", func() bool { return len(rc.requests()) == 6 })
	for _, r := range rc.requests()[3:] {
		if !ids[r.header.Get("webhook-id")] {
			t.Errorf("replayed webhook-id %s is not one of the deliveries", r.header.Get("webhook-id"))
		}
		verify(t, secret, r)
	}
}

// The retention sweep deletes deliveries that are done and old, in
// batches, and keeps pending ones however old.
func TestRetentionDeletesOldFinishedDeliveries(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) { o.noWorker = true })
	rc := newReceiver(t, nil)
	id, _ := p.subscribe(rc.srv.URL, "call.ended")
	for range 7 {
		p.endCall(nil)
	}
	ctx := context.Background()
	// Five are old and done, one old and pending, one new and done.
	if _, err := p.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'succeeded'`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.pool.Exec(ctx, `UPDATE webhook_deliveries SET created_at = now() - interval '2 hours'
		WHERE id IN (SELECT id FROM webhook_deliveries ORDER BY id LIMIT 6)`); err != nil {
		t.Fatal(err)
	}
	var pendingID string
	if err := p.pool.QueryRow(ctx, `UPDATE webhook_deliveries SET status = 'pending'
		WHERE id = (SELECT id FROM webhook_deliveries WHERE created_at < now() - interval '1 hour' LIMIT 1) RETURNING id`).Scan(&pendingID); err != nil {
		t.Fatal(err)
	}
	h := &jobs.RetentionHandler{Store: p.store, Retention: time.Hour, Log: p.log, Batch: 2}
	if err := h.ProcessTask(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, d := range p.deliveries(id) {
		left = append(left, d.ID)
	}
	if len(left) != 2 || !slices.Contains(left, pendingID) {
		t.Errorf("left: %v, want the pending one and the new one", left)
	}
}

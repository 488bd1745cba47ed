package worker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/webhook/webhooktest"
)

// bulkCalls registers n in-progress calls of campaign with Twilio call SIDs
// and returns them.
func (p *pipeline) bulkCalls(n int, campaign string) []endcall.Call {
	p.t.Helper()
	out := make([]endcall.Call, n)
	for i := range out {
		body := map[string]any{"call_from": "+15553330000", "call_to": "+15554440000", "call_direction": "outbound",
			"call_sid": fmt.Sprintf("CA%s%04d", campaign, i), "campaign_id": campaign}
		if code := p.do("POST", "/v1/calls", body, &out[i]); code != 201 {
			p.t.Fatalf("create call: %d", code)
		}
	}
	return out
}

// bulkJob polls a bulk end.
func (p *pipeline) bulkJob(id string) endcall.BulkEnd {
	p.t.Helper()
	var j endcall.BulkEnd
	if code := p.do("GET", "/v1/calls/end-bulk/"+id, nil, &j); code != 200 {
		p.t.Fatalf("GET bulk end: %d", code)
	}
	return j
}

// waitCompleted polls a job until it completes and reports whether it was
// seen running with some but not all of its calls ended.
func (p *pipeline) waitCompleted(id string, within time.Duration) (endcall.BulkEnd, bool) {
	p.t.Helper()
	seenProgress := false
	var j endcall.BulkEnd
	waitFor(p.t, within, "the bulk end to complete", func() bool {
		j = p.bulkJob(id)
		if j.Status == endcall.BulkRunning && j.Ended > 0 && j.Ended < j.Matched {
			seenProgress = true
		}
		return j.Status == endcall.BulkCompleted
	})
	return j, seenProgress
}

// checkHungUpOnce fails unless every call was ended by the bulk end and
// asked of Twilio exactly once.
func (p *pipeline) checkHungUpOnce(cs []endcall.Call) {
	p.t.Helper()
	for _, c := range cs {
		if n := p.twilio.HangupCount(*c.CallSID); n != 1 {
			p.t.Errorf("call %s: %d hangup requests, want 1", c.ID, n)
		}
		var got endcall.Call
		p.do("GET", "/v1/calls/"+c.ID, nil, &got)
		if got.EndedAt == nil || got.DisconnectReason == nil || *got.DisconnectReason != endcall.ReasonBulk {
			p.t.Errorf("call %s: ended_at %v, reason %v; want ended in bulk", c.ID, got.EndedAt, got.DisconnectReason)
		}
	}
}

// A campaign's 300 calls end once each, at most 20 hangups in flight on the
// account while Twilio takes 100 ms a request, with progress visible while
// the job runs and a call.ended webhook for each.
func TestBulkEndCampaign(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) { o.noWorker = true })
	p.twilio.AllowUnknownCalls()
	p.twilio.SetDelay("", 100*time.Millisecond)
	var bulkEnded atomic.Int64
	p.calls.OnEnded = func(trigger endcall.Trigger, _ endcall.HangupStatus) {
		if trigger == endcall.TriggerBulk {
			bulkEnded.Add(1)
		}
	}
	p.startWorker()
	rc := webhooktest.New(t)
	p.subscribe(rc, endcall.EventCallEnded)
	cs := p.bulkCalls(300, "spring")
	other := p.bulkCalls(5, "autumn")

	var j endcall.BulkEnd
	if code := p.do("POST", "/v1/calls/end-bulk", map[string]any{"filter": map[string]any{"campaign_id": "spring"}}, &j); code != 202 {
		t.Fatalf("POST end-bulk: %d", code)
	}
	if j.Matched != 300 || j.Status != endcall.BulkRunning {
		t.Fatalf("accepted job %+v, want 300 matched and running", j)
	}
	j, seenProgress := p.waitCompleted(j.ID, time.Minute)
	if j.Ended != 300 || j.AlreadyEnded != 0 || j.Failed != 0 || j.FinishedAt == nil {
		t.Errorf("completed job %+v, want 300 ended", j)
	}
	if !seenProgress {
		t.Error("the job was never seen running with part of its calls ended")
	}
	if n := p.twilio.MaxInFlight(p.account); n > 20 || n < 10 {
		t.Errorf("at most %d Twilio requests were in flight on the account, want 10 to 20", n)
	}
	if n := bulkEnded.Load(); n != 300 {
		t.Errorf("%d ends observed with trigger bulk (the metric's label), want 300", n)
	}
	p.checkHungUpOnce(cs)
	for _, c := range other {
		if n := p.twilio.HangupCount(*c.CallSID); n != 0 {
			t.Errorf("call %s of another campaign was hung up", c.ID)
		}
	}
	waitFor(t, time.Minute, "a call.ended delivery per call", func() bool {
		var n int
		p.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries
			WHERE event = 'call.ended' AND status = 'succeeded'`).Scan(&n)
		return n == 300
	})
	if got := len(rc.ByType(endcall.EventCallEnded)); got < 300 {
		t.Errorf("receiver got %d call.ended, want 300", got)
	}
}

// A worker stopped mid-job, and Redis losing every task, do not lose the
// job: the reconciler finds it still running in Postgres, a new worker
// finishes it, and no call is hung up twice.
func TestBulkEndSurvivesWorkerAndRedisLoss(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) { o.shutdownTimeout = 10 * time.Millisecond })
	p.twilio.AllowUnknownCalls()
	p.twilio.SetDelay("", 100*time.Millisecond)
	cs := p.bulkCalls(300, "loop")

	var j endcall.BulkEnd
	if code := p.do("POST", "/v1/calls/end-bulk", map[string]any{"filter": map[string]any{"campaign_id": "loop"}}, &j); code != 202 {
		t.Fatalf("POST end-bulk: %d", code)
	}
	waitFor(t, time.Minute, "part of the job done", func() bool { return p.bulkJob(j.ID).Ended >= 40 })
	p.stopWorker()
	rdb := p.redis.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	// What the stopped worker had in flight finishes; nothing more starts.
	time.Sleep(1500 * time.Millisecond)
	mid := p.bulkJob(j.ID)
	if mid.Status != endcall.BulkRunning || mid.Ended+mid.AlreadyEnded >= 300 {
		t.Fatalf("job after the worker stopped: %+v; want it running with calls left", mid)
	}

	p.startWorker()
	if _, err := p.reconciler().Reconcile(context.Background()); err != nil {
		t.Log(err)
	}
	j, _ = p.waitCompleted(j.ID, time.Minute)
	if j.Ended+j.AlreadyEnded != 300 || j.Failed != 0 {
		t.Errorf("completed job %+v, want all 300 ended", j)
	}
	p.checkHungUpOnce(cs)
}

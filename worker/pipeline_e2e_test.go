package worker_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/webhook/webhooktest"
)

func TestPipelineDeletesRoomAnalyzesAndDeliversSignedWebhooks(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t)
	rc := webhooktest.New(t)
	endpointID, _ := p.subscribeAt(rc, rc.URL+"/hooks")
	onlyEnded := webhooktest.New(t)
	p.subscribe(onlyEnded, "call.ended")

	c := p.endCall(happyTranscript)
	waitFor(t, 15*time.Second, "both events", func() bool {
		return len(rc.ByType("call.ended")) == 1 && len(rc.ByType("call.analyzed")) == 1 && len(onlyEnded.Deliveries()) == 1
	})
	for _, r := range rc.Deliveries() {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" || r.Path != "/hooks" {
			t.Errorf("Content-Type %q, path %q: want application/json and /hooks", ct, r.Path)
		}
	}
	if got, want := rc.Events(c.ID), []string{"call.ended", "call.analyzed"}; !slices.Equal(got, want) {
		t.Errorf("events of the call, in arrival order: got %v, want %v", got, want)
	}
	var stored endcall.Call
	waitFor(t, 5*time.Second, "settled call", func() bool {
		p.do("GET", "/v1/calls/"+c.ID, nil, &stored)
		return stored.RoomStatus != nil && *stored.RoomStatus == "deleted" && stored.AnalysisStatus != nil && *stored.AnalysisStatus == "completed"
	})
	if got := p.rooms.Deleted(); !slices.Equal(got, []string{*c.RoomName}) {
		t.Errorf("deleted rooms: got %v, want [%s]", got, *c.RoomName)
	}
	if stored.Analysis == nil || stored.Analysis.Sentiment != "positive" || *stored.AnalysisSentiment != "positive" || stored.Analysis.Metrics.Turns != 3 {
		t.Errorf("analysis: got %+v", stored.Analysis)
	}
	analyzed := rc.ByType("call.analyzed")[0]
	if !containsAll(string(analyzed.Body), `"analysis_status":"completed"`, `"sentiment":"positive"`, `"analyzer":"builtin"`) {
		t.Errorf("call.analyzed body lacks the stored analysis: %s", analyzed.Body)
	}
	waitFor(t, 5*time.Second, "deliveries recorded as succeeded", func() bool {
		list := p.deliveries(endpointID)
		return len(list) == 2 && list[0].Status == "succeeded" && list[1].Status == "succeeded"
	})
	list := p.deliveries(endpointID)
	if list[0].Event != "call.analyzed" || list[1].Event != "call.ended" || len(list[0].Attempts) != 1 || *list[0].Attempts[0].StatusCode != 204 {
		t.Errorf("delivery log (newest first): %+v", list)
	}
}

func TestDeliveryRetriesOnScheduleWithTheSameIDAndBody(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) { o.schedule = []time.Duration{time.Second, 2 * time.Second} })
	rc := webhooktest.New(t)
	rc.FailFirst(2, 500)
	endpointID, _ := p.subscribe(rc, "call.ended")
	p.endCall(happyTranscript)
	waitFor(t, 15*time.Second, "three attempts", func() bool { return len(rc.Deliveries()) >= 3 })
	time.Sleep(300 * time.Millisecond)
	got := rc.Deliveries()
	if len(got) != 3 {
		t.Fatalf("attempts: got %d, want 3", len(got))
	}
	for i, r := range got {
		if r.Header.Get("webhook-id") != got[0].Header.Get("webhook-id") || string(r.Body) != string(got[0].Body) {
			t.Errorf("attempt %d: id or body changed", i+1)
		}
		if i > 0 && r.Header.Get("webhook-timestamp") <= got[i-1].Header.Get("webhook-timestamp") && r.Time.Sub(got[i-1].Time) > 1100*time.Millisecond {
			t.Errorf("attempt %d: timestamp did not increase", i+1)
		}
	}
	// Each gap is the scheduled delay ±20%, and an attempt starts within
	// 1 s of its scheduled time.
	for i, want := range []time.Duration{time.Second, 2 * time.Second} {
		gap := got[i+1].Time.Sub(got[i].Time)
		lo, hi := want*8/10, want*12/10+time.Second
		t.Logf("gap %d: %v (scheduled %v ±20%%)", i+1, gap, want)
		if gap < lo || gap > hi {
			t.Errorf("gap %d: got %v, want between %v and %v", i+1, gap, lo, hi)
		}
	}
	waitFor(t, 3*time.Second, "succeeded", func() bool { return p.deliveries(endpointID)[0].Status == "succeeded" })
	d := p.deliveries(endpointID)[0]
	if len(d.Attempts) != 3 || d.Attempts[0].NextAttemptAt == nil || *d.Attempts[0].StatusCode != 500 || d.Attempts[2].NextAttemptAt != nil {
		t.Errorf("delivery log: %+v", d.Attempts)
	}
	// The recorded next_attempt_at is when the next attempt happened.
	if diff := got[1].Time.Sub(*d.Attempts[0].NextAttemptAt); diff < -100*time.Millisecond || diff > time.Second {
		t.Errorf("attempt 2 started %v after its recorded next_attempt_at", diff)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) { o.schedule = []time.Duration{500 * time.Millisecond} })
	rc := webhooktest.New(t)
	rc.Script(webhooktest.Reply{Status: 429, RetryAfter: "3"}, webhooktest.Reply{})
	p.subscribe(rc, "call.ended")
	p.endCall(nil)
	waitFor(t, 10*time.Second, "second attempt", func() bool { return len(rc.Deliveries()) == 2 })
	got := rc.Deliveries()
	if gap := got[1].Time.Sub(got[0].Time); gap < 3*time.Second || gap > 4*time.Second+200*time.Millisecond {
		t.Errorf("gap after 429 Retry-After: 3: got %v, want 3s to 4s", gap)
	}
}

func TestAlwaysFailingDeliveryIsFailedAndArchived(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) { o.schedule = []time.Duration{300 * time.Millisecond, 300 * time.Millisecond} })
	rc := webhooktest.New(t)
	rc.Script(webhooktest.Reply{Status: 503})
	endpointID, _ := p.subscribe(rc, "call.ended")
	p.endCall(nil)
	waitFor(t, 10*time.Second, "failed delivery", func() bool {
		list := p.deliveries(endpointID)
		return len(list) == 1 && list[0].Status == "failed"
	})
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.Deliveries()); n != 3 {
		t.Errorf("attempts: got %d, want 3 (1 + len(schedule))", n)
	}
	insp := asynq.NewInspector(p.redis)
	defer insp.Close()
	waitFor(t, 5*time.Second, "archived task", func() bool {
		archived, _ := insp.ListArchivedTasks(jobs.QueueWebhooks)
		return len(archived) == 1
	})
	// Re-running it from the dashboard sends it again.
	archived, _ := insp.ListArchivedTasks(jobs.QueueWebhooks)
	if err := insp.RunTask(jobs.QueueWebhooks, archived[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "re-run attempt", func() bool { return len(rc.Deliveries()) == 4 })
}

func TestGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t)
	rc := webhooktest.New(t)
	rc.Script(webhooktest.Reply{Status: 410})
	endpointID, _ := p.subscribe(rc, "call.ended")
	p.endCall(nil)
	waitFor(t, 10*time.Second, "endpoint disabled", func() bool {
		var e endcall.WebhookEndpoint
		p.do("GET", "/v1/webhooks/"+endpointID, nil, &e)
		return !e.Enabled
	})
	if list := p.deliveries(endpointID); list[0].Status != "failed" {
		t.Errorf("delivery: %+v", list[0])
	}
	p.endCall(nil)
	time.Sleep(1500 * time.Millisecond)
	if n := len(rc.Deliveries()); n != 1 {
		t.Errorf("a disabled endpoint got %d requests, want only the first", n)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) { o.schedule = []time.Duration{200 * time.Millisecond} })
	target := webhooktest.New(t)
	rc := webhooktest.New(t)
	rc.Script(webhooktest.Reply{Status: 302, Location: target.URL})
	endpointID, _ := p.subscribe(rc, "call.ended")
	p.endCall(nil)
	waitFor(t, 10*time.Second, "failed delivery", func() bool { return p.deliveries(endpointID)[0].Status == "failed" })
	if n := len(target.Deliveries()); n != 0 {
		t.Errorf("redirect target got %d requests", n)
	}
	if a := p.deliveries(endpointID)[0].Attempts[0]; *a.StatusCode != 302 || a.Error == nil {
		t.Errorf("attempt: %+v", a)
	}
}

func TestSlowReceiverTimesOutAndIsRetried(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) {
		o.schedule = []time.Duration{300 * time.Millisecond}
		o.webhookTimeout = 400 * time.Millisecond
	})
	rc := webhooktest.New(t)
	rc.Script(webhooktest.Reply{Delay: 1500 * time.Millisecond}, webhooktest.Reply{})
	endpointID, _ := p.subscribe(rc, "call.ended")
	p.endCall(nil)
	waitFor(t, 10*time.Second, "success after a timeout", func() bool { return p.deliveries(endpointID)[0].Status == "succeeded" })
	a := p.deliveries(endpointID)[0].Attempts
	if len(a) != 2 || a[0].StatusCode != nil || a[0].Error == nil || a[0].DurationMS > 1000 {
		t.Errorf("attempts: %+v", a)
	}
}

func TestRedeliverKeepsTheWebhookID(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t)
	rc := webhooktest.New(t)
	endpointID, _ := p.subscribe(rc, "call.ended")
	p.endCall(nil)
	waitFor(t, 10*time.Second, "first delivery", func() bool { return len(rc.Deliveries()) == 1 })
	id := rc.Deliveries()[0].Header.Get("webhook-id")
	time.Sleep(1100 * time.Millisecond) // so that the new timestamp differs
	if code := p.do("POST", "/v1/webhook-deliveries/"+id+"/redeliver", nil, nil); code != 202 {
		t.Fatalf("redeliver: %d", code)
	}
	waitFor(t, 10*time.Second, "redelivery", func() bool { return len(rc.Deliveries()) == 2 })
	got := rc.Deliveries()
	if got[1].Header.Get("webhook-id") != id || string(got[1].Body) != string(got[0].Body) ||
		got[1].Header.Get("webhook-timestamp") == got[0].Header.Get("webhook-timestamp") {
		t.Errorf("redelivery: id %q body same %v timestamps %q %q", got[1].Header.Get("webhook-id"),
			string(got[1].Body) == string(got[0].Body), got[0].Header.Get("webhook-timestamp"), got[1].Header.Get("webhook-timestamp"))
	}
	waitFor(t, 5*time.Second, "two attempts logged", func() bool { return len(p.deliveries(endpointID)[0].Attempts) == 2 })
}

func TestRotatedSecretsBothSign(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t)
	rc := webhooktest.New(t)
	endpointID, _ := p.subscribe(rc, "call.ended") // rc keeps the old secret
	var rotated struct {
		Secret string `json:"secret"`
	}
	if code := p.do("POST", "/v1/webhooks/"+endpointID+"/rotate-secret", nil, &rotated); code != 200 {
		t.Fatal(code)
	}
	p.endCall(nil)
	waitFor(t, 10*time.Second, "delivery", func() bool { return len(rc.Deliveries()) == 1 })
	r := rc.Deliveries()[0] // verified with the old secret
	if err := r.VerifyWith(rotated.Secret); err != nil {
		t.Errorf("does not verify with the new secret: %v", err)
	}
	tampered := r
	tampered.Body = append([]byte(nil), r.Body...)
	tampered.Body[len(tampered.Body)-2] ^= 1
	if err := tampered.VerifyWith(rotated.Secret); err == nil {
		t.Error("a tampered body verified")
	}
}

func TestAnalysisOfEmptyTranscriptCompletes(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t)
	c := p.endCall(nil)
	var stored endcall.Call
	waitFor(t, 10*time.Second, "analysis", func() bool {
		p.do("GET", "/v1/calls/"+c.ID, nil, &stored)
		return stored.AnalysisStatus != nil && *stored.AnalysisStatus == "completed"
	})
	if stored.Analysis.Sentiment != "neutral" || stored.Analysis.Metrics.Turns != 0 {
		t.Errorf("analysis: %+v", stored.Analysis)
	}
}

func TestReconcilerIsSafeWithSeveralRunning(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) { o.noWorker = true })
	rc := webhooktest.New(t)
	p.subscribe(rc, "call.ended")
	c := p.endCall(nil)
	// Drop what the end queued, as if Redis had lost it.
	insp := asynq.NewInspector(p.redis)
	defer insp.Close()
	for _, q := range []string{jobs.QueueDefault, jobs.QueueWebhooks} {
		if _, err := insp.DeleteAllPendingTasks(q); err != nil {
			t.Fatal(err)
		}
	}
	r := p.reconciler()
	var total int
	for range 3 {
		n, err := r.Reconcile(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != 3 {
		t.Errorf("three passes queued %d tasks in all, want 3 (room, analysis, delivery) once", total)
	}
	p.startWorker()
	waitFor(t, 10*time.Second, "delivery after the passes", func() bool { return len(rc.Deliveries()) == 1 })
	var stored endcall.Call
	waitFor(t, 10*time.Second, "settled", func() bool {
		p.do("GET", "/v1/calls/"+c.ID, nil, &stored)
		return *stored.RoomStatus == "deleted" && *stored.AnalysisStatus == "completed"
	})
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.Deliveries()); n != 1 {
		t.Errorf("deliveries: got %d, want 1", n)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

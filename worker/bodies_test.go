package worker_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/webhook/webhooktest"
)

// TestDeliveryBodiesAreFixedWhenOwed checks that the end stores each
// call.ended delivery's body in its own commit, with the call exactly as
// ended (as the end answered it and as it is stored), and that the analysis
// does the same for call.analyzed: no delivery waits for a commit of its own
// before its first attempt.
func TestDeliveryBodiesAreFixedWhenOwed(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) { o.noWorker = true })
	p.subscribe(webhooktest.New(t))
	p.subscribe(webhooktest.New(t), endcall.EventCallEnded)
	answered := p.endCall(happyTranscript)

	var stored endcall.Call
	if code := p.do("GET", "/v1/calls/"+answered.ID, nil, &stored); code != 200 {
		t.Fatalf("get call: %d", code)
	}
	if got, want := canonical(t, answered), canonical(t, stored); got != want {
		t.Errorf("the end answered a call other than the stored one:\ngot  %s\nwant %s", got, want)
	}
	checkBodies(t, p, answered.ID, endcall.EventCallEnded, 2, canonical(t, stored))

	task, err := p.enq.Task(endcall.Work{Kind: endcall.WorkAnalyze, CallID: answered.ID})
	if err != nil {
		t.Fatal(err)
	}
	h := &jobs.AnalyzeHandler{Store: p.store, Analyzer: analysis.Builtin{}, Queue: p.enq, Log: p.log}
	if err := h.ProcessTask(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	if code := p.do("GET", "/v1/calls/"+answered.ID, nil, &stored); code != 200 {
		t.Fatalf("get call: %d", code)
	}
	if stored.Analysis == nil {
		t.Fatal("no analysis stored")
	}
	checkBodies(t, p, answered.ID, endcall.EventCallAnalyzed, 1, canonical(t, stored))
}

// checkBodies checks that the call has n deliveries of event, each with a
// stored body of that type whose data is the call wantCall.
func checkBodies(t *testing.T, p *pipeline, callID, event string, n int, wantCall string) {
	t.Helper()
	rows, err := p.store.Pool().Query(context.Background(),
		`SELECT body FROM webhook_deliveries WHERE call_id = $1 AND event = $2`, callID, event)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := 0
	for rows.Next() {
		got++
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if raw == nil {
			t.Errorf("%s delivery without a body", event)
			continue
		}
		var body struct {
			Type      string       `json:"type"`
			Timestamp string       `json:"timestamp"`
			Data      endcall.Call `json:"data"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatal(err)
		}
		if body.Type != event || body.Timestamp == "" {
			t.Errorf("body type %q, timestamp %q; want %q and a timestamp", body.Type, body.Timestamp, event)
		}
		if data := canonical(t, body.Data); data != wantCall {
			t.Errorf("%s body data:\ngot  %s\nwant %s", event, data, wantCall)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Errorf("%s deliveries: got %d, want %d", event, got, n)
	}
}

func canonical(t *testing.T, c endcall.Call) string {
	t.Helper()
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall/analysis"
	"github.com/endcall/endcall/analysis/llmtest"
	"github.com/endcall/endcall/jobs"
)

// With the LLM slow, the worker runs at most its bound of analyses at once;
// the others wait without using up an attempt, and one on its last attempt
// waits for a slot instead of being postponed, which would archive it with
// its analysis never made.
func TestAnalysesInFlightAreBoundedAndNoneIsLost(t *testing.T) {
	t.Parallel()
	answer := `{"summary":"A happy caller.","sentiment":"positive","sentiment_score":0.9,` +
		`"agent_post_call_outcomes":{"call_successful":true,"outcome":"solved","customer_intent":"help","follow_up_required":false,"action_items":[]}}`
	llm := llmtest.New(t, llmtest.Reply{Content: answer, Delay: 1500 * time.Millisecond})
	an := &analysis.LLM{BaseURL: llm.URL, Model: "m", Timeout: 5 * time.Second}
	p := setupPipeline(t, func(o *pipelineOptions) {
		o.analyzer = an
		o.analysesInFlight = 2
		o.noWorker = true
	})
	var ids []string
	for range 5 {
		ids = append(ids, p.endCall(happyTranscript).ID)
	}
	// The last call's analysis is queued on its last attempt, as a task
	// whose earlier attempts all failed would be.
	last := ids[len(ids)-1]
	if err := p.inspect.DeleteTask(jobs.QueueDefault, "analyze:"+last); err != nil {
		t.Fatal(err)
	}
	p.startWorker()
	waitFor(t, 10*time.Second, "two analyses at the LLM", func() bool { return llm.MaxInFlight() >= 2 })
	payload, _ := json.Marshal(jobs.CallPayload{CallID: last})
	if _, err := p.enq.Client.Enqueue(asynq.NewTask(jobs.TypeAnalyze, payload, asynq.TaskID("analyze:"+last),
		asynq.Queue(jobs.QueueDefault), asynq.MaxRetry(0), asynq.Timeout(time.Minute))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "every analysis", func() bool {
		var done int
		p.pool.QueryRow(context.Background(), `SELECT count(*) FROM calls WHERE id = ANY ($1::uuid[]) AND analysis_status = 'completed'`, ids).Scan(&done)
		return done == len(ids)
	})
	if n := llm.MaxInFlight(); n != 2 {
		t.Errorf("analyses at the LLM at once: at most %d, want 2", n)
	}
	if n := llm.Count(); n != len(ids) {
		t.Errorf("LLM requests: %d, want one an analysis (%d)", n, len(ids))
	}
}

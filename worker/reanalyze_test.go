package worker_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis"
	"github.com/endcall/endcall/analysis/llmtest"
	"github.com/endcall/endcall/webhook/webhooktest"
)

// analyzedBody is what a call.analyzed delivery says of the analysis.
type analyzedBody struct {
	Data struct {
		Analysis endcall.Analysis `json:"analysis"`
	} `json:"data"`
}

func TestPlanFieldsReachCallAnalyzedAndReanalysisDeliversAgain(t *testing.T) {
	t.Parallel()
	answer := `{"summary":"A happy caller.","sentiment":"positive","sentiment_score":0.9,` +
		`"agent_post_call_outcomes":{"call_successful":true,"outcome":"solved","customer_intent":"help","follow_up_required":false,"action_items":[]},` +
		`"fields":{"resolved":true,"topic":null},"success":{"passed":true,"reason":"Solved."}}`
	// Each answer takes a moment, so that concurrent re-analysis requests
	// meet a run still pending.
	llm := llmtest.New(t, llmtest.Reply{Content: answer, PromptTokens: 50, CompletionTokens: 10, Delay: 300 * time.Millisecond})
	an := &analysis.LLM{BaseURL: llm.URL, Model: "m", Timeout: 5 * time.Second}
	p := setupPipeline(t, func(o *pipelineOptions) { o.analyzer = analysis.Fallback{Primary: an, Secondary: analysis.Builtin{}} })
	rc := webhooktest.New(t)
	p.subscribe(rc)

	var plan endcall.AnalysisPlan
	if code := p.do("POST", "/v1/analysis-plans", map[string]any{"name": "default", "fields": []map[string]any{
		{"name": "resolved", "type": "boolean", "required": true},
		{"name": "topic", "type": "enum", "choices": []string{"billing", "support"}},
	}, "success_rubric": map[string]any{"type": "pass_fail", "criteria": "The problem is solved."}}, &plan); code != 201 {
		t.Fatalf("create plan: %d", code)
	}

	c := p.endCall(happyTranscript)
	waitFor(t, 15*time.Second, "the first call.analyzed", func() bool { return len(rc.ByType("call.analyzed")) == 1 })
	var first analyzedBody
	if err := json.Unmarshal(rc.ByType("call.analyzed")[0].Body, &first); err != nil {
		t.Fatal(err)
	}
	a := first.Data.Analysis
	if a.Analyzer != "llm" || a.Version != 1 || a.PlanID == nil || *a.PlanID != plan.ID || *a.PlanVersion != 1 ||
		string(a.Fields["resolved"]) != "true" || string(a.Fields["topic"]) != "null" ||
		a.Success == nil || a.Success.Passed == nil || !*a.Success.Passed || a.Usage == nil || a.Usage.PromptTokens != 50 {
		t.Errorf("first call.analyzed analysis: %s", rc.ByType("call.analyzed")[0].Body)
	}

	// Concurrent requests make one run.
	var wg sync.WaitGroup
	codes := make([]int, 5)
	for i := range codes {
		wg.Go(func() { codes[i] = p.do("POST", "/v1/calls/"+c.ID+"/analyze", nil, nil) })
	}
	wg.Wait()
	for i, code := range codes {
		if code != 202 {
			t.Errorf("re-analysis request %d: %d, want 202", i, code)
		}
	}
	waitFor(t, 15*time.Second, "the second call.analyzed", func() bool { return len(rc.ByType("call.analyzed")) == 2 })
	var second analyzedBody
	body := rc.ByType("call.analyzed")[1]
	if err := json.Unmarshal(body.Body, &second); err != nil {
		t.Fatal(err)
	}
	if second.Data.Analysis.Version != 2 || string(second.Data.Analysis.Fields["resolved"]) != "true" {
		t.Errorf("second call.analyzed analysis: %s", body.Body)
	}
	if rc.ByType("call.analyzed")[0].Header.Get("webhook-id") == body.Header.Get("webhook-id") {
		t.Errorf("the re-analysis was delivered with the first delivery's webhook-id")
	}
	// Settled: one more run, no more deliveries.
	waitFor(t, 5*time.Second, "deliveries settled", func() bool {
		var pending int
		p.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'`).Scan(&pending)
		return pending == 0
	})
	if n := len(llm.Requests()); n != 2 {
		t.Errorf("LLM requests: got %d, want 2 (one a run)", n)
	}
	if n := len(rc.ByType("call.analyzed")); n != 2 {
		t.Errorf("call.analyzed deliveries: got %d, want 2", n)
	}
	var stored endcall.Call
	p.do("GET", "/v1/calls/"+c.ID, nil, &stored)
	if stored.Analysis == nil || stored.Analysis.Version != 2 {
		t.Errorf("stored analysis: %+v", stored.Analysis)
	}
}

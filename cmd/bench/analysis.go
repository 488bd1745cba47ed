package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis"
	"github.com/endcall/endcall/analysis/llmtest"
)

// llmAnswer is the model's answer to every analysis: valid against the
// answer schema of a call without an analysis plan, as the bench's calls
// are.
const llmAnswer = `{"summary":"The caller and the agent settled the matter; the call ended politely.",` +
	`"sentiment":"positive","sentiment_score":0.5,"agent_post_call_outcomes":{"call_successful":true,` +
	`"outcome":"settled","customer_intent":"a question answered","follow_up_required":false,"action_items":[]}}`

// analysisFreshness is (h): endcall restarted with its LLM analyzer pointed
// at a fake that answers in -llm-delay, ends at -llm-rate a second (50/s
// with a 2 s answer offers 100 analyses in flight), and call.ended
// freshness at both endpoints: a slow analysis must not hold up webhooks.
func (b *bench) analysisFreshness(ctx context.Context) error {
	o := b.o
	fakes := &benchTB{}
	defer fakes.close()
	llm := llmtest.New(fakes, llmtest.Reply{Content: llmAnswer, Delay: o.llmDelay, PromptTokens: 400, CompletionTokens: 80})
	llm.CountOnly()
	offered := float64(o.llmRate) * o.llmDelay.Seconds()
	label := fmt.Sprintf("(h) freshness with the LLM answering in %s, %d ends/s for %s (%.0f analyses offered in flight): end response → call.ended received",
		o.llmDelay, o.llmRate, o.llmFor, offered)
	if err := b.restart(ctx, "ANALYSIS_LLM_BASE_URL="+llm.URL, "ANALYSIS_LLM_API_KEY=bench", "ANALYSIS_LLM_MODEL=bench-model"); err != nil {
		logf("(h) endcall does not start with an LLM analyzer: %v", err)
		b.rows = append(b.rows, row{label + ", p50 / p99", "n/a (LLM analysis not configurable)", "", "", "p99 ≤ 500 ms"})
		return b.restart(ctx)
	}
	if _, err := b.subscribe(ctx, 0); err != nil {
		return err
	}
	ids, err := b.seed(ctx, max(1, int(float64(o.llmRate)*o.llmFor.Seconds())))
	if err != nil {
		return err
	}
	if err := b.drain(ctx, "(h) start"); err != nil {
		return err
	}
	endLat, achieved, err := b.openLoop(ctx, ids, o.llmRate)
	if err != nil {
		return err
	}
	t1 := time.Now()
	fresh, missing := b.endedFreshness(ctx, ids, time.Minute)
	p50, p99 := percentile(fresh, 50), percentile(fresh, 99)
	logf("(h) %d ends at %.0f/s (end p99 %s); call.ended %d/%d: p50 %s, p99 %s; LLM: %d requests, most %d at once",
		len(endLat), achieved, ms(percentile(endLat, 99)), len(fresh), len(fresh)+missing, ms(p50), ms(p99),
		llm.Count(), llm.MaxInFlight())
	// Every analysis, then its call.analyzed, within the drain's bound.
	if err := b.drain(ctx, "(h)"); err != nil {
		return err
	}
	caughtUp := time.Since(t1)
	llmDone, err := b.stored(ctx, ids, 0, func(c *endcall.Call) bool {
		return c.Analysis != nil && c.Analysis.Analyzer == analysis.NameLLM
	})
	if err != nil {
		return err
	}
	value := ms(p50) + " / " + ms(p99)
	if llm.Count() == 0 {
		value += " (n/a: the LLM fake received no request)"
	}
	b.rows = append(b.rows,
		row{label + ", p50 / p99", value, "", "", "p99 ≤ 500 ms"},
		row{"(h) LLM requests answered at once (most); analyses stored by the LLM; all caught up after the last end",
			fmt.Sprintf("%d; %d of %d; %s", llm.MaxInFlight(), llmDone, len(ids), ms(caughtUp)), "", "", "report"},
	)
	b.notes = append(b.notes, fmt.Sprintf("(h) %d ends sent at %.0f/s, answered in p99 %s; %d call.ended deliveries measured%s.",
		len(endLat), achieved, ms(percentile(endLat, 99)), len(fresh), missingNote(missing)))
	return nil
}

// restart stops `endcall all` and starts it again on the same address,
// with extra environment variables.
func (b *bench) restart(ctx context.Context, extra ...string) error {
	if b.proc != nil {
		b.proc.stop()
		b.proc = nil
	}
	env := append(slices.Clone(b.procEnv), extra...)
	p, err := startProcess(ctx, b.bin, env, b.addr, b.logPath)
	if err != nil {
		return err
	}
	b.proc = p
	b.cpu.endcall = p.pid()
	return nil
}

package jobs

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis"
)

// AnalyzeStore is the persistence call:analyze needs.
type AnalyzeStore interface {
	CallByID(ctx context.Context, id string) (*endcall.Call, error)
	// CompleteAnalysis stores the result on a call still pending analysis,
	// owes its call.analyzed deliveries in the same commit, and returns every
	// such delivery still pending.
	CompleteAnalysis(ctx context.Context, callID, status string, a *endcall.Analysis, outcomes json.RawMessage) ([]endcall.Work, error)
}

// AnalyzeHandler processes call:analyze.
type AnalyzeHandler struct {
	Store    AnalyzeStore
	Analyzer analysis.Analyzer
	Queue    endcall.Queue
	Log      *slog.Logger
	// OnResult, when set, observes each outcome (metrics).
	OnResult func(outcome string)
}

// ProcessTask analyzes the call once and queues the call.analyzed
// deliveries. A re-run after the analysis was stored only queues
// deliveries still pending.
func (h *AnalyzeHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	c, err := taskCall(ctx, h.Store, t)
	if err != nil {
		return err
	}
	status, result, outcomes := endcall.AnalysisCompleted, (*endcall.Analysis)(nil), json.RawMessage(nil)
	var analyzeErr error
	if c.AnalysisStatus != nil && *c.AnalysisStatus == endcall.AnalysisPending {
		result, outcomes, analyzeErr = h.Analyzer.Analyze(ctx, c)
		if analyzeErr != nil {
			if !lastAttempt(ctx) {
				return analyzeErr
			}
			// Finally failed: record it, and still tell the subscribers.
			status, result, outcomes = endcall.AnalysisFailed, nil, nil
		}
		h.observe(status)
	}
	work, err := h.Store.CompleteAnalysis(ctx, c.ID, status, result, outcomes)
	if err != nil {
		return err
	}
	if err := h.Queue.Enqueue(ctx, work); err != nil {
		// The deliveries are owed in Postgres; the sweeper queues them.
		h.Log.Warn("queueing call.analyzed deliveries failed", "call_id", c.ID, "error", err)
	}
	return analyzeErr
}

func (h *AnalyzeHandler) observe(outcome string) {
	if h.OnResult != nil {
		h.OnResult(outcome)
	}
}

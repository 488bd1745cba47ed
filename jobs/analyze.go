package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis"
)

// TypeAnalyze analyzes the call and owes its call.analyzed deliveries.
const TypeAnalyze = "call:analyze"

var analyzeTask = TaskType{
	Type:  TypeAnalyze,
	Queue: QueueDefault,
	Work:  endcall.WorkAnalyze,
	// Each re-analysis is a task of its own, so that one asked for while
	// the previous run's task is finishing is not refused.
	ID: func(w endcall.Work) string {
		if w.Run > 1 {
			return "analyze:" + w.CallID + ":" + strconv.Itoa(w.Run)
		}
		return "analyze:" + w.CallID
	},
	Payload: callPayload,
	Options: fixed(asynq.MaxRetry(5), asynq.Timeout(2*time.Minute)),
	Owed:    OwedStore.OwedAnalyses,
	Handler: func(d *Deps) asynq.Handler {
		return &AnalyzeHandler{Store: d.Store, Analyzer: d.Analyzer, Queue: d.Queue, Log: d.Log, OnResult: d.OnAnalysis,
			MaxInFlight: d.AnalysesInFlight}
	},
}

// AnalyzeStore is the persistence call:analyze needs.
type AnalyzeStore interface {
	// AnalysisTarget returns the call, the run its analysis is on and the
	// plan that run applies (nil: none).
	AnalysisTarget(ctx context.Context, callID string) (*endcall.Call, int, *endcall.AnalysisPlan, error)
	// CompleteAnalysis stores the result on a call still pending analysis
	// on run, owes that run's call.analyzed deliveries in the same commit,
	// and returns every such delivery still pending.
	CompleteAnalysis(ctx context.Context, callID string, run int, status endcall.AnalysisStatus, a *endcall.Analysis, outcomes json.RawMessage) ([]endcall.Work, error)
}

// AnalyzeHandler processes call:analyze.
type AnalyzeHandler struct {
	Store    AnalyzeStore
	Analyzer analysis.Analyzer
	Queue    endcall.Queue
	Log      *slog.Logger
	// OnResult, when set, observes each outcome (metrics).
	OnResult func(outcome endcall.AnalysisStatus)
	// MaxInFlight bounds the analyses this process runs at once (0: no
	// bound). An analysis may wait seconds on the LLM; past the bound it is
	// postponed, so that slow analyses never take every worker slot from
	// the webhooks and rooms behind them.
	MaxInFlight int

	once  sync.Once
	slots chan struct{}
}

// postponeAnalysis is how long an analysis waits for a slot when the
// process's are all taken.
const postponeAnalysis = time.Second

// take reserves a slot for an analysis. With none free it postpones the
// task, or, on the task's last attempt, waits for one: asynq archives a task
// whose last attempt fails, even with a postponement, and the analysis would
// then never run.
func (h *AnalyzeHandler) take(ctx context.Context) (release func(), err error) {
	if h.MaxInFlight <= 0 {
		return func() {}, nil
	}
	h.once.Do(func() { h.slots = make(chan struct{}, h.MaxInFlight) })
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots }, nil
	default:
	}
	if RetriesLeft(ctx) {
		return nil, &Postpone{At: time.Now().Add(postponeAnalysis), Why: "this process runs as many analyses as it may"}
	}
	select {
	case h.slots <- struct{}{}:
		return func() { <-h.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ProcessTask runs the call's pending analysis run once and queues its
// call.analyzed deliveries. A re-run after the analysis was stored only
// queues deliveries still pending. No database connection is held while
// the analyzer works.
func (h *AnalyzeHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := decodeCallPayload(t)
	if err != nil {
		return err
	}
	release, err := h.take(ctx)
	if err != nil {
		return err
	}
	defer release()
	c, run, plan, err := h.Store.AnalysisTarget(ctx, p.CallID)
	if endcall.ErrorCode(err) == endcall.ENOTFOUND {
		return fmt.Errorf("call %s: %w", p.CallID, asynq.SkipRetry)
	} else if err != nil {
		return err
	}
	status, result, outcomes := endcall.AnalysisCompleted, (*endcall.Analysis)(nil), json.RawMessage(nil)
	var analyzeErr error
	if c.AnalysisStatus != nil && *c.AnalysisStatus == endcall.AnalysisPending {
		result, outcomes, analyzeErr = h.Analyzer.Analyze(ctx, c, plan)
		if result != nil {
			result.Version = run
		}
		if analyzeErr != nil {
			if !lastAttempt(ctx) {
				return analyzeErr
			}
			// Finally failed: record it, and still tell the subscribers.
			status, result, outcomes = endcall.AnalysisFailed, nil, nil
		}
		h.observe(status)
	}
	work, err := h.Store.CompleteAnalysis(ctx, c.ID, run, status, result, outcomes)
	if err != nil {
		return err
	}
	if err := h.Queue.Enqueue(ctx, work); err != nil {
		// The deliveries are owed in Postgres; the reconciler queues them.
		h.Log.Warn("queueing call.analyzed deliveries failed", "call_id", c.ID, "error", err)
	}
	return analyzeErr
}

// RetriesLeft reports whether the running task will run again if it fails:
// an analyzer may then leave a temporary failure to a later run.
func RetriesLeft(ctx context.Context) bool { return !lastAttempt(ctx) }

func (h *AnalyzeHandler) observe(outcome endcall.AnalysisStatus) {
	if h.OnResult != nil {
		h.OnResult(outcome)
	}
}

package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/endcall/endcall"
)

// TypeEndOverdue ends every call still active past its maximum duration.
const TypeEndOverdue = "calls:end-overdue"

// Defaults of EndOverdueHandler.
const (
	overdueBatch       = 100
	overdueConcurrency = 8
	// overdueBudget bounds one scan, so that a large backlog is spread over
	// several slots and a scan never nears its task timeout.
	overdueBudget = time.Minute
)

// OverduePayload is the payload of calls:end-overdue.
type OverduePayload struct {
	// Slot is the Unix second at which the task's scan slot starts.
	Slot int64 `json:"slot"`
}

// NewEndOverdueTask returns the scan task of the slot starting at slot, for
// scans every interval. Its ID names the slot, so every scheduler that
// enqueues the same slot gets the same task, and a duplicate is refused for as
// long as the ID is retained: an interval plus a minute covers the schedulers'
// clocks disagreeing by up to 30 seconds.
func NewEndOverdueTask(slot time.Time, interval time.Duration) (*asynq.Task, error) {
	payload, err := json.Marshal(OverduePayload{Slot: slot.Unix()})
	if err != nil {
		return nil, err
	}
	// No retries: the next slot scans again anyway, and a failed scan stays
	// visible as archived in the dashboard. So does a scan whose worker
	// died; the next slot does its work.
	return asynq.NewTask(TypeEndOverdue, payload, asynq.TaskID("overdue:"+strconv.FormatInt(slot.Unix(), 10)),
		asynq.Queue(QueueDefault), asynq.MaxRetry(0), asynq.Timeout(overdueBudget+2*time.Minute),
		asynq.Retention(interval+time.Minute)), nil
}

var endOverdueTask = TaskType{
	Type:  TypeEndOverdue,
	Queue: QueueDefault,
	Handler: func(d *Deps) asynq.Handler {
		return &EndOverdueHandler{Store: d.Store, Calls: d.Calls, MaxCallDuration: d.MaxCallDuration, Log: d.Log}
	},
	Every: func(d *Deps) time.Duration { return d.OverdueScanInterval },
	Slot:  NewEndOverdueTask,
}

// OverdueStore is the persistence calls:end-overdue needs.
type OverdueStore interface {
	// OverdueCalls returns up to limit calls active at now past their own
	// limit, or past defaultMax when they have none, longest overdue first.
	// The calls named in skip are passed over.
	OverdueCalls(ctx context.Context, now time.Time, defaultMax time.Duration, limit int, skip []string) ([]*endcall.Call, error)
	// TryLockOverdueScan takes the lock that one scan, across all
	// processes, holds while it runs; ok is false when another scan has it.
	TryLockOverdueScan(ctx context.Context) (release func(), ok bool, err error)
}

// EndOverdueHandler processes calls:end-overdue.
type EndOverdueHandler struct {
	Store OverdueStore
	// Calls is the one end path, which hangs up, records and queues the
	// post-call work.
	Calls endcall.CallService
	// MaxCallDuration is MAX_CALL_DURATION, for calls without their own limit.
	MaxCallDuration time.Duration
	Log             *slog.Logger
	Now             endcall.Clock
	// Batch and Concurrency default to 100 calls a query and 8 ends at once
	// (each may wait up to PROVIDER_TIMEOUT for the provider).
	Batch       int
	Concurrency int
}

// ProcessTask ends the overdue calls, batch after batch. When a scan is
// still running from an earlier slot this one does nothing: overlapping scans
// would only race to end the same calls.
func (h *EndOverdueHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	release, ok, err := h.Store.TryLockOverdueScan(ctx)
	if err != nil {
		return err
	}
	if !ok {
		h.Log.Debug("overdue scan skipped: the previous scan is still running")
		return nil
	}
	defer release()
	batch, stop := h.batch(), time.Now().Add(overdueBudget)
	total := 0
	// A call whose end fails stays overdue; the scan passes over it and
	// goes on with the others, and the next slot tries it again.
	var failed []string
	var errs []error
	for {
		calls, err := h.Store.OverdueCalls(ctx, h.Now.Now(), h.MaxCallDuration, batch, failed)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		ended, ferrs := h.endAll(ctx, calls)
		total += ended
		for id, err := range ferrs {
			failed = append(failed, id)
			errs = append(errs, err)
		}
		if ctx.Err() != nil || len(calls) < batch || time.Now().After(stop) {
			if total > 0 {
				h.Log.Info("overdue scan ended calls", "ended", total, "failed", len(failed))
			}
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
}

// endAll ends the calls, a few at a time, through the one end path, and
// returns how many it ended and the error of each call it could not end. It
// stops starting new ends when ctx is done; ends under way always complete.
func (h *EndOverdueHandler) endAll(ctx context.Context, calls []*endcall.Call) (int, map[string]error) {
	var g errgroup.Group
	g.SetLimit(h.concurrency())
	var ended atomic.Int64
	errs := make([]error, len(calls))
	for i, c := range calls {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			res, err := h.Calls.End(ctx, endcall.EndRequest{WorkspaceID: c.WorkspaceID, CallID: c.ID,
				Reason: endcall.ReasonOverdue, Trigger: endcall.TriggerOverdue})
			switch {
			case endcall.ErrorCode(err) == endcall.ENOTFOUND:
				// Deleted since the scan read it.
			case err != nil:
				errs[i] = fmt.Errorf("ending overdue call %s: %w", c.ID, err)
				h.Log.Error("ending an overdue call failed; the scan goes on", "call_id", c.ID, "error", err)
			case !res.AlreadyEnded:
				ended.Add(1)
				h.Log.Info("overdue call ended", "call_id", c.ID, "hangup", endcall.Deref(res.Call.ProviderHangupStatus))
			}
			return nil
		})
	}
	g.Wait()
	failed := make(map[string]error)
	for i, err := range errs {
		if err != nil {
			failed[calls[i].ID] = err
		}
	}
	return int(ended.Load()), failed
}

func (h *EndOverdueHandler) batch() int {
	if h.Batch > 0 {
		return h.Batch
	}
	return overdueBatch
}

func (h *EndOverdueHandler) concurrency() int {
	if h.Concurrency > 0 {
		return h.Concurrency
	}
	return overdueConcurrency
}

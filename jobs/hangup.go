package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
)

// TypeHangup makes a provider hangup that the end path could not: it failed,
// or the process died before the provider answered.
const TypeHangup = "call:hangup"

// HangupMaxRetry bounds background hangup retries; with their retry delays
// they span about an hour.
const HangupMaxRetry = 12

var hangupTask = TaskType{
	Type:    TypeHangup,
	Queue:   QueueCritical,
	Work:    endcall.WorkHangup,
	ID:      func(w endcall.Work) string { return "hangup:" + w.CallID },
	Payload: callPayload,
	Options: fixed(asynq.MaxRetry(HangupMaxRetry), asynq.Timeout(HangupTaskTimeout)),
	// 5s, 10s, 20s ... capped at 10 minutes: a provider outage is usually
	// short, and the call may still be live.
	RetryDelay: func(n int) time.Duration { return backoff(5*time.Second, n, 10*time.Minute) },
	Owed:       OwedStore.OwedHangups,
	Handler: func(d *Deps) asynq.Handler {
		return &HangupHandler{Store: d.Store, Telephony: d.Telephony, Timeout: d.ProviderTimeout, Log: d.Log, OnOutcome: d.OnHangup}
	},
}

// HangupHandler processes call:hangup.
type HangupHandler struct {
	Store     endcall.HangupStore
	Telephony endcall.Telephony
	Timeout   time.Duration
	Log       *slog.Logger
	// OnOutcome, when set, observes each retry's outcome (metrics).
	OnOutcome func(outcome endcall.HangupStatus)
}

// ProcessTask hangs the call up. It does nothing once the hangup has an
// outcome, so a duplicate run makes no second request.
func (h *HangupHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := decodeCallPayload(t)
	if err != nil {
		return err
	}
	target, err := h.Store.HangupTarget(ctx, p.CallID)
	if endcall.ErrorCode(err) == endcall.ENOTFOUND {
		return fmt.Errorf("call %s: %w", p.CallID, asynq.SkipRetry)
	} else if err != nil {
		return err
	}
	if target.HangupStatus != endcall.HangupPending && target.HangupStatus != endcall.HangupRetrying {
		return nil
	}
	if target.CredentialsErr != nil {
		h.Log.Error("the call's provider credentials cannot be used; its hangup failed", "call_id", p.CallID, "error", target.CredentialsErr)
		h.observe(endcall.HangupFailed)
		if ferr := h.Store.FinishHangup(ctx, p.CallID, endcall.HangupFailed); ferr != nil {
			return ferr
		}
		return fmt.Errorf("provider credentials: %v: %w", target.CredentialsErr, asynq.SkipRetry)
	}
	hctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	outcome, err := h.Telephony.Hangup(hctx, *target)
	if err == nil {
		h.observe(outcome)
		return h.Store.FinishHangup(ctx, p.CallID, outcome)
	}
	var herr *endcall.HangupError
	if errors.As(err, &herr) && herr.Permanent {
		h.observe(endcall.HangupFailed)
		if ferr := h.Store.FinishHangup(ctx, p.CallID, endcall.HangupFailed); ferr != nil {
			return ferr
		}
		return fmt.Errorf("provider refused hangup: %v: %w", err, asynq.SkipRetry)
	}
	if lastAttempt(ctx) {
		h.observe(endcall.HangupFailed)
		if ferr := h.Store.FinishHangup(ctx, p.CallID, endcall.HangupFailed); ferr != nil {
			return ferr
		}
	} else {
		h.observe(endcall.HangupRetrying)
	}
	return err
}

func (h *HangupHandler) observe(outcome endcall.HangupStatus) {
	if h.OnOutcome != nil {
		h.OnOutcome(outcome)
	}
}

func maxRetry(ctx context.Context) int {
	n, ok := asynq.GetMaxRetry(ctx)
	if !ok {
		return 0
	}
	return n
}

// Package calls is the one path by which a call ends, whatever ended it:
// the API, a provider status callback or the overdue scan.
package calls

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/endcall/endcall"
)

// Service implements endcall.CallService over a store, the telephony
// provider and the task queue.
type Service struct {
	Store     endcall.EndStore
	Telephony endcall.Telephony
	Queue     endcall.Queue
	Log       *slog.Logger
	// ProviderTimeout bounds the synchronous hangup (PROVIDER_TIMEOUT).
	ProviderTimeout time.Duration
	// EnqueueTimeout bounds handing the owed work to Redis; past it the work
	// stays owed in Postgres for the sweeper.
	EnqueueTimeout time.Duration
	Now            func() time.Time
	// OnEnded, when set, observes each transition (metrics).
	OnEnded func(trigger, hangupStatus string)
}

var _ endcall.CallService = (*Service)(nil)

// End ends an active call exactly once. The row lock taken by the store makes
// concurrent ends wait, so only the first makes the provider hangup.
func (s *Service) End(ctx context.Context, req endcall.EndRequest) (endcall.EndResult, error) {
	// Once begun, an end runs to completion even if the caller goes away:
	// the hangup and the commit must not be split by a cancelled request.
	ctx = context.WithoutCancel(ctx)
	call, work, ended, err := s.Store.EndCall(ctx, req.WorkspaceID, req.CallID, func(ctx context.Context, lc endcall.LockedCall) (endcall.Ending, error) {
		return s.decide(ctx, req, lc), nil
	})
	if err != nil {
		return endcall.EndResult{}, err
	}
	if !ended {
		return endcall.EndResult{Call: call, AlreadyEnded: true}, nil
	}
	if s.OnEnded != nil {
		s.OnEnded(req.Trigger, deref(call.ProviderHangupStatus))
	}
	s.enqueue(ctx, call.ID, work)
	return endcall.EndResult{Call: call}, nil
}

// decide makes the provider hangup (unless the provider itself reported the
// end) and says how the call ends. A failed hangup never fails the end.
func (s *Service) decide(ctx context.Context, req endcall.EndRequest, lc endcall.LockedCall) endcall.Ending {
	c := lc.Call
	e := endcall.Ending{Reason: req.Reason, At: s.now(), Status: endcall.StatusCompleted}
	if c.CallStatus == endcall.StatusQueued || c.CallStatus == endcall.StatusRinging {
		e.Status = endcall.StatusCanceled
	}
	switch {
	case req.ProviderStatus != "":
		e.Status, e.HangupStatus = req.ProviderStatus, endcall.HangupSkipped
		return e
	case c.CallSID == nil || *c.CallSID == "":
		e.HangupStatus = endcall.HangupSkipped
		return e
	}
	hctx, cancel := context.WithTimeout(ctx, s.ProviderTimeout)
	defer cancel()
	outcome, err := s.Telephony.Hangup(hctx, lc.Credentials, *c.CallSID, e.Status)
	var herr *endcall.HangupError
	switch {
	case err == nil:
		e.HangupStatus = outcome
	case errors.As(err, &herr) && herr.Permanent:
		s.Log.Warn("provider hangup refused", "call_id", c.ID, "error", err)
		e.HangupStatus = endcall.HangupFailed
	default:
		s.Log.Warn("provider hangup failed; retrying in background", "call_id", c.ID, "error", err)
		e.HangupStatus = endcall.HangupRetrying
	}
	// The end is recorded at the time it was asked for, not after the
	// provider answered.
	return e
}

// enqueue hands the owed work to the queue within EnqueueTimeout. Failure is
// logged, not returned: the work is already durable in Postgres.
func (s *Service) enqueue(ctx context.Context, callID string, work []endcall.Work) {
	ctx, cancel := context.WithTimeout(ctx, s.EnqueueTimeout)
	defer cancel()
	if err := s.Queue.Enqueue(ctx, work); err != nil {
		s.Log.Warn("queueing post-call work failed; the sweeper will queue it", "call_id", callID, "error", err)
	}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Package calls is the one path by which a call ends, whatever ended it:
// the API, a provider status callback, the overdue scan or a bulk end.
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
	// Simulated says telephony is simulated: no hangup is owed or made, and
	// what would have been sent is logged.
	Simulated bool
	// ProviderTimeout bounds the synchronous hangup (PROVIDER_TIMEOUT).
	ProviderTimeout time.Duration
	// EnqueueTimeout bounds handing the owed work to Redis; past it the work
	// stays owed in Postgres for the reconciler.
	EnqueueTimeout time.Duration
	Now            endcall.Clock
	// OnEnded, when set, observes each transition (metrics).
	OnEnded func(trigger endcall.Trigger, hangupStatus endcall.HangupStatus)
}

var _ endcall.CallService = (*Service)(nil)

// End ends an active call exactly once: it records the end with all the work
// it owes, hangs up with the provider holding no database connection,
// records the hangup's outcome and queues the post-call work. Concurrent
// ends of one call find it ended as soon as the winner has committed, and do
// not wait for the provider.
func (s *Service) End(ctx context.Context, req endcall.EndRequest) (endcall.EndResult, error) {
	// Once begun, an end runs to completion even if the caller goes away:
	// a recorded end must get its hangup and its queued work.
	ctx = context.WithoutCancel(ctx)
	rec, err := s.Store.RecordEnd(ctx, endcall.EndRecord{
		WorkspaceID: req.WorkspaceID, CallID: req.CallID, Reason: req.Reason, FinalMessage: req.FinalMessage,
		ProviderStatus: req.ProviderStatus, Hangup: req.ProviderStatus == "" && !s.Simulated, At: s.Now.Now(),
	})
	if err != nil {
		return endcall.EndResult{}, err
	}
	if !rec.Ended {
		return endcall.EndResult{Call: rec.Call, AlreadyEnded: true}, nil
	}
	c, work := rec.Call, rec.Work
	if s.Simulated && req.ProviderStatus == "" {
		s.Log.Info("simulated hangup", "call_id", c.ID, "call_sid", endcall.Deref(c.CallSID), "final_message", req.FinalMessage)
	}
	if rec.Hangup != nil {
		outcome := s.hangup(ctx, c.ID, *rec.Hangup)
		// A lost outcome leaves the hangup pending: the reconciler queues it
		// again, and the provider then answers that the call is over.
		if err := s.Store.FinishHangup(ctx, c.ID, outcome); err != nil {
			s.Log.Warn("recording the hangup's outcome failed; the hangup stays owed", "call_id", c.ID, "error", err)
		} else {
			c.ProviderHangupStatus = &outcome
		}
		if outcome == endcall.HangupRetrying {
			work = append(work, endcall.Work{Kind: endcall.WorkHangup, CallID: c.ID, WorkspaceID: c.WorkspaceID})
		}
	}
	if s.OnEnded != nil {
		s.OnEnded(req.Trigger, endcall.Deref(c.ProviderHangupStatus))
	}
	s.enqueue(ctx, c.ID, work)
	return endcall.EndResult{Call: c}, nil
}

// hangup asks the provider to end the call within ProviderTimeout and says
// what to record. A failure never fails the end: it is retried in the
// background unless retrying cannot help.
func (s *Service) hangup(ctx context.Context, callID string, t endcall.HangupTarget) endcall.HangupStatus {
	if t.CredentialsErr != nil {
		s.Log.Error("the call's provider credentials cannot be used; its hangup failed", "call_id", callID, "error", t.CredentialsErr)
		return endcall.HangupFailed
	}
	hctx, cancel := context.WithTimeout(ctx, s.ProviderTimeout)
	defer cancel()
	outcome, err := s.Telephony.Hangup(hctx, t)
	var herr *endcall.HangupError
	switch {
	case err == nil:
		return outcome
	case errors.As(err, &herr) && herr.Permanent:
		s.Log.Warn("provider hangup refused", "call_id", callID, "error", err)
		return endcall.HangupFailed
	default:
		s.Log.Warn("provider hangup failed; retrying in background", "call_id", callID, "error", err)
		return endcall.HangupRetrying
	}
}

// enqueue hands the owed work to the queue within EnqueueTimeout. Failure is
// logged, not returned: the work is already durable in Postgres.
func (s *Service) enqueue(ctx context.Context, callID string, work []endcall.Work) {
	ctx, cancel := context.WithTimeout(ctx, s.EnqueueTimeout)
	defer cancel()
	if err := s.Queue.Enqueue(ctx, work); err != nil {
		s.Log.Warn("queueing post-call work failed; the reconciler queues it", "call_id", callID, "error", err)
	}
}

// Package calls is the one path by which a call ends, whatever ended it:
// the API, a provider status callback or the overdue scan.
package calls

import (
	"context"
	"errors"
	"log/slog"
	"sync"
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

	once    sync.Once
	slots   chan struct{} // one per end transaction in flight
	mu      sync.Mutex
	waiting []*pending // ends not yet taken into a transaction
}

var _ endcall.CallService = (*Service)(nil)

const (
	// transactions bounds the end transactions at work at once. Ends that
	// arrive while all are busy wait and go together into the next one, so
	// that under load many ends share one commit and two round trips (group
	// commit); under light load each end has a transaction to itself at once.
	transactions = 2
	// slowHangups is how long a transaction's hangups may run before it
	// gives its turn up: then it only waits on the provider, and a slow
	// provider must not hold every other end back.
	slowHangups = 20 * time.Millisecond
	// maxBatch bounds the ends of one transaction: the row locks it holds,
	// and the hangups that must all finish before it commits.
	maxBatch = 64
)

// pending is an end waiting for, or in, a transaction.
type pending struct {
	ctx  context.Context
	req  endcall.EndRequest
	out  endcall.EndOutcome
	done chan struct{}
	// taken is set, under Service.mu, when a transaction takes the end.
	taken bool
}

// End ends an active call exactly once. The row lock taken by the store makes
// concurrent ends wait, so only the first makes the provider hangup.
func (s *Service) End(ctx context.Context, req endcall.EndRequest) (endcall.EndResult, error) {
	// Once begun, an end runs to completion even if the caller goes away:
	// the hangup and the commit must not be split by a cancelled request.
	ctx = context.WithoutCancel(ctx)
	s.once.Do(func() { s.slots = make(chan struct{}, transactions) })
	p := &pending{ctx: ctx, req: req, done: make(chan struct{})}
	s.mu.Lock()
	s.waiting = append(s.waiting, p)
	s.mu.Unlock()
	// Whoever gets a free transaction runs it for the ends waiting, oldest
	// first, itself among them unless another has taken it already. Every
	// end not yet taken is in this loop, so none is left behind when a
	// transaction frees up; one taken only waits for its outcome.
	for !s.taken(p) {
		select {
		case <-p.done:
		case s.slots <- struct{}{}:
			batch := s.take()
			release := sync.OnceFunc(func() { <-s.slots })
			if len(batch) > 0 {
				s.run(ctx, batch, release)
			}
			release()
		}
	}
	<-p.done
	out := p.out
	if out.Err != nil {
		return endcall.EndResult{}, out.Err
	}
	if !out.Ended {
		return endcall.EndResult{Call: out.Call, AlreadyEnded: true}, nil
	}
	if s.OnEnded != nil {
		s.OnEnded(req.Trigger, deref(out.Call.ProviderHangupStatus))
	}
	s.enqueue(ctx, out.Call.ID, out.Work)
	return endcall.EndResult{Call: out.Call}, nil
}

// take removes up to maxBatch waiting ends, oldest first.
func (s *Service) take() []*pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(s.waiting), maxBatch)
	batch := s.waiting[:n:n]
	s.waiting = s.waiting[n:]
	for _, p := range batch {
		p.taken = true
	}
	return batch
}

func (s *Service) taken(p *pending) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return p.taken
}

// run ends batch in one transaction and hands each end its outcome. Each
// end's hangup runs under its own request's context. release gives the
// transaction's turn up once its hangups have run for slowHangups.
func (s *Service) run(ctx context.Context, batch []*pending, release func()) {
	targets := make([]endcall.EndTarget, len(batch))
	for i, p := range batch {
		targets[i] = endcall.EndTarget{WorkspaceID: p.req.WorkspaceID, CallID: p.req.CallID}
	}
	var slow *time.Timer
	var arm sync.Once
	outs := s.Store.EndCalls(ctx, targets, func(_ context.Context, i int, lc endcall.LockedCall) (endcall.Ending, error) {
		arm.Do(func() { slow = time.AfterFunc(slowHangups, release) })
		return s.decide(batch[i].ctx, batch[i].req, lc), nil
	})
	if slow != nil {
		slow.Stop()
	}
	for i, p := range batch {
		p.out = outs[i]
		close(p.done)
	}
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

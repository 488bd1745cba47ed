// Package calls is the one path by which a call ends, whatever ended it:
// the API, a provider status callback or the overdue scan.
package calls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
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
	slots   chan struct{} // the turns (see transactions), made by turns
	mu      sync.Mutex
	waiting []*pending // ends not yet taken into a transaction
}

var _ endcall.CallService = (*Service)(nil)

const (
	// transactions bounds the end transactions that hold a turn: those
	// younger than slowTransaction (older ones wait on others, bounded only
	// by the connection pool). Ends that arrive while all turns are held
	// wait and go together into the next transaction, so
	// that under load many ends share one commit and two round trips (group
	// commit); under light load each end has a transaction to itself at once.
	transactions = 2
	// slowTransaction is how long a transaction may run before it gives
	// its turn up: then it is waiting on the provider or on another's row
	// lock, and must not hold every other end back.
	slowTransaction = 20 * time.Millisecond
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
	// The ends of a batch share one statement: a value Postgres refuses
	// would fail every one of them.
	if strings.ContainsRune(req.Reason, 0) {
		return endcall.EndResult{}, endcall.Errorf(endcall.EINVALID, "disconnect_reason must not contain NUL characters.")
	}
	slots := s.turns()
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
		case slots <- struct{}{}:
			s.runNext(ctx, p)
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

// turns returns the transactions' turns: a send takes one, a receive gives
// one back.
func (s *Service) turns() chan struct{} {
	s.once.Do(func() { s.slots = make(chan struct{}, transactions) })
	return s.slots
}

// runNext runs the next transaction, holding a turn just taken, unless p
// was taken meanwhile: then p's caller only waits for its own outcome.
func (s *Service) runNext(ctx context.Context, p *pending) {
	release := sync.OnceFunc(func() { <-s.slots })
	defer release()
	if s.taken(p) {
		return
	}
	if batch := s.take(); len(batch) > 0 {
		s.run(ctx, batch, release)
	}
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
// transaction's turn up once it has run for slowTransaction, whether it
// waits on the provider or on a row lock held by another (an end of the
// same call elsewhere, waiting on its own hangup).
func (s *Service) run(ctx context.Context, batch []*pending, release func()) {
	outs := make([]endcall.EndOutcome, len(batch))
	defer func() {
		// A panic must not leave the other ends of the batch waiting for
		// good: each gets an error, and the process goes on.
		if r := recover(); r != nil {
			s.Log.Error("ending calls panicked", "panic", r, "stack", string(debug.Stack()))
			for i := range outs {
				outs[i] = endcall.EndOutcome{Err: fmt.Errorf("ending calls: panic: %v", r)}
			}
		}
		for i, p := range batch {
			p.out = outs[i]
			close(p.done)
		}
	}()
	slow := time.AfterFunc(slowTransaction, release)
	defer slow.Stop()
	targets := make([]endcall.EndTarget, len(batch))
	for i, p := range batch {
		targets[i] = endcall.EndTarget{WorkspaceID: p.req.WorkspaceID, CallID: p.req.CallID}
	}
	outs = s.Store.EndCalls(ctx, targets, func(_ context.Context, i int, lc endcall.LockedCall) (endcall.Ending, error) {
		return s.decide(batch[i].ctx, batch[i].req, lc), nil
	})
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

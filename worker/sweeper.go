package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/endcall/endcall"
)

// OwedWorkStore lists post-call work that Postgres records as owed.
type OwedWorkStore interface {
	// OwedWork lists owed work older than cutoff, and pending hangups
	// older than hangupCutoff, at most limit of each kind.
	OwedWork(ctx context.Context, cutoff, hangupCutoff time.Time, limit int) ([]endcall.Work, error)
	// StillOwed returns the items of work still owed now.
	StillOwed(ctx context.Context, work []endcall.Work) ([]endcall.Work, error)
}

// Requeuer queues work idempotently, counts what was not queued yet, and
// reports work whose task is archived; Revive queues such work afresh.
type Requeuer interface {
	Requeue(ctx context.Context, work []endcall.Work) (queued int, archived []endcall.Work, err error)
	Revive(ctx context.Context, work []endcall.Work) (int, error)
}

// Sweeper re-queues owed work that never reached Redis (Redis was down, or
// the process died between commit and enqueue) or that Redis lost. Several
// sweepers may run: deterministic task IDs make a second enqueue a no-op.
//
// Work whose task archived on an outage while Postgres still owes it is
// revived: its retries ran out while its handler could not record an
// outcome (Postgres down for longer than the retry schedule). Postgres is
// asked again after Redis said "archived", since a handler records its final
// outcome before asynq archives its task: what is owed after that was never
// recorded. A task archived for any other reason stays, for the dashboard.
//
// Room and delivery outcomes are committed without waiting for the WAL
// flush, so a crash of Postgres can also lose the record of work that was
// done: that work reads as owed again, its finished task is gone from Redis,
// and the sweeper queues it once more (at least once, like every webhook).
type Sweeper struct {
	Store    OwedWorkStore
	Queue    Requeuer
	Interval time.Duration
	// Grace skips work younger than this, which the fast path is normally
	// still queueing.
	Grace time.Duration
	// HangupGrace skips pending hangups younger than this: their end path
	// may still be waiting on the provider.
	HangupGrace time.Duration
	// Limit bounds the items of each kind per sweep.
	Limit int
	Log   *slog.Logger
	// OnRequeued, when set, observes how much lost work a sweep queued.
	OnRequeued func(n int)
}

// Run sweeps at once and then every Interval until ctx is done.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.Log.Warn("recovery sweep failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep queues every owed item without a live task and returns how many it
// queued.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	now := time.Now()
	work, err := s.Store.OwedWork(ctx, now.Add(-s.Grace), now.Add(-max(s.Grace, s.HangupGrace)), s.Limit)
	if err != nil || len(work) == 0 {
		return 0, err
	}
	queued, archived, err := s.Queue.Requeue(ctx, work)
	if len(archived) > 0 {
		revived, rerr := s.revive(ctx, archived)
		queued += revived
		err = errors.Join(err, rerr)
	}
	if queued > 0 && s.OnRequeued != nil {
		s.OnRequeued(queued)
	}
	if queued > 0 {
		s.Log.Info("recovery sweep queued lost work", "queued", queued, "owed", len(work))
	}
	return queued, err
}

// revive queues afresh the archived work that Postgres still owes.
func (s *Sweeper) revive(ctx context.Context, archived []endcall.Work) (int, error) {
	owed, err := s.Store.StillOwed(ctx, archived)
	if err != nil || len(owed) == 0 {
		return 0, err
	}
	s.Log.Warn("owed work whose task is archived: its outcome was never recorded; queueing it afresh", "count", len(owed))
	return s.Queue.Revive(ctx, owed)
}

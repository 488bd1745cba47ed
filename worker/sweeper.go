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
	OwedWork(ctx context.Context, cutoff time.Time, limit int) ([]endcall.Work, error)
	// StillOwed returns the items of work still owed now.
	StillOwed(ctx context.Context, work []endcall.Work) ([]endcall.Work, error)
}

// Requeuer queues work idempotently, counts what was not queued yet and
// reports work whose task has completed; Redo runs such work again.
type Requeuer interface {
	Requeue(ctx context.Context, work []endcall.Work) (queued int, completed []endcall.Work, err error)
	Redo(ctx context.Context, work []endcall.Work) (int, error)
}

// Sweeper re-queues owed work that never reached Redis (Redis was down, or
// the process died between commit and enqueue) or that Redis lost. Several
// sweepers may run: deterministic task IDs make a second enqueue a no-op.
//
// It also redoes owed work whose task has completed. Outcomes are committed
// without waiting for the WAL flush, so a crash of Postgres can lose the
// record of work that was done; the work then runs again (at least once).
// Postgres is asked a second time after Redis said "completed", because a
// handler commits its outcome before asynq marks its task completed: work
// still owed after that was truly not recorded.
type Sweeper struct {
	Store    OwedWorkStore
	Queue    Requeuer
	Interval time.Duration
	// Grace skips work younger than this, which the fast path is normally
	// still queueing.
	Grace time.Duration
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
	work, err := s.Store.OwedWork(ctx, time.Now().Add(-s.Grace), s.Limit)
	if err != nil || len(work) == 0 {
		return 0, err
	}
	queued, completed, err := s.Queue.Requeue(ctx, work)
	if len(completed) > 0 {
		redone, rerr := s.redo(ctx, completed)
		queued += redone
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

// redo runs again the completed work that Postgres still records as owed.
func (s *Sweeper) redo(ctx context.Context, completed []endcall.Work) (int, error) {
	owed, err := s.Store.StillOwed(ctx, completed)
	if err != nil || len(owed) == 0 {
		return 0, err
	}
	s.Log.Warn("owed work whose task completed: its outcome was not recorded; running it again", "count", len(owed))
	return s.Queue.Redo(ctx, owed)
}

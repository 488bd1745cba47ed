package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/jobs"
)

// Reconciler compares the work Postgres owes with the queue and puts right
// what it finds. Every Interval it lists, for each task type of
// jobs.Registry that Postgres owes, the work owed for longer than Grace, and
// enqueues it: a task already present is refused by its deterministic ID, so
// only work never queued (Redis was down, the process died between commit
// and enqueue) or lost by Redis is queued. Several reconcilers may run.
//
// The rest is asynq's, through its public hooks. A task failing on an
// outage is no failure to the worker (isFailure): it retries without using
// up its retries, and on its last attempt it is revoked, to be queued again
// here. A task whose worker died is retried by asynq's recoverer, which runs
// in every worker process once a minute for leases expired 30 s before: at
// most 120 s after the death, since a live worker renews its 30 s lease
// every 5 s. On its last attempt the recoverer archives it with
// asynq.ErrLeaseExpired instead; such a task, its work still owed, is
// deleted and queued afresh here, at most MaxRevivals times (counted in its
// payload, see jobs.Revivals), so that a task that kills its worker every
// time is left archived in the end. A task whose worker died thus runs again
// within 120 s plus Interval: 3 minutes with RECOVERY_SWEEP_INTERVAL at its
// default, 1m. A task archived for any other reason stays archived, visible
// and re-runnable in the dashboard; so does a periodic task whose worker
// died, since Postgres owes it nothing: its next slot does its work.
//
// Outcomes of work done are committed without waiting for the WAL flush, so
// a crash of Postgres can also lose the record of work that was done: that
// work reads as owed again, its finished task is gone from Redis, and it is
// queued once more (at least once, like every webhook).
type Reconciler struct {
	Store     jobs.OwedStore
	Queue     *jobs.Enqueuer
	Inspector *asynq.Inspector
	Interval  time.Duration
	// Grace skips work younger than this, which the fast path is normally
	// still queueing.
	Grace time.Duration
	// HangupGrace skips pending hangups younger than this: their end path
	// may still be waiting on the provider.
	HangupGrace time.Duration
	// Limit bounds the items of each kind per pass.
	Limit int
	Log   *slog.Logger
	// OnRequeued, when set, observes how much lost work a pass queued.
	OnRequeued func(n int)
}

// inspectConcurrency bounds the tasks a pass inspects at once.
const inspectConcurrency = 8

// MaxRevivals bounds how often one piece of work is queued afresh after its
// worker died on its last attempt.
const MaxRevivals = 3

// Run reconciles at once and then every Interval until ctx is done.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		if _, err := r.Reconcile(ctx); err != nil && ctx.Err() == nil {
			r.Log.Warn("reconciling owed work with the queue failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Reconcile makes one pass and returns how much work it queued.
func (r *Reconciler) Reconcile(ctx context.Context) (int, error) {
	now := time.Now()
	q := endcall.OwedQuery{Before: now.Add(-r.Grace), PendingHangupBefore: now.Add(-max(r.Grace, r.HangupGrace)), Limit: r.Limit}
	var work []endcall.Work
	var errs []error
	for _, t := range jobs.Registry {
		if t.Owed == nil {
			continue
		}
		owed, err := t.Owed(r.Store, ctx, q)
		work = append(work, owed...)
		errs = append(errs, err)
	}
	queued, present, err := r.Queue.Requeue(ctx, work)
	errs = append(errs, err)
	revived, err := r.revive(ctx, present)
	errs = append(errs, err)
	if n := queued + revived; n > 0 {
		if r.OnRequeued != nil {
			r.OnRequeued(n)
		}
		r.Log.Info("reconciler queued owed work", "lost", queued, "revived", revived, "owed", len(work))
	}
	return queued + revived, errors.Join(errs...)
}

// revive queues afresh the work whose task its worker's death archived,
// once Postgres, asked again, still owes it: a handler records its outcome
// before its task leaves the active state, so work owed after the archive
// was never done.
func (r *Reconciler) revive(ctx context.Context, present []endcall.Work) (int, error) {
	var (
		mu       sync.Mutex
		errs     []error
		dead     = map[*jobs.TaskType][]endcall.Work{}
		revivals = map[string]int{}
		g        errgroup.Group
	)
	g.SetLimit(inspectConcurrency)
	for _, w := range present {
		g.Go(func() error {
			queue, id := jobs.TaskOf(w)
			info, err := r.Inspector.GetTaskInfo(queue, id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, asynq.ErrTaskNotFound):
				// Finished in between.
			case err != nil:
				errs = append(errs, fmt.Errorf("inspect %s: %w", id, err))
			case diedOnLastAttempt(info) && jobs.Revivals(info.Payload) < MaxRevivals:
				t := jobs.Lookup(info.Type)
				dead[t] = append(dead[t], w)
				revivals[id] = jobs.Revivals(info.Payload)
			}
			return nil
		})
	}
	g.Wait()
	revived := 0
	for t, work := range dead {
		owed, err := t.Owed(r.Store, ctx, endcall.OwedQuery{Of: subjects(work)})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, w := range work {
			if !owes(owed, w) {
				continue
			}
			ok, err := r.queueAfresh(ctx, w, revivals[t.ID(w)]+1)
			if ok {
				revived++
			}
			errs = append(errs, err)
		}
	}
	return revived, errors.Join(errs...)
}

// queueAfresh deletes the archived task of w and queues w again, counting
// revived revivals. The task is looked at again just before, so that one
// another reconciler revived meanwhile is left alone.
func (r *Reconciler) queueAfresh(ctx context.Context, w endcall.Work, revived int) (bool, error) {
	queue, id := jobs.TaskOf(w)
	info, err := r.Inspector.GetTaskInfo(queue, id)
	if errors.Is(err, asynq.ErrTaskNotFound) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("inspect %s: %w", id, err)
	} else if !diedOnLastAttempt(info) {
		return false, nil
	}
	if err := r.Inspector.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return false, fmt.Errorf("delete archived %s: %w", id, err)
	}
	r.Log.Warn("task archived when its worker died on its last attempt; queued afresh", "task_id", id, "revival", revived)
	return r.Queue.Revive(ctx, w, revived)
}

// diedOnLastAttempt reports whether asynq's recoverer archived a task
// because its worker died on its last attempt.
func diedOnLastAttempt(info *asynq.TaskInfo) bool {
	return info.State == asynq.TaskStateArchived && info.LastErr == asynq.ErrLeaseExpired.Error()
}

// subjects are the IDs that an OwedQuery's Of names work by.
func subjects(work []endcall.Work) []string {
	ids := make([]string, len(work))
	for i, w := range work {
		switch {
		case w.DeliveryID != "":
			ids[i] = w.DeliveryID
		case w.JobID != "":
			ids[i] = w.JobID
		default:
			ids[i] = w.CallID
		}
	}
	return ids
}

// owes reports whether w is among the owed work, whatever run of an
// analysis each knew of (the task reads the current one).
func owes(owed []endcall.Work, w endcall.Work) bool {
	for _, o := range owed {
		if o.Same(w) {
			return true
		}
	}
	return false
}

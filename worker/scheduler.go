package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall/jobs"
)

// Scheduler enqueues a periodic task once per slot of Interval, slots being
// aligned on the wall clock so that every process agrees on them. Each
// worker process runs one per periodic task type, and still each slot runs
// once: the task of a slot has an ID derived from it (see
// jobs.NewEndOverdueTask), so the enqueues of the other schedulers are
// refused as duplicates. asynq's own Scheduler cannot do this: its tasks'
// options, and so their IDs, are fixed at registration.
type Scheduler struct {
	Client   *asynq.Client
	Interval time.Duration
	// Task builds the task of the slot that starts at slot.
	Task func(slot time.Time) (*asynq.Task, error)
	Log  *slog.Logger
}

// Schedulers returns a scheduler for each periodic task type of
// jobs.Registry.
func Schedulers(client *asynq.Client, d *jobs.Deps) []*Scheduler {
	var all []*Scheduler
	for _, t := range jobs.Registry {
		if t.Slot == nil {
			continue
		}
		interval := t.Every(d)
		all = append(all, &Scheduler{Client: client, Interval: interval, Log: d.Log,
			Task: func(slot time.Time) (*asynq.Task, error) { return t.Slot(slot, interval) }})
	}
	return all
}

// Run enqueues the current slot at once, then each following slot as it
// starts, until ctx is done. A failed enqueue is logged; the next slot is
// tried regardless.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		slot := time.Now().Truncate(s.Interval)
		if _, err := s.Enqueue(ctx, slot); err != nil && ctx.Err() == nil {
			s.Log.Warn("enqueueing a periodic task failed", "slot", slot.UTC(), "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(slot.Add(s.Interval))):
		}
	}
}

// Enqueue enqueues the task of slot and reports whether this call queued it;
// false with no error means another scheduler already had.
func (s *Scheduler) Enqueue(ctx context.Context, slot time.Time) (bool, error) {
	task, err := s.Task(slot)
	if err != nil {
		return false, err
	}
	_, err = s.Client.EnqueueContext(ctx, task)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	return err == nil, err
}

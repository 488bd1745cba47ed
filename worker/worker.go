// Package worker runs endcall's background side: the asynq server with its
// queues and the handlers of jobs.Registry, the periodic scheduler, and the
// reconciler that puts right what Postgres owes and the queue lacks.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall/jobs"
)

// Config is what the asynq server is built from.
type Config struct {
	Redis       asynq.RedisConnOpt
	Concurrency int
	// ShutdownTimeout is how long in-flight tasks may run after a stop
	// before they are handed back to the queue.
	ShutdownTimeout time.Duration
	Log             *slog.Logger
}

// Queues are the worker's queues and their weights. Weighted, not strict:
// hangups come first and nothing starves. A call makes two default tasks
// (its room and its analysis) and a webhook task per endpoint and event.
// Webhooks get six times the default queue's share, more than their part of
// the work, so that under overload their queue keeps draining: a call.ended
// delivery then waits behind little, while rooms, analyses (and the
// call.analyzed deliveries they make) lag and catch up after.
var Queues = map[string]int{jobs.QueueCritical: 6, jobs.QueueWebhooks: 6, jobs.QueueDefault: 1}

// Worker is a running (or runnable) asynq server.
type Worker struct {
	server *asynq.Server
	mux    *asynq.ServeMux
	log    *slog.Logger
}

// New builds the server and its mux. Register handlers with Handle before Run.
func New(cfg Config) *Worker {
	w := &Worker{mux: asynq.NewServeMux(), log: cfg.Log}
	w.mux.Use(w.logTask, revokeOutageOnLastAttempt)
	w.server = asynq.NewServer(cfg.Redis, asynq.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          Queues,
		RetryDelayFunc:  retryDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          asynqLogger{cfg.Log},
		LogLevel:        asynq.WarnLevel,
		IsFailure:       isFailure,
		// An empty poll stops all fetching for half to all of this
		// interval, so it bounds how soon a task queued into an idle worker
		// starts (50 ms: call.ended arrived 32 ms after the end at p50). At
		// 10 ms an idle worker costs Redis about 130 small scripts a second.
		// Due retries move to pending well within the 1 s that a webhook
		// attempt may start late.
		TaskCheckInterval:        10 * time.Millisecond,
		DelayedTaskCheckInterval: 250 * time.Millisecond,
	})
	return w
}

// Handle routes a task type to its handler.
func (w *Worker) Handle(taskType string, h asynq.Handler) { w.mux.Handle(taskType, h) }

// HandleAll routes every task type of jobs.Registry to its handler, built
// from d.
func (w *Worker) HandleAll(d *jobs.Deps) {
	for _, t := range jobs.Registry {
		w.Handle(t.Type, t.Handler(d))
	}
}

// Run processes tasks until ctx is done, then stops fetching and waits for
// in-flight tasks up to the shutdown timeout.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.server.Start(w.mux); err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	<-ctx.Done()
	w.server.Shutdown()
	return nil
}

// isFailure says which errors use up a retry: not a shutdown's
// cancellation, not a task postponed before its attempt, and not an outage.
// asynq retries a task whose error is no failure without counting it, so a
// task that meets Postgres down, however long, never runs out of retries for
// it.
func isFailure(err error) bool {
	var pp *jobs.Postpone
	return !errors.Is(err, context.Canceled) && !errors.As(err, &pp) && !jobs.Outage(err)
}

// Retry delays that no task type sets.
const (
	// leaseRetryDelay is how long a task whose worker died waits before it
	// runs again; it has waited out its lease already. asynq's recoverer
	// lists expired leases, then retries them one round trip at a time; a
	// second recoverer that listed the task too then finds it waiting, not
	// running again, and leaves it.
	leaseRetryDelay = 5 * time.Second
	// maxOutageDelay caps the delay of a retry after an outage: the count of
	// failures, which sets the delay, does not grow during one, and the task
	// is to run soon after it ends.
	maxOutageDelay = time.Minute
)

// retryDelay is the one RetryDelayFunc: a delay the error sets, else the
// task type's.
func retryDelay(n int, err error, t *asynq.Task) time.Duration {
	var in *jobs.RetryIn
	var pp *jobs.Postpone
	switch {
	case errors.As(err, &in):
		return max(time.Until(in.At), 0)
	case errors.As(err, &pp):
		return max(time.Until(pp.At), 0)
	case errors.Is(err, asynq.ErrLeaseExpired):
		return leaseRetryDelay
	}
	d := asynq.DefaultRetryDelayFunc(n, err, t)
	if tt := jobs.Lookup(t.Type()); tt != nil && tt.RetryDelay != nil {
		d = tt.RetryDelay(n)
	}
	if jobs.Outage(err) {
		d = min(d, maxOutageDelay)
	}
	return d
}

// revokeOutageOnLastAttempt: asynq archives a task that fails with no retry
// left, whether or not its error is a failure. When that error is an outage
// and Postgres owes the task's work, the handler could not record an
// outcome; the task is revoked instead (removed from Redis), and the
// reconciler queues the work afresh once it finds it owed and unqueued.
func revokeOutageOnLastAttempt(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		if !jobs.Outage(err) || errors.Is(err, asynq.SkipRetry) {
			return err
		}
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if tt := jobs.Lookup(t.Type()); retried >= maxRetry && tt != nil && tt.Owed != nil {
			return fmt.Errorf("%w (its work stays owed; the reconciler queues it again): %w", err, asynq.RevokeTask)
		}
		return err
	})
}

// logTask writes one structured line per task with its type, call id,
// outcome and latency.
func (w *Worker) logTask(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := next.ProcessTask(ctx, t)
		id, _ := asynq.GetTaskID(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		attrs := []slog.Attr{slog.String("type", t.Type()), slog.String("task_id", id),
			slog.String("call_id", jobs.CallIDOf(t)), slog.Int("retry", retried), slog.Duration("latency", time.Since(start))}
		var pp *jobs.Postpone
		switch {
		case errors.As(err, &pp):
			// A postponement is the task waiting its turn, not a failure.
			w.log.LogAttrs(ctx, slog.LevelDebug, "task postponed", append(attrs, slog.String("why", pp.Why), slog.Time("until", pp.At))...)
		case err != nil:
			w.log.LogAttrs(ctx, slog.LevelWarn, "task failed", append(attrs, slog.String("error", err.Error()))...)
		default:
			w.log.LogAttrs(ctx, slog.LevelInfo, "task done", attrs...)
		}
		return err
	})
}

// asynqLogger routes asynq's own logs into slog.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...), "component", "asynq") }
func (l asynqLogger) Info(args ...any)  { l.log.Info(fmt.Sprint(args...), "component", "asynq") }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(fmt.Sprint(args...), "component", "asynq") }
func (l asynqLogger) Error(args ...any) { l.log.Error(fmt.Sprint(args...), "component", "asynq") }
func (l asynqLogger) Fatal(args ...any) {
	l.log.Error(fmt.Sprint(args...), "component", "asynq", "fatal", true)
}

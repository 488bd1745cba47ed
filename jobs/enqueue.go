package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
)

// Queue names, highest priority first.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueWebhooks = "webhooks"
)

// Task timeouts that wrap a configured outside request; the process refuses
// to start when the request's timeout and TaskMargin do not fit in them
// (config.CheckTaskTimeouts).
const (
	// HangupTaskTimeout bounds a call:hangup task (PROVIDER_TIMEOUT).
	HangupTaskTimeout = 30 * time.Second
	// DeliverTaskTimeout bounds a webhook:deliver task (WEBHOOK_TIMEOUT).
	DeliverTaskTimeout = time.Minute
	// TaskMargin is what such a task needs besides its outside request:
	// reading what it owes and recording the outcome.
	TaskMargin = 10 * time.Second
)

// Enqueuer implements endcall.Queue with asynq, building each task from
// its TaskType.
//
// A finished task is not retained: its ID is free again at once. Postgres,
// not Redis, says whether work is still owed, and every handler checks that
// first, so a re-queue that comes after the work was done (the reconciler, a
// retried enqueue) finds nothing to do. Retaining finished tasks would cost
// Redis memory in proportion to the call rate: at 400 calls/s, six tasks a
// call, a day's retention is 200 million task hashes.
type Enqueuer struct {
	Client *asynq.Client
	// Inspector, when set, lets Wake run a postponed delivery's task at
	// once.
	Inspector *asynq.Inspector
	// DeliverMaxRetry is len(WEBHOOK_RETRY_SCHEDULE): 8 attempts by default.
	DeliverMaxRetry int
}

var _ endcall.Queue = (*Enqueuer)(nil)

// Enqueue queues each piece of work once. A task ID already present means the
// work is queued, running, waiting for a retry or archived, which is
// success.
func (e *Enqueuer) Enqueue(ctx context.Context, work []endcall.Work) error {
	_, _, err := e.Requeue(ctx, work)
	return err
}

// enqueueConcurrency bounds the enqueues of one Requeue in flight at once.
const enqueueConcurrency = 8

// Requeue is Enqueue for the reconciler: it counts the tasks that were not
// already present (work that had been lost), and returns the work whose task
// was. The tasks are enqueued concurrently, since they are independent: on
// the end path the round trips to Redis overlap instead of adding up.
func (e *Enqueuer) Requeue(ctx context.Context, work []endcall.Work) (queued int, present []endcall.Work, err error) {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, enqueueConcurrency)
	started := 0
	for _, w := range work {
		if ctx.Err() != nil {
			break
		}
		started++
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok, err := e.enqueue(ctx, w, 0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case ok:
				queued++
			default:
				present = append(present, w)
			}
		}()
	}
	wg.Wait()
	if started < len(work) {
		errs = append(errs, fmt.Errorf("enqueue: %d tasks not attempted: %w", len(work)-started, ctx.Err()))
	}
	return queued, present, errors.Join(errs...)
}

// enqueue queues one piece of work, revived times revived; ok is false when
// its task was already present, which is not an error.
func (e *Enqueuer) enqueue(ctx context.Context, w endcall.Work, revived int) (ok bool, err error) {
	task, err := e.task(w, revived)
	if err != nil {
		return false, err
	}
	_, err = e.Client.EnqueueContext(ctx, task)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		return false, nil
	}
	return false, fmt.Errorf("enqueue %s: %w", task.Type(), err)
}

// Revive queues afresh work whose task the caller has deleted, its payload
// counting revived revivals (see Revivals).
func (e *Enqueuer) Revive(ctx context.Context, w endcall.Work, revived int) (bool, error) {
	return e.enqueue(ctx, w, revived)
}

// Task builds the asynq task of one piece of owed work, with its
// deterministic ID, queue and options.
func (e *Enqueuer) Task(w endcall.Work) (*asynq.Task, error) { return e.task(w, 0) }

// revivedField is the payload field that counts a task's revivals.
const revivedField = "revived"

func (e *Enqueuer) task(w endcall.Work, revived int) (*asynq.Task, error) {
	t := byWork[w.Kind]
	if t == nil {
		return nil, fmt.Errorf("unknown work kind %q", w.Kind)
	}
	payload, err := json.Marshal(t.Payload(w))
	if err != nil {
		return nil, err
	}
	if revived > 0 {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(payload, &fields); err != nil {
			return nil, err
		}
		fields[revivedField] = json.RawMessage(strconv.Itoa(revived))
		if payload, err = json.Marshal(fields); err != nil {
			return nil, err
		}
	}
	opts := append([]asynq.Option{asynq.TaskID(t.ID(w)), asynq.Queue(t.Queue)}, t.Options(e)...)
	return asynq.NewTask(t.Type, payload, opts...), nil
}

// Revivals returns how many times a task's payload says its work was
// queued afresh after its worker died on its last attempt.
func Revivals(payload []byte) int {
	var p struct {
		Revived int `json:"revived"`
	}
	_ = json.Unmarshal(payload, &p)
	return p.Revived
}

// TaskOf returns the queue and task ID of a piece of work.
func TaskOf(w endcall.Work) (queue, id string) {
	t := byWork[w.Kind]
	if t == nil {
		return "", ""
	}
	return t.Queue, t.ID(w)
}

// Outage reports whether err is an outage, not a failure: a dependency (the
// database) was unavailable, and the same task will succeed once it is back.
func Outage(err error) bool { return endcall.ErrorCode(err) == endcall.EUNAVAILABLE }

// CallPayload is the payload of the tasks that act on one call.
type CallPayload struct {
	CallID string `json:"call_id"`
}

// decodeCallPayload reads a CallPayload; a malformed one can never succeed,
// so it is a permanent failure.
func decodeCallPayload(t *asynq.Task) (CallPayload, error) {
	var p CallPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.CallID == "" {
		return p, fmt.Errorf("bad %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return p, nil
}

// CallIDOf returns the call a task concerns, for logs; "" when none.
func CallIDOf(t *asynq.Task) string {
	var p struct {
		CallID string `json:"call_id"`
	}
	_ = json.Unmarshal(t.Payload(), &p)
	return p.CallID
}

// CallLoader loads the call a task is about.
type CallLoader interface {
	CallByID(ctx context.Context, id string) (*endcall.Call, error)
}

// taskCall decodes a call task's payload and loads its call; a call that
// does not exist can never be processed, so that is a permanent failure.
func taskCall(ctx context.Context, store CallLoader, t *asynq.Task) (*endcall.Call, error) {
	p, err := decodeCallPayload(t)
	if err != nil {
		return nil, err
	}
	c, err := store.CallByID(ctx, p.CallID)
	if endcall.ErrorCode(err) == endcall.ENOTFOUND {
		return nil, fmt.Errorf("call %s: %w", p.CallID, asynq.SkipRetry)
	}
	return c, err
}

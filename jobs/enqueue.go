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

// Enqueuer implements endcall.Queue with asynq.
//
// A finished task is not retained: its ID is free again at once. Postgres,
// not Redis, says whether work is still owed, and every handler checks that
// first, so a re-queue that comes after the work was done (the sweeper, a
// retried enqueue) finds nothing to do. Retaining finished tasks would cost
// Redis memory in proportion to the call rate: at 400 calls/s, six tasks a
// call, a day's retention is 200 million task hashes.
type Enqueuer struct {
	Client *asynq.Client
	// Inspector, when set, lets Requeue report owed work whose task is
	// archived, and Revive queue it afresh.
	Inspector *asynq.Inspector
	// DeliverMaxRetry is len(WEBHOOK_RETRY_SCHEDULE): 8 attempts by default.
	DeliverMaxRetry int
}

var _ endcall.Queue = (*Enqueuer)(nil)

// Enqueue queues each piece of work once. A task ID already present means the
// work is queued, running, waiting for a retry or archived (the sweeper
// revives it if it archived on an outage), which is success.
func (e *Enqueuer) Enqueue(ctx context.Context, work []endcall.Work) error {
	_, _, err := e.requeue(ctx, work, false)
	return err
}

// enqueueConcurrency bounds the enqueues of one Requeue in flight at once.
const enqueueConcurrency = 8

// Requeue is Enqueue for the sweeper, whose work Postgres records as owed.
// It counts the tasks that were not already present: work that had been
// lost. With an Inspector it also returns the work whose present task
// archived because its retries ran out on an outage (see MarkOutage):
// its handler could not record an outcome, so the work stays owed for good
// unless it is queued afresh (see Revive).
func (e *Enqueuer) Requeue(ctx context.Context, work []endcall.Work) (queued int, archived []endcall.Work, err error) {
	return e.requeue(ctx, work, e.Inspector != nil)
}

// requeue enqueues the tasks concurrently, since they are independent: on
// the end path the round trips to Redis overlap instead of adding up. With
// inspect, it reports the work whose present task is archived.
func (e *Enqueuer) requeue(ctx context.Context, work []endcall.Work, inspect bool) (int, []endcall.Work, error) {
	var (
		mu       sync.Mutex
		errs     []error
		queued   int
		archived []endcall.Work
		wg       sync.WaitGroup
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
			ok, arch, err := e.enqueue(ctx, w, inspect)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				queued++
			}
			if arch {
				archived = append(archived, w)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	if started < len(work) {
		errs = append(errs, fmt.Errorf("enqueue: %d tasks not attempted: %w", len(work)-started, ctx.Err()))
	}
	return queued, archived, errors.Join(errs...)
}

// enqueue queues one piece of work; ok is false when its task was already
// present, which is not an error. With inspect, archived says whether that
// present task archived on an outage.
func (e *Enqueuer) enqueue(ctx context.Context, w endcall.Work, inspect bool) (ok, archived bool, err error) {
	task, err := e.Task(w)
	if err != nil {
		return false, false, err
	}
	_, err = e.Client.EnqueueContext(ctx, task)
	switch {
	case err == nil:
		return true, false, nil
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		if !inspect {
			return false, false, nil
		}
		info, err := e.Inspector.GetTaskInfo(queueOf(w.Kind), taskID(w))
		if errors.Is(err, asynq.ErrTaskNotFound) {
			return false, false, nil // finished in between; a later sweep looks again
		} else if err != nil {
			return false, false, fmt.Errorf("inspect %s: %w", taskID(w), err)
		}
		return false, revivable(info), nil
	}
	return false, false, fmt.Errorf("enqueue %s: %w", task.Type(), err)
}

// revivable reports whether a task archived because its retries ran out
// on an outage: one archived for any other reason stays archived, visible
// and re-runnable in the dashboard.
func revivable(info *asynq.TaskInfo) bool {
	return info.State == asynq.TaskStateArchived && failedOnOutage(info.LastErr)
}

// Revive deletes the archived tasks of work and queues the work afresh,
// with a full retry budget, and returns how many it queued. The caller must
// have seen the work still owed after it saw the task archived: a handler
// records its final outcome before its task archives, so such work was
// truly never recorded as done or failed. Each task is looked at again just
// before it is deleted, so that a task another sweeper revived meanwhile is
// left alone.
func (e *Enqueuer) Revive(ctx context.Context, work []endcall.Work) (int, error) {
	var errs []error
	revived := 0
	for _, w := range work {
		info, err := e.Inspector.GetTaskInfo(queueOf(w.Kind), taskID(w))
		if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			errs = append(errs, fmt.Errorf("inspect %s: %w", taskID(w), err))
			continue
		} else if err == nil && !revivable(info) {
			continue
		}
		if err := e.Inspector.DeleteTask(queueOf(w.Kind), taskID(w)); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			errs = append(errs, fmt.Errorf("delete archived %s: %w", taskID(w), err))
			continue
		}
		ok, _, err := e.enqueue(ctx, w, false)
		if ok {
			revived++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return revived, errors.Join(errs...)
}

// taskID is the deterministic task ID of a piece of owed work: while its
// task is queued, running, waiting for a retry or archived, queueing the
// work again is refused.
func taskID(w endcall.Work) string {
	switch w.Kind {
	case endcall.WorkHangup:
		return "hangup:" + w.CallID
	case endcall.WorkRoomDelete:
		return "room:" + w.CallID
	case endcall.WorkAnalyze:
		// Each re-analysis is a task of its own, so that one asked for
		// while the previous run's task is finishing is not refused.
		if w.Run > 1 {
			return "analyze:" + w.CallID + ":" + strconv.Itoa(w.Run)
		}
		return "analyze:" + w.CallID
	case endcall.WorkEndBulk:
		return "endbulk:" + w.JobID
	}
	return "deliver:" + w.DeliveryID
}

// queueOf is the queue a kind of work runs on.
func queueOf(kind string) string {
	switch kind {
	case endcall.WorkHangup:
		return QueueCritical
	case endcall.WorkDeliver:
		return QueueWebhooks
	}
	return QueueDefault
}

// Task builds the asynq task of one piece of owed work, with its
// deterministic ID, queue and retry budget.
func (e *Enqueuer) Task(w endcall.Work) (*asynq.Task, error) {
	switch w.Kind {
	case endcall.WorkHangup:
		return NewHangupTask(w.CallID)
	case endcall.WorkRoomDelete:
		return newCallTask(TypeRoomDelete, taskID(w), w.CallID, asynq.Queue(queueOf(w.Kind)), asynq.MaxRetry(10), asynq.Timeout(30*time.Second))
	case endcall.WorkAnalyze:
		return newCallTask(TypeAnalyze, taskID(w), w.CallID, asynq.Queue(queueOf(w.Kind)), asynq.MaxRetry(5), asynq.Timeout(2*time.Minute))
	case endcall.WorkDeliver:
		payload, err := json.Marshal(deliverPayload(w, false))
		if err != nil {
			return nil, err
		}
		return asynq.NewTask(TypeDeliver, payload, asynq.TaskID(taskID(w)),
			asynq.Queue(queueOf(w.Kind)), asynq.MaxRetry(e.DeliverMaxRetry), asynq.Timeout(DeliverTaskTimeout)), nil
	case endcall.WorkEndBulk:
		return NewEndBulkTask(w.WorkspaceID, w.JobID)
	}
	return nil, fmt.Errorf("unknown work kind %q", w.Kind)
}

// CallPayload is the payload of the tasks that act on one call.
type CallPayload struct {
	CallID string `json:"call_id"`
}

// DeliverPayload is the payload of webhook:deliver. Only DeliveryID and
// Redeliver steer the handler; the rest names the delivery's subject for an
// operator reading the task in the dashboard (never a secret, and the URL's
// host only, since a URL may carry a token).
type DeliverPayload struct {
	DeliveryID  string `json:"delivery_id"`
	WorkspaceID string `json:"workspace_id,omitempty"`
	CallID      string `json:"call_id,omitempty"`
	EndpointID  string `json:"endpoint_id,omitempty"`
	Host        string `json:"url_host,omitempty"`
	Event       string `json:"event,omitempty"`
	// Redeliver marks a manual resend: sent even if the delivery succeeded.
	Redeliver bool `json:"redeliver,omitempty"`
}

func deliverPayload(w endcall.Work, redeliver bool) DeliverPayload {
	return DeliverPayload{DeliveryID: w.DeliveryID, WorkspaceID: w.WorkspaceID, CallID: w.CallID,
		EndpointID: w.EndpointID, Host: w.Host, Event: w.Event, Redeliver: redeliver}
}

func newCallTask(typ, id, callID string, opts ...asynq.Option) (*asynq.Task, error) {
	payload, err := json.Marshal(CallPayload{CallID: callID})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(typ, payload, append(opts, asynq.TaskID(id))...), nil
}

// Task types of post-call work.
const (
	TypeRoomDelete = "room:delete"
	TypeAnalyze    = "call:analyze"
	TypeDeliver    = "webhook:deliver"
)

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

package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/webhook"
)

// TypeDeliver makes one attempt of one webhook delivery.
const TypeDeliver = "webhook:deliver"

var deliverTask = TaskType{
	Type:    TypeDeliver,
	Queue:   QueueWebhooks,
	Work:    endcall.WorkDeliver,
	ID:      func(w endcall.Work) string { return "deliver:" + w.DeliveryID },
	Payload: func(w endcall.Work) any { return deliverPayload(w, false) },
	Options: func(e *Enqueuer) []asynq.Option {
		return []asynq.Option{asynq.MaxRetry(e.DeliverMaxRetry), asynq.Timeout(DeliverTaskTimeout)}
	},
	// A failed attempt sets its own delay (RetryIn); this is for a failure
	// before the attempt, which is retried soon: the receiver has not been
	// asked yet.
	RetryDelay: func(n int) time.Duration { return backoff(2*time.Second, n, time.Minute) },
	Owed:       OwedStore.OwedDeliveries,
	Handler: func(d *Deps) asynq.Handler {
		return &DeliverHandler{Store: d.Store, Schedule: d.WebhookSchedule, Log: d.Log, OnAttempt: d.OnAttempt,
			Client: d.WebhookClient, DisableAfter: d.WebhookDisableAfter, Pacer: d.Pacer, Wake: d.Wake}
	},
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

// DeliverStore is the persistence webhook:deliver needs.
type DeliverStore interface {
	DeliveryJob(ctx context.Context, id string) (*endcall.DeliveryJob, error)
	CallByID(ctx context.Context, id string) (*endcall.Call, error)
	FixDeliveryBody(ctx context.Context, id string, body []byte) ([]byte, error)
	// RecordAttempt records an attempt and the delivery's status; ending a
	// call.ended delivery, it returns the call.analyzed deliveries that
	// waited for it.
	RecordAttempt(ctx context.Context, id string, a endcall.DeliveryAttempt, status endcall.DeliveryStatus) ([]endcall.Work, error)
	FailDelivery(ctx context.Context, id string) error
	// DisableEndpoint turns an endpoint off for reason and ends its pending
	// deliveries as failed.
	DisableEndpoint(ctx context.Context, id string, reason endcall.DisabledReason) error
	// DisableIfFailing disables an endpoint whose every attempt has failed
	// for at least after, and reports whether it did.
	DisableIfFailing(ctx context.Context, id string, after time.Duration) (bool, error)
}

// Waker runs at once the tasks of deliveries that were postponed to wait for
// another, or queues them if they are not queued.
type Waker interface {
	Wake(ctx context.Context, work []endcall.Work) error
}

// DeliverHandler processes webhook:deliver: one attempt per run, the next
// one scheduled through the task's retry.
type DeliverHandler struct {
	Store  DeliverStore
	Client *http.Client
	// Schedule is WEBHOOK_RETRY_SCHEDULE: the delay before attempt n+2.
	Schedule []time.Duration
	// DisableAfter is WEBHOOK_DISABLE_AFTER: an endpoint whose attempts
	// have all failed this long is disabled. Zero never disables.
	DisableAfter time.Duration
	// Pacer, when set, holds every endpoint with a rate_limit to it, across
	// every worker sharing its Redis.
	Pacer *Pacer
	// Wake, when set, runs the call.analyzed deliveries that waited for a
	// call.ended delivery as soon as it ends, instead of at their next look.
	Wake Waker
	Log  *slog.Logger
	Now  endcall.Clock
	// OnAttempt, when set, observes each attempt's outcome (metrics).
	OnAttempt func(outcome string)
}

// NewRedeliverTask returns a task that sends a delivery once more, now. Its
// ID is fresh so that it never collides with the delivery's own task. It
// makes one attempt; its few retries carry a postponement (see Postpone)
// or a failure before the attempt.
func NewRedeliverTask(w endcall.Work, now time.Time) (*asynq.Task, error) {
	payload, err := json.Marshal(deliverPayload(w, true))
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeDeliver, payload, asynq.TaskID(fmt.Sprintf("redeliver:%s:%d", w.DeliveryID, now.UnixNano())),
		asynq.Queue(QueueWebhooks), asynq.MaxRetry(3), asynq.Timeout(DeliverTaskTimeout)), nil
}

// RetryIn tells the worker's RetryDelayFunc when the next attempt is due,
// so that the time recorded in the delivery log is the one applied.
type RetryIn struct {
	At  time.Time
	Err string
}

func (e *RetryIn) Error() string { return e.Err }

// Postpone re-schedules a task that may not run yet: a delivery whose
// call's call.ended delivery to the same endpoint is still pending, or whose
// endpoint's rate limit is reached, or an analysis while the process runs
// as many as it may. The worker's RetryDelayFunc runs it again at At, and
// its IsFailure does not count it, so no attempt is used up and nothing is
// recorded.
type Postpone struct {
	At  time.Time
	Why string
}

func (e *Postpone) Error() string { return "postponed: " + e.Why }

// maxWaitInPlace is the longest a delivery waits for the endpoint's rate
// limit in its worker slot; a longer wait gives the slot back and
// re-schedules the task to the second its turn falls in.
const maxWaitInPlace = 300 * time.Millisecond

// waitForPredecessor bounds how long a call.analyzed delivery waits for its
// call.ended delivery before it looks again. That delivery wakes it when it
// ends; this is the fallback when the wake finds it still running.
const waitForPredecessor = 30 * time.Second

// ProcessTask makes one attempt. A delivery that already succeeded is not
// sent again unless this is a redelivery.
func (h *DeliverHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p DeliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.DeliveryID == "" {
		return fmt.Errorf("bad %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	j, err := h.Store.DeliveryJob(ctx, p.DeliveryID)
	if endcall.ErrorCode(err) == endcall.ENOTFOUND {
		return fmt.Errorf("delivery %s: %w", p.DeliveryID, asynq.SkipRetry)
	} else if err != nil {
		return err
	}
	if j.Status == endcall.DeliverySucceeded && !p.Redeliver {
		return nil
	}
	if !j.EndpointLive {
		return h.Store.FailDelivery(ctx, j.ID)
	}
	body, err := h.body(ctx, j)
	if err != nil {
		return err
	}
	// asynq releases retries on whole-second boundaries, up to a second
	// before they are due: wait out the rest so that no attempt is early.
	if wait := time.Until(j.NextAttemptAt); wait > 0 && wait <= 2*time.Second && len(j.Attempts) > 0 && !p.Redeliver {
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	if err := h.await(ctx, j, p.Redeliver); err != nil {
		return err
	}
	now := h.Now.Now()
	sig, err := webhook.Sign(j.Secrets, j.ID, now, body)
	if err != nil {
		return fmt.Errorf("signing delivery %s: %v: %w", j.ID, err, asynq.SkipRetry)
	}
	a := webhook.Send(ctx, h.Client, j.URL, j.ID, now, body, sig)
	if ctx.Err() != nil {
		// Shutdown or a lost lease: the task goes back to the queue and the
		// attempt, cut short, is not recorded.
		return ctx.Err()
	}
	rec := endcall.DeliveryAttempt{Attempt: len(j.Attempts) + 1, At: now.UTC(), DurationMS: a.Duration.Milliseconds()}
	if a.StatusCode != 0 {
		rec.StatusCode = &a.StatusCode
		rec.ResponseBody = &a.Body
	}
	if a.Err != "" {
		rec.Error = &a.Err
	}
	h.observe(a)
	switch {
	case a.OK():
		return h.record(ctx, j, rec, endcall.DeliverySucceeded)
	case a.Gone:
		if err := h.record(ctx, j, rec, endcall.DeliveryFailed); err != nil {
			return err
		}
		if err := h.Store.DisableEndpoint(ctx, j.EndpointID, endcall.DisabledGone); err != nil {
			return err
		}
		return fmt.Errorf("receiver answered 410 Gone; endpoint %s disabled: %w", j.EndpointID, asynq.SkipRetry)
	case p.Redeliver:
		// A manual resend is one attempt; the delivery's own schedule, if
		// it is still running, is left as it was, and shown on the attempt.
		if j.Status == endcall.DeliveryPending {
			next := j.NextAttemptAt.UTC()
			rec.NextAttemptAt = &next
		}
		if err := h.record(ctx, j, rec, j.Status); err != nil {
			return err
		}
		return h.failing(ctx, j, nil)
	case lastAttempt(ctx):
		if err := h.record(ctx, j, rec, endcall.DeliveryFailed); err != nil {
			return err
		}
		return h.failing(ctx, j, errors.New("delivery failed after its last attempt: "+a.Err))
	}
	retried, _ := asynq.GetRetryCount(ctx)
	delay := webhook.Jitter(h.Schedule[min(retried, len(h.Schedule)-1)], rand.Float64())
	if a.RetryAfter > delay {
		delay = a.RetryAfter
	}
	// Delays count from the answer, as Retry-After does.
	next := h.Now.Now().Add(delay).UTC()
	rec.NextAttemptAt = &next
	if err := h.record(ctx, j, rec, endcall.DeliveryPending); err != nil {
		return err
	}
	return h.failing(ctx, j, &RetryIn{At: next, Err: "attempt failed: " + a.Err})
}

// record stores an attempt and wakes the deliveries that waited for this
// one to end. A failed wake only delays them: they look again on their own.
func (h *DeliverHandler) record(ctx context.Context, j *endcall.DeliveryJob, a endcall.DeliveryAttempt, status endcall.DeliveryStatus) error {
	freed, err := h.Store.RecordAttempt(ctx, j.ID, a, status)
	if err != nil || len(freed) == 0 || h.Wake == nil {
		return err
	}
	if err := h.Wake.Wake(ctx, freed); err != nil {
		h.Log.Warn("waking the call.analyzed deliveries that waited for call.ended failed", "delivery_id", j.ID, "error", err)
	}
	return nil
}

// failing follows a failed attempt: it disables the endpoint when every
// attempt has failed for DisableAfter, which ends the delivery, and else
// returns err.
func (h *DeliverHandler) failing(ctx context.Context, j *endcall.DeliveryJob, err error) error {
	if h.DisableAfter <= 0 {
		return err
	}
	disabled, derr := h.Store.DisableIfFailing(ctx, j.EndpointID, h.DisableAfter)
	if derr != nil {
		h.Log.Warn("checking whether a failing endpoint is to be disabled failed", "endpoint_id", j.EndpointID, "error", derr)
		return err
	}
	if disabled {
		h.Log.Warn("webhook endpoint disabled: every attempt failed", "endpoint_id", j.EndpointID,
			"workspace_id", j.WorkspaceID, "url_host", webhook.Host(j.URL), "after", h.DisableAfter)
		return fmt.Errorf("endpoint %s disabled after failing for %v: %w", j.EndpointID, h.DisableAfter, asynq.SkipRetry)
	}
	return err
}

// await returns once the delivery may be attempted, or a *Postpone: a
// call.analyzed waits for the call's call.ended to the same endpoint to
// succeed or finally fail (which wakes it), and every delivery waits for its
// endpoint's rate limit, in place when its turn is within maxWaitInPlace. A
// task with no retry left to carry a postponement waits in place until its
// deadline.
func (h *DeliverHandler) await(ctx context.Context, j *endcall.DeliveryJob, redeliver bool) error {
	if j.WaitsFor != nil && !redeliver {
		return &Postpone{At: maxTime(j.WaitsFor.Add(time.Second), h.Now.Now().Add(waitForPredecessor)),
			Why: "the call's call.ended delivery to this endpoint is pending"}
	}
	waited := time.Duration(0)
	for {
		pp, err := h.turn(ctx, j)
		if err != nil || pp == nil {
			return err
		}
		wait := max(time.Until(pp.At), 0)
		if canRetry(ctx) && waited+wait > maxWaitInPlace {
			pp.At = wholeSecond(pp.At)
			return pp
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		waited += wait
	}
}

// wholeSecond rounds a postponement to the nearest whole second, and past
// the current one: asynq releases a re-scheduled task in the whole second
// its time falls in, so a time within the current second would bring the
// task straight back.
func wholeSecond(at time.Time) time.Time {
	at = at.Round(time.Second)
	if now := time.Now(); at.Unix() <= now.Unix() {
		at = now.Truncate(time.Second).Add(time.Second)
	}
	return at
}

// turn returns a *Postpone when the endpoint's rate limit does not let the
// delivery be attempted yet.
func (h *DeliverHandler) turn(ctx context.Context, j *endcall.DeliveryJob) (*Postpone, error) {
	if h.Pacer != nil && j.RateLimit != nil {
		wait, err := h.Pacer.Wait(ctx, j.EndpointID, j.ID, *j.RateLimit)
		if err != nil {
			return nil, fmt.Errorf("rate limiter: %w", err)
		}
		if wait > 0 {
			return &Postpone{At: h.Now.Now().Add(wait), Why: "the endpoint's rate limit is reached"}, nil
		}
	}
	return nil, nil
}

// canRetry reports whether the running task has a retry left, which a
// postponement needs: asynq archives a task that fails with none.
func canRetry(ctx context.Context) bool {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	return retried < maxRetry
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// body returns the delivery's fixed payload. The transaction that creates a
// delivery normally stores it; one created without it (an endpoint
// subscribed while the call was ending) gets it built and stored here, on
// the first attempt.
func (h *DeliverHandler) body(ctx context.Context, j *endcall.DeliveryJob) ([]byte, error) {
	if j.Body != nil {
		return j.Body, nil
	}
	if j.CallID == nil {
		return nil, fmt.Errorf("test delivery %s has no body: %w", j.ID, asynq.SkipRetry)
	}
	c, err := h.Store.CallByID(ctx, *j.CallID)
	if err != nil {
		return nil, err
	}
	body, err := endcall.EventBody(j.Event, j.CreatedAt, c)
	if err != nil {
		return nil, err
	}
	return h.Store.FixDeliveryBody(ctx, j.ID, body)
}

func (h *DeliverHandler) observe(a webhook.Attempt) {
	if h.OnAttempt == nil {
		return
	}
	switch {
	case a.OK():
		h.OnAttempt("succeeded")
	case a.Gone:
		h.OnAttempt("gone")
	case a.StatusCode == 0:
		h.OnAttempt("error")
	default:
		h.OnAttempt("rejected")
	}
}

// Redeliver queues a one-off resend, now, of each delivery of work, and
// returns how many it queued.
func (e *Enqueuer) Redeliver(ctx context.Context, work []endcall.Work) (int, error) {
	var (
		mu     sync.Mutex
		queued int
		errs   []error
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, enqueueConcurrency)
	now := time.Now()
	for _, w := range work {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			task, err := NewRedeliverTask(w, now)
			if err == nil {
				_, err = e.Client.EnqueueContext(ctx, task)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				queued++
			}
		}()
	}
	wg.Wait()
	return queued, errors.Join(errs...)
}

// Wake queues each delivery of work, or runs its task at once when it waits
// in the retry or scheduled set (postponed). A task already pending needs
// nothing. One found running, postponing itself on what it read before the
// wake, is left to look again on its own (waitForPredecessor): waiting for it
// here would hold this worker slot.
func (e *Enqueuer) Wake(ctx context.Context, work []endcall.Work) error {
	var errs []error
	for _, w := range work {
		ok, err := e.enqueue(ctx, w, 0)
		if ok || err != nil || e.Inspector == nil {
			errs = append(errs, err)
			continue
		}
		queue, id := TaskOf(w)
		info, err := e.Inspector.GetTaskInfo(queue, id)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			continue // finished in between
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		if info.State == asynq.TaskStateRetry || info.State == asynq.TaskStateScheduled {
			// A task that moved on in between needs no run: its error is
			// not one.
			_ = e.Inspector.RunTask(queue, id)
		}
	}
	return errors.Join(errs...)
}

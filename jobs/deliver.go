package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/webhook"
)

// DeliverStore is the persistence webhook:deliver needs.
type DeliverStore interface {
	DeliveryJob(ctx context.Context, id string) (*endcall.DeliveryJob, error)
	CallByID(ctx context.Context, id string) (*endcall.Call, error)
	FixDeliveryBody(ctx context.Context, id string, body []byte) ([]byte, error)
	RecordAttempt(ctx context.Context, id string, a endcall.DeliveryAttempt, status string) error
	FailDelivery(ctx context.Context, id string) error
	DisableEndpoint(ctx context.Context, id string) error
}

// DeliverHandler processes webhook:deliver: one attempt per run, the next
// one scheduled through the task's retry.
type DeliverHandler struct {
	Store  DeliverStore
	Client *http.Client
	// Schedule is WEBHOOK_RETRY_SCHEDULE: the delay before attempt n+2.
	Schedule []time.Duration
	Log      *slog.Logger
	Now      func() time.Time
	// OnAttempt, when set, observes each attempt's outcome (metrics).
	OnAttempt func(outcome string)
}

// NewRedeliverTask returns a task that sends a delivery once more, now. Its
// ID is fresh so that it never collides with the delivery's own task.
func NewRedeliverTask(deliveryID, callID string, now time.Time) (*asynq.Task, error) {
	payload, err := json.Marshal(DeliverPayload{DeliveryID: deliveryID, CallID: callID, Redeliver: true})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeDeliver, payload, asynq.TaskID(fmt.Sprintf("redeliver:%s:%d", deliveryID, now.UnixNano())),
		asynq.Queue(QueueWebhooks), asynq.MaxRetry(0), asynq.Timeout(DeliverTaskTimeout)), nil
}

// RetryIn tells the worker's RetryDelayFunc when the next attempt is due,
// so that the time recorded in the delivery log is the one applied.
type RetryIn struct {
	At  time.Time
	Err string
}

func (e *RetryIn) Error() string { return e.Err }

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
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	now := h.now()
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
	}
	if a.Err != "" {
		rec.Error = &a.Err
	}
	h.observe(a)
	switch {
	case a.OK():
		return h.Store.RecordAttempt(ctx, j.ID, rec, endcall.DeliverySucceeded)
	case a.Gone:
		if err := h.Store.RecordAttempt(ctx, j.ID, rec, endcall.DeliveryFailed); err != nil {
			return err
		}
		if err := h.Store.DisableEndpoint(ctx, j.EndpointID); err != nil {
			return err
		}
		return fmt.Errorf("receiver answered 410 Gone; endpoint %s disabled: %w", j.EndpointID, asynq.SkipRetry)
	case p.Redeliver:
		// A manual resend is one attempt; the delivery's own schedule, if
		// it is still running, is left as it was.
		return h.Store.RecordAttempt(ctx, j.ID, rec, j.Status)
	case lastAttempt(ctx):
		if err := h.Store.RecordAttempt(ctx, j.ID, rec, endcall.DeliveryFailed); err != nil {
			return err
		}
		return errors.New("delivery failed after its last attempt: " + a.Err)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	delay := webhook.Jitter(h.Schedule[min(retried, len(h.Schedule)-1)], rand.Float64())
	if a.RetryAfter > delay {
		delay = a.RetryAfter
	}
	// Delays count from the answer, as Retry-After does.
	next := h.now().Add(delay).UTC()
	rec.NextAttemptAt = &next
	if err := h.Store.RecordAttempt(ctx, j.ID, rec, endcall.DeliveryPending); err != nil {
		return err
	}
	return &RetryIn{At: next, Err: "attempt failed: " + a.Err}
}

// body returns the delivery's fixed payload. The transaction that creates a
// delivery normally stores it; one created without it (an endpoint
// subscribed while the call was ending) gets it built and stored here, on
// the first attempt.
func (h *DeliverHandler) body(ctx context.Context, j *endcall.DeliveryJob) ([]byte, error) {
	if j.Body != nil {
		return j.Body, nil
	}
	c, err := h.Store.CallByID(ctx, j.CallID)
	if err != nil {
		return nil, err
	}
	body, err := endcall.EventBody(j.Event, j.CreatedAt, c)
	if err != nil {
		return nil, err
	}
	return h.Store.FixDeliveryBody(ctx, j.ID, body)
}

func (h *DeliverHandler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
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

// Redeliver queues a one-off resend of d, now.
func (e *Enqueuer) Redeliver(ctx context.Context, d *endcall.Delivery) error {
	task, err := NewRedeliverTask(d.ID, d.CallID, time.Now())
	if err != nil {
		return err
	}
	_, err = e.Client.EnqueueContext(ctx, task)
	return err
}

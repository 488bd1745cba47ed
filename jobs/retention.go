package jobs

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
)

// TypeDeliveryRetention deletes the deliveries that are past their retention.
const TypeDeliveryRetention = "webhooks:delete-expired"

// Defaults of RetentionHandler.
const (
	retentionBatch = 500
	// retentionBudget bounds one sweep; a larger backlog is spread over the
	// following slots.
	retentionBudget = time.Minute
)

// RetentionPayload is the payload of webhooks:delete-expired.
type RetentionPayload struct {
	// Slot is the Unix second at which the task's slot starts.
	Slot int64 `json:"slot"`
}

// NewDeliveryRetentionTask returns the sweep of the slot starting at slot,
// for sweeps every interval. As with the overdue scan, its ID names the
// slot, so that every scheduler enqueueing the slot gets the same task.
func NewDeliveryRetentionTask(slot time.Time, interval time.Duration) (*asynq.Task, error) {
	payload, err := json.Marshal(RetentionPayload{Slot: slot.Unix()})
	if err != nil {
		return nil, err
	}
	// No retries: the next slot sweeps again anyway.
	return asynq.NewTask(TypeDeliveryRetention, payload, asynq.TaskID("retention:"+strconv.FormatInt(slot.Unix(), 10)),
		asynq.Queue(QueueDefault), asynq.MaxRetry(0), asynq.Timeout(retentionBudget+time.Minute),
		asynq.Retention(interval+time.Minute)), nil
}

// retentionInterval is how often expired deliveries are deleted: often
// enough that each sweep has little to do.
const retentionInterval = 10 * time.Minute

var retentionTask = TaskType{
	Type:  TypeDeliveryRetention,
	Queue: QueueDefault,
	Handler: func(d *Deps) asynq.Handler {
		return &RetentionHandler{Store: d.Store, Retention: d.WebhookRetention, Log: d.Log}
	},
	Every: func(*Deps) time.Duration { return retentionInterval },
	Slot:  NewDeliveryRetentionTask,
}

// RetentionStore is the persistence webhooks:delete-expired needs.
type RetentionStore interface {
	// DeleteExpiredDeliveries deletes up to batch deliveries no longer
	// pending and created before cutoff, and returns how many.
	DeleteExpiredDeliveries(ctx context.Context, cutoff time.Time, batch int) (int, error)
}

// RetentionHandler processes webhooks:delete-expired: it deletes in small
// batches, each its own short transaction, so that no sweep holds many row
// locks or bloats one commit; batches skip rows another sweep holds.
type RetentionHandler struct {
	Store RetentionStore
	// Retention is WEBHOOK_DELIVERY_RETENTION.
	Retention time.Duration
	Log       *slog.Logger
	Now       endcall.Clock
	// Batch defaults to 500 deliveries a statement.
	Batch int
}

// ProcessTask deletes expired deliveries until none is left or its budget
// is spent.
func (h *RetentionHandler) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	batch := h.Batch
	if batch <= 0 {
		batch = retentionBatch
	}
	start := h.Now.Now()
	cutoff := start.Add(-h.Retention)
	total := 0
	for h.Now.Now().Sub(start) < retentionBudget {
		n, err := h.Store.DeleteExpiredDeliveries(ctx, cutoff, batch)
		total += n
		if err != nil {
			return err
		}
		if n < batch {
			break
		}
	}
	if total > 0 {
		h.Log.Info("deleted expired webhook deliveries", "count", total, "cutoff", cutoff.UTC())
	}
	return nil
}

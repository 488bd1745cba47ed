package endcall

import "time"

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// WebhookEndpoint is a receiver of a workspace's events. Secret is shown
// only when an endpoint is created or its secret rotated.
type WebhookEndpoint struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
	Description *string   `json:"description"`
	Enabled     bool      `json:"enabled"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Secret      string    `json:"-"`
}

// Delivery is one event owed to one endpoint. Its ID is the webhook-id
// header of every attempt.
type Delivery struct {
	ID         string            `json:"id"`
	EndpointID string            `json:"endpoint_id"`
	Event      string            `json:"event"`
	CallID     string            `json:"call_id"`
	Status     string            `json:"status"`
	CreatedAt  time.Time         `json:"created_at"`
	Attempts   []DeliveryAttempt `json:"attempts"`
}

// DeliveryAttempt records one HTTP attempt of a delivery.
type DeliveryAttempt struct {
	Attempt       int        `json:"attempt"`
	At            time.Time  `json:"at"`
	StatusCode    *int       `json:"status_code"`
	Error         *string    `json:"error"`
	DurationMS    int64      `json:"duration_ms"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

// DeliveryJob is what webhook:deliver needs to make one attempt.
type DeliveryJob struct {
	Delivery
	WorkspaceID   string
	URL           string
	EndpointLive  bool // enabled and not deleted
	Secrets       []string
	Body          []byte // fixed when the delivery is created, else by the first attempt
	NextAttemptAt time.Time
}

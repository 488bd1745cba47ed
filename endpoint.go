package endcall

import "time"

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Valid reports whether s is a delivery status.
func (s DeliveryStatus) Valid() bool {
	return s == DeliveryPending || s == DeliverySucceeded || s == DeliveryFailed
}

// DisabledReason says why the service disabled an endpoint itself. An
// endpoint disabled through the API has no reason.
type DisabledReason string

// Reasons an endpoint was disabled by the service itself.
const (
	DisabledFailing DisabledReason = "failing" // every attempt failed for WEBHOOK_DISABLE_AFTER
	DisabledGone    DisabledReason = "gone"    // the receiver answered 410 Gone
)

// Most requests a second an endpoint's rate_limit may name.
const (
	MinRateLimit = 1
	MaxRateLimit = 1000
)

// WebhookEndpoint is a receiver of a workspace's events. Secret is shown
// only when an endpoint is created or its secret rotated.
type WebhookEndpoint struct {
	ID          string   `json:"id"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description *string  `json:"description"`
	// RateLimit is the most requests a second sent to the endpoint across
	// every worker; nil for no limit.
	RateLimit      *int            `json:"rate_limit"`
	Enabled        bool            `json:"enabled"`
	DisabledReason *DisabledReason `json:"disabled_reason"`
	Health         EndpointHealth  `json:"health"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
	Secret         string          `json:"-"`
}

// EndpointHealth sums up an endpoint's recent attempts. FailingSince is the
// first failed attempt after the last success, nil when the last attempt
// succeeded.
type EndpointHealth struct {
	LastSuccessAt *time.Time `json:"last_success_at"`
	FailingSince  *time.Time `json:"failing_since"`
	// Attempts and Failures count the attempts of the last 24 hours.
	Attempts int `json:"attempts"`
	Failures int `json:"failures"`
}

// EndpointPatch changes an endpoint; nil fields stay as they are.
type EndpointPatch struct {
	URL         *string
	Events      []string
	Description Optional[string]
	RateLimit   Optional[int]
	Enabled     *bool
}

// Delivery is one event owed to one endpoint. Its ID is the webhook-id
// header of every attempt.
type Delivery struct {
	ID         string `json:"id"`
	EndpointID string `json:"endpoint_id"`
	Event      string `json:"event"`
	// CallID is nil for a test event, whose call is an example.
	CallID    *string           `json:"call_id"`
	Status    DeliveryStatus    `json:"status"`
	CreatedAt time.Time         `json:"created_at"`
	Attempts  []DeliveryAttempt `json:"attempts"`
}

// DeliveryAttempt records one HTTP attempt of a delivery.
type DeliveryAttempt struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	StatusCode *int      `json:"status_code"`
	Error      *string   `json:"error"`
	// ResponseBody is the first KiB of the receiver's answer, as text.
	ResponseBody  *string    `json:"response_body"`
	DurationMS    int64      `json:"duration_ms"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

// DeliveryJob is what webhook:deliver needs to make one attempt.
type DeliveryJob struct {
	Delivery
	WorkspaceID   string
	URL           string
	EndpointLive  bool // enabled and not deleted
	RateLimit     *int
	Secrets       []string
	Body          []byte // fixed when the delivery is created, else by the first attempt
	NextAttemptAt time.Time
	// WaitsFor, on a call.analyzed delivery whose call's call.ended
	// delivery to the same endpoint is still pending, is when that one's
	// next attempt is due; nil when there is nothing to wait for.
	WaitsFor *time.Time
}

// DeliveryFilter selects deliveries of a workspace, newest first; empty
// fields do not filter. After, when set, starts the page after that
// delivery.
type DeliveryFilter struct {
	WorkspaceID string
	EndpointID  string
	CallID      string
	Status      DeliveryStatus
	Event       string
	Limit       int
	After       *DeliveryCursor
}

// DeliveryCursor is a position in the newest-first order of deliveries.
type DeliveryCursor struct {
	CreatedAt time.Time
	ID        string
}

// ReplayFilter selects an endpoint's deliveries created in a window for a
// replay; Until zero means now, Status "all" every status.
type ReplayFilter struct {
	WorkspaceID string
	EndpointID  string
	Since       time.Time
	Until       time.Time
	Status      DeliveryStatus
}

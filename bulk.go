package endcall

import (
	"context"
	"time"
)

// BulkStatus is where a bulk end job stands.
type BulkStatus string

// Bulk end job statuses.
const (
	BulkRunning   BulkStatus = "running"
	BulkCompleted BulkStatus = "completed"
)

// BulkOutcome is what a bulk end did to one of its calls.
type BulkOutcome string

// Outcomes of one call of a bulk end.
const (
	BulkEnded        BulkOutcome = "ended"
	BulkAlreadyEnded BulkOutcome = "already_ended"
	BulkFailed       BulkOutcome = "failed"
)

// BulkFilter selects the active calls of a workspace that a bulk end ends:
// every call that matches all the criteria set, or every active call when
// All is set (alone).
type BulkFilter struct {
	All           bool       `json:"all,omitempty"`
	CampaignID    *string    `json:"campaign_id,omitempty"`
	AIAgentID     *string    `json:"ai_agent_id,omitempty"`
	IsTest        *bool      `json:"is_test,omitempty"`
	CallIDs       []string   `json:"call_ids,omitempty"`
	StartedBefore *time.Time `json:"started_before,omitempty"`
}

// BulkEndRequest asks to end the calls a filter matches now. Reason is
// already defaulted; IdempotencyKey and RequestHash are empty without an
// Idempotency-Key header.
type BulkEndRequest struct {
	WorkspaceID    string
	Filter         BulkFilter
	Reason         string
	FinalMessage   string
	IdempotencyKey string
	RequestHash    []byte
}

// BulkEnd is a bulk end job and its progress, as the API shows it.
type BulkEnd struct {
	ID           string     `json:"id"`
	Status       BulkStatus `json:"status"`
	Matched      int        `json:"matched"`
	Ended        int        `json:"ended"`
	AlreadyEnded int        `json:"already_ended"`
	Failed       int        `json:"failed"`
	CreatedAt    time.Time  `json:"created_at"`
	FinishedAt   *time.Time `json:"finished_at"`
}

// BulkEndJob is what the worker needs to run a job.
type BulkEndJob struct {
	ID           string
	WorkspaceID  string
	Status       BulkStatus
	Reason       string
	FinalMessage string
}

// BulkEndStore is the persistence of bulk ends.
type BulkEndStore interface {
	// CreateBulkEnd records a job with a snapshot of the calls it matches,
	// in one commit; a job that matches nothing is completed at once. With
	// an idempotency key used by the workspace within 24 h, it returns that
	// job instead and created is false; ECONFLICT when that job was asked
	// with a different request.
	CreateBulkEnd(ctx context.Context, req BulkEndRequest) (job *BulkEnd, created bool, err error)
	// BulkEnd returns a job of the workspace with its progress; ENOTFOUND
	// for a missing job or another workspace's.
	BulkEnd(ctx context.Context, workspaceID, id string) (*BulkEnd, error)
}

package endcall

import (
	"context"
	"time"
)

// Kinds of post-call work an ended call owes. Postgres records each as
// owed in the transaction that ends the call; the queue only executes it.
const (
	WorkHangup     = "hangup"
	WorkRoomDelete = "room_delete"
	WorkAnalyze    = "analyze"
	WorkDeliver    = "deliver"
	// WorkEndBulk is a bulk end job still running.
	WorkEndBulk = "end_bulk"
)

// Webhook event types.
const (
	EventCallEnded    = "call.ended"
	EventCallAnalyzed = "call.analyzed"
)

// Work is one owed piece of work. DeliveryID is set for WorkDeliver only;
// Run for WorkAnalyze, where 0 and 1 both mean the analysis the end owes
// and a higher run a re-analysis; JobID for WorkEndBulk only, which has no
// CallID. WorkspaceID, EndpointID, Host (of the endpoint's URL) and Event
// describe the work to an operator reading its task; they are set where
// known.
type Work struct {
	Kind       string
	CallID     string
	DeliveryID string
	Run        int
	JobID      string

	WorkspaceID string
	EndpointID  string
	Host        string
	Event       string
}

// Same reports whether w and o are the same piece of work, whatever run of
// an analysis each knew of (the task reads the current one).
func (w Work) Same(o Work) bool {
	return w.Kind == o.Kind && w.CallID == o.CallID && w.DeliveryID == o.DeliveryID && w.JobID == o.JobID
}

// OwedQuery asks the store for the owed work of one kind: owed since
// before Before (younger work is normally still in flight on the fast path),
// at most Limit items. A hangup still pending, whose end path may be waiting
// on the provider, is owed only once older than PendingHangupBefore. With Of
// set, it asks instead which of those subjects (call, delivery or bulk end
// job IDs) are owed now, whatever their age.
type OwedQuery struct {
	Before              time.Time
	PendingHangupBefore time.Time
	Limit               int
	Of                  []string
}

// Queue hands owed work to the background engine. Enqueueing the same work
// twice must be harmless (deterministic task IDs).
type Queue interface {
	Enqueue(ctx context.Context, work []Work) error
}

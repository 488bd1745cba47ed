package endcall

import "context"

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
// and a higher run a re-analysis; JobID and WorkspaceID for WorkEndBulk
// only, which has no CallID.
type Work struct {
	Kind        string
	CallID      string
	DeliveryID  string
	Run         int
	JobID       string
	WorkspaceID string
}

// Queue hands owed work to the background engine. Enqueueing the same work
// twice must be harmless (deterministic task IDs).
type Queue interface {
	Enqueue(ctx context.Context, work []Work) error
}

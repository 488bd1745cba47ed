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

// Queue hands owed work to the background engine. Enqueueing the same work
// twice must be harmless (deterministic task IDs).
type Queue interface {
	Enqueue(ctx context.Context, work []Work) error
}

package jobs

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis"
)

// TaskType declares one task type: all that the Enqueuer, the worker and the
// reconciler know of it. Each is declared in the file of its handler and
// listed once in Registry.
type TaskType struct {
	// Type is the asynq task type, permanent once deployed.
	Type  string
	Queue string
	// Work is the kind of owed work (endcall.Work*) the task executes; ""
	// for a periodic task, which Postgres does not owe and which builds its
	// own tasks.
	Work string
	// ID is the deterministic task ID of a piece of work: while its task is
	// queued, running, waiting for a retry or archived, queueing the work
	// again is refused.
	ID func(w endcall.Work) string
	// Payload is what the task carries: what its handler reads, and what
	// names its subject to an operator reading it in the dashboard. Never a
	// secret.
	Payload func(w endcall.Work) any
	// Options are the task's MaxRetry and Timeout, from the enqueuer's
	// settings where they are configured.
	Options func(e *Enqueuer) []asynq.Option
	// RetryDelay is the delay before the retry that follows n counted
	// failures; nil is asynq's default.
	RetryDelay func(n int) time.Duration
	// Owed is the store query listing the work of this kind that Postgres
	// owes; nil for a periodic task.
	Owed func(s OwedStore, ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error)
	// Handler builds the task's handler from the process's dependencies.
	Handler func(d *Deps) asynq.Handler
	// Every is how often a periodic task runs, and Slot builds its task of
	// the slot starting at slot, for slots every interval; both nil for
	// owed work.
	Every func(d *Deps) time.Duration
	Slot  func(slot time.Time, interval time.Duration) (*asynq.Task, error)
}

// Registry lists every task type. A new task type is a file declaring its
// TaskType, and a line here.
var Registry = []*TaskType{
	&hangupTask,
	&roomTask,
	&analyzeTask,
	&deliverTask,
	&endBulkTask,
	&endOverdueTask,
	&retentionTask,
}

var byType, byWork = func() (map[string]*TaskType, map[string]*TaskType) {
	types, works := map[string]*TaskType{}, map[string]*TaskType{}
	for _, t := range Registry {
		types[t.Type] = t
		if t.Work != "" {
			works[t.Work] = t
		}
	}
	return types, works
}()

// Lookup returns the declaration of a task type, or nil.
func Lookup(taskType string) *TaskType { return byType[taskType] }

// OwedStore lists what Postgres owes, one query per kind of owed work.
type OwedStore interface {
	OwedHangups(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error)
	OwedRooms(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error)
	OwedAnalyses(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error)
	OwedDeliveries(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error)
	OwedBulkEnds(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error)
}

// Store is all the persistence the handlers need.
type Store interface {
	endcall.HangupStore
	RoomStore
	AnalyzeStore
	DeliverStore
	EndBulkStore
	OverdueStore
	RetentionStore
}

// Deps are what the handlers of a process are built from.
type Deps struct {
	Store     Store
	Telephony endcall.Telephony
	// Rooms is nil when LIVEKIT_URL is unset: rooms are then skipped.
	Rooms    RoomDeleter
	Analyzer analysis.Analyzer
	// AnalysesInFlight bounds the analyses the process runs at once (0: no
	// bound).
	AnalysesInFlight int
	Queue            endcall.Queue
	// Calls is the one end path; BulkCalls the same with its hangups
	// bounded per Twilio account (SlottedTelephony).
	Calls, BulkCalls endcall.CallService
	// ProviderTimeout is PROVIDER_TIMEOUT; MaxCallDuration is
	// MAX_CALL_DURATION; OverdueScanInterval is OVERDUE_SCAN_INTERVAL.
	ProviderTimeout, MaxCallDuration, OverdueScanInterval time.Duration
	// The WEBHOOK_* settings of deliveries.
	WebhookSchedule     []time.Duration
	WebhookClient       *http.Client
	WebhookDisableAfter time.Duration
	WebhookRetention    time.Duration
	Pacer               *Pacer
	Wake                Waker
	Log                 *slog.Logger
	// Metrics observers, each optional.
	OnHangup   func(outcome endcall.HangupStatus)
	OnAnalysis func(outcome endcall.AnalysisStatus)
	OnAttempt  func(outcome string)
}

// fixed returns Options that do not depend on the enqueuer.
func fixed(opts ...asynq.Option) func(*Enqueuer) []asynq.Option {
	return func(*Enqueuer) []asynq.Option { return opts }
}

// callPayload is the Payload of the tasks that act on one call.
func callPayload(w endcall.Work) any { return CallPayload{CallID: w.CallID} }

// backoff is base doubled n times, at most max.
func backoff(base time.Duration, n int, max time.Duration) time.Duration {
	d := time.Duration(float64(base) * math.Pow(2, float64(n)))
	if d > max || d <= 0 {
		return max
	}
	return d
}

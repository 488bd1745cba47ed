package endcall

import (
	"context"
	"time"
)

// EndRequest asks to end one call. Reason is already defaulted.
type EndRequest struct {
	WorkspaceID string
	CallID      string
	Reason      string
	// FinalMessage, when set, is spoken to an in-progress call before the
	// provider hangs it up.
	FinalMessage string
	Trigger      string
	// ProviderStatus is set when the provider reported the call over: its
	// final status is stored and no hangup request is made.
	ProviderStatus string
}

// EndResult is what ending a call did.
type EndResult struct {
	Call         *Call
	AlreadyEnded bool
}

// CallService ends calls. Every trigger (API, provider callback, overdue
// scan) goes through End.
type CallService interface {
	// End ends an active call, exactly once however many ends race.
	// Returns ENOTFOUND for a missing call or another workspace's, and
	// EUNAVAILABLE when the database cannot be reached.
	End(ctx context.Context, req EndRequest) (EndResult, error)
}

// Ending is how an active call ends, decided while its row is locked.
type Ending struct {
	Status       string
	Reason       string
	HangupStatus string
	At           time.Time
}

// LockedCall is an active call under lock, with the credentials its
// hangup must use (nil: the platform's).
type LockedCall struct {
	Call        *Call
	Credentials *ProviderCredentials
}

// EndStore is the persistence the end path needs.
type EndStore interface {
	// EndCalls ends a batch of calls in one transaction: it locks their
	// rows, calls decide for each one still active (concurrently; decide
	// may make the provider hangup, and concurrent ends of a call wait on
	// its lock) and commits every ending with all its owed work in one
	// commit. A call that has already ended is not decided and is returned
	// as found. A target named twice is ended once; the copy reads as
	// already ended. The outcomes are in the order of targets.
	EndCalls(ctx context.Context, targets []EndTarget,
		decide func(ctx context.Context, i int, c LockedCall) (Ending, error)) []EndOutcome
}

// EndTarget is a call to end, named with its workspace.
type EndTarget struct {
	WorkspaceID string
	CallID      string
}

// EndOutcome is what EndCalls did with one target: ended it (Call as
// stored, Work owed), found it already ended (Call as found), or Err.
type EndOutcome struct {
	Call  *Call
	Work  []Work
	Ended bool
	Err   error
}

// Telephony hangs calls up with the provider.
type Telephony interface {
	// Hangup ends callSID with status "completed" or "canceled". It returns
	// HangupSucceeded or HangupAlreadyEnded, or an error; a *HangupError
	// with Permanent set must not be retried.
	Hangup(ctx context.Context, creds *ProviderCredentials, callSID, status string) (string, error)
}

// HangupError is a provider refusal that retrying cannot fix.
type HangupError struct {
	Permanent bool
	Err       error
}

func (e *HangupError) Error() string { return e.Err.Error() }
func (e *HangupError) Unwrap() error { return e.Err }

// HangupTarget is what a background hangup retry needs: the provider call,
// the status to send, the call's current provider_hangup_status and the
// credentials to send it with (nil: the platform's).
type HangupTarget struct {
	CallSID      string
	Status       string
	HangupStatus string
	Credentials  *ProviderCredentials
}

// HangupStore is the persistence of background hangup retries.
type HangupStore interface {
	HangupTarget(ctx context.Context, callID string) (*HangupTarget, error)
	// FinishHangup stores outcome on a call still marked retrying.
	FinishHangup(ctx context.Context, callID, outcome string) error
}

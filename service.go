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
	Trigger      Trigger
	// ProviderStatus is set when the provider reported the call over: its
	// final status is stored and no hangup request is made.
	ProviderStatus CallStatus
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

// EndStore is the persistence of the end path.
type EndStore interface {
	// RecordEnd ends an active call in one durable commit, together with
	// everything the end owes: the hangup (provider_hangup_status pending,
	// or skipped when hangup is false or the call has no call_sid), the
	// room, the analysis and the call.ended deliveries. Of any number of
	// concurrent ends of a call exactly one records it; the others find it
	// ended. Returns ENOTFOUND for a missing call or another workspace's,
	// and EUNAVAILABLE when the database cannot be reached.
	RecordEnd(ctx context.Context, e EndRecord) (*RecordedEnd, error)
	// FinishHangup stores the outcome of a hangup on a call whose hangup is
	// still pending or retrying; a late or repeated outcome changes nothing.
	FinishHangup(ctx context.Context, callID string, outcome HangupStatus) error
}

// EndRecord is an end to record.
type EndRecord struct {
	WorkspaceID  string
	CallID       string
	Reason       string
	FinalMessage string
	// ProviderStatus, when set, is the final status the provider reported;
	// otherwise the call is completed, or canceled when it never connected.
	ProviderStatus CallStatus
	// Hangup says whether the end owes a provider hangup (telephony is real
	// and the provider did not report the end itself).
	Hangup bool
	At     time.Time
}

// RecordedEnd is what RecordEnd found or did. When Ended is false the call
// had already ended and Call is as found.
type RecordedEnd struct {
	Call  *Call
	Ended bool
	// Hangup is the hangup the end owes, nil when none.
	Hangup *HangupTarget
	// Work is the post-call work the end owes, besides the hangup.
	Work []Work
}

// Telephony hangs calls up with the provider.
type Telephony interface {
	// Hangup ends t.CallSID with t.Status ("completed" or "canceled"),
	// saying t.FinalMessage first when it is set and the call is in
	// progress. It returns HangupSucceeded or HangupAlreadyEnded, or an
	// error; a *HangupError with Permanent set must not be retried.
	Hangup(ctx context.Context, t HangupTarget) (HangupStatus, error)
}

// HangupError is a provider refusal that retrying cannot fix.
type HangupError struct {
	Permanent bool
	Err       error
}

func (e *HangupError) Error() string { return e.Err.Error() }
func (e *HangupError) Unwrap() error { return e.Err }

// HangupTarget is a hangup to make: the provider call, the status to send,
// the message to say first, the call's current provider_hangup_status and
// the credentials to send it with (nil: the platform's). CredentialsErr is
// set when the phone number's credentials cannot be used (they cannot be
// decrypted): the hangup then fails at once.
type HangupTarget struct {
	CallSID        string
	Status         CallStatus
	FinalMessage   string
	HangupStatus   HangupStatus
	Credentials    *ProviderCredentials
	CredentialsErr error
}

// HangupStore is the persistence of background hangup retries.
type HangupStore interface {
	HangupTarget(ctx context.Context, callID string) (*HangupTarget, error)
	// FinishHangup stores outcome on a call whose hangup is still pending
	// or retrying.
	FinishHangup(ctx context.Context, callID string, outcome HangupStatus) error
}

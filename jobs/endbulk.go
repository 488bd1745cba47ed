package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/endcall/endcall"
)

// TypeEndBulk ends the calls of a bulk end job.
const TypeEndBulk = "calls:end-bulk"

// Defaults of EndBulkHandler.
const (
	// endBulkChunk is how many owed calls one query reads.
	endBulkChunk = 200
	// endBulkConcurrency bounds the ends in flight: more than the hangup
	// slots of one account, so that the calls of other accounts and calls
	// with no hangup go on beside them.
	endBulkConcurrency = 64
	// recordTimeout bounds recording one call's result, which is done even
	// when the task's context has ended: the end it records has happened.
	recordTimeout = 10 * time.Second
)

// EndBulkPayload is the payload of calls:end-bulk: the job, never its calls.
type EndBulkPayload struct {
	WorkspaceID string `json:"workspace_id"`
	JobID       string `json:"bulk_end_id"`
}

// endBulkTask's ID names the job, so that the API and the reconciler queue
// one task however often they try. A run that ends early (timeout,
// shutdown, outage) leaves the rest owed, and the next run goes on from
// there.
var endBulkTask = TaskType{
	Type:  TypeEndBulk,
	Queue: QueueDefault,
	Work:  endcall.WorkEndBulk,
	ID:    func(w endcall.Work) string { return "endbulk:" + w.JobID },
	Payload: func(w endcall.Work) any {
		return EndBulkPayload{WorkspaceID: w.WorkspaceID, JobID: w.JobID}
	},
	Options: fixed(asynq.MaxRetry(25), asynq.Timeout(30*time.Minute)),
	Owed:    OwedStore.OwedBulkEnds,
	Handler: func(d *Deps) asynq.Handler { return &EndBulkHandler{Store: d.Store, Calls: d.BulkCalls, Log: d.Log} },
}

// EndBulkStore is the persistence calls:end-bulk needs.
type EndBulkStore interface {
	BulkEndJob(ctx context.Context, id string) (*endcall.BulkEndJob, error)
	PendingBulkEndCalls(ctx context.Context, jobID, after string, limit int) ([]string, error)
	RecordBulkEndResult(ctx context.Context, jobID, callID string, result endcall.BulkOutcome, errText string) error
	FinishBulkEnd(ctx context.Context, jobID string) (bool, error)
}

// HangupSlots bounds the hangups in flight per Twilio account across every
// worker.
type HangupSlots interface {
	Acquire(ctx context.Context, account string) (release func(), err error)
}

// SlottedTelephony holds a slot of the call's Twilio account (its BYOT
// account, else PlatformAccount) for the duration of each hangup, and only
// that: the rest of an end (its commits, its queueing) takes no slot. The
// wait for a slot counts against the hangup's PROVIDER_TIMEOUT; a hangup
// that times out waiting is retried in the background like any other.
type SlottedTelephony struct {
	endcall.Telephony
	Slots           HangupSlots
	PlatformAccount string
}

// Hangup implements endcall.Telephony.
func (t *SlottedTelephony) Hangup(ctx context.Context, target endcall.HangupTarget) (endcall.HangupStatus, error) {
	account := t.PlatformAccount
	if target.Credentials != nil {
		account = target.Credentials.AccountSID
	}
	release, err := t.Slots.Acquire(ctx, account)
	if err != nil {
		return "", fmt.Errorf("waiting for a hangup slot of account %s: %w", account, err)
	}
	defer release()
	return t.Telephony.Hangup(ctx, target)
}

// EndBulkHandler processes calls:end-bulk.
type EndBulkHandler struct {
	Store EndBulkStore
	// Calls is the one end path: each call's transition, hangup and
	// post-call work. Its telephony bounds the hangups in flight per
	// account (SlottedTelephony).
	Calls endcall.CallService
	Log   *slog.Logger
	// Chunk and Concurrency default to endBulkChunk and endBulkConcurrency.
	Chunk       int
	Concurrency int
}

// ProcessTask ends the job's owed calls, each through the end path, and
// records each result as it comes, so that a later run skips what is done.
// Calls are read in bounded chunks while the ends of the last chunk are
// still in flight.
func (h *EndBulkHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p EndBulkPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.JobID == "" {
		return fmt.Errorf("bad %s payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	job, err := h.Store.BulkEndJob(ctx, p.JobID)
	if endcall.ErrorCode(err) == endcall.ENOTFOUND {
		return fmt.Errorf("bulk end %s: %w", p.JobID, asynq.SkipRetry)
	} else if err != nil {
		return err
	}
	if job.Status != endcall.BulkRunning {
		return nil
	}
	var (
		g       errgroup.Group
		mu      sync.Mutex
		stopErr error
		ended   atomic.Int64
	)
	g.SetLimit(h.concurrency())
	stopped := func() error {
		mu.Lock()
		defer mu.Unlock()
		return stopErr
	}
	stop := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if stopErr == nil {
			stopErr = err
		}
	}
	after := ""
	for stopped() == nil && ctx.Err() == nil {
		calls, err := h.Store.PendingBulkEndCalls(ctx, job.ID, after, h.chunk())
		if err != nil {
			stop(err)
			break
		}
		for _, c := range calls {
			if stopped() != nil || ctx.Err() != nil {
				break
			}
			g.Go(func() error {
				ok, err := h.endOne(ctx, job, c)
				if err != nil {
					stop(err)
				} else if ok {
					ended.Add(1)
				}
				return nil
			})
		}
		if len(calls) < h.chunk() {
			break
		}
		after = calls[len(calls)-1]
	}
	g.Wait()
	if n := ended.Load(); n > 0 {
		h.Log.Info("bulk end ended calls", "bulk_end_id", job.ID, "workspace_id", job.WorkspaceID, "ended", n)
	}
	if err := errors.Join(stopped(), ctx.Err()); err != nil {
		return err
	}
	done, err := h.Store.FinishBulkEnd(ctx, job.ID)
	if err != nil {
		return err
	} else if !done {
		// A call's end could not be recorded yet; the retry goes on.
		return fmt.Errorf("bulk end %s: calls still owed after a pass", job.ID)
	}
	h.Log.Info("bulk end completed", "bulk_end_id", job.ID, "workspace_id", job.WorkspaceID)
	return nil
}

// endOne ends one call and records its result. It reports whether this end
// made the transition. An error stops the run: the database is unavailable,
// and the call stays owed.
func (h *EndBulkHandler) endOne(ctx context.Context, job *endcall.BulkEndJob, callID string) (bool, error) {
	res, err := h.Calls.End(ctx, endcall.EndRequest{WorkspaceID: job.WorkspaceID, CallID: callID,
		Reason: job.Reason, FinalMessage: job.FinalMessage, Trigger: endcall.TriggerBulk})
	result, errText := endcall.BulkEnded, ""
	switch {
	case endcall.ErrorCode(err) == endcall.EUNAVAILABLE:
		return false, err
	case err != nil:
		h.Log.Warn("bulk end: ending a call failed", "bulk_end_id", job.ID, "call_id", callID, "error", err)
		result, errText = endcall.BulkFailed, endcall.ErrorMessage(err)
	case res.AlreadyEnded:
		result = endcall.BulkAlreadyEnded
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := h.Store.RecordBulkEndResult(rctx, job.ID, callID, result, errText); err != nil {
		return false, err
	}
	return result == endcall.BulkEnded, nil
}

func (h *EndBulkHandler) chunk() int {
	if h.Chunk > 0 {
		return h.Chunk
	}
	return endBulkChunk
}

func (h *EndBulkHandler) concurrency() int {
	if h.Concurrency > 0 {
		return h.Concurrency
	}
	return endBulkConcurrency
}

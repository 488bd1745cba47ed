package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
)

// callColumns is the select list scanCall reads, in order.
const callColumns = `c.id, c.workspace_id, c.phone_number_id, c.call_sid, c.call_provider, c.call_from,
	c.call_to, c.call_direction, c.call_status, c.call_duration, c.is_test, c.ai_agent_id, c.campaign_id,
	c.contact_id, c.room_name, c.record_url, c.transcript, c.transcript_object, c.metadata,
	c.agent_dynamic_variables, c.notes, c.call_rating, c.call_feedback, c.max_duration_seconds,
	c.disconnect_reason, c.provider_hangup_status, c.room_status, c.analysis_status,
	c.analysis_sentiment, c.analysis, c.agent_post_call_outcomes, c.created_at, c.updated_at,
	c.started_at, c.ended_at`

// scanCall reads one row of callColumns, plus any extra destinations after them.
func scanCall(row pgx.Row, extra ...any) (*endcall.Call, error) {
	var c endcall.Call
	var transcriptObject, analysis []byte
	dest := []any{&c.ID, &c.WorkspaceID, &c.PhoneNumberID, &c.CallSID, &c.CallProvider, &c.CallFrom,
		&c.CallTo, &c.CallDirection, &c.CallStatus, &c.CallDuration, &c.IsTest, &c.AIAgentID, &c.CampaignID,
		&c.ContactID, &c.RoomName, &c.RecordURL, &c.Transcript, &transcriptObject, &c.Metadata,
		&c.AgentDynamicVariables, &c.Notes, &c.CallRating, &c.CallFeedback, &c.MaxDurationSeconds,
		&c.DisconnectReason, &c.ProviderHangupStatus, &c.RoomStatus, &c.AnalysisStatus,
		&c.AnalysisSentiment, &analysis, &c.AgentPostCallOutcomes, &c.CreatedAt, &c.UpdatedAt,
		&c.StartedAt, &c.EndedAt}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	if transcriptObject != nil {
		if err := json.Unmarshal(transcriptObject, &c.TranscriptObject); err != nil {
			return nil, fmt.Errorf("call %s: transcript_object: %w", c.ID, err)
		}
	}
	if analysis != nil {
		c.Analysis = new(endcall.Analysis)
		if err := json.Unmarshal(analysis, c.Analysis); err != nil {
			return nil, fmt.Errorf("call %s: analysis: %w", c.ID, err)
		}
	}
	c.CreatedAt = c.CreatedAt.UTC()
	c.UpdatedAt = c.UpdatedAt.UTC()
	c.StartedAt = utc(c.StartedAt)
	c.EndedAt = utc(c.EndedAt)
	return &c, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// GetCall returns a call of the workspace, or ENOTFOUND.
func (s *Store) GetCall(ctx context.Context, workspaceID, callID string) (*endcall.Call, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+callColumns+` FROM calls c WHERE c.id = $1 AND c.workspace_id = $2`, callID, workspaceID)
	c, err := scanCall(row)
	if err != nil {
		return nil, notFound(dbError(err), "call")
	}
	return c, nil
}

// notFound rewrites a generic ENOTFOUND with the kind of thing missing.
func notFound(err error, what string) error {
	if endcall.ErrorCode(err) == endcall.ENOTFOUND {
		return endcall.Errorf(endcall.ENOTFOUND, "%s not found", what)
	}
	return err
}

// EndCallSQL ends a locked active call and records what it owes, all in one
// statement: the call.ended deliveries of every subscribed endpoint are
// created here, with their body ($9), so the work exists the moment the end
// commits. Every value it writes is a parameter (see endedCall). Exported so
// that the benchmark's floor runs exactly this statement.
const EndCallSQL = `
WITH ended AS (
	UPDATE calls SET ended_at = $3, updated_at = $3, disconnect_reason = $4, call_status = $5,
		provider_hangup_status = $6, call_duration = $7, room_status = $8, analysis_status = 'pending'
	WHERE id = $1
	RETURNING id
), deliveries AS (
	INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, call_id, event, body, created_at, updated_at, next_attempt_at)
	SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.workspace_id, e.id, $1, 'call.ended', $9, $3, $3, $3
	FROM webhook_endpoints e
	WHERE e.workspace_id = $2 AND e.enabled AND e.deleted_at IS NULL AND 'call.ended' = ANY (e.events)
	ON CONFLICT (endpoint_id, call_id, event) DO NOTHING
	RETURNING id
)
SELECT ARRAY(SELECT id FROM deliveries) FROM ended`

// endedCall returns the locked call c as EndCallSQL leaves it when ended as
// e at at: the update writes exactly these values, and the row lock keeps
// every other column as it was read, so this is the stored row without
// reading it back. at must be in UTC and whole microseconds, as stored.
func endedCall(c *endcall.Call, e endcall.Ending, at time.Time) *endcall.Call {
	out := *c
	duration := 0
	if c.StartedAt != nil && at.After(*c.StartedAt) {
		duration = int(at.Sub(*c.StartedAt) / time.Second)
	}
	room, analysis := endcall.RoomPending, endcall.AnalysisPending
	if c.RoomName == nil {
		room = endcall.RoomSkipped
	}
	out.EndedAt, out.UpdatedAt = &at, at
	out.DisconnectReason, out.CallStatus, out.ProviderHangupStatus = &e.Reason, e.Status, &e.HangupStatus
	out.CallDuration, out.RoomStatus, out.AnalysisStatus = &duration, &room, &analysis
	return &out
}

// lockCallSQL locks an active call of the workspace for its end and reads
// it with its phone number's BYOT credentials, and whether any endpoint is
// subscribed to call.ended (then the end builds the deliveries' body).
const lockCallSQL = `SELECT ` + callColumns + `, p.twilio_account_sid, p.twilio_auth_token_enc,
	EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.workspace_id = c.workspace_id
		AND e.enabled AND e.deleted_at IS NULL AND 'call.ended' = ANY (e.events))
	FROM calls c LEFT JOIN phone_numbers p ON p.id = c.phone_number_id
	WHERE c.id = $1 AND c.workspace_id = $2 FOR UPDATE OF c`

// EndCall implements endcall.EndStore: one transaction, one commit, in two
// round trips: BEGIN goes with the row lock, COMMIT with the update. An
// update that fails makes the server skip the COMMIT queued behind it, and
// the transaction is rolled back, as with separate statements. The ended
// call is not read back: endedCall computes it from the locked row.
func (s *Store) EndCall(ctx context.Context, workspaceID, callID string,
	decide func(context.Context, endcall.LockedCall) (endcall.Ending, error)) (*endcall.Call, []endcall.Work, bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, false, dbError(err)
	}
	defer conn.Release()
	// Whatever happened, the connection goes back to the pool outside a
	// transaction (the pool would close one left in a transaction).
	defer func() {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()

	var accountSID *string
	var sealedToken []byte
	var subscribed bool
	var lock pgx.Batch
	lock.Queue("BEGIN")
	lock.Queue(lockCallSQL, callID, workspaceID)
	br := conn.SendBatch(ctx, &lock)
	_, err = br.Exec()
	var call *endcall.Call
	if err == nil {
		call, err = scanCall(br.QueryRow(), &accountSID, &sealedToken, &subscribed)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, false, notFound(dbError(err), "call")
	}
	if call.EndedAt != nil || !endcall.IsActive(call.CallStatus) {
		return call, nil, false, nil
	}
	locked := endcall.LockedCall{Call: call}
	if accountSID != nil && sealedToken != nil {
		creds, err := s.openCredentials(*accountSID, sealedToken)
		if err != nil {
			return nil, nil, false, err
		}
		locked.Credentials = creds
	}
	ending, err := decide(ctx, locked)
	if err != nil {
		return nil, nil, false, err
	}
	at := ending.At.UTC().Truncate(time.Microsecond)
	call = endedCall(call, ending, at)
	// The call.ended body is fixed now, in the end's own commit, so that no
	// delivery needs a commit of its own to fix it before its first attempt.
	var body []byte
	if subscribed {
		if body, err = endcall.EventBody(endcall.EventCallEnded, at, call); err != nil {
			return nil, nil, false, err
		}
	}
	var deliveryIDs []string
	var end pgx.Batch
	end.Queue(EndCallSQL, callID, workspaceID, at, ending.Reason, ending.Status, ending.HangupStatus,
		*call.CallDuration, *call.RoomStatus, body)
	if err := commitWith(ctx, conn, &end, &deliveryIDs); err != nil {
		return nil, nil, false, dbError(err)
	}
	return call, owedWork(call, deliveryIDs), true, nil
}

// owedWork lists the tasks that the just-committed end owes.
func owedWork(c *endcall.Call, deliveryIDs []string) []endcall.Work {
	work := make([]endcall.Work, 0, 3+len(deliveryIDs))
	if deref(c.ProviderHangupStatus) == endcall.HangupRetrying {
		work = append(work, endcall.Work{Kind: endcall.WorkHangup, CallID: c.ID})
	}
	if deref(c.RoomStatus) == endcall.RoomPending {
		work = append(work, endcall.Work{Kind: endcall.WorkRoomDelete, CallID: c.ID})
	}
	work = append(work, endcall.Work{Kind: endcall.WorkAnalyze, CallID: c.ID})
	for _, id := range deliveryIDs {
		work = append(work, endcall.Work{Kind: endcall.WorkDeliver, CallID: c.ID, DeliveryID: id})
	}
	return work
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (s *Store) openCredentials(accountSID string, sealed []byte) (*endcall.ProviderCredentials, error) {
	if s.cipher == nil {
		return nil, fmt.Errorf("phone number has BYOT credentials but no ENCRYPTION_KEY is configured")
	}
	token, err := s.cipher.Open(sealed)
	if err != nil {
		return nil, fmt.Errorf("decrypting BYOT auth token: %w", err)
	}
	return &endcall.ProviderCredentials{AccountSID: accountSID, AuthToken: string(token)}, nil
}

// commitWith sends b, a statement returning one row scanned into dest, with
// the COMMIT of the open transaction behind it: one round trip. A failing
// statement makes the server skip the COMMIT; the caller's deferred
// ROLLBACK then ends the transaction.
func commitWith(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch, dest ...any) error {
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, b)
	err := br.QueryRow().Scan(dest...)
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("the transaction did not commit (%s)", tag)
	}
	return err
}

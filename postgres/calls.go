package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

// endCallSQL ends a locked active call and records what it owes, all in one
// statement: the call.ended deliveries of every subscribed endpoint are
// created here, so the work exists the moment the end commits.
const endCallSQL = `
WITH ended AS (
	UPDATE calls c SET
		ended_at = $3, updated_at = $3, disconnect_reason = $4, call_status = $5,
		call_duration = CASE WHEN c.started_at IS NULL THEN 0
			ELSE greatest(0, floor(extract(epoch FROM ($3 - c.started_at))))::int END,
		provider_hangup_status = $6,
		room_status = CASE WHEN c.room_name IS NULL THEN 'skipped' ELSE 'pending' END,
		analysis_status = 'pending'
	WHERE c.id = $1
	RETURNING ` + callColumns + `
), deliveries AS (
	INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, call_id, event, created_at, updated_at, next_attempt_at)
	SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.workspace_id, e.id, $1, 'call.ended', $3, $3, $3
	FROM webhook_endpoints e
	WHERE e.workspace_id = $2 AND e.enabled AND e.deleted_at IS NULL AND 'call.ended' = ANY (e.events)
	ON CONFLICT (endpoint_id, call_id, event) DO NOTHING
	RETURNING id
)
SELECT c.*, ARRAY(SELECT id FROM deliveries) FROM ended c`

// lockCallSQL locks an active call of the workspace for its end and reads
// it with its phone number's BYOT credentials.
const lockCallSQL = `SELECT ` + callColumns + `, p.twilio_account_sid, p.twilio_auth_token_enc
	FROM calls c LEFT JOIN phone_numbers p ON p.id = c.phone_number_id
	WHERE c.id = $1 AND c.workspace_id = $2 FOR UPDATE OF c`

// EndCall implements endcall.EndStore: one transaction, one commit, in two
// round trips: BEGIN goes with the row lock, COMMIT with the update. An
// update that fails makes the server skip the COMMIT queued behind it, and
// the transaction is rolled back, as with separate statements.
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
	var lock pgx.Batch
	lock.Queue("BEGIN")
	lock.Queue(lockCallSQL, callID, workspaceID)
	br := conn.SendBatch(ctx, &lock)
	_, err = br.Exec()
	var call *endcall.Call
	if err == nil {
		call, err = scanCall(br.QueryRow(), &accountSID, &sealedToken)
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
	var deliveryIDs []string
	var end pgx.Batch
	end.Queue(endCallSQL, callID, workspaceID, ending.At, ending.Reason, ending.Status, ending.HangupStatus)
	end.Queue("COMMIT")
	br = conn.SendBatch(ctx, &end)
	call, err = scanCall(br.QueryRow(), &deliveryIDs)
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("ending call %s: the transaction did not commit (%s)", callID, tag)
	}
	if err != nil {
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

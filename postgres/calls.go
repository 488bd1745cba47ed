package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/webhook"
)

// callColumns is the select list scanCall reads, in order.
const callColumns = `c.id, c.workspace_id, c.phone_number_id, c.call_sid, c.call_provider, c.call_from,
	c.call_to, c.call_direction, c.call_status, c.call_duration, c.is_test, c.ai_agent_id, c.campaign_id,
	c.contact_id, c.room_name, c.record_url, c.transcript, c.transcript_object, c.metadata,
	c.agent_dynamic_variables, c.notes, c.call_rating, c.call_feedback, c.max_duration_seconds,
	c.disconnect_reason, c.final_message, c.provider_hangup_status, c.room_status, c.analysis_status,
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
		&c.DisconnectReason, &c.FinalMessage, &c.ProviderHangupStatus, &c.RoomStatus, &c.AnalysisStatus,
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

// recordEndSQL ends call $1 of workspace $2 if it is still active, and says
// what the end owes. The UPDATE's row lock makes concurrent ends of one call
// wait for the winner's commit and then find it ended. It also reads the
// phone number's BYOT credentials, and whether any endpoint is subscribed to
// call.ended (then the end builds the deliveries' body).
const recordEndSQL = `UPDATE calls c SET ended_at = $3, updated_at = $3, disconnect_reason = $4,
		final_message = nullif($5, ''),
		call_status = CASE WHEN $6 <> '' THEN $6
			WHEN c.call_status IN ('queued', 'ringing') THEN 'canceled' ELSE 'completed' END,
		call_duration = CASE WHEN c.started_at IS NULL OR c.started_at >= $3 THEN 0
			ELSE floor(extract(epoch FROM $3 - c.started_at))::int END,
		provider_hangup_status = CASE WHEN $7 AND coalesce(c.call_sid, '') <> '' THEN 'pending' ELSE 'skipped' END,
		room_status = CASE WHEN c.room_name IS NULL THEN 'skipped' ELSE 'pending' END,
		analysis_status = 'pending'
	WHERE c.id = $1 AND c.workspace_id = $2 AND c.ended_at IS NULL
		AND c.call_status IN ('queued', 'ringing', 'in-progress')
	RETURNING ` + callColumns + `,
		(SELECT p.twilio_account_sid FROM phone_numbers p WHERE p.id = c.phone_number_id),
		(SELECT p.twilio_auth_token_enc FROM phone_numbers p WHERE p.id = c.phone_number_id),
		EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.workspace_id = c.workspace_id
			AND e.enabled AND e.deleted_at IS NULL AND 'call.ended' = ANY (e.events))`

// endedDeliveriesSQL owes the call.ended delivery of call $1 to every
// endpoint subscribed now, each with its body $3 fixed, and returns each
// delivery's endpoint and URL, which its task names.
const endedDeliveriesSQL = `WITH created AS (
		INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, call_id, event, body, created_at, updated_at, next_attempt_at)
		SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.workspace_id, e.id, $1, 'call.ended', $3, $4, $4, $4
		FROM webhook_endpoints e
		WHERE e.workspace_id = $2 AND e.enabled AND e.deleted_at IS NULL AND 'call.ended' = ANY (e.events)
		ON CONFLICT (endpoint_id, call_id, event, run) DO NOTHING
		RETURNING id, endpoint_id
	)
	SELECT c.id, c.endpoint_id::text, e.url FROM created c JOIN webhook_endpoints e ON e.id = c.endpoint_id`

// RecordEnd implements endcall.EndStore in one transaction and two round
// trips: [BEGIN, the update] and [the deliveries, COMMIT]. Nothing outside
// the database is waited on while the row is locked.
func (s *Store) RecordEnd(ctx context.Context, e endcall.EndRecord) (*endcall.RecordedEnd, error) {
	callID, ok := canonicalUUID(e.CallID)
	wsID, okWS := canonicalUUID(e.WorkspaceID)
	if !ok || !okWS {
		return nil, endcall.Errorf(endcall.ENOTFOUND, "call not found")
	}
	at := e.At.UTC().Truncate(time.Microsecond)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, dbError(err)
	}
	defer conn.Release()
	// Whatever happened, the connection goes back to the pool outside a
	// transaction (the pool would close one left in a transaction).
	defer func() {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()

	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(recordEndSQL, callID, wsID, at, e.Reason, e.FinalMessage, e.ProviderStatus, e.Hangup)
	br := conn.SendBatch(ctx, &b)
	var accountSID *string
	var sealed []byte
	var subscribed bool
	_, err = br.Exec()
	var c *endcall.Call
	if err == nil {
		c, err = scanCall(br.QueryRow(), &accountSID, &sealed, &subscribed)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// Not active: already ended, or not this workspace's call. Read on
		// the same connection: waiting for a second one while holding this
		// could exhaust the pool.
		var b pgx.Batch
		b.Queue("ROLLBACK")
		b.Queue(`SELECT `+callColumns+` FROM calls c WHERE c.id = $1 AND c.workspace_id = $2`, callID, wsID)
		br := conn.SendBatch(ctx, &b)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return nil, dbError(err)
		}
		found, err := scanCall(br.QueryRow())
		if err != nil {
			return nil, notFound(dbError(err), "call")
		}
		return &endcall.RecordedEnd{Call: found}, nil
	} else if err != nil {
		return nil, dbError(err)
	}

	var body []byte
	if subscribed {
		if body, err = endcall.EventBody(endcall.EventCallEnded, at, c); err != nil {
			return nil, err
		}
	}
	var deliveries []endcall.Work
	var commit pgx.Batch
	if subscribed {
		commit.Queue(endedDeliveriesSQL, callID, wsID, body, at)
	}
	commit.Queue("COMMIT")
	br = conn.SendBatch(ctx, &commit)
	if subscribed {
		rows, qerr := br.Query()
		if qerr == nil {
			deliveries, qerr = pgx.CollectRows(rows, func(r pgx.CollectableRow) (endcall.Work, error) {
				w := endcall.Work{Kind: endcall.WorkDeliver, CallID: callID, WorkspaceID: wsID, Event: endcall.EventCallEnded}
				var url string
				err := r.Scan(&w.DeliveryID, &w.EndpointID, &url)
				w.Host = webhook.Host(url)
				return w, err
			})
		}
		err = qerr
	}
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("the end of call %s did not commit (%s)", callID, tag)
	}
	if err != nil {
		return nil, dbError(err)
	}

	rec := &endcall.RecordedEnd{Call: c, Ended: true, Work: owedWork(c, deliveries)}
	if endcall.Deref(c.ProviderHangupStatus) == endcall.HangupPending {
		rec.Hangup = hangupTarget(c, accountSID, sealed, s.openCredentials)
	}
	return rec, nil
}

// hangupTarget is the hangup an ended call c owes, with the credentials of
// its phone number when it has BYOT ones.
func hangupTarget(c *endcall.Call, accountSID *string, sealed []byte,
	open func(string, []byte) (*endcall.ProviderCredentials, error)) *endcall.HangupTarget {
	t := &endcall.HangupTarget{CallSID: endcall.Deref(c.CallSID), Status: endcall.StatusCompleted,
		FinalMessage: endcall.Deref(c.FinalMessage), HangupStatus: endcall.Deref(c.ProviderHangupStatus)}
	if c.CallStatus == endcall.StatusCanceled {
		t.Status = endcall.StatusCanceled
	}
	if accountSID != nil && sealed != nil {
		t.Credentials, t.CredentialsErr = open(*accountSID, sealed)
	}
	return t
}

// canonicalUUID returns id in the canonical lower-case 36-character form,
// the only form accepted.
func canonicalUUID(id string) (string, bool) {
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return "", false
	}
	return u.String(), true
}

// owedWork lists the tasks that a just-committed end owes, besides its
// hangup, which the end path makes itself.
func owedWork(c *endcall.Call, deliveries []endcall.Work) []endcall.Work {
	work := make([]endcall.Work, 0, 2+len(deliveries))
	if endcall.Deref(c.RoomStatus) == endcall.RoomPending {
		work = append(work, endcall.Work{Kind: endcall.WorkRoomDelete, CallID: c.ID, WorkspaceID: c.WorkspaceID})
	}
	work = append(work, endcall.Work{Kind: endcall.WorkAnalyze, CallID: c.ID, WorkspaceID: c.WorkspaceID})
	return append(work, deliveries...)
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

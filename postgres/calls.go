package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/google/uuid"
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

// endCallsSQL ends a batch of locked active calls and records what they owe,
// all in one statement: the call.ended deliveries of every subscribed
// endpoint are created here, with their body, so the work exists the moment
// the end commits. Every value it writes is a parameter, one array element
// per call (see endedCall).
const endCallsSQL = `
WITH input AS (
	SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::bytea[])
		AS i(id, at, reason, status, hangup, duration, room, body)
), ended AS (
	UPDATE calls c SET ended_at = i.at, updated_at = i.at, disconnect_reason = i.reason, call_status = i.status,
		provider_hangup_status = i.hangup, call_duration = i.duration, room_status = i.room, analysis_status = 'pending'
	FROM input i
	WHERE c.id = i.id
	RETURNING c.id, c.workspace_id, i.at, i.body
), deliveries AS (
	INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, call_id, event, body, created_at, updated_at, next_attempt_at)
	SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.workspace_id, e.id, x.id, 'call.ended', x.body, x.at, x.at, x.at
	FROM ended x JOIN webhook_endpoints e ON e.workspace_id = x.workspace_id
	WHERE e.enabled AND e.deleted_at IS NULL AND 'call.ended' = ANY (e.events)
	ON CONFLICT (endpoint_id, call_id, event) DO NOTHING
	RETURNING id, call_id
)
SELECT x.id::text, ARRAY(SELECT d.id FROM deliveries d WHERE d.call_id = x.id) FROM ended x`

// endedCall returns the locked call c as endCallsSQL leaves it when ended as
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

// lockCallsSQL locks the calls of a batch of (id, workspace) pairs for their
// end, in id order so that two batches sharing calls cannot deadlock, and
// reads each with its phone number's BYOT credentials and whether any
// endpoint is subscribed to call.ended (then the end builds the deliveries'
// body). A pair whose call is missing or in another workspace has no row.
const lockCallsSQL = `SELECT ` + callColumns + `, p.twilio_account_sid, p.twilio_auth_token_enc,
	EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.workspace_id = c.workspace_id
		AND e.enabled AND e.deleted_at IS NULL AND 'call.ended' = ANY (e.events))
	FROM unnest($1::uuid[], $2::uuid[]) AS t(id, workspace_id)
	JOIN calls c ON c.id = t.id AND c.workspace_id = t.workspace_id
	LEFT JOIN phone_numbers p ON p.id = c.phone_number_id
	ORDER BY c.id
	FOR UPDATE OF c`

// locked is a call of a batch under lock, and what its end needs.
type locked struct {
	call       *endcall.Call
	creds      *endcall.ProviderCredentials
	credsErr   error
	subscribed bool
}

// EndCalls implements endcall.EndStore: one transaction and one commit for
// the whole batch, in two round trips: BEGIN goes with the row locks, COMMIT
// with the update. The ended calls are not read back: endedCall computes
// them from the locked rows.
func (s *Store) EndCalls(ctx context.Context, targets []endcall.EndTarget,
	decide func(context.Context, int, endcall.LockedCall) (endcall.Ending, error)) []endcall.EndOutcome {
	outs := make([]endcall.EndOutcome, len(targets))
	// A target named twice is ended once: the copies share the first's
	// outcome, as it had already ended by the time they would have looked.
	// Targets are keyed by their IDs in canonical form, as Postgres returns
	// them.
	keys := make([]endcall.EndTarget, len(targets))
	first := make(map[endcall.EndTarget]int, len(targets))
	var ids, workspaces []string
	for i, t := range targets {
		callID, okCall := canonicalUUID(t.CallID)
		wsID, okWS := canonicalUUID(t.WorkspaceID)
		keys[i] = endcall.EndTarget{WorkspaceID: wsID, CallID: callID}
		if !okCall || !okWS {
			keys[i] = t
		}
		if _, dup := first[keys[i]]; dup {
			continue
		}
		first[keys[i]] = i
		// An ID that is not a UUID would fail the whole batch's statement.
		if !okCall || !okWS {
			outs[i].Err = endcall.Errorf(endcall.ENOTFOUND, "call not found")
			continue
		}
		ids, workspaces = append(ids, callID), append(workspaces, wsID)
	}
	if len(ids) > 0 {
		s.endCalls(ctx, first, ids, workspaces, outs, decide)
	}
	for i, k := range keys {
		if j := first[k]; j != i {
			outs[i] = outs[j]
			outs[i].Ended, outs[i].Work = false, nil
		}
	}
	return outs
}

// endCalls ends the distinct valid targets (first: key → index in outs),
// whose IDs are ids and workspaces, and writes their outcomes into outs.
func (s *Store) endCalls(ctx context.Context, first map[endcall.EndTarget]int, ids, workspaces []string,
	outs []endcall.EndOutcome, decide func(context.Context, int, endcall.LockedCall) (endcall.Ending, error)) {
	fail := func(err error) {
		for _, i := range first {
			if outs[i].Err == nil {
				outs[i].Err = err
			}
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		fail(dbError(err))
		return
	}
	defer conn.Release()
	// Whatever happened, the connection goes back to the pool outside a
	// transaction (the pool would close one left in a transaction).
	defer func() {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()

	lockedCalls, err := s.lockCalls(ctx, conn, ids, workspaces)
	if err != nil {
		fail(dbError(err))
		return
	}
	var wg sync.WaitGroup
	endings := make([]*endcall.Ending, len(outs))
	for t, i := range first {
		if outs[i].Err != nil {
			continue
		}
		l, ok := lockedCalls[t]
		switch {
		case !ok:
			outs[i].Err = endcall.Errorf(endcall.ENOTFOUND, "call not found")
		case l.call.EndedAt != nil || !endcall.IsActive(l.call.CallStatus):
			outs[i].Call = l.call
		case l.credsErr != nil:
			outs[i].Err = l.credsErr
		default:
			// The hangups of a batch overlap: the batch waits for its slowest
			// one, not for their sum.
			wg.Go(func() {
				// Nothing recovers a panic on this goroutine: it would end
				// the process, so it becomes this call's error.
				defer func() {
					if r := recover(); r != nil {
						outs[i].Err = fmt.Errorf("deciding the end of call %s: panic: %v\n%s", l.call.ID, r, debug.Stack())
					}
				}()
				e, err := decide(ctx, i, endcall.LockedCall{Call: l.call, Credentials: l.creds})
				if err != nil {
					outs[i].Err = err
					return
				}
				endings[i] = &e
			})
		}
	}
	wg.Wait()

	var in endInput
	var ended []int
	for t, i := range first {
		e := endings[i]
		if e == nil {
			continue
		}
		l := lockedCalls[t]
		at := e.At.UTC().Truncate(time.Microsecond)
		call := endedCall(l.call, *e, at)
		// The call.ended body is fixed now, in the end's own commit, so that
		// no delivery needs a commit of its own to fix it before its first
		// attempt.
		var body []byte
		if l.subscribed {
			if body, err = endcall.EventBody(endcall.EventCallEnded, at, call); err != nil {
				outs[i].Err = err
				continue
			}
		}
		in.add(call, *e, at, body)
		outs[i].Call = call
		ended = append(ended, i)
	}
	if len(ended) == 0 {
		return
	}
	deliveries, err := in.commit(ctx, conn)
	if err != nil {
		err = dbError(err)
		for _, i := range ended {
			outs[i] = endcall.EndOutcome{Err: err}
		}
		return
	}
	for _, i := range ended {
		outs[i].Ended = true
		outs[i].Work = owedWork(outs[i].Call, deliveries[outs[i].Call.ID])
	}
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

// lockCalls begins the transaction and locks the batch's calls, keyed by
// (workspace, call).
func (s *Store) lockCalls(ctx context.Context, conn *pgxpool.Conn, ids, workspaces []string) (map[endcall.EndTarget]locked, error) {
	var lock pgx.Batch
	lock.Queue("BEGIN")
	lock.Queue(lockCallsSQL, ids, workspaces)
	br := conn.SendBatch(ctx, &lock)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	out := make(map[endcall.EndTarget]locked, len(ids))
	for rows.Next() {
		var accountSID *string
		var sealedToken []byte
		var l locked
		if l.call, err = scanCall(rows, &accountSID, &sealedToken, &l.subscribed); err != nil {
			rows.Close()
			return nil, err
		}
		if accountSID != nil && sealedToken != nil {
			l.creds, l.credsErr = s.openCredentials(*accountSID, sealedToken)
		}
		out[endcall.EndTarget{WorkspaceID: l.call.WorkspaceID, CallID: l.call.ID}] = l
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, br.Close()
}

// endInput is endCallsSQL's parameters: one array element per call.
type endInput struct {
	ids, reasons, statuses, hangups, rooms []string
	ats                                    []time.Time
	durations                              []int32
	bodies                                 [][]byte
}

func (in *endInput) add(c *endcall.Call, e endcall.Ending, at time.Time, body []byte) {
	in.ids = append(in.ids, c.ID)
	in.ats = append(in.ats, at)
	in.reasons = append(in.reasons, e.Reason)
	in.statuses = append(in.statuses, e.Status)
	in.hangups = append(in.hangups, e.HangupStatus)
	in.durations = append(in.durations, int32(*c.CallDuration))
	in.rooms = append(in.rooms, *c.RoomStatus)
	in.bodies = append(in.bodies, body)
}

// commit runs endCallsSQL with the COMMIT behind it, in one round trip, and
// returns the deliveries created per call. A failing statement makes the
// server skip the COMMIT; the caller's deferred ROLLBACK then ends the
// transaction.
func (in *endInput) commit(ctx context.Context, conn *pgxpool.Conn) (map[string][]string, error) {
	var b pgx.Batch
	b.Queue(endCallsSQL, in.ids, in.ats, in.reasons, in.statuses, in.hangups, in.durations, in.rooms, in.bodies)
	b.Queue("COMMIT")
	br := conn.SendBatch(ctx, &b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	deliveries := make(map[string][]string, len(in.ids))
	for rows.Next() {
		var id string
		var ds []string
		if err := rows.Scan(&id, &ds); err != nil {
			rows.Close()
			return nil, err
		}
		deliveries[id] = ds
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Every call was locked, so every one is updated; anything else is a
	// bug, and the batch must not commit half of it.
	if len(deliveries) != len(in.ids) {
		return nil, fmt.Errorf("ending %d calls updated %d", len(in.ids), len(deliveries))
	}
	tag, err := br.Exec()
	if err != nil {
		return nil, err
	}
	if tag.String() != "COMMIT" {
		return nil, fmt.Errorf("the transaction did not commit (%s)", tag)
	}
	return deliveries, br.Close()
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

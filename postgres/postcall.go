package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/webhook"
)

// CallByID returns a call whatever its workspace; for background tasks,
// whose payloads come from the service itself.
func (s *Store) CallByID(ctx context.Context, id string) (*endcall.Call, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+callColumns+` FROM calls c WHERE c.id = $1`, id)
	c, err := scanCall(row)
	return c, notFound(dbError(err), "call")
}

// Room returns a call's room name and room status, whatever its workspace,
// and whether another active call, of any workspace, still holds the room.
func (s *Store) Room(ctx context.Context, callID string) (name *string, status *endcall.RoomStatus, shared bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT c.room_name, c.room_status, c.room_name IS NOT NULL AND EXISTS (
			SELECT 1 FROM calls o WHERE o.room_name = c.room_name AND o.ended_at IS NULL AND o.room_name IS NOT NULL AND o.id <> c.id)
		FROM calls c WHERE c.id = $1`, callID).Scan(&name, &status, &shared)
	return name, status, shared, notFound(dbError(err), "call")
}

// SetRoomStatus records the room deletion's outcome on a call whose room is
// still pending; a repeated run changes nothing. Its commit is not waited
// for (see unflushed).
func (s *Store) SetRoomStatus(ctx context.Context, callID string, status endcall.RoomStatus) error {
	_, err := s.pool.Exec(ctx, setRoomStatusSQL, callID, status)
	return dbError(err)
}

const setRoomStatusSQL = `UPDATE calls SET room_status = $2, updated_at = now() FROM ` + unflushed + `
	WHERE id = $1 AND coalesce(room_status, '') = 'pending'`

// unflushed, joined into the FROM of an UPDATE that records the outcome of
// work already done, makes its commit skip waiting for the WAL flush
// (synchronous_commit off for that statement's transaction alone), in the
// one statement and round trip. Such a commit is visible at once and
// durable within about wal_writer_delay; only a crash of Postgres itself
// can lose it, and then the work reads as owed again and the reconciler queues
// it once more (at least once, as webhooks are anyway). A commit that owes
// new work is never made this way.
const unflushed = `(SELECT set_config('synchronous_commit', 'off', true)) AS unflushed`

// CompleteAnalysis stores the analysis of a call whose analysis is pending
// on the given run and, in the same commit, owes that run's call.analyzed
// deliveries, each with its body (the call as the analysis left it)
// already fixed. It returns every call.analyzed delivery of the call still
// pending, so that a re-run after a crash queues what the first run could
// not. Two round trips: [BEGIN, the update] and [the deliveries, COMMIT].
func (s *Store) CompleteAnalysis(ctx context.Context, callID string, run int, status endcall.AnalysisStatus, a *endcall.Analysis, outcomes json.RawMessage) ([]endcall.Work, error) {
	var analysis []byte
	var sentiment *string
	if a != nil {
		var err error
		if analysis, err = json.Marshal(a); err != nil {
			return nil, err
		}
		sentiment = &a.Sentiment
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, dbError(err)
	}
	defer conn.Release()
	defer func() {
		if conn.Conn().PgConn().TxStatus() != 'I' {
			conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()

	var update pgx.Batch
	update.Queue("BEGIN")
	update.Queue(completeAnalysisSQL, callID, status, analysis, sentiment, nullJSON(outcomes), run)
	br := conn.SendBatch(ctx, &update)
	_, err = br.Exec()
	var call *endcall.Call
	if err == nil {
		call, err = scanCall(br.QueryRow())
		if errors.Is(err, pgx.ErrNoRows) {
			// Analysed already (a re-run): only what is still pending.
			call, err = nil, nil
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, dbError(err)
	}

	var deliver pgx.Batch
	if call == nil {
		deliver.Queue(pendingAnalyzedSQL, callID)
	} else {
		at := time.Now().UTC().Truncate(time.Microsecond)
		body, err := endcall.EventBody(endcall.EventCallAnalyzed, at, call)
		if err != nil {
			return nil, err
		}
		deliver.Queue(`WITH created AS (
				INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, call_id, event, run, body, created_at, updated_at, next_attempt_at)
				SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.workspace_id, e.id, $1, 'call.analyzed', $5, $3, $4, $4, $4
				FROM webhook_endpoints e
				WHERE e.workspace_id = $2 AND e.enabled AND e.deleted_at IS NULL AND 'call.analyzed' = ANY (e.events)
				ON CONFLICT (endpoint_id, call_id, event, run) DO NOTHING
				RETURNING id, endpoint_id, call_id
			), owed AS (SELECT id, endpoint_id, call_id FROM created UNION
				SELECT id, endpoint_id, call_id FROM webhook_deliveries WHERE call_id = $1 AND event = 'call.analyzed' AND coalesce(status, '') = 'pending')
			`+describeOwedSQL, callID, call.WorkspaceID, body, at, run)
	}
	var owed []byte
	if err := commitWith(ctx, conn, &deliver, &owed); err != nil {
		return nil, dbError(err)
	}
	return deliveryWork(owed, endcall.EventCallAnalyzed)
}

// describeOwedSQL describes the deliveries of a CTE "owed" (id,
// endpoint_id, call_id) as one JSON array of [id, workspace, endpoint, url, call]
// arrays.
const describeOwedSQL = `SELECT coalesce(jsonb_agg(jsonb_build_array(o.id, e.workspace_id, e.id, e.url, o.call_id) ORDER BY o.id), '[]')
	FROM owed o JOIN webhook_endpoints e ON e.id = o.endpoint_id`

// deliveryWork reads describeOwedSQL's array as deliveries of event owed.
func deliveryWork(owed []byte, event string) ([]endcall.Work, error) {
	var rows [][5]string
	if err := json.Unmarshal(owed, &rows); err != nil {
		return nil, err
	}
	work := make([]endcall.Work, len(rows))
	for i, r := range rows {
		work[i] = endcall.Work{Kind: endcall.WorkDeliver, DeliveryID: r[0], WorkspaceID: r[1],
			EndpointID: r[2], Host: webhook.Host(r[3]), CallID: r[4], Event: event}
	}
	return work, nil
}

const completeAnalysisSQL = `UPDATE calls c SET analysis_status = $2, analysis = $3, analysis_sentiment = $4,
	agent_post_call_outcomes = $5, updated_at = now()
	WHERE c.id = $1 AND coalesce(c.analysis_status, '') = 'pending' AND c.analysis_run = $6
	RETURNING ` + callColumns

// pendingAnalyzedSQL describes the call.analyzed deliveries of call $1 still pending.
const pendingAnalyzedSQL = `WITH owed AS (SELECT id, endpoint_id, call_id FROM webhook_deliveries
	WHERE call_id = $1 AND event = 'call.analyzed' AND coalesce(status, '') = 'pending') ` + describeOwedSQL

// The owed work of each kind, for the reconciler: what Postgres records as
// owed and not done. Each lists work owed since before q.Before, oldest
// first, at most q.Limit items, through the partial "owed" indexes
// (calls_owed_work, webhook_deliveries_due); with q.Of, the subjects among
// q.Of owed now. Statements that look up one row elsewhere test the owed
// state as
//
//	coalesce(col, '') = 'pending'
//
// because with a plain col = 'pending' the planner may pick those indexes,
// whose statistics lag behind a growing backlog, and walk all owed work to
// update one row (939 buffers a room update in make bench's (b), against 2
// by primary key).

// OwedHangups lists the calls whose provider hangup is retrying, or still
// pending since before q.PendingHangupBefore.
func (s *Store) OwedHangups(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error) {
	if q.Of != nil {
		return s.owed(ctx, `SELECT 'hangup', id::text, '', 0, '', workspace_id::text, '', '', '' FROM calls
			WHERE id = ANY ($1::uuid[]) AND coalesce(provider_hangup_status, '') IN ('pending', 'retrying')`, q.Of)
	}
	return s.owed(ctx, `SELECT 'hangup', id::text, '', 0, '', workspace_id::text, '', '', '' FROM calls
		WHERE (provider_hangup_status = 'retrying' AND ended_at < $1
			OR provider_hangup_status = 'pending' AND ended_at < $3)
		ORDER BY ended_at LIMIT $2`, q.Before, q.Limit, q.PendingHangupBefore)
}

// OwedRooms lists the calls whose room deletion is owed.
func (s *Store) OwedRooms(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error) {
	if q.Of != nil {
		return s.owed(ctx, `SELECT 'room_delete', id::text, '', 0, '', workspace_id::text, '', '', '' FROM calls
			WHERE id = ANY ($1::uuid[]) AND coalesce(room_status, '') = 'pending'`, q.Of)
	}
	return s.owed(ctx, `SELECT 'room_delete', id::text, '', 0, '', workspace_id::text, '', '', '' FROM calls
		WHERE room_status = 'pending' AND ended_at < $1 ORDER BY ended_at LIMIT $2`, q.Before, q.Limit)
}

// OwedAnalyses lists the calls whose analysis is owed, on their current run.
func (s *Store) OwedAnalyses(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error) {
	if q.Of != nil {
		return s.owed(ctx, `SELECT 'analyze', id::text, '', analysis_run, '', workspace_id::text, '', '', '' FROM calls
			WHERE id = ANY ($1::uuid[]) AND coalesce(analysis_status, '') = 'pending'`, q.Of)
	}
	return s.owed(ctx, `SELECT 'analyze', id::text, '', analysis_run, '', workspace_id::text, '', '', '' FROM calls
		WHERE analysis_status = 'pending' AND ended_at < $1 ORDER BY ended_at LIMIT $2`, q.Before, q.Limit)
}

// OwedDeliveries lists the webhook deliveries owed, with what names them to
// an operator.
func (s *Store) OwedDeliveries(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error) {
	const columns = `SELECT 'deliver', coalesce(d.call_id::text, ''), d.id, 0, '', d.workspace_id::text, d.endpoint_id::text, e.url, d.event
		FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id`
	if q.Of != nil {
		return s.owed(ctx, columns+` WHERE d.id = ANY ($1::text[]) AND coalesce(d.status, '') = 'pending'`, q.Of)
	}
	return s.owed(ctx, columns+` WHERE d.status = 'pending' AND d.next_attempt_at < $1 ORDER BY d.next_attempt_at LIMIT $2`, q.Before, q.Limit)
}

// OwedBulkEnds lists the bulk end jobs still running.
func (s *Store) OwedBulkEnds(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error) {
	if q.Of != nil {
		return s.owed(ctx, `SELECT 'end_bulk', '', '', 0, id::text, workspace_id::text, '', '', '' FROM bulk_end_jobs
			WHERE id = ANY ($1::uuid[]) AND status = 'running'`, q.Of)
	}
	return s.owed(ctx, `SELECT 'end_bulk', '', '', 0, id::text, workspace_id::text, '', '', '' FROM bulk_end_jobs
		WHERE status = 'running' AND created_at < $1 ORDER BY created_at LIMIT $2`, q.Before, q.Limit)
}

// owed runs one of the owed-work queries above, whose columns are the kind,
// call, delivery, analysis run, bulk end job, workspace, endpoint, endpoint
// URL and event.
func (s *Store) owed(ctx context.Context, sql string, args ...any) ([]endcall.Work, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var work []endcall.Work
	for rows.Next() {
		var w endcall.Work
		var url string
		if err := rows.Scan(&w.Kind, &w.CallID, &w.DeliveryID, &w.Run, &w.JobID, &w.WorkspaceID, &w.EndpointID, &url, &w.Event); err != nil {
			return nil, dbError(err)
		}
		w.Host = webhook.Host(url)
		work = append(work, w)
	}
	return work, dbError(rows.Err())
}

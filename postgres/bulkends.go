package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
)

var _ endcall.BulkEndStore = (*Store)(nil)

// idempotencyWindow is how long an Idempotency-Key answers the same job.
const idempotencyWindow = 24 * time.Hour

// CreateBulkEnd implements endcall.BulkEndStore. The job and its snapshot
// of matched calls commit together, so a job never exists without its calls
// and calls that start later are never among them.
func (s *Store) CreateBulkEnd(ctx context.Context, req endcall.BulkEndRequest) (*endcall.BulkEnd, bool, error) {
	filter, err := json.Marshal(req.Filter)
	if err != nil {
		return nil, false, err
	}
	var key *string
	if req.IdempotencyKey != "" {
		key = &req.IdempotencyKey
	}
	var final *string
	if req.FinalMessage != "" {
		final = &req.FinalMessage
	}
	var job *endcall.BulkEnd
	created := false
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if key != nil {
			// A key older than the window is free for a new job.
			if _, err := tx.Exec(ctx, `UPDATE bulk_end_jobs SET idempotency_key = NULL
				WHERE workspace_id = $1 AND idempotency_key = $2 AND created_at < now() - $3::interval`,
				req.WorkspaceID, *key, idempotencyWindow); err != nil {
				return err
			}
		}
		// A concurrent request with the same key waits here on the unique
		// index until the first commits, then finds its job.
		var id string
		err := tx.QueryRow(ctx, `INSERT INTO bulk_end_jobs (workspace_id, filter, disconnect_reason, final_message, idempotency_key, request_hash)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
			RETURNING id`, req.WorkspaceID, filter, req.Reason, final, key, req.RequestHash).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			var hash []byte
			if err := tx.QueryRow(ctx, `SELECT id, request_hash FROM bulk_end_jobs WHERE workspace_id = $1 AND idempotency_key = $2`,
				req.WorkspaceID, *key).Scan(&id, &hash); err != nil {
				return err
			}
			if !bytes.Equal(hash, req.RequestHash) {
				return endcall.Errorf(endcall.ECONFLICT, "Idempotency-Key %q was used within 24 hours with a different request.", *key)
			}
			job, err = bulkEnd(ctx, tx, req.WorkspaceID, id)
			return err
		} else if err != nil {
			return err
		}
		where, args := bulkFilterSQL(req.Filter, req.WorkspaceID, id)
		tag, err := tx.Exec(ctx, `INSERT INTO bulk_end_calls (job_id, call_id) SELECT $2, c.id FROM calls c WHERE `+where, args...)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE bulk_end_jobs SET matched = $2,
				status = CASE WHEN $2 = 0 THEN 'completed' ELSE status END,
				finished_at = CASE WHEN $2 = 0 THEN created_at END
			WHERE id = $1`, id, tag.RowsAffected()); err != nil {
			return err
		}
		created = true
		job, err = bulkEnd(ctx, tx, req.WorkspaceID, id)
		return err
	})
	if err != nil {
		return nil, false, dbError(err)
	}
	return job, created, nil
}

// bulkFilterSQL returns the condition on calls c that selects the active
// calls of the workspace matching f, with its arguments: $1 the workspace,
// $2 the job. Only the criteria set are written, so that the planner sees
// each query for what it is.
func bulkFilterSQL(f endcall.BulkFilter, workspaceID, jobID string) (string, []any) {
	args := []any{workspaceID, jobID}
	conds := []string{"c.workspace_id = $1", "c.ended_at IS NULL"}
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.CampaignID != nil {
		add("c.campaign_id = $%d", *f.CampaignID)
	}
	if f.AIAgentID != nil {
		add("c.ai_agent_id = $%d", *f.AIAgentID)
	}
	if f.IsTest != nil {
		add("c.is_test = $%d", *f.IsTest)
	}
	if f.CallIDs != nil {
		add("c.id = ANY ($%d::uuid[])", f.CallIDs)
	}
	if f.StartedBefore != nil {
		add("c.started_at < $%d", *f.StartedBefore)
	}
	return strings.Join(conds, " AND "), args
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// bulkEnd reads a job of the workspace with its progress, counted from its
// calls' results.
func bulkEnd(ctx context.Context, q queryRower, workspaceID, id string) (*endcall.BulkEnd, error) {
	var j endcall.BulkEnd
	err := q.QueryRow(ctx, `SELECT j.id, j.status, j.matched, j.created_at, j.finished_at,
			count(*) FILTER (WHERE r.result = 'ended'),
			count(*) FILTER (WHERE r.result = 'already_ended'),
			count(*) FILTER (WHERE r.result = 'failed')
		FROM bulk_end_jobs j LEFT JOIN bulk_end_calls r ON r.job_id = j.id
		WHERE j.id = $1 AND j.workspace_id = $2
		GROUP BY j.id`, id, workspaceID).
		Scan(&j.ID, &j.Status, &j.Matched, &j.CreatedAt, &j.FinishedAt, &j.Ended, &j.AlreadyEnded, &j.Failed)
	if err != nil {
		return nil, err
	}
	j.CreatedAt = j.CreatedAt.UTC()
	if j.FinishedAt != nil {
		t := j.FinishedAt.UTC()
		j.FinishedAt = &t
	}
	return &j, nil
}

// BulkEnd implements endcall.BulkEndStore.
func (s *Store) BulkEnd(ctx context.Context, workspaceID, id string) (*endcall.BulkEnd, error) {
	j, err := bulkEnd(ctx, s.pool, workspaceID, id)
	return j, notFound(dbError(err), "bulk end")
}

// BulkEndJob returns what the worker needs to run a job, whatever its
// workspace.
func (s *Store) BulkEndJob(ctx context.Context, id string) (*endcall.BulkEndJob, error) {
	var j endcall.BulkEndJob
	var final *string
	err := s.pool.QueryRow(ctx, `SELECT id, workspace_id, status, disconnect_reason, final_message
		FROM bulk_end_jobs WHERE id = $1`, id).Scan(&j.ID, &j.WorkspaceID, &j.Status, &j.Reason, &final)
	if err != nil {
		return nil, notFound(dbError(err), "bulk end")
	}
	if final != nil {
		j.FinalMessage = *final
	}
	return &j, nil
}

// PendingBulkEndCalls returns up to limit calls of a job whose end is still
// owed, in call id order after the call id after ("" for the first).
func (s *Store) PendingBulkEndCalls(ctx context.Context, jobID, after string, limit int) ([]string, error) {
	if after == "" {
		after = "00000000-0000-0000-0000-000000000000"
	}
	rows, err := s.pool.Query(ctx, `SELECT call_id::text FROM bulk_end_calls
		WHERE job_id = $1 AND result IS NULL AND call_id > $2::uuid
		ORDER BY call_id LIMIT $3`, jobID, after, limit)
	if err != nil {
		return nil, dbError(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, dbError(err)
}

// RecordBulkEndResult records how a job's call ended. A result already
// recorded stays, except that ended replaces any other: two runs of a job
// racing on a call both record it, and the one whose end made the
// transition says so.
func (s *Store) RecordBulkEndResult(ctx context.Context, jobID, callID string, result endcall.BulkOutcome, errText string) error {
	var e *string
	if errText != "" {
		e = &errText
	}
	_, err := s.pool.Exec(ctx, `UPDATE bulk_end_calls SET result = $3, error = $4, finished_at = now()
		WHERE job_id = $1 AND call_id = $2 AND (result IS NULL OR ($3 = 'ended' AND result <> 'ended'))`,
		jobID, callID, result, e)
	return dbError(err)
}

// FinishBulkEnd marks a running job completed once no call's end is owed,
// and reports whether the job is completed.
func (s *Store) FinishBulkEnd(ctx context.Context, jobID string) (bool, error) {
	var status *endcall.BulkStatus
	err := s.pool.QueryRow(ctx, `WITH done AS (
			UPDATE bulk_end_jobs SET status = 'completed', finished_at = now()
			WHERE id = $1 AND status = 'running'
				AND NOT EXISTS (SELECT 1 FROM bulk_end_calls WHERE job_id = $1 AND result IS NULL)
			RETURNING status)
		SELECT coalesce((SELECT status FROM done), (SELECT status FROM bulk_end_jobs WHERE id = $1))`, jobID).Scan(&status)
	if err == nil && status == nil {
		err = pgx.ErrNoRows
	}
	if err != nil {
		return false, notFound(dbError(err), "bulk end")
	}
	return *status == endcall.BulkCompleted, nil
}

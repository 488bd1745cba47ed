-- +goose NO TRANSACTION
-- Bulk ends: a job ends every active call of a workspace that matched its
-- filter when it was accepted. The matched calls are recorded with the job,
-- so the job is exact and restartable; a job still running is owed work
-- that the sweeper queues again. Not in a transaction because of the
-- CONCURRENTLY index on calls; IF NOT EXISTS makes a rerun harmless.

-- +goose Up
CREATE TABLE IF NOT EXISTS bulk_end_jobs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id      uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    status            text NOT NULL DEFAULT 'running',
    filter            jsonb NOT NULL,
    disconnect_reason text NOT NULL,
    final_message     text,
    matched           integer NOT NULL DEFAULT 0,
    -- A request repeated with the same key within 24 h answers this job;
    -- request_hash tells a repeat from a different request under that key.
    idempotency_key   text,
    request_hash      bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS bulk_end_jobs_idempotency ON bulk_end_jobs (workspace_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS bulk_end_jobs_running ON bulk_end_jobs (created_at) WHERE status = 'running';

-- One row per matched call; result is null while the call's end is owed,
-- then ended, already_ended or failed. No foreign key to calls: a call is
-- deleted only with its workspace, which takes the job along.
CREATE TABLE IF NOT EXISTS bulk_end_calls (
    job_id      uuid NOT NULL REFERENCES bulk_end_jobs (id) ON DELETE CASCADE,
    call_id     uuid NOT NULL,
    result      text,
    error       text,
    finished_at timestamptz,
    PRIMARY KEY (job_id, call_id)
);

-- A workspace's active calls, which every bulk filter starts from, whatever
-- else it names.
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_workspace_active ON calls (workspace_id) WHERE ended_at IS NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS calls_workspace_active;
DROP TABLE IF EXISTS bulk_end_calls;
DROP TABLE IF EXISTS bulk_end_jobs;

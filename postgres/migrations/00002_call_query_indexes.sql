-- +goose NO TRANSACTION
-- Indexes of GET /v1/calls/query. They are built CONCURRENTLY so that
-- migrating a live database does not block writes to calls, which means no
-- transaction; IF NOT EXISTS makes a rerun after a failure harmless.
-- pg_trgm is a trusted contrib extension: the database owner may create it.

-- +goose Up
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Date ranges on started_at, and sorting by it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_workspace_started ON calls (workspace_id, started_at);

-- The status filter resolves to an exact list of statuses, so a btree
-- serves both the page (newest first per status) and the count.
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_workspace_status ON calls (workspace_id, call_status, created_at DESC);

-- Campaign and agent listings, newest first; most calls have neither.
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_workspace_campaign ON calls (workspace_id, campaign_id, created_at DESC)
    WHERE campaign_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS calls_workspace_agent ON calls (workspace_id, ai_agent_id, created_at DESC)
    WHERE ai_agent_id IS NOT NULL;

-- search is a case-insensitive substring match over call_to, notes,
-- call_feedback and transcript, served by trigram indexes. They live on a
-- copy of those columns rather than on calls: a call row is rewritten by
-- every status change (end, room, analysis), and each non-HOT rewrite would
-- re-insert every trigram of its transcript into a GIN index on calls. The
-- trigger copies the text only when one of the four columns is written.
CREATE TABLE IF NOT EXISTS call_search (
    call_id       uuid PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
    workspace_id  uuid NOT NULL,
    call_to       text NOT NULL,
    notes         text,
    call_feedback text,
    transcript    text
);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION call_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO call_search (call_id, workspace_id, call_to, notes, call_feedback, transcript)
    VALUES (NEW.id, NEW.workspace_id, NEW.call_to, NEW.notes, NEW.call_feedback, NEW.transcript)
    ON CONFLICT (call_id) DO UPDATE SET call_to = EXCLUDED.call_to, notes = EXCLUDED.notes,
        call_feedback = EXCLUDED.call_feedback, transcript = EXCLUDED.transcript;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

DROP TRIGGER IF EXISTS calls_search_sync ON calls;
CREATE TRIGGER calls_search_sync AFTER INSERT OR UPDATE OF call_to, notes, call_feedback, transcript ON calls
    FOR EACH ROW EXECUTE FUNCTION call_search_sync();

-- Calls written before the trigger existed; rows the trigger has already
-- copied are newer and win.
INSERT INTO call_search (call_id, workspace_id, call_to, notes, call_feedback, transcript)
SELECT id, workspace_id, call_to, notes, call_feedback, transcript FROM calls
ON CONFLICT (call_id) DO NOTHING;

-- One trigram index per column, combined by a BitmapOr, so that a match
-- never spans two fields.
CREATE INDEX CONCURRENTLY IF NOT EXISTS call_search_call_to ON call_search USING gin (call_to gin_trgm_ops);
CREATE INDEX CONCURRENTLY IF NOT EXISTS call_search_notes ON call_search USING gin (notes gin_trgm_ops);
CREATE INDEX CONCURRENTLY IF NOT EXISTS call_search_feedback ON call_search USING gin (call_feedback gin_trgm_ops);
CREATE INDEX CONCURRENTLY IF NOT EXISTS call_search_transcript ON call_search USING gin (transcript gin_trgm_ops);

-- +goose Down
DROP TRIGGER IF EXISTS calls_search_sync ON calls;
DROP FUNCTION IF EXISTS call_search_sync();
DROP TABLE IF EXISTS call_search;
DROP INDEX CONCURRENTLY IF EXISTS calls_workspace_agent;
DROP INDEX CONCURRENTLY IF EXISTS calls_workspace_campaign;
DROP INDEX CONCURRENTLY IF EXISTS calls_workspace_status;
DROP INDEX CONCURRENTLY IF EXISTS calls_workspace_started;
DROP EXTENSION IF EXISTS pg_trgm;

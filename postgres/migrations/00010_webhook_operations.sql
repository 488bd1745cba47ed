-- +goose NO TRANSACTION
-- Webhook operations: an endpoint's rate limit, why it was disabled and its
-- health; test deliveries, whose call is an example and so not a row of
-- calls; the workspace-wide delivery log; the retention sweep. The indexes
-- are built CONCURRENTLY, as in 00002, so not in a transaction.

-- +goose Up
ALTER TABLE webhook_endpoints
    ADD COLUMN IF NOT EXISTS rate_limit      integer,
    ADD COLUMN IF NOT EXISTS disabled_reason text,
    ADD COLUMN IF NOT EXISTS last_success_at timestamptz,
    ADD COLUMN IF NOT EXISTS failing_since   timestamptz;

ALTER TABLE webhook_deliveries ALTER COLUMN call_id DROP NOT NULL;

-- GET /v1/webhook-deliveries pages through a workspace's deliveries, newest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS webhook_deliveries_workspace
    ON webhook_deliveries (workspace_id, created_at DESC, id DESC);

-- The retention sweep reads only deliveries that are done, oldest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS webhook_deliveries_done
    ON webhook_deliveries (created_at) WHERE status <> 'pending';

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_done;
DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_workspace;
DELETE FROM webhook_deliveries WHERE call_id IS NULL;
ALTER TABLE webhook_deliveries ALTER COLUMN call_id SET NOT NULL;
ALTER TABLE webhook_endpoints
    DROP COLUMN IF EXISTS failing_since,
    DROP COLUMN IF EXISTS last_success_at,
    DROP COLUMN IF EXISTS disabled_reason,
    DROP COLUMN IF EXISTS rate_limit;

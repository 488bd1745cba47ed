-- +goose NO TRANSACTION
-- Analysis plans, the analysis run each call is on, and one call.analyzed
-- delivery per endpoint per run, so that a re-analysis is delivered anew.
-- The deliveries' new unique index is built CONCURRENTLY, so not in a
-- transaction; every statement is safe to run again.

-- +goose Up
CREATE TABLE IF NOT EXISTS analysis_plans (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id         uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name                 text NOT NULL,
    ai_agent_id          text,
    summary_instructions text NOT NULL DEFAULT '',
    fields               jsonb NOT NULL DEFAULT '[]',
    success_rubric       jsonb,
    version              int NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
-- One plan per agent, and one default (no agent), per workspace.
CREATE UNIQUE INDEX IF NOT EXISTS analysis_plans_agent ON analysis_plans (workspace_id, coalesce(ai_agent_id, ''));

-- analysis_run is the run that analysis_status is about: 1 for the
-- analysis owed by the end, +1 on each re-analysis. analysis_plan_id is
-- the plan a re-analysis asked for (null: the plan that applies); it has
-- no foreign key, so that deleting a plan does not scan calls, and a
-- deleted plan simply no longer matches.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS analysis_run int NOT NULL DEFAULT 1;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS analysis_plan_id uuid;

ALTER TABLE webhook_deliveries ADD COLUMN IF NOT EXISTS run int NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS webhook_deliveries_endpoint_call_event_run
    ON webhook_deliveries (endpoint_id, call_id, event, run);
ALTER TABLE webhook_deliveries DROP CONSTRAINT IF EXISTS webhook_deliveries_endpoint_id_call_id_event_key;

-- +goose Down
DELETE FROM webhook_deliveries WHERE run > 1;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_endpoint_id_call_id_event_key
    UNIQUE (endpoint_id, call_id, event);
DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_endpoint_call_event_run;
ALTER TABLE webhook_deliveries DROP COLUMN IF EXISTS run;
ALTER TABLE calls DROP COLUMN IF EXISTS analysis_plan_id;
ALTER TABLE calls DROP COLUMN IF EXISTS analysis_run;
DROP TABLE IF EXISTS analysis_plans;

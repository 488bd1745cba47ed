-- Analysis plans, the analysis run each call is on, and one call.analyzed
-- delivery per endpoint per run, so that a re-analysis is delivered anew.

-- +goose Up
CREATE TABLE analysis_plans (
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
CREATE UNIQUE INDEX analysis_plans_agent ON analysis_plans (workspace_id, coalesce(ai_agent_id, ''));

-- analysis_run is the run that analysis_status is about: 1 for the
-- analysis owed by the end, +1 on each re-analysis. analysis_plan_id is
-- the plan a re-analysis asked for (null: the plan that applies).
ALTER TABLE calls
    ADD COLUMN analysis_run int NOT NULL DEFAULT 1,
    ADD COLUMN analysis_plan_id uuid REFERENCES analysis_plans (id) ON DELETE SET NULL;

ALTER TABLE webhook_deliveries ADD COLUMN run int NOT NULL DEFAULT 1;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_endpoint_id_call_id_event_key;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_endpoint_id_call_id_event_run_key
    UNIQUE (endpoint_id, call_id, event, run);

-- +goose Down
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_endpoint_id_call_id_event_run_key;
DELETE FROM webhook_deliveries WHERE run > 1;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_endpoint_id_call_id_event_key
    UNIQUE (endpoint_id, call_id, event);
ALTER TABLE webhook_deliveries DROP COLUMN run;
ALTER TABLE calls DROP COLUMN analysis_plan_id, DROP COLUMN analysis_run;
DROP TABLE analysis_plans;

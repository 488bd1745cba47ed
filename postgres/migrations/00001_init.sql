-- +goose Up
CREATE TABLE workspaces (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Only a SHA-256 of each key is kept; the key itself is shown once.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- Numbers are soft-deleted so that calls placed from them can still be hung
-- up with their BYOT credentials.
CREATE TABLE phone_numbers (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id          uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    number                text NOT NULL,
    provider              text NOT NULL,
    twilio_account_sid    text,
    twilio_auth_token_enc bytea,
    created_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz
);
CREATE UNIQUE INDEX phone_numbers_live_number ON phone_numbers (workspace_id, number) WHERE deleted_at IS NULL;
CREATE INDEX phone_numbers_account ON phone_numbers (twilio_account_sid) WHERE twilio_account_sid IS NOT NULL;

CREATE TABLE calls (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id             uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    phone_number_id          uuid REFERENCES phone_numbers (id),
    call_sid                 text,
    call_provider            text NOT NULL DEFAULT 'twilio',
    call_from                text NOT NULL,
    call_to                  text NOT NULL,
    call_direction           text NOT NULL,
    call_status              text NOT NULL,
    call_duration            integer,
    is_test                  boolean NOT NULL DEFAULT false,
    ai_agent_id              text,
    campaign_id              text,
    contact_id               text,
    room_name                text,
    record_url               text,
    transcript               text,
    transcript_object        jsonb,
    metadata                 jsonb,
    agent_dynamic_variables  jsonb,
    notes                    text,
    call_rating              integer CHECK (call_rating BETWEEN 1 AND 5),
    call_feedback            text,
    max_duration_seconds     integer CHECK (max_duration_seconds > 0),
    disconnect_reason        text,
    provider_hangup_status   text,
    room_status              text,
    analysis_status          text,
    analysis_sentiment       text,
    analysis                 jsonb,
    agent_post_call_outcomes jsonb,
    hangup_attempts          integer NOT NULL DEFAULT 0,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    started_at               timestamptz,
    ended_at                 timestamptz
);
CREATE INDEX calls_workspace_created ON calls (workspace_id, created_at DESC);
CREATE UNIQUE INDEX calls_provider_sid ON calls (call_provider, call_sid) WHERE call_sid IS NOT NULL;

-- The instant an active call becomes overdue, for calls with their own
-- limit. The cast is immutable for a seconds-only interval, which is all we
-- build here, so the function may be marked so and indexed.
-- +goose StatementBegin
CREATE FUNCTION call_deadline(started timestamptz, created timestamptz, max_seconds integer)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(started, created) + make_interval(secs => max_seconds)
$$;
-- +goose StatementEnd

-- The overdue scan reads only active calls: one index for calls that use the
-- service-wide limit, one for calls with their own.
CREATE INDEX calls_active_default_limit ON calls ((coalesce(started_at, created_at)))
    WHERE ended_at IS NULL AND max_duration_seconds IS NULL;
CREATE INDEX calls_active_own_limit ON calls ((call_deadline(started_at, created_at, max_duration_seconds)))
    WHERE ended_at IS NULL AND max_duration_seconds IS NOT NULL;

-- Owed post-call work lives on the call (pending room, analysis, retrying
-- hangup); the sweeper finds it through these partial indexes.
CREATE INDEX calls_owed_work ON calls (ended_at)
    WHERE room_status = 'pending' OR analysis_status = 'pending' OR provider_hangup_status = 'retrying';

CREATE TABLE webhook_endpoints (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id        uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    url                 text NOT NULL,
    events              text[] NOT NULL,
    description         text,
    enabled             boolean NOT NULL DEFAULT true,
    secret              text NOT NULL,
    previous_secret     text,
    previous_expires_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);
CREATE INDEX webhook_endpoints_live ON webhook_endpoints (workspace_id) WHERE deleted_at IS NULL AND enabled;

-- One row per endpoint, event and call: the webhook-id is the primary key and
-- the body is fixed at the first attempt so that every attempt sends the same
-- bytes.
CREATE TABLE webhook_deliveries (
    id           text PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    call_id      uuid NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    event        text NOT NULL,
    status       text NOT NULL DEFAULT 'pending',
    body         bytea,
    attempts     jsonb NOT NULL DEFAULT '[]',
    -- When the next attempt is due; the sweeper looks only at deliveries
    -- overdue for their attempt, so work waiting for a later retry costs it
    -- nothing.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, call_id, event)
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE calls;
DROP FUNCTION call_deadline;
DROP TABLE phone_numbers;
DROP TABLE api_keys;
DROP TABLE workspaces;

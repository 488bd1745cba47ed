-- +goose Up
-- The message said to the caller before the provider hangs up, and the owed
-- hangups the sweeper looks for: pending ones (their end path died before
-- the provider answered) as well as retrying ones.
ALTER TABLE calls ADD COLUMN final_message text;
DROP INDEX calls_owed_work;
CREATE INDEX calls_owed_work ON calls (ended_at)
    WHERE room_status = 'pending' OR analysis_status = 'pending' OR provider_hangup_status IN ('pending', 'retrying');

-- Leases: a lock that holds no connection, for work that waits on the
-- outside world while it runs (the overdue scan).
CREATE TABLE leases (
    name       text PRIMARY KEY,
    holder     uuid NOT NULL,
    expires_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE leases;
DROP INDEX calls_owed_work;
CREATE INDEX calls_owed_work ON calls (ended_at)
    WHERE room_status = 'pending' OR analysis_status = 'pending' OR provider_hangup_status = 'retrying';
ALTER TABLE calls DROP COLUMN final_message;

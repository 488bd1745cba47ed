-- +goose Up
-- btree_gist lets one exclusion constraint compare a text and a uuid.
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- A media room belongs to one workspace while any active call holds it:
-- calls of other workspaces cannot join it, so that none can end it. Calls
-- of the same workspace may share a room (a transfer brings a second call
-- into it), and a room is free again once its calls have ended. The index
-- also serves room:delete's check for another active call in the room.
ALTER TABLE calls ADD CONSTRAINT calls_room_one_workspace
    EXCLUDE USING gist (room_name WITH =, workspace_id WITH <>)
    WHERE (ended_at IS NULL AND room_name IS NOT NULL);

-- A number on the platform's Twilio account (no BYOT credentials) belongs to
-- one workspace at a time.
CREATE UNIQUE INDEX phone_numbers_platform_number ON phone_numbers (number)
    WHERE deleted_at IS NULL AND twilio_account_sid IS NULL;

-- +goose Down
DROP INDEX phone_numbers_platform_number;
ALTER TABLE calls DROP CONSTRAINT calls_room_one_workspace;

-- The first characters of each key, so that an operator can tell keys apart
-- in `endcall apikey list` (NULL for keys made before it was kept), and the
-- minute each key was last used.

-- +goose Up
ALTER TABLE api_keys ADD COLUMN prefix text, ADD COLUMN last_used_at timestamptz;

-- +goose Down
ALTER TABLE api_keys DROP COLUMN prefix, DROP COLUMN last_used_at;

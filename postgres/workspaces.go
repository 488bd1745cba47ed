package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
)

// apiKeyPrefix marks endcall API keys so that they are recognisable in
// secret scanners and never mistaken for a JWT.
const apiKeyPrefix = "ek_"

// CreateAPIKey creates the workspace named name if it does not exist and a
// new API key for it. The key is returned once; only its hash is stored.
func (s *Store) CreateAPIKey(ctx context.Context, name string) (workspaceID, key string, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	key = apiKeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO workspaces (name) VALUES ($1)
			ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`, name).Scan(&workspaceID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO api_keys (workspace_id, key_hash, prefix) VALUES ($1, $2, $3)`,
			workspaceID, hashKey(key), key[:apiKeyPrefixLen])
		return err
	})
	if err != nil {
		return "", "", dbError(err)
	}
	return workspaceID, key, nil
}

// WorkspaceForAPIKey returns the workspace a live API key belongs to, or
// EUNAUTHORIZED. It records the minute of use, writing at most once a
// minute per key.
func (s *Store) WorkspaceForAPIKey(ctx context.Context, key string) (string, error) {
	if !strings.HasPrefix(key, apiKeyPrefix) {
		return "", errUnauthorized
	}
	var id string
	err := s.pool.QueryRow(ctx, `WITH k AS (
			SELECT id, workspace_id, last_used_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL
		), touched AS (
			UPDATE api_keys a SET last_used_at = date_trunc('minute', now()) FROM k
			WHERE a.id = k.id AND (k.last_used_at IS NULL OR k.last_used_at < date_trunc('minute', now()))
		)
		SELECT workspace_id FROM k`, hashKey(key)).Scan(&id)
	if err == pgx.ErrNoRows {
		return "", errUnauthorized
	}
	return id, dbError(err)
}

// apiKeyPrefixLen is how much of a key is kept in clear to tell keys apart.
const apiKeyPrefixLen = 8

// APIKey describes a key without its secret.
type APIKey struct {
	ID string `json:"id"`
	// Prefix is the key's first 8 characters; null for keys made before
	// prefixes were kept.
	Prefix     *string    `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

const apiKeyColumns = `id, prefix, created_at, last_used_at, revoked_at`

func scanAPIKey(row pgx.Row) (APIKey, error) {
	var k APIKey
	err := row.Scan(&k.ID, &k.Prefix, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
	k.CreatedAt = k.CreatedAt.UTC()
	for _, t := range []*time.Time{k.LastUsedAt, k.RevokedAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return k, err
}

// ListAPIKeys returns the keys of the workspace named name, oldest first,
// or ENOTFOUND when there is no such workspace.
func (s *Store) ListAPIKeys(ctx context.Context, name string) ([]APIKey, error) {
	var workspaceID string
	err := s.pool.QueryRow(ctx, `SELECT id FROM workspaces WHERE name = $1`, name).Scan(&workspaceID)
	if err == pgx.ErrNoRows {
		return nil, endcall.Errorf(endcall.ENOTFOUND, "There is no workspace named %q.", name)
	} else if err != nil {
		return nil, dbError(err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE workspace_id = $1 ORDER BY created_at, id`, workspaceID)
	if err != nil {
		return nil, dbError(err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) { return scanAPIKey(r) })
	return keys, dbError(err)
}

// RevokeAPIKey revokes a key (again: no change) and returns it, or
// ENOTFOUND. Servers stop accepting it once their key cache expires.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) (APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
		WHERE id = $1 RETURNING `+apiKeyColumns, id))
	if err == pgx.ErrNoRows {
		return k, endcall.Errorf(endcall.ENOTFOUND, "There is no API key %s.", id)
	}
	return k, dbError(err)
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/jackc/pgx/v5"
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
		_, err = tx.Exec(ctx, `INSERT INTO api_keys (workspace_id, key_hash) VALUES ($1, $2)`, workspaceID, hashKey(key))
		return err
	})
	if err != nil {
		return "", "", dbError(err)
	}
	return workspaceID, key, nil
}

// WorkspaceForAPIKey returns the workspace a live API key belongs to, or
// EUNAUTHORIZED.
func (s *Store) WorkspaceForAPIKey(ctx context.Context, key string) (string, error) {
	if !strings.HasPrefix(key, apiKeyPrefix) {
		return "", errUnauthorized
	}
	var id string
	err := s.pool.QueryRow(ctx, `SELECT workspace_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`, hashKey(key)).Scan(&id)
	if err == pgx.ErrNoRows {
		return "", errUnauthorized
	}
	return id, dbError(err)
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

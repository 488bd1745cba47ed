package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
)

// secretOverlap is how long a rotated-out secret keeps signing (CONTRACT 3.4).
const secretOverlap = 24 * time.Hour

const endpointColumns = `id, url, events, description, enabled, created_at, updated_at, secret`

func scanEndpoint(row pgx.Row) (*endcall.WebhookEndpoint, error) {
	var e endcall.WebhookEndpoint
	if err := row.Scan(&e.ID, &e.URL, &e.Events, &e.Description, &e.Enabled, &e.CreatedAt, &e.UpdatedAt, &e.Secret); err != nil {
		return nil, err
	}
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return &e, nil
}

// CreateEndpoint stores a webhook endpoint with its signing secret. A
// workspace that already has endpointLimit live endpoints gets ECONFLICT.
// The count and the insert hold the workspace's row lock (FOR NO KEY
// UPDATE, which calls' foreign keys do not wait for), so that concurrent
// creations cannot all pass the count.
func (s *Store) CreateEndpoint(ctx context.Context, workspaceID, url string, events []string, description *string, secret string) (*endcall.WebhookEndpoint, error) {
	var e *endcall.WebhookEndpoint
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if s.endpointLimit > 0 {
			// The count is a statement of its own, so that its snapshot is
			// taken after the lock is granted and sees the creations that
			// held it before.
			if _, err := tx.Exec(ctx, `SELECT FROM workspaces WHERE id = $1 FOR NO KEY UPDATE`, workspaceID); err != nil {
				return err
			}
			var n int
			err := tx.QueryRow(ctx, `SELECT count(*) FROM webhook_endpoints
				WHERE workspace_id = $1 AND deleted_at IS NULL`, workspaceID).Scan(&n)
			if err != nil {
				return err
			}
			if n >= s.endpointLimit {
				return endcall.Errorf(endcall.ECONFLICT,
					"This workspace already has %d webhook endpoints, the most it may have; delete one first.", n)
			}
		}
		var err error
		e, err = scanEndpoint(tx.QueryRow(ctx, `INSERT INTO webhook_endpoints (workspace_id, url, events, description, secret)
			VALUES ($1, $2, $3, $4, $5) RETURNING `+endpointColumns, workspaceID, url, events, description, secret))
		return err
	})
	return e, dbError(err)
}

// ListEndpoints returns the workspace's endpoints that are not deleted.
func (s *Store) ListEndpoints(ctx context.Context, workspaceID string) ([]*endcall.WebhookEndpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE workspace_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, workspaceID)
	if err != nil {
		return nil, dbError(err)
	}
	list := []*endcall.WebhookEndpoint{}
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			rows.Close()
			return nil, dbError(err)
		}
		list = append(list, e)
	}
	return list, dbError(rows.Err())
}

// GetEndpoint returns one live endpoint of the workspace, or ENOTFOUND.
func (s *Store) GetEndpoint(ctx context.Context, workspaceID, id string) (*endcall.WebhookEndpoint, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL`, id, workspaceID)
	e, err := scanEndpoint(row)
	return e, notFound(dbError(err), "webhook endpoint")
}

// DeleteEndpoint soft-deletes an endpoint: it gets nothing new, and its
// delivery log stays readable for the record.
func (s *Store) DeleteEndpoint(ctx context.Context, workspaceID, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_endpoints SET deleted_at = now(), updated_at = now()
		WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL`, id, workspaceID)
	if err != nil {
		return dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return endcall.Errorf(endcall.ENOTFOUND, "webhook endpoint not found")
	}
	return nil
}

// RotateSecret makes secret the endpoint's signing secret; the old one keeps
// signing beside it for 24 hours.
func (s *Store) RotateSecret(ctx context.Context, workspaceID, id, secret string) (*endcall.WebhookEndpoint, error) {
	row := s.pool.QueryRow(ctx, `UPDATE webhook_endpoints SET previous_secret = secret, previous_expires_at = now() + $3::interval,
		secret = $4, updated_at = now()
		WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL RETURNING `+endpointColumns,
		id, workspaceID, secretOverlap.String(), secret)
	e, err := scanEndpoint(row)
	return e, notFound(dbError(err), "webhook endpoint")
}

// DisableEndpoint turns an endpoint off (its receiver answered 410 Gone).
func (s *Store) DisableEndpoint(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `UPDATE webhook_endpoints SET enabled = false, updated_at = now() WHERE id = $1`, id)
	return dbError(err)
}

const deliveryColumns = `d.id, d.endpoint_id, d.event, d.call_id, d.status, d.created_at, d.attempts`

func scanDelivery(row pgx.Row, extra ...any) (*endcall.Delivery, error) {
	var d endcall.Delivery
	var attempts []byte
	if err := row.Scan(append([]any{&d.ID, &d.EndpointID, &d.Event, &d.CallID, &d.Status, &d.CreatedAt, &attempts}, extra...)...); err != nil {
		return nil, err
	}
	d.CreatedAt = d.CreatedAt.UTC()
	if err := json.Unmarshal(attempts, &d.Attempts); err != nil {
		return nil, err
	}
	if d.Attempts == nil {
		d.Attempts = []endcall.DeliveryAttempt{}
	}
	return &d, nil
}

// ListDeliveries returns an endpoint's deliveries, newest first, at most
// limit, optionally only those with status.
func (s *Store) ListDeliveries(ctx context.Context, workspaceID, endpointID, status string, limit int) ([]*endcall.Delivery, error) {
	if _, err := s.GetEndpoint(ctx, workspaceID, endpointID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d
		WHERE d.endpoint_id = $1 AND d.workspace_id = $2 AND ($3 = '' OR d.status = $3)
		ORDER BY d.created_at DESC, d.id DESC LIMIT $4`, endpointID, workspaceID, status, limit)
	if err != nil {
		return nil, dbError(err)
	}
	list := []*endcall.Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			rows.Close()
			return nil, dbError(err)
		}
		list = append(list, d)
	}
	return list, dbError(rows.Err())
}

// GetDelivery returns one delivery of the workspace, or ENOTFOUND.
func (s *Store) GetDelivery(ctx context.Context, workspaceID, id string) (*endcall.Delivery, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d WHERE d.id = $1 AND d.workspace_id = $2`, id, workspaceID)
	d, err := scanDelivery(row)
	return d, notFound(dbError(err), "webhook delivery")
}

// DeliveryJob loads a delivery with its endpoint and the secrets that sign
// it now (the current one, and a rotated-out one for its last 24 hours).
func (s *Store) DeliveryJob(ctx context.Context, id string) (*endcall.DeliveryJob, error) {
	var j endcall.DeliveryJob
	var secret string
	var previous *string
	row := s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+`, d.workspace_id, d.body, d.next_attempt_at, e.url, e.enabled AND e.deleted_at IS NULL,
			e.secret, CASE WHEN e.previous_expires_at > now() THEN e.previous_secret END
		FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = $1`, id)
	d, err := scanDelivery(row, &j.WorkspaceID, &j.Body, &j.NextAttemptAt, &j.URL, &j.EndpointLive, &secret, &previous)
	if err != nil {
		return nil, notFound(dbError(err), "webhook delivery")
	}
	j.Delivery = *d
	j.Secrets = []string{secret}
	if previous != nil {
		j.Secrets = append(j.Secrets, *previous)
	}
	return &j, nil
}

// FixDeliveryBody stores body as the delivery's payload unless one is
// already stored, and returns the stored one: every attempt sends the same
// bytes even if two workers race on the first.
func (s *Store) FixDeliveryBody(ctx context.Context, id string, body []byte) ([]byte, error) {
	var stored []byte
	err := s.pool.QueryRow(ctx, `WITH fixed AS (
			UPDATE webhook_deliveries SET body = $2 WHERE id = $1 AND body IS NULL RETURNING body)
		SELECT body FROM fixed UNION ALL SELECT body FROM webhook_deliveries WHERE id = $1 AND body IS NOT NULL
		LIMIT 1`, id, body).Scan(&stored)
	return stored, dbError(err)
}

// RecordAttempt appends an attempt to a delivery and sets its status, in a
// commit that is not waited for (see unflushed).
func (s *Store) RecordAttempt(ctx context.Context, id string, a endcall.DeliveryAttempt, status string) error {
	raw, err := json.Marshal([]endcall.DeliveryAttempt{a})
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `UPDATE webhook_deliveries SET attempts = attempts || $2::jsonb, status = $3,
		next_attempt_at = coalesce($4, next_attempt_at), updated_at = now()
		FROM `+unflushed+` WHERE id = $1`, id, raw, status, a.NextAttemptAt)
	return dbError(err)
}

// FailDelivery ends a pending delivery without an attempt (its endpoint is
// disabled or deleted), in a commit that is not waited for (see unflushed).
func (s *Store) FailDelivery(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, failDeliverySQL, id)
	return dbError(err)
}

const failDeliverySQL = `UPDATE webhook_deliveries SET status = 'failed', updated_at = now() FROM ` + unflushed + `
	WHERE id = $1 AND coalesce(status, '') = 'pending'`

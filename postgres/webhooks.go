package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
)

// secretOverlap is how long a rotated-out secret keeps signing.
const secretOverlap = 24 * time.Hour

// endpointSelect reads an endpoint "e" with its health. The figures come
// from the attempts themselves, read through the deliveries of the last 72
// hours (webhook_deliveries_endpoint): that covers every attempt of the
// last 24 hours except manual redeliveries of older deliveries.
// last_success_at is also kept on the endpoint, at most a minute stale, for
// an endpoint whose last success is older than that window.
const endpointSelect = `SELECT e.id, e.url, e.events, e.description, e.rate_limit, e.enabled, e.disabled_reason,
		greatest(e.last_success_at, h.last_ok), e.failing_since, coalesce(h.attempts, 0), coalesce(h.failures, 0),
		e.created_at, e.updated_at, e.secret
	FROM e LEFT JOIN LATERAL (
		SELECT count(*) FILTER (WHERE (a->>'at')::timestamptz > now() - interval '24 hours')::int AS attempts,
			count(*) FILTER (WHERE (a->>'at')::timestamptz > now() - interval '24 hours'
				AND coalesce((a->>'status_code')::int, 0) NOT BETWEEN 200 AND 299)::int AS failures,
			max((a->>'at')::timestamptz) FILTER (WHERE (a->>'status_code')::int BETWEEN 200 AND 299) AS last_ok
		FROM webhook_deliveries d, jsonb_array_elements(d.attempts) a
		WHERE d.endpoint_id = e.id AND d.created_at > now() - interval '72 hours') h ON true`

func scanEndpoint(row pgx.Row) (*endcall.WebhookEndpoint, error) {
	var e endcall.WebhookEndpoint
	h := &e.Health
	if err := row.Scan(&e.ID, &e.URL, &e.Events, &e.Description, &e.RateLimit, &e.Enabled, &e.DisabledReason,
		&h.LastSuccessAt, &h.FailingSince, &h.Attempts, &h.Failures, &e.CreatedAt, &e.UpdatedAt, &e.Secret); err != nil {
		return nil, err
	}
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	h.LastSuccessAt, h.FailingSince = utc(h.LastSuccessAt), utc(h.FailingSince)
	return &e, nil
}

// CreateEndpoint stores a webhook endpoint with its signing secret. A
// workspace that already has endpointLimit live endpoints gets ECONFLICT.
// The count and the insert hold the workspace's row lock (FOR NO KEY
// UPDATE, which calls' foreign keys do not wait for), so that concurrent
// creations cannot all pass the count.
func (s *Store) CreateEndpoint(ctx context.Context, workspaceID, url string, events []string, description *string, rateLimit *int, secret string) (*endcall.WebhookEndpoint, error) {
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
		e, err = scanEndpoint(tx.QueryRow(ctx, `WITH e AS (INSERT INTO webhook_endpoints (workspace_id, url, events, description, rate_limit, secret)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING *) `+endpointSelect, workspaceID, url, events, description, rateLimit, secret))
		return err
	})
	return e, dbError(err)
}

// ListEndpoints returns the workspace's endpoints that are not deleted.
func (s *Store) ListEndpoints(ctx context.Context, workspaceID string) ([]*endcall.WebhookEndpoint, error) {
	rows, err := s.pool.Query(ctx, `WITH e AS (SELECT * FROM webhook_endpoints
		WHERE workspace_id = $1 AND deleted_at IS NULL) `+endpointSelect+` ORDER BY e.created_at, e.id`, workspaceID)
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
	row := s.pool.QueryRow(ctx, `WITH e AS (SELECT * FROM webhook_endpoints
		WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL) `+endpointSelect, id, workspaceID)
	e, err := scanEndpoint(row)
	return e, notFound(dbError(err), "webhook endpoint")
}

// failPendingSQL, as a CTE beside an update of endpoints "e" that returns
// the endpoints now disabled or deleted, ends their pending deliveries.
const failPendingSQL = `f AS (UPDATE webhook_deliveries SET status = 'failed', updated_at = now()
	WHERE endpoint_id IN (SELECT id FROM e WHERE NOT enabled OR deleted_at IS NOT NULL) AND status = 'pending')`

// PatchEndpoint changes an endpoint. Disabling it ends its pending
// deliveries as failed; re-enabling it clears its disabled reason and its
// failing streak, so that it is not disabled again at its next failure.
func (s *Store) PatchEndpoint(ctx context.Context, workspaceID, id string, p endcall.EndpointPatch) (*endcall.WebhookEndpoint, error) {
	row := s.pool.QueryRow(ctx, `WITH e AS (UPDATE webhook_endpoints SET
			url = coalesce($3, url),
			events = coalesce($4, events),
			description = CASE WHEN $5 THEN $6 ELSE description END,
			rate_limit = CASE WHEN $7 THEN $8 ELSE rate_limit END,
			enabled = coalesce($9, enabled),
			disabled_reason = CASE WHEN $9 IS NULL OR ($9 = false AND NOT enabled) THEN disabled_reason END,
			failing_since = CASE WHEN $9 AND NOT enabled THEN NULL ELSE failing_since END,
			updated_at = now()
		WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL RETURNING *), `+failPendingSQL+` `+endpointSelect,
		id, workspaceID, p.URL, p.Events, p.Description.Set, p.Description.Value, p.RateLimit.Set, p.RateLimit.Value, p.Enabled)
	e, err := scanEndpoint(row)
	return e, notFound(dbError(err), "webhook endpoint")
}

// DeleteEndpoint soft-deletes an endpoint and ends its pending deliveries:
// it gets nothing new, and its delivery log stays readable for the record.
func (s *Store) DeleteEndpoint(ctx context.Context, workspaceID, id string) error {
	var n int
	err := s.pool.QueryRow(ctx, `WITH e AS (UPDATE webhook_endpoints SET deleted_at = now(), updated_at = now()
		WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL RETURNING *), `+failPendingSQL+`
		SELECT count(*) FROM e`, id, workspaceID).Scan(&n)
	if err != nil {
		return dbError(err)
	}
	if n == 0 {
		return endcall.Errorf(endcall.ENOTFOUND, "webhook endpoint not found")
	}
	return nil
}

// RotateSecret makes secret the endpoint's signing secret; the old one keeps
// signing beside it for 24 hours.
func (s *Store) RotateSecret(ctx context.Context, workspaceID, id, secret string) (*endcall.WebhookEndpoint, error) {
	row := s.pool.QueryRow(ctx, `WITH e AS (UPDATE webhook_endpoints SET previous_secret = secret, previous_expires_at = now() + $3::interval,
		secret = $4, updated_at = now()
		WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL RETURNING *) `+endpointSelect,
		id, workspaceID, secretOverlap.String(), secret)
	e, err := scanEndpoint(row)
	return e, notFound(dbError(err), "webhook endpoint")
}

// DisableEndpoint turns an enabled endpoint off for reason and ends its
// pending deliveries as failed.
func (s *Store) DisableEndpoint(ctx context.Context, id string, reason endcall.DisabledReason) error {
	_, err := s.pool.Exec(ctx, `WITH e AS (UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now()
		WHERE id = $1 AND enabled RETURNING *), `+failPendingSQL+` SELECT 1`, id, reason)
	return dbError(err)
}

// DisableIfFailing disables an endpoint whose attempts have all failed for
// at least after (no success since its failing_since), and reports whether
// it did.
func (s *Store) DisableIfFailing(ctx context.Context, id string, after time.Duration) (bool, error) {
	var n int
	err := s.pool.QueryRow(ctx, `WITH e AS (UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'failing', updated_at = now()
		WHERE id = $1 AND enabled AND failing_since <= now() - $2::interval
			AND (last_success_at IS NULL OR last_success_at < failing_since) RETURNING *), `+failPendingSQL+`
		SELECT count(*) FROM e`, id, after.String()).Scan(&n)
	return n > 0, dbError(err)
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

// ListDeliveries returns a workspace's deliveries matching f, newest first,
// at most f.Limit. The statement names only the filters given, so that each
// combination gets its own plan (the workspace, endpoint or call index).
func (s *Store) ListDeliveries(ctx context.Context, f endcall.DeliveryFilter) ([]*endcall.Delivery, error) {
	where := []string{"d.workspace_id = $1"}
	args := []any{f.WorkspaceID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.EndpointID != "" {
		add("d.endpoint_id = $%d", f.EndpointID)
	}
	if f.CallID != "" {
		add("d.call_id = $%d", f.CallID)
	}
	if f.Status != "" {
		add("d.status = $%d", f.Status)
	}
	if f.Event != "" {
		add("d.event = $%d", f.Event)
	}
	if f.After != nil {
		args = append(args, f.After.CreatedAt, f.After.ID)
		where = append(where, fmt.Sprintf("(d.created_at, d.id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	args = append(args, f.Limit)
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d WHERE `+
		strings.Join(where, " AND ")+fmt.Sprintf(` ORDER BY d.created_at DESC, d.id DESC LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, dbError(err)
	}
	return collectDeliveries(rows)
}

func collectDeliveries(rows pgx.Rows) ([]*endcall.Delivery, error) {
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

// ReplayDeliveries returns up to limit deliveries of an endpoint created in
// f's window with f's status, oldest first.
func (s *Store) ReplayDeliveries(ctx context.Context, f endcall.ReplayFilter, limit int) ([]*endcall.Delivery, error) {
	until := &f.Until
	if f.Until.IsZero() {
		until = nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d
		WHERE d.endpoint_id = $1 AND d.workspace_id = $2 AND d.created_at >= $3 AND ($4::timestamptz IS NULL OR d.created_at < $4)
			AND ($5 = 'all' OR d.status = $5)
		ORDER BY d.created_at, d.id LIMIT $6`, f.EndpointID, f.WorkspaceID, f.Since, until, f.Status, limit)
	if err != nil {
		return nil, dbError(err)
	}
	return collectDeliveries(rows)
}

// CreateTestDelivery owes a delivery of body, an example event of type
// event whose call is not stored, to a live endpoint of the workspace.
func (s *Store) CreateTestDelivery(ctx context.Context, workspaceID, endpointID, event string, body []byte, at time.Time) (*endcall.Delivery, error) {
	row := s.pool.QueryRow(ctx, `INSERT INTO webhook_deliveries AS d (id, workspace_id, endpoint_id, call_id, event, body, created_at, updated_at, next_attempt_at)
		SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), e.workspace_id, e.id, NULL, $3, $4, $5, $5, $5
		FROM webhook_endpoints e WHERE e.id = $1 AND e.workspace_id = $2 AND e.enabled AND e.deleted_at IS NULL
		RETURNING `+deliveryColumns, endpointID, workspaceID, event, body, at)
	d, err := scanDelivery(row)
	return d, notFound(dbError(err), "webhook endpoint")
}

// DeliveryJob loads a delivery with its endpoint, the secrets that sign it
// now (the current one, and a rotated-out one for its last 24 hours) and,
// for a call.analyzed delivery, the call.ended delivery it waits for.
func (s *Store) DeliveryJob(ctx context.Context, id string) (*endcall.DeliveryJob, error) {
	var j endcall.DeliveryJob
	var secret string
	var previous *string
	row := s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+`, d.workspace_id, d.body, d.next_attempt_at, e.url, e.enabled AND e.deleted_at IS NULL,
			e.rate_limit, e.secret, CASE WHEN e.previous_expires_at > now() THEN e.previous_secret END,
			CASE WHEN d.event = 'call.analyzed' THEN (SELECT p.next_attempt_at FROM webhook_deliveries p
				WHERE p.endpoint_id = d.endpoint_id AND p.call_id = d.call_id AND p.event = 'call.ended' AND coalesce(p.status, '') = 'pending') END
		FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = $1`, id)
	d, err := scanDelivery(row, &j.WorkspaceID, &j.Body, &j.NextAttemptAt, &j.URL, &j.EndpointLive, &j.RateLimit, &secret, &previous, &j.WaitsFor)
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
// commit that is not waited for (see unflushed). The same statement keeps
// the endpoint's health: a success ends its failing streak (and refreshes
// last_success_at at most once a minute), a failure starts one. Either
// writes the endpoint row only when that changes something, so that
// concurrent deliveries to one endpoint rarely contend on it. When it ends a
// call.ended delivery, it returns the call.analyzed deliveries of the same
// call to the same endpoint that waited for it: still pending, with no
// attempt made (one waiting for a retry keeps its schedule).
func (s *Store) RecordAttempt(ctx context.Context, id string, a endcall.DeliveryAttempt, status endcall.DeliveryStatus) ([]endcall.Work, error) {
	raw, err := json.Marshal([]endcall.DeliveryAttempt{a})
	if err != nil {
		return nil, err
	}
	ok := a.StatusCode != nil && *a.StatusCode >= 200 && *a.StatusCode <= 299
	var freed []byte
	err = s.pool.QueryRow(ctx, `WITH d AS (UPDATE webhook_deliveries SET attempts = attempts || $2::jsonb, status = $3,
			next_attempt_at = coalesce($4, next_attempt_at), updated_at = now()
			FROM `+unflushed+` WHERE id = $1 RETURNING endpoint_id, call_id, event, status),
		health AS (UPDATE webhook_endpoints e SET
			last_success_at = CASE WHEN $5 THEN $6::timestamptz ELSE e.last_success_at END,
			failing_since = CASE WHEN $5 THEN NULL ELSE coalesce(e.failing_since, $6::timestamptz) END
		FROM d WHERE e.id = d.endpoint_id AND CASE WHEN $5
			THEN e.failing_since IS NOT NULL OR e.last_success_at IS NULL OR e.last_success_at < $6::timestamptz - interval '1 minute'
			ELSE e.failing_since IS NULL END),
		owed AS (SELECT w.id, w.endpoint_id, w.call_id FROM d JOIN webhook_deliveries w ON w.endpoint_id = d.endpoint_id AND w.call_id = d.call_id
			WHERE d.event = 'call.ended' AND d.status <> 'pending' AND w.event = 'call.analyzed' AND coalesce(w.status, '') = 'pending' AND w.attempts = '[]')
		`+describeOwedSQL, id, raw, status, a.NextAttemptAt, ok, a.At).Scan(&freed)
	if err != nil {
		return nil, dbError(err)
	}
	return deliveryWork(freed, endcall.EventCallAnalyzed)
}

// FailDelivery ends a pending delivery without an attempt (its endpoint is
// disabled or deleted), in a commit that is not waited for (see unflushed).
func (s *Store) FailDelivery(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, failDeliverySQL, id)
	return dbError(err)
}

const failDeliverySQL = `UPDATE webhook_deliveries SET status = 'failed', updated_at = now() FROM ` + unflushed + `
	WHERE id = $1 AND coalesce(status, '') = 'pending'`

// DeleteExpiredDeliveries deletes up to batch deliveries that are no longer
// pending and were created before cutoff, oldest first, through
// webhook_deliveries_done; rows another sweep holds are skipped. It returns
// how many it deleted.
func (s *Store) DeleteExpiredDeliveries(ctx context.Context, cutoff time.Time, batch int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_deliveries WHERE id IN (
		SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1
		ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff, batch)
	return int(tag.RowsAffected()), dbError(err)
}

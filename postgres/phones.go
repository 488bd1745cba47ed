package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
)

var errUnauthorized = endcall.Errorf(endcall.EUNAUTHORIZED, "Invalid or missing credentials.")

const phoneColumns = `id, workspace_id, number, provider, twilio_account_sid, twilio_auth_token_enc IS NOT NULL, created_at`

func scanPhone(row pgx.Row) (*endcall.PhoneNumber, error) {
	var p endcall.PhoneNumber
	if err := row.Scan(&p.ID, &p.WorkspaceID, &p.Number, &p.Provider, &p.TwilioAccountSID, &p.BYOT, &p.CreatedAt); err != nil {
		return nil, err
	}
	p.CreatedAt = p.CreatedAt.UTC()
	return &p, nil
}

// CreatePhoneNumber stores a number; creds, when given, are sealed with the
// store's cipher. A number already live in the workspace is ECONFLICT, and
// so is a number of the platform's account that another workspace holds.
func (s *Store) CreatePhoneNumber(ctx context.Context, workspaceID, number, provider string, creds *endcall.ProviderCredentials) (*endcall.PhoneNumber, error) {
	var accountSID *string
	var sealed []byte
	if creds != nil {
		if s.cipher == nil {
			return nil, endcall.Errorf(endcall.EINVALID, "BYOT credentials cannot be stored: the server has no ENCRYPTION_KEY configured.")
		}
		var err error
		if sealed, err = s.cipher.Seal([]byte(creds.AuthToken)); err != nil {
			return nil, fmt.Errorf("sealing auth token: %w", err)
		}
		accountSID = &creds.AccountSID
	}
	row := s.pool.QueryRow(ctx, `INSERT INTO phone_numbers (workspace_id, number, provider, twilio_account_sid, twilio_auth_token_enc)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+phoneColumns, workspaceID, number, provider, accountSID, sealed)
	p, err := scanPhone(row)
	if violates(err, "phone_numbers_platform_number") {
		return nil, endcall.Errorf(endcall.ECONFLICT, "Phone number %s is held by another workspace.", number)
	}
	if isUniqueViolation(err) {
		return nil, endcall.Errorf(endcall.ECONFLICT, "Phone number %s already exists in this workspace.", number)
	}
	return p, dbError(err)
}

// ListPhoneNumbers returns the workspace's live numbers, oldest first.
func (s *Store) ListPhoneNumbers(ctx context.Context, workspaceID string) ([]*endcall.PhoneNumber, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+phoneColumns+` FROM phone_numbers
		WHERE workspace_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, workspaceID)
	if err != nil {
		return nil, dbError(err)
	}
	list := []*endcall.PhoneNumber{}
	for rows.Next() {
		p, err := scanPhone(rows)
		if err != nil {
			rows.Close()
			return nil, dbError(err)
		}
		list = append(list, p)
	}
	return list, dbError(rows.Err())
}

// DeletePhoneNumber soft-deletes a number so that calls made from it can
// still be hung up with its credentials. Unknown or foreign → ENOTFOUND.
func (s *Store) DeletePhoneNumber(ctx context.Context, workspaceID, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE phone_numbers SET deleted_at = now()
		WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL`, id, workspaceID)
	if err != nil {
		return dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return endcall.Errorf(endcall.ENOTFOUND, "phone number not found")
	}
	return nil
}

// FindPhoneNumber returns a live number of the workspace by its ID, or when
// id is empty by its E.164 number; ENOTFOUND when there is none.
func (s *Store) FindPhoneNumber(ctx context.Context, workspaceID, id, number string) (*endcall.PhoneNumber, error) {
	var row pgx.Row
	if id != "" {
		row = s.pool.QueryRow(ctx, `SELECT `+phoneColumns+` FROM phone_numbers
			WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL`, id, workspaceID)
	} else {
		row = s.pool.QueryRow(ctx, `SELECT `+phoneColumns+` FROM phone_numbers
			WHERE number = $1 AND workspace_id = $2 AND deleted_at IS NULL`, number, workspaceID)
	}
	p, err := scanPhone(row)
	return p, notFound(dbError(err), "phone number")
}

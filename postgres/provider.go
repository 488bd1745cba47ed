package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
)

// DialingNumber returns a live phone number of the workspace, by id or,
// when id is empty, by its E.164 number, with the BYOT credentials calls
// from it are placed with (nil: the platform's). ENOTFOUND when there is
// no such number.
func (s *Store) DialingNumber(ctx context.Context, workspaceID, id, number string) (*endcall.PhoneNumber, *endcall.ProviderCredentials, error) {
	const q = `SELECT ` + phoneColumns + `, twilio_auth_token_enc FROM phone_numbers
		WHERE workspace_id = $1 AND deleted_at IS NULL AND `
	var row pgx.Row
	if id != "" {
		row = s.pool.QueryRow(ctx, q+`id = $2`, workspaceID, id)
	} else {
		row = s.pool.QueryRow(ctx, q+`number = $2`, workspaceID, number)
	}
	var p endcall.PhoneNumber
	var sealed []byte
	if err := row.Scan(&p.ID, &p.WorkspaceID, &p.Number, &p.Provider, &p.TwilioAccountSID, &p.BYOT, &p.CreatedAt, &sealed); err != nil {
		return nil, nil, notFound(dbError(err), "phone number")
	}
	p.CreatedAt = p.CreatedAt.UTC()
	if p.TwilioAccountSID == nil || sealed == nil {
		return &p, nil, nil
	}
	creds, err := s.openCredentials(*p.TwilioAccountSID, sealed)
	if err != nil {
		return nil, nil, err
	}
	return &p, creds, nil
}

// TwilioAuthTokens returns the auth tokens of every live number registered
// with a BYOT Twilio account, newest first and without repeats; none when
// the account is unknown. Several workspaces may have registered the
// account, possibly with tokens of different ages, so a signature is
// checked against each; all of them count, so that no number of made-up
// tokens can crowd the genuine one out. Deleted numbers do not count: their
// calls are checked against the credentials they were placed with.
func (s *Store) TwilioAuthTokens(ctx context.Context, accountSID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT twilio_auth_token_enc FROM phone_numbers
		WHERE twilio_account_sid = $1 AND twilio_auth_token_enc IS NOT NULL AND deleted_at IS NULL
		ORDER BY created_at DESC`, accountSID)
	if err != nil {
		return nil, dbError(err)
	}
	sealed, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, dbError(err)
	}
	var tokens []string
	seen := map[string]bool{}
	for _, b := range sealed {
		creds, err := s.openCredentials(accountSID, b)
		if err != nil {
			return nil, err
		}
		if !seen[creds.AuthToken] {
			seen[creds.AuthToken] = true
			tokens = append(tokens, creds.AuthToken)
		}
	}
	return tokens, nil
}

// CallByProviderSID returns the call a provider knows by sid, whatever its
// workspace, with the BYOT credentials it was placed with (nil: the
// platform's), so that a callback can be checked against the account that
// owns the call. ENOTFOUND when no call has that SID.
func (s *Store) CallByProviderSID(ctx context.Context, provider, sid string) (*endcall.Call, *endcall.ProviderCredentials, error) {
	var accountSID *string
	var sealed []byte
	row := s.pool.QueryRow(ctx, `SELECT `+callColumns+`, p.twilio_account_sid, p.twilio_auth_token_enc
		FROM calls c LEFT JOIN phone_numbers p ON p.id = c.phone_number_id
		WHERE c.call_provider = $1 AND c.call_sid = $2`, provider, sid)
	c, err := scanCall(row, &accountSID, &sealed)
	if err != nil {
		return nil, nil, notFound(dbError(err), "call")
	}
	if accountSID == nil || sealed == nil {
		return c, nil, nil
	}
	creds, err := s.openCredentials(*accountSID, sealed)
	if err != nil {
		return nil, nil, err
	}
	return c, creds, nil
}

// AdvanceCallStatus moves an active call forward to status (ringing or
// in-progress), setting started_at at the first in-progress. It reports
// false, changing nothing, when the call has ended, is already further on,
// or is already in that state: callbacks may come repeated or out of order.
func (s *Store) AdvanceCallStatus(ctx context.Context, workspaceID, callID string, status endcall.CallStatus, at time.Time) (bool, error) {
	var behind []endcall.CallStatus
	for _, st := range []endcall.CallStatus{endcall.StatusQueued, endcall.StatusRinging, endcall.StatusInProgress} {
		if endcall.StatusRank(st) < endcall.StatusRank(status) {
			behind = append(behind, st)
		}
	}
	tag, err := s.pool.Exec(ctx, `UPDATE calls c SET call_status = $3, updated_at = $4,
			started_at = CASE WHEN $3 = 'in-progress' THEN coalesce(c.started_at, $4) ELSE c.started_at END
		WHERE c.id = $1 AND c.workspace_id = $2 AND c.ended_at IS NULL
			AND (c.call_status = ANY ($5::text[]) OR ($3 = 'in-progress' AND c.call_status = $3 AND c.started_at IS NULL))`,
		callID, workspaceID, status, at, behind)
	if err != nil {
		return false, dbError(err)
	}
	return tag.RowsAffected() > 0, nil
}

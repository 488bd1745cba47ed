package postgres

import (
	"context"

	"github.com/endcall/endcall"
)

// HangupTarget loads the hangup a background retry must make for a call.
func (s *Store) HangupTarget(ctx context.Context, callID string) (*endcall.HangupTarget, error) {
	var accountSID *string
	var sealed []byte
	c, err := scanCall(s.pool.QueryRow(ctx, `SELECT `+callColumns+`, p.twilio_account_sid, p.twilio_auth_token_enc
		FROM calls c LEFT JOIN phone_numbers p ON p.id = c.phone_number_id WHERE c.id = $1`, callID), &accountSID, &sealed)
	if err != nil {
		return nil, notFound(dbError(err), "call")
	}
	return hangupTarget(c, accountSID, sealed, s.openCredentials), nil
}

// FinishHangup records the outcome of a hangup; it changes only a call whose
// hangup is still pending or retrying, so a late or repeated outcome is
// harmless. An outcome is the record of work already done, so its commit
// does not wait for the WAL flush (see unflushed): a lost one leaves the
// hangup owed, and making it again finds the call over.
func (s *Store) FinishHangup(ctx context.Context, callID string, outcome endcall.HangupStatus) error {
	_, err := s.pool.Exec(ctx, finishHangupSQL, callID, outcome)
	return dbError(err)
}

const finishHangupSQL = `UPDATE calls SET provider_hangup_status = $2, updated_at = now() FROM ` + unflushed + `
	WHERE id = $1 AND coalesce(provider_hangup_status, '') IN ('pending', 'retrying')`

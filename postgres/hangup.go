package postgres

import (
	"context"

	"github.com/endcall/endcall"
)

// HangupTarget loads the hangup a retry must make for a call.
func (s *Store) HangupTarget(ctx context.Context, callID string) (*endcall.HangupTarget, error) {
	var t endcall.HangupTarget
	var sid, hangupStatus, accountSID *string
	var sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT c.call_sid, c.call_status, c.provider_hangup_status, p.twilio_account_sid, p.twilio_auth_token_enc
		FROM calls c LEFT JOIN phone_numbers p ON p.id = c.phone_number_id WHERE c.id = $1`, callID).
		Scan(&sid, &t.Status, &hangupStatus, &accountSID, &sealed)
	if err != nil {
		return nil, notFound(dbError(err), "call")
	}
	t.CallSID, t.HangupStatus = deref(sid), deref(hangupStatus)
	if t.Status != endcall.StatusCanceled {
		t.Status = endcall.StatusCompleted
	}
	if accountSID != nil && sealed != nil {
		if t.Credentials, err = s.openCredentials(*accountSID, sealed); err != nil {
			return nil, err
		}
	}
	return &t, nil
}

// FinishHangup records the outcome of a background hangup; it changes only
// a call still marked retrying, so a late or repeated retry is harmless.
func (s *Store) FinishHangup(ctx context.Context, callID, outcome string) error {
	_, err := s.pool.Exec(ctx, finishHangupSQL, callID, outcome)
	return dbError(err)
}

const finishHangupSQL = `UPDATE calls SET provider_hangup_status = $2, updated_at = now()
	WHERE id = $1 AND coalesce(provider_hangup_status, '') = 'retrying'`

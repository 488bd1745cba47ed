package twilio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"

	"github.com/endcall/endcall"
)

// Simulated is the Telephony of TELEPHONY_MODE=simulated: it makes no
// provider requests, logs each hangup and reports it as succeeded.
type Simulated struct {
	// Log receives one line per hangup; nil means slog.Default().
	Log *slog.Logger
}

var _ endcall.Telephony = Simulated{}

// Hangup logs the call SID and status and returns endcall.HangupSucceeded.
func (s Simulated) Hangup(ctx context.Context, t endcall.HangupTarget) (endcall.HangupStatus, error) {
	attrs := []slog.Attr{slog.String("call_sid", t.CallSID), slog.String("status", string(t.Status)),
		slog.String("final_message", t.FinalMessage)}
	if t.Credentials != nil {
		attrs = append(attrs, slog.String("account_sid", t.Credentials.AccountSID))
	}
	s.logger().LogAttrs(ctx, slog.LevelInfo, "simulated provider hangup", attrs...)
	return endcall.HangupSucceeded, nil
}

// CreateCall logs the call and returns a fresh Twilio-style call SID without
// placing anything.
func (s Simulated) CreateCall(ctx context.Context, creds *endcall.ProviderCredentials, p CreateCallParams) (string, error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	sid := "CA" + hex.EncodeToString(b)
	s.logger().LogAttrs(ctx, slog.LevelInfo, "simulated provider call",
		slog.String("call_sid", sid), slog.String("from", p.From), slog.String("to", p.To))
	return sid, nil
}

func (s Simulated) logger() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

package api

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/twilio"
)

// statusCallbackPath is where Twilio reports call progress; make-call gives
// Twilio PUBLIC_BASE_URL followed by it.
const statusCallbackPath = "/v1/providers/twilio/status"

// reasonProviderCompleted is the disconnect_reason of a call Twilio reports
// completed; the other final statuses are their own reason.
const reasonProviderCompleted = "Call completed (provider)"

var errBadSignature = endcall.Errorf(endcall.EFORBIDDEN, "The X-Twilio-Signature of this request does not validate.")

// statusAck is the answer to a status callback. Twilio ignores it, but its
// request inspector shows it, so it names the call and nothing more.
type statusAck struct {
	CallID     *string             `json:"call_id"`
	CallStatus *endcall.CallStatus `json:"call_status"`
	Changed    bool                `json:"changed"`
}

// handleTwilioStatus applies a Twilio status callback. It authenticates by
// signature, not bearer token. A callback for a call endcall does not know,
// or for a call of another Twilio account than the one that signed it,
// answers 200 and changes nothing: Twilio cannot act on an error, and would
// only log it in the account's debugger for what is a normal event (calls
// placed outside endcall on a shared account).
func (s *Server) handleTwilioStatus(w http.ResponseWriter, r *http.Request) {
	form, err := readForm(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	account, signature := form.Get("AccountSid"), r.Header.Get("X-Twilio-Signature")
	callbackURL := s.twilio.PublicBaseURL + r.URL.Path
	if r.URL.RawQuery != "" {
		callbackURL += "?" + r.URL.RawQuery
	}
	params, single := formParams(form)
	if !single || signature == "" {
		s.fail(w, r, errBadSignature)
		return
	}

	// A callback signed for the call's own account, with the credentials the
	// call was placed with, reaches the call; that holds for calls of
	// deleted numbers too. Any other callback must still be signed by a live
	// credential of its account, and changes nothing.
	sid, status := form.Get("CallSid"), endcall.CallStatus(strings.ToLower(form.Get("CallStatus")))
	var c *endcall.Call
	if sid != "" && storable(sid) {
		var creds *endcall.ProviderCredentials
		c, creds, err = s.store.CallByProviderSID(ctx, "twilio", sid)
		if endcall.ErrorCode(err) == endcall.ENOTFOUND {
			c = nil
		} else if err != nil {
			s.fail(w, r, err)
			return
		}
		if c != nil && !s.signedByOwner(creds, account, callbackURL, params, signature) {
			c = nil
		}
	}
	if c == nil {
		tokens, err := s.accountTokens(r, account)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !anyValidates(tokens, callbackURL, params, signature) {
			s.fail(w, r, errBadSignature)
			return
		}
	}

	if sid == "" || status == "" {
		s.fail(w, r, invalid("CallSid and CallStatus are required."))
		return
	} else if !storable(sid) {
		s.fail(w, r, invalid("CallSid must be UTF-8 text without NUL characters."))
		return
	}
	if c == nil {
		s.success(w, http.StatusOK, "No call with this CallSid; nothing changed", statusAck{})
		return
	}
	setCallID(r, c.ID)

	ack := statusAck{CallID: &c.ID, CallStatus: &c.CallStatus}
	switch status {
	case "queued", "initiated":
		// Calls are registered queued: nothing to move.
	case endcall.StatusRinging, endcall.StatusInProgress:
		ack.Changed, err = s.store.AdvanceCallStatus(ctx, c.WorkspaceID, c.ID, status, s.now().UTC())
		if ack.Changed {
			ack.CallStatus = &status
		}
	case endcall.StatusCompleted, endcall.StatusBusy, endcall.StatusNoAnswer, endcall.StatusFailed, endcall.StatusCanceled:
		reason := string(status)
		if status == endcall.StatusCompleted {
			reason = reasonProviderCompleted
		}
		var res endcall.EndResult
		res, err = s.calls.End(ctx, endcall.EndRequest{WorkspaceID: c.WorkspaceID, CallID: c.ID,
			Reason: reason, Trigger: endcall.TriggerProvider, ProviderStatus: status})
		if err == nil {
			ack.Changed, ack.CallStatus = !res.AlreadyEnded, &res.Call.CallStatus
		}
	default:
		err = invalid("CallStatus %q is not a Twilio call status.", status)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	msg := "Status recorded"
	if !ack.Changed {
		msg = "Status already known; nothing changed"
	}
	s.success(w, http.StatusOK, msg, ack)
}

// signedByOwner reports whether a callback from account is signed for the
// account a call was placed with: creds, or the platform's when nil.
// Another workspace registering the same account SID with a token of its
// own must not reach the call.
func (s *Server) signedByOwner(creds *endcall.ProviderCredentials, account, url string, params map[string]string, signature string) bool {
	ownerSID, ownerToken := s.twilio.AccountSID, s.twilio.AuthToken
	if creds != nil {
		ownerSID, ownerToken = creds.AccountSID, creds.AuthToken
	}
	return ownerSID != "" && ownerSID == account && twilio.ValidateSignature(ownerToken, url, params, signature)
}

// accountTokens returns every live auth token a callback from account may
// be signed with: those of the account's live BYOT numbers, and the
// platform's for the platform account.
func (s *Server) accountTokens(r *http.Request, account string) ([]string, error) {
	if account == "" || !storable(account) {
		// A missing SID, or one that Postgres text cannot hold, names no account.
		return nil, nil
	}
	tokens, err := s.store.TwilioAuthTokens(r.Context(), account)
	if err != nil {
		return nil, err
	}
	if account == s.twilio.AccountSID && s.twilio.AuthToken != "" {
		tokens = append(tokens, s.twilio.AuthToken)
	}
	return tokens, nil
}

func anyValidates(tokens []string, url string, params map[string]string, signature string) bool {
	for _, t := range tokens {
		if twilio.ValidateSignature(t, url, params, signature) {
			return true
		}
	}
	return false
}

// formParams flattens a form for signature validation. Twilio never repeats
// a parameter in a status callback; single is false when one is repeated,
// which the flattened map could not represent faithfully.
func formParams(form url.Values) (params map[string]string, single bool) {
	params = make(map[string]string, len(form))
	for k, v := range form {
		if len(v) != 1 {
			return nil, false
		}
		params[k] = v[0]
	}
	return params, true
}

// readForm reads a form-encoded body of at most maxBody bytes.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, endcall.Errorf(endcall.EMEDIATYPE, "Content-Type must be application/x-www-form-urlencoded.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, endcall.Errorf(endcall.ETOOLARGE, "Request body is larger than %d KiB.", maxBody>>10)
		}
		return nil, invalid("Malformed form body.")
	}
	return r.PostForm, nil
}

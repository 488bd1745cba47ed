package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/twilio"
)

// Dialer places outbound calls and cancels them: twilio.Client, or
// twilio.Simulated under TELEPHONY_MODE=simulated.
type Dialer interface {
	endcall.Telephony
	CreateCall(ctx context.Context, creds *endcall.ProviderCredentials, p twilio.CreateCallParams) (string, error)
}

var (
	_ Dialer = (*twilio.Client)(nil)
	_ Dialer = twilio.Simulated{}

	_ NumberLookup = (*twilio.Client)(nil)
)

// NumberLookup checks with the provider that an account holds a number
// before the number is stored: twilio.Client under TELEPHONY_MODE=twilio.
type NumberLookup interface {
	// LookupNumber returns EINVALID when the credentials are refused or the
	// account does not hold number, EUNAVAILABLE when it cannot tell.
	LookupNumber(ctx context.Context, creds *endcall.ProviderCredentials, number string) error
}

// TwilioConfig is what make-call and the status callback take from the
// environment.
type TwilioConfig struct {
	// Dialer places calls; nil makes make-call answer 503.
	Dialer Dialer
	// Simulated is TELEPHONY_MODE=simulated: calls are placed without a
	// TwiML URL or platform account.
	Simulated bool
	// Numbers checks new phone numbers with the provider; nil (simulated
	// telephony) stores them unchecked.
	Numbers NumberLookup
	// VoiceURL is TWILIO_VOICE_URL, the TwiML that connects a call.
	VoiceURL string
	// PublicBaseURL is PUBLIC_BASE_URL without a trailing slash: the status
	// callback's address, and the URL its signatures are computed over.
	PublicBaseURL string
	// AccountSID and AuthToken are the platform's Twilio account
	// (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN), used for numbers without BYOT
	// credentials.
	AccountSID, AuthToken string
	// MaxCallDuration is MAX_CALL_DURATION, the TimeLimit of calls placed
	// without max_duration_seconds.
	MaxCallDuration time.Duration
}

// Limits of make-call bodies.
const (
	// maxCallSeconds is the longest max_duration_seconds accepted: a day,
	// Twilio's own ceiling for TimeLimit.
	maxCallSeconds  = 24 * 60 * 60
	maxDynamicVars  = 100
	maxDynamicValue = 10000
)

// makeCallRequest is a decoded POST /v1/calls/make-call body.
type makeCallRequest struct {
	From, To, PhoneNumberID string
	// Call carries the optional fields that are stored on the call as given.
	Call endcall.Call
}

// decodeMakeCall validates a make-call body.
func decodeMakeCall(body []byte) (makeCallRequest, error) {
	var req makeCallRequest
	o, err := parseObject(body)
	if err != nil {
		return req, err
	}
	to, err := o.str("call_to")
	if err != nil {
		return req, err
	} else if to == nil || !e164.MatchString(*to) {
		return req, invalid("call_to is required in E.164 form, such as +15551234567.")
	}
	req.To = *to
	if from, err := o.str("call_from"); err != nil {
		return req, err
	} else if from != nil {
		if !e164.MatchString(*from) {
			return req, invalid("call_from must be in E.164 form, such as +15551234567.")
		}
		req.From = *from
	}
	if id, err := o.str("phone_number_id"); err != nil {
		return req, err
	} else if id != nil {
		var ok bool
		if req.PhoneNumberID, ok = parseUUID(*id); !ok {
			return req, invalid("phone_number_id must be a UUID.")
		}
	}
	if req.From == "" && req.PhoneNumberID == "" {
		return req, invalid("call_from or phone_number_id is required: the number to call from.")
	}
	c := &req.Call
	for _, f := range []struct {
		name string
		dst  **string
	}{{"ai_agent_id", &c.AIAgentID}, {"campaign_id", &c.CampaignID}, {"contact_id", &c.ContactID}} {
		v, err := o.str(f.name)
		if err != nil {
			return req, err
		} else if v != nil && len([]rune(*v)) > maxIDLen {
			return req, invalid("%s must be at most %d characters.", f.name, maxIDLen)
		} else if v != nil && *v != "" {
			*f.dst = v
		}
	}
	if c.MaxDurationSeconds, err = o.integer("max_duration_seconds"); err != nil {
		return req, err
	} else if n := c.MaxDurationSeconds; n != nil && (*n <= 0 || *n > maxCallSeconds) {
		return req, invalid("max_duration_seconds must be an integer from 1 to %d.", maxCallSeconds)
	}
	if _, err := o.field("is_test", "a boolean", &c.IsTest); err != nil {
		return req, err
	}
	if c.Metadata, err = o.jsonObject("metadata"); err != nil {
		return req, err
	}
	c.AgentDynamicVariables, err = dynamicVariables(o)
	return req, err
}

// dynamicVariables turns dynamic_variables, a list of {"name","value"}
// pairs, into the agent_dynamic_variables object stored on the call. Values
// are JSON scalars; names must be unique.
func dynamicVariables(o object) (json.RawMessage, error) {
	const want = `an array of {"name": "...", "value": ...} objects`
	var list []map[string]json.RawMessage
	if ok, err := o.field("dynamic_variables", want, &list); !ok || err != nil {
		return nil, err
	}
	if len(list) > maxDynamicVars {
		return nil, invalid("dynamic_variables may hold at most %d variables.", maxDynamicVars)
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	seen := map[string]bool{}
	for i, v := range list {
		var name string
		if err := json.Unmarshal(v["name"], &name); err != nil || name == "" || len([]rune(name)) > maxIDLen {
			return nil, invalid("dynamic_variables[%d].name must be a non-empty string of at most %d characters.", i, maxIDLen)
		}
		if seen[name] {
			return nil, invalid("dynamic_variables[%d]: the name %q is given twice.", i, name)
		}
		seen[name] = true
		value := bytes.TrimSpace(v["value"])
		if len(value) == 0 || value[0] == '{' || value[0] == '[' || len(value) > maxDynamicValue {
			return nil, invalid("dynamic_variables[%d].value must be a string, number, boolean or null of at most %d bytes.", i, maxDynamicValue)
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		stored, ok := forJSONB(value)
		if !ok {
			return nil, invalid("dynamic_variables[%d].value holds a number too large or too small to store.", i)
		}
		key, _ := json.Marshal(name)
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(stored)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func (s *Server) handleMakeCall(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := decodeMakeCall(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tw := s.twilio
	switch {
	case tw.Dialer == nil:
		err = endcall.Errorf(endcall.EUNAVAILABLE, "Placing calls is not configured on this server.")
	case tw.VoiceURL == "" && !tw.Simulated:
		err = endcall.Errorf(endcall.EUNAVAILABLE, "Placing calls needs TWILIO_VOICE_URL, which this server does not have configured.")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	workspaceID := workspaceFrom(ctx)
	phone, creds, err := s.store.DialingNumber(ctx, workspaceID, req.PhoneNumberID, req.From)
	switch {
	case endcall.ErrorCode(err) == endcall.ENOTFOUND && req.PhoneNumberID != "":
		err = invalid("phone_number_id does not name a phone number of this workspace.")
	case endcall.ErrorCode(err) == endcall.ENOTFOUND:
		err = invalid("No phone number %s in this workspace; register it with POST /v1/phone-numbers or pass phone_number_id.", req.From)
	case err == nil && req.From != "" && phone.Number != req.From:
		err = invalid("call_from %s is not the number of phone_number_id (%s).", req.From, phone.Number)
	case err == nil && creds == nil && tw.AccountSID == "" && !tw.Simulated:
		err = endcall.Errorf(endcall.EUNAVAILABLE, "The phone number has no BYOT credentials and this server has no platform Twilio account (TWILIO_ACCOUNT_SID) configured.")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}

	c := req.Call
	limit := int(tw.MaxCallDuration / time.Second)
	if c.MaxDurationSeconds != nil {
		limit = *c.MaxDurationSeconds
	}
	sid, err := tw.Dialer.CreateCall(ctx, creds, twilio.CreateCallParams{From: phone.Number, To: req.To,
		URL: tw.VoiceURL, StatusCallback: tw.PublicBaseURL + statusCallbackPath, TimeLimit: limit})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The call now exists at Twilio: register it even if the client has gone.
	ctx = context.WithoutCancel(ctx)
	c.WorkspaceID, c.PhoneNumberID, c.CallSID = workspaceID, &phone.ID, &sid
	c.CallProvider, c.CallDirection, c.CallStatus = "twilio", "outbound", endcall.StatusQueued
	c.CallFrom, c.CallTo, c.CreatedAt = phone.Number, req.To, s.now().UTC()
	created, err := s.store.CreateCall(ctx, &c)
	if err != nil {
		s.cancelUnregistered(ctx, creds, sid)
		s.fail(w, r, err)
		return
	}
	setCallID(r, created.ID)
	s.success(w, http.StatusCreated, "Call placed", created)
}

// cancelUnregistered hangs up a call Twilio placed but the store could not
// register, so that no call runs that endcall knows nothing of.
func (s *Server) cancelUnregistered(ctx context.Context, creds *endcall.ProviderCredentials, sid string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.twilio.Dialer.Hangup(ctx, endcall.HangupTarget{CallSID: sid, Status: endcall.StatusCanceled, Credentials: creds}); err != nil {
		s.log.ErrorContext(ctx, "placed call could not be registered nor canceled", "call_sid", sid, "error", err)
		return
	}
	s.log.WarnContext(ctx, "placed call could not be registered; canceled it", "call_sid", sid)
}

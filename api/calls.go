package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/endcall/endcall"
)

// Longest disconnect_reason and final_message accepted, in characters.
const (
	maxReasonLen       = 500
	maxFinalMessageLen = 1000
)

// endRequest is a decoded POST /v1/calls/end body.
type endRequest struct {
	CallID       string
	Reason       string
	FinalMessage string
}

// decodeEndRequest validates an end-call body. An absent, null or blank
// disconnect_reason becomes "Ended Via API call".
func decodeEndRequest(body []byte) (endRequest, error) {
	o, err := parseObject(body)
	if err != nil {
		return endRequest{}, err
	}
	id, err := o.str("call_id")
	if err != nil {
		return endRequest{}, err
	} else if id == nil {
		return endRequest{}, invalid("call_id is required.")
	}
	callID, ok := parseUUID(*id)
	if !ok {
		return endRequest{}, invalid("call_id must be a UUID.")
	}
	reason, err := o.str("disconnect_reason")
	if err != nil {
		return endRequest{}, err
	}
	req := endRequest{CallID: callID, Reason: endcall.ReasonAPIDefault}
	if reason != nil && strings.TrimSpace(*reason) != "" {
		if len([]rune(*reason)) > maxReasonLen {
			return endRequest{}, invalid("disconnect_reason must be at most %d characters.", maxReasonLen)
		}
		req.Reason = strings.TrimSpace(*reason)
	}
	msg, err := o.str("final_message")
	if err != nil {
		return endRequest{}, err
	}
	if msg != nil {
		if len([]rune(*msg)) > maxFinalMessageLen {
			return endRequest{}, invalid("final_message must be at most %d characters.", maxFinalMessageLen)
		}
		req.FinalMessage = strings.TrimSpace(*msg)
	}
	return req, nil
}

func (s *Server) handleEndCall(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := decodeEndRequest(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setCallID(r, req.CallID)
	res, err := s.calls.End(r.Context(), endcall.EndRequest{
		WorkspaceID: workspaceFrom(r.Context()), CallID: req.CallID, Reason: req.Reason,
		FinalMessage: req.FinalMessage, Trigger: endcall.TriggerAPI})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	msg := "Call ended"
	if res.AlreadyEnded {
		msg = "Call already ended"
	}
	s.success(w, http.StatusOK, msg, res.Call)
}

// callID reads the {id} path variable; a malformed ID is simply not found.
func (s *Server) callID(r *http.Request) (string, error) {
	id, ok := parseUUID(mux.Vars(r)["id"])
	if !ok {
		return "", endcall.Errorf(endcall.ENOTFOUND, "call not found")
	}
	setCallID(r, id)
	return id, nil
}

func (s *Server) handleGetCall(w http.ResponseWriter, r *http.Request) {
	id, err := s.callID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.store.GetCall(r.Context(), workspaceFrom(r.Context()), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Call retrieved", c)
}

// Field limits of registered calls.
const (
	maxIDLen    = 256
	maxNotesLen = 10000
	maxURLLen   = 2048
)

func (s *Server) handleCreateCall(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, phoneID, err := decodeNewCall(body, s.now().UTC())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c.WorkspaceID = workspaceFrom(r.Context())
	number := c.CallFrom
	if c.CallDirection == "inbound" {
		number = c.CallTo
	}
	phone, err := s.store.FindPhoneNumber(r.Context(), c.WorkspaceID, phoneID, number)
	if endcall.ErrorCode(err) == endcall.ENOTFOUND {
		if phoneID != "" {
			err = invalid("phone_number_id does not name a phone number of this workspace.")
		} else {
			err = invalid("No phone number %s in this workspace; register it with POST /v1/phone-numbers or pass phone_number_id.", number)
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c.PhoneNumberID = &phone.ID
	created, err := s.store.CreateCall(r.Context(), c)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setCallID(r, created.ID)
	s.success(w, http.StatusCreated, "Call registered", created)
}

// decodeNewCall validates a POST /v1/calls body into a call to insert and
// the phone_number_id it named, if any.
func decodeNewCall(body []byte, now time.Time) (*endcall.Call, string, error) {
	o, err := parseObject(body)
	if err != nil {
		return nil, "", err
	}
	c := &endcall.Call{CallProvider: "twilio", CallStatus: endcall.StatusInProgress, CreatedAt: now}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"call_from", &c.CallFrom}, {"call_to", &c.CallTo}} {
		v, err := o.str(f.name)
		if err != nil {
			return nil, "", err
		} else if v == nil || !e164.MatchString(*v) {
			return nil, "", invalid("%s is required in E.164 form, such as +15551234567.", f.name)
		}
		*f.dst = *v
	}
	dir, err := o.str("call_direction")
	if err != nil {
		return nil, "", err
	} else if dir == nil || (*dir != "outbound" && *dir != "inbound") {
		return nil, "", invalid(`call_direction is required: "outbound" or "inbound".`)
	}
	c.CallDirection = *dir
	var phoneID string
	if v, err := o.str("phone_number_id"); err != nil {
		return nil, "", err
	} else if v != nil {
		var ok bool
		if phoneID, ok = parseUUID(*v); !ok {
			return nil, "", invalid("phone_number_id must be a UUID.")
		}
	}
	if v, err := o.str("call_provider"); err != nil {
		return nil, "", err
	} else if v != nil && *v != "twilio" {
		return nil, "", invalid(`call_provider must be "twilio".`)
	}
	if v, err := o.str("call_status"); err != nil {
		return nil, "", err
	} else if v != nil {
		if !endcall.IsActive(endcall.CallStatus(*v)) {
			return nil, "", invalid(`call_status must be "queued", "ringing" or "in-progress".`)
		}
		c.CallStatus = endcall.CallStatus(*v)
	}
	if v, err := o.str("started_at"); err != nil {
		return nil, "", err
	} else if v != nil {
		t, err := time.Parse(time.RFC3339, *v)
		if err != nil {
			return nil, "", invalid("started_at must be an RFC 3339 timestamp, such as 2026-01-02T15:04:05Z.")
		}
		t = t.UTC()
		c.StartedAt = &t
	} else if c.CallStatus == endcall.StatusInProgress {
		c.StartedAt = &now
	}
	for _, f := range []struct {
		name string
		max  int
		dst  **string
	}{
		{"call_sid", maxIDLen, &c.CallSID}, {"room_name", maxIDLen, &c.RoomName},
		{"ai_agent_id", maxIDLen, &c.AIAgentID}, {"campaign_id", maxIDLen, &c.CampaignID},
		{"contact_id", maxIDLen, &c.ContactID}, {"notes", maxNotesLen, &c.Notes},
	} {
		v, err := o.str(f.name)
		if err != nil {
			return nil, "", err
		}
		if v != nil && len([]rune(*v)) > f.max {
			return nil, "", invalid("%s must be at most %d characters.", f.name, f.max)
		}
		if v != nil && *v != "" {
			*f.dst = v
		}
	}
	if c.MaxDurationSeconds, err = o.integer("max_duration_seconds"); err != nil {
		return nil, "", err
	} else if c.MaxDurationSeconds != nil && (*c.MaxDurationSeconds <= 0 || *c.MaxDurationSeconds > maxCallSeconds) {
		return nil, "", invalid("max_duration_seconds must be an integer from 1 to %d.", maxCallSeconds)
	}
	if _, err := o.field("is_test", "a boolean", &c.IsTest); err != nil {
		return nil, "", err
	}
	if c.Metadata, err = o.jsonObject("metadata"); err != nil {
		return nil, "", err
	}
	if c.AgentDynamicVariables, err = o.jsonObject("agent_dynamic_variables"); err != nil {
		return nil, "", err
	}
	if turns, err := decodeTurns(o); err != nil {
		return nil, "", err
	} else if turns != nil {
		c.TranscriptObject = *turns
		text := endcall.TranscriptText(*turns)
		c.Transcript = &text
	}
	return c, phoneID, nil
}

// decodeTurns reads transcript_object; nil when absent or null.
func decodeTurns(o object) (*[]endcall.Turn, error) {
	var turns []endcall.Turn
	ok, err := o.field("transcript_object", "an array of turns {role, content, start_ms, end_ms}", &turns)
	if err != nil || !ok {
		return nil, err
	}
	if turns == nil {
		turns = []endcall.Turn{}
	}
	for i, t := range turns {
		// OpenAI-style agents call their own turns "assistant".
		if t.Role == "assistant" {
			turns[i].Role = "agent"
		} else if t.Role != "agent" && t.Role != "user" {
			return nil, invalid(`transcript_object[%d].role must be "agent", "assistant" or "user".`, i)
		}
		if (t.StartMS != nil && *t.StartMS < 0) || (t.EndMS != nil && *t.EndMS < 0) {
			return nil, invalid("transcript_object[%d]: start_ms and end_ms must not be negative.", i)
		}
	}
	return &turns, nil
}

// patchable lists the fields PATCH /v1/calls/{id} may name.
var patchable = map[string]bool{
	"call_status": true, "transcript_object": true, "record_url": true, "notes": true,
	"metadata": true, "room_name": true, "call_rating": true, "call_feedback": true,
}

func (s *Server) handlePatchCall(w http.ResponseWriter, r *http.Request) {
	id, err := s.callID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, maxPatchBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := decodePatch(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.store.PatchCall(r.Context(), workspaceFrom(r.Context()), id, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Call updated", c)
}

// decodePatch validates a PATCH body. Fields outside patchable are refused
// rather than silently ignored, since a caller naming them expects a change.
func decodePatch(body []byte) (endcall.CallPatch, error) {
	var p endcall.CallPatch
	o, err := parseObject(body)
	if err != nil {
		return p, err
	}
	if len(o) == 0 {
		return p, invalid("Request body names no field to change.")
	}
	for name := range o {
		if !patchable[name] {
			return p, invalid("%s cannot be changed; patchable fields are call_status, transcript_object, record_url, notes, metadata, room_name, call_rating and call_feedback.", name)
		}
	}
	if o.has("call_status") {
		v, err := o.str("call_status")
		if err != nil {
			return p, err
		} else if v == nil || !endcall.IsActive(endcall.CallStatus(*v)) {
			return p, invalid(`call_status must be "queued", "ringing" or "in-progress"; end a call with POST /v1/calls/end.`)
		}
		p.CallStatus = endcall.Optional[endcall.CallStatus]{Set: true, Value: new(endcall.CallStatus(*v))}
	}
	if o.has("transcript_object") {
		turns, err := decodeTurns(o)
		if err != nil {
			return p, err
		}
		p.TranscriptObject = endcall.Optional[[]endcall.Turn]{Set: true, Value: turns}
	}
	for _, f := range []struct {
		name string
		max  int
		dst  *endcall.Optional[string]
	}{{"record_url", maxURLLen, &p.RecordURL}, {"notes", maxNotesLen, &p.Notes}, {"room_name", maxIDLen, &p.RoomName}, {"call_feedback", maxNotesLen, &p.CallFeedback}} {
		if *f.dst, err = o.optionalString(f.name, f.max); err != nil {
			return p, err
		}
	}
	if o.has("metadata") {
		m, err := o.jsonObject("metadata")
		if err != nil {
			return p, err
		}
		p.Metadata = endcall.Optional[json.RawMessage]{Set: true}
		if m != nil {
			p.Metadata.Value = &m
		}
	}
	if o.has("call_rating") {
		n, err := o.integer("call_rating")
		if err != nil {
			return p, err
		} else if n != nil && (*n < 1 || *n > 5) {
			return p, invalid("call_rating must be an integer from 1 to 5.")
		}
		p.CallRating = endcall.Optional[int]{Set: true, Value: n}
	}
	return p, nil
}

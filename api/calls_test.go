package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/endcall/endcall"
)

func TestCreateCallDefaultsAndLookup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	phoneID, _ := b.phone("+15550100000", false)
	inbound, _ := b.phone("+15550100009", false)

	r := b.do("POST", "/v1/calls", "", map[string]any{"call_from": "+15550100000", "call_to": "+15550100001",
		"call_direction": "outbound", "metadata": map[string]any{"k": "v"}, "max_duration_seconds": 600,
		"transcript_object": []map[string]any{{"role": "agent", "content": "Hi"}, {"role": "user", "content": "Hello", "start_ms": 10, "end_ms": 20}}})
	r.want(t, 201, "")
	c := r.call(t)
	if c.CallStatus != "in-progress" || c.StartedAt == nil || c.CallProvider != "twilio" || endcall.Deref(c.PhoneNumberID) != phoneID {
		t.Errorf("defaults: got status %q started %v provider %q phone %q", c.CallStatus, c.StartedAt, c.CallProvider, endcall.Deref(c.PhoneNumberID))
	}
	if endcall.Deref(c.Transcript) != "agent: Hi\nuser: Hello" {
		t.Errorf("transcript: got %q", endcall.Deref(c.Transcript))
	}
	if string(c.Metadata) != `{"k": "v"}` && string(c.Metadata) != `{"k":"v"}` {
		t.Errorf("metadata: got %s", c.Metadata)
	}
	// Absent values are null, never omitted.
	var raw map[string]json.RawMessage
	json.Unmarshal(r.Data, &raw)
	for _, field := range []string{"call_sid", "ended_at", "analysis", "call_rating", "disconnect_reason", "agent_post_call_outcomes"} {
		if v, ok := raw[field]; !ok || string(v) != "null" {
			t.Errorf("%s: got %s (present %v), want null", field, v, ok)
		}
	}
	in := b.do("POST", "/v1/calls", "", map[string]any{"call_from": "+15550999999", "call_to": "+15550100009", "call_direction": "inbound", "call_status": "ringing"})
	in.want(t, 201, "")
	if got := in.call(t); endcall.Deref(got.PhoneNumberID) != inbound || got.StartedAt != nil {
		t.Errorf("inbound: got phone %q started %v, want %q and null", endcall.Deref(got.PhoneNumberID), got.StartedAt, inbound)
	}
	g := b.do("GET", "/v1/calls/"+c.ID, "", nil)
	g.want(t, 200, "")
	if g.call(t).ID != c.ID {
		t.Errorf("get: got %s", g.Body)
	}
	b.do("GET", "/v1/calls/7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11", "", nil).want(t, 404, "not_found")
	b.do("GET", "/v1/calls/nope", "", nil).want(t, 404, "not_found")
}

func TestCreateCallBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.phone("+15550200000", false)
	other := setup(t)
	otherPhone, _ := other.phone("+15550200001", false)
	ok := `"call_from":"+15550200000","call_to":"+15550200002","call_direction":"outbound"`
	before := b.snapshot()
	for _, tc := range []struct {
		name, body, wantIn string
	}{
		{"malformed", `{"call_from":`, "Malformed"},
		{"missing call_to", `{"call_from":"+15550200000","call_direction":"outbound"}`, "call_to"},
		{"bad E.164", `{"call_from":"+15550200000","call_to":"555-1234","call_direction":"outbound"}`, "call_to"},
		{"bad direction", `{"call_from":"+15550200000","call_to":"+15550200002","call_direction":"sideways"}`, "call_direction"},
		{"no matching number", `{"call_from":"+15550200003","call_to":"+15550200002","call_direction":"outbound"}`, "No phone number"},
		{"another workspace's phone", `{` + ok + `,"phone_number_id":"` + otherPhone + `"}`, "phone_number_id"},
		{"status completed", `{` + ok + `,"call_status":"completed"}`, "call_status"},
		{"status wrong type", `{` + ok + `,"call_status":3}`, "call_status must be a string"},
		{"bad started_at", `{` + ok + `,"started_at":"yesterday"}`, "started_at"},
		{"negative max duration", `{` + ok + `,"max_duration_seconds":-5}`, "max_duration_seconds"},
		{"fractional max duration", `{` + ok + `,"max_duration_seconds":1.5}`, "max_duration_seconds must be an integer"},
		{"huge max duration", `{` + ok + `,"max_duration_seconds":4294967296}`, "max_duration_seconds"},
		{"metadata not object", `{` + ok + `,"metadata":[1]}`, "metadata must be an object"},
		{"is_test not bool", `{` + ok + `,"is_test":"yes"}`, "is_test must be a boolean"},
		{"bad turn role", `{` + ok + `,"transcript_object":[{"role":"bot","content":"x"}]}`, "role"},
		{"transcript not array", `{` + ok + `,"transcript_object":{"role":"user"}}`, "transcript_object must be"},
		{"provider", `{` + ok + `,"call_provider":"vonage"}`, "call_provider"},
		// Postgres text and jsonb refuse NUL; a write must not be where it fails.
		{"NUL in a string", `{` + ok + `,"notes":"a\u0000b"}`, "notes must not contain NUL"},
		{"NUL in metadata", `{` + ok + `,"metadata":{"a":["x\u0000"]}}`, "metadata must not contain NUL"},
		{"NUL in a metadata key", `{` + ok + `,"metadata":{"\u0000":1}}`, "metadata must not contain NUL"},
		{"NUL in agent_dynamic_variables", `{` + ok + `,"agent_dynamic_variables":{"a":"\u0000"}}`, "agent_dynamic_variables must not contain NUL"},
		{"number too large for jsonb", `{` + ok + `,"metadata":{"n":1e1000000}}`, "metadata holds a number"},
		{"number too small for jsonb", `{` + ok + `,"agent_dynamic_variables":{"n":[1e-1000000]}}`, "agent_dynamic_variables holds a number"},
		{"NUL in a turn", `{` + ok + `,"transcript_object":[{"role":"user","content":"\u0000"}]}`, "transcript_object must not contain NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do("POST", "/v1/calls", "", tc.body)
			r.want(t, 400, "invalid_request")
			if !strings.Contains(r.Message, tc.wantIn) {
				t.Errorf("message %q does not mention %q", r.Message, tc.wantIn)
			}
		})
	}
	if b.snapshot() != before {
		t.Error("bad input changed the database")
	}
	// Text jsonb refuses (an unpaired surrogate, bytes that are not UTF-8)
	// is stored as U+FFFD, as Go decodes it in every other string field.
	r := b.do("POST", "/v1/calls", "", []byte(`{`+ok+`,"metadata":{"a":"\ud800","b":"x`+"\xff"+`y","\udc00":0,"n":1e-5,"z":-0.0e-999}}`))
	r.want(t, 201, "")
	var m map[string]any
	if err := json.Unmarshal(r.call(t).Metadata, &m); err != nil || m["a"] != "\ufffd" || m["b"] != "x\ufffdy" || m["\ufffd"] != 0.0 || m["n"] != 1e-5 {
		t.Errorf("metadata: got %v, %v", m, err)
	}
	before = b.snapshot()
	sid := `,"call_sid":"CA11111111111111111111111111111111"`
	b.do("POST", "/v1/calls", "", `{`+ok+sid+`}`).want(t, 201, "")
	b.do("POST", "/v1/calls", "", `{`+ok+sid+`}`).want(t, 409, "conflict")
}

func TestPatchCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550300000", false)
	c := b.activeCall("+15550300000", account, "queued", nil)
	path := "/v1/calls/" + c.ID

	r := b.do("PATCH", path, "", map[string]any{"call_status": "in-progress", "notes": "n1", "metadata": map[string]any{"a": 1},
		"transcript_object": []map[string]any{{"role": "user", "content": "yes"}}})
	r.want(t, 200, "")
	got := r.call(t)
	if got.CallStatus != "in-progress" || got.StartedAt == nil || endcall.Deref(got.Notes) != "n1" || endcall.Deref(got.Transcript) != "user: yes" {
		t.Errorf("patched: status %q started %v notes %q transcript %q", got.CallStatus, got.StartedAt, endcall.Deref(got.Notes), endcall.Deref(got.Transcript))
	}
	b.do("PATCH", path, "", map[string]any{"call_status": "ringing"}).want(t, 409, "conflict")
	b.do("PATCH", path, "", map[string]any{"notes": nil}).want(t, 200, "")
	b.do("PATCH", path, "", map[string]any{"call_to": "+15550000000"}).want(t, 400, "invalid_request")
	b.do("PATCH", path, "", map[string]any{}).want(t, 400, "invalid_request")
	b.do("PATCH", path, "", map[string]any{"call_rating": 6}).want(t, 400, "invalid_request")
	b.do("PATCH", path, "", map[string]any{"call_status": "completed"}).want(t, 400, "invalid_request")
	before := b.snapshot()
	b.do("PATCH", path, "", `{"metadata":{"a":"\u0000"}}`).want(t, 400, "invalid_request")
	b.do("PATCH", path, "", `{"transcript_object":[{"role":"agent","content":"x\u0000"}]}`).want(t, 400, "invalid_request")
	if b.snapshot() != before {
		t.Error("a NUL in a PATCH changed the call")
	}
	// An escaped backslash before u0000 is no NUL: stored as written.
	r = b.do("PATCH", path, "", `{"metadata":{"path":"C:\\u0000"}}`)
	r.want(t, 200, "")
	var m struct{ Path string }
	if err := json.Unmarshal(r.call(t).Metadata, &m); err != nil || m.Path != `C:\u0000` {
		t.Errorf("metadata with an escaped backslash: got %q, %v", m.Path, err)
	}

	// PATCH accepts up to 1 MiB: a long transcript fits.
	big := strings.Repeat("word ", 30000)
	b.do("PATCH", path, "", map[string]any{"transcript_object": []map[string]any{{"role": "agent", "content": big}}}).want(t, 200, "")
	b.do("PATCH", path, "", map[string]any{"notes": strings.Repeat("x", 1<<20)}).want(t, 413, "payload_too_large")

	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": c.ID}).want(t, 200, "")
	before = b.snapshot()
	b.do("PATCH", path, "", map[string]any{"notes": "late"}).want(t, 409, "conflict")
	b.do("PATCH", path, "", map[string]any{"call_rating": 4, "notes": "late"}).want(t, 409, "conflict")
	if b.snapshot() != before {
		t.Error("a refused PATCH changed the call")
	}
	r = b.do("PATCH", path, "", map[string]any{"call_rating": 4, "call_feedback": "good"})
	r.want(t, 200, "")
	if got := r.call(t); got.CallRating == nil || *got.CallRating != 4 || endcall.Deref(got.CallFeedback) != "good" {
		t.Errorf("rating after end: got %v %q", got.CallRating, endcall.Deref(got.CallFeedback))
	}
	_, otherKey, _ := b.store.CreateAPIKey(context.Background(), "other")
	b.do("PATCH", path, otherKey, map[string]any{"call_rating": 1}).want(t, 404, "not_found")
}

func TestPhoneNumbers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id, account := b.phone("+15550400000", true)
	r := b.do("GET", "/v1/phone-numbers", "", nil)
	r.want(t, 200, "")
	if !strings.Contains(string(r.Body), account) || strings.Contains(string(r.Body), "auth_token") {
		t.Errorf("list: %s", r.Body)
	}
	var sealed []byte
	b.pool.QueryRow(context.Background(), `SELECT twilio_auth_token_enc FROM phone_numbers WHERE id = $1`, id).Scan(&sealed)
	if len(sealed) < 28 {
		t.Errorf("sealed token: got %d bytes", len(sealed))
	}
	b.twilio.AddNumber(b.platformSID, "+15550400000")
	b.do("POST", "/v1/phone-numbers", "", map[string]any{"number": "+15550400000", "provider": "twilio"}).want(t, 409, "conflict")

	before := b.snapshot()
	for _, body := range []string{
		`{"number":"5550400001","provider":"twilio"}`,
		`{"number":"+15550400001","provider":"plivo"}`,
		`{"number":"+15550400001","provider":"twilio","twilio_account_sid":"AC00000000000000000000000000000000"}`,
		`{"number":"+15550400001","provider":"twilio","twilio_account_sid":"XX1","twilio_auth_token":"0123456789abcdef"}`,
		`{"number":15550400001,"provider":"twilio"}`,
		`nope`,
	} {
		b.do("POST", "/v1/phone-numbers", "", body).want(t, 400, "invalid_request")
	}
	if b.snapshot() != before {
		t.Error("bad input changed the database")
	}
	_, otherKey, _ := b.store.CreateAPIKey(context.Background(), "other")
	b.do("DELETE", "/v1/phone-numbers/"+id, otherKey, nil).want(t, 404, "not_found")
	b.do("DELETE", "/v1/phone-numbers/"+id, "", nil).want(t, 200, "")
	b.do("DELETE", "/v1/phone-numbers/"+id, "", nil).want(t, 404, "not_found")
	b.do("DELETE", "/v1/phone-numbers/xyz", "", nil).want(t, 404, "not_found")
	if r := b.do("GET", "/v1/phone-numbers", "", nil); string(r.Data) != "[]" {
		t.Errorf("after delete: got %s, want []", r.Data)
	}
	b.do("POST", "/v1/phone-numbers", "", `{"number":"+1"}`+strings.Repeat(" ", 65<<10)).want(t, 413, "payload_too_large")
}

func TestUnsupportedMediaTypeAndUnknownRoute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.doWithType("POST", "/v1/calls/end", "application/x-www-form-urlencoded", `call_id=x`)
	r.want(t, 415, "unsupported_media_type")
	b.do("GET", "/v1/nothing", "", nil).want(t, 404, "not_found")
}

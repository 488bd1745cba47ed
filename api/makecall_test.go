package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/twilio"
	"github.com/endcall/endcall/twilio/twiliotest"
)

// The TwiML and public URLs the test server is configured with.
const (
	testVoiceURL  = "https://agent.example/twiml"
	testPublicURL = "https://endcall.example"
)

func TestMakeCallPlacesAndRegistersQueuedCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	platformPhone, _ := b.phone("+15550300000", false)
	byotPhone, byotAccount := b.phone("+15550300001", true)

	for _, tc := range []struct {
		name          string
		body          map[string]any
		wantPhone     string
		wantFrom      string
		wantAccount   string
		wantTimeLimit string
		wantMax       *int
		wantVars      string
	}{
		{
			name: "platform number by call_from, MAX_CALL_DURATION as limit",
			body: map[string]any{"call_from": "+15550300000", "call_to": "+15550309999", "ai_agent_id": "agent-7",
				"dynamic_variables": []map[string]any{{"name": "first_name", "value": "Ada"}, {"name": "attempt", "value": 2}}},
			wantPhone: platformPhone, wantFrom: "+15550300000", wantAccount: b.platformSID, wantTimeLimit: "3600",
			wantVars: `{"first_name":"Ada","attempt":2}`,
		},
		{
			name:      "BYOT number by phone_number_id, own limit",
			body:      map[string]any{"phone_number_id": byotPhone, "call_to": "+15550309998", "max_duration_seconds": 120},
			wantPhone: byotPhone, wantFrom: "+15550300001", wantAccount: byotAccount, wantTimeLimit: "120", wantMax: new(120),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do("POST", "/v1/calls/make-call", "", tc.body)
			r.want(t, 201, "")
			if r.Message != "Call placed" {
				t.Errorf("message: got %q, want %q", r.Message, "Call placed")
			}
			c := r.call(t)
			creates := b.twilio.Creates()
			if len(creates) == 0 {
				t.Fatal("no create request reached Twilio")
			}
			created := creates[len(creates)-1]
			if !created.Authenticated || created.AuthUser != tc.wantAccount || created.AccountSID != tc.wantAccount {
				t.Fatalf("create request: got %v, want one authenticated as %s", creates, tc.wantAccount)
			}
			f := created.Form
			for key, want := range map[string]string{"From": tc.wantFrom, "To": tc.body["call_to"].(string), "Url": testVoiceURL,
				"StatusCallback": testPublicURL + "/v1/providers/twilio/status", "StatusCallbackMethod": "POST", "TimeLimit": tc.wantTimeLimit} {
				if got := f.Get(key); got != want {
					t.Errorf("Twilio %s: got %q, want %q", key, got, want)
				}
			}
			if got, want := f["StatusCallbackEvent"], []string{"initiated", "ringing", "answered", "completed"}; !slices.Equal(got, want) {
				t.Errorf("Twilio StatusCallbackEvent: got %v, want %v", got, want)
			}
			sid, _ := b.twilio.Call(endcall.Deref(c.CallSID))
			if endcall.Deref(c.CallSID) == "" || sid.SID != endcall.Deref(c.CallSID) {
				t.Errorf("call_sid: got %q, not the SID the fake created", endcall.Deref(c.CallSID))
			}
			if c.CallStatus != "queued" || c.CallDirection != "outbound" || c.CallFrom != tc.wantFrom || c.CallTo != tc.body["call_to"] ||
				endcall.Deref(c.PhoneNumberID) != tc.wantPhone || c.StartedAt != nil || c.EndedAt != nil || c.CallProvider != "twilio" {
				t.Errorf("registered call: got status %q direction %q from %q to %q phone %q started %v ended %v",
					c.CallStatus, c.CallDirection, c.CallFrom, c.CallTo, endcall.Deref(c.PhoneNumberID), c.StartedAt, c.EndedAt)
			}
			if (c.MaxDurationSeconds == nil) != (tc.wantMax == nil) || (c.MaxDurationSeconds != nil && *c.MaxDurationSeconds != *tc.wantMax) {
				t.Errorf("max_duration_seconds: got %v, want %v", c.MaxDurationSeconds, tc.wantMax)
			}
			if tc.wantVars != "" && !sameJSON(t, c.AgentDynamicVariables, tc.wantVars) {
				t.Errorf("agent_dynamic_variables: got %s, want %s", c.AgentDynamicVariables, tc.wantVars)
			}
			stored, err := b.store.GetCall(context.Background(), b.workspace, c.ID)
			if err != nil || endcall.Deref(stored.CallSID) != endcall.Deref(c.CallSID) || stored.CallStatus != "queued" {
				t.Errorf("stored call: got %+v, %v", stored, err)
			}
		})
	}
}

func TestMakeCallBadInputPlacesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	phoneID, _ := b.phone("+15550310000", false)
	other := setup(t)
	otherPhone, _ := other.phone("+15550310001", false)
	before := b.snapshot()
	for _, tc := range []struct {
		name, body, wantIn string
	}{
		{"malformed", `{"call_to":`, "Malformed"},
		{"missing call_to", `{"call_from":"+15550310000"}`, "call_to"},
		{"bad call_to", `{"call_from":"+15550310000","call_to":"555 1234"}`, "call_to"},
		{"no caller", `{"call_to":"+15550319999"}`, "call_from or phone_number_id"},
		{"bad call_from", `{"call_from":"15550310000","call_to":"+15550319999"}`, "call_from"},
		{"unknown number", `{"call_from":"+15550310002","call_to":"+15550319999"}`, "No phone number"},
		{"another workspace's phone", `{"phone_number_id":"` + otherPhone + `","call_to":"+15550319999"}`, "phone_number_id"},
		{"phone id not a UUID", `{"phone_number_id":"nope","call_to":"+15550319999"}`, "phone_number_id must be a UUID"},
		{"call_from not the phone's", `{"phone_number_id":"` + phoneID + `","call_from":"+15550310003","call_to":"+15550319999"}`, "call_from"},
		{"zero max duration", `{"call_from":"+15550310000","call_to":"+15550319999","max_duration_seconds":0}`, "max_duration_seconds"},
		{"max duration over a day", `{"call_from":"+15550310000","call_to":"+15550319999","max_duration_seconds":86401}`, "max_duration_seconds"},
		{"variables not a list", `{"call_from":"+15550310000","call_to":"+15550319999","dynamic_variables":{"a":"b"}}`, "dynamic_variables must be"},
		{"variable without name", `{"call_from":"+15550310000","call_to":"+15550319999","dynamic_variables":[{"value":"b"}]}`, "dynamic_variables[0].name"},
		{"NUL in a variable", `{"call_from":"+15550310000","call_to":"+15550319999","dynamic_variables":[{"name":"a","value":"\u0000"}]}`, "dynamic_variables must not contain NUL"},
		{"variable number too large", `{"call_from":"+15550310000","call_to":"+15550319999","dynamic_variables":[{"name":"a","value":1e1000000}]}`, "dynamic_variables[0].value holds a number"},
		{"variable number too small", `{"call_from":"+15550310000","call_to":"+15550319999","dynamic_variables":[{"name":"a","value":-1e-1000000}]}`, "dynamic_variables[0].value holds a number"},
		{"variable named twice", `{"call_from":"+15550310000","call_to":"+15550319999","dynamic_variables":[{"name":"a","value":1},{"name":"a","value":2}]}`, "dynamic_variables[1]"},
		{"variable value object", `{"call_from":"+15550310000","call_to":"+15550319999","dynamic_variables":[{"name":"a","value":{"x":1}}]}`, "dynamic_variables[0].value"},
		{"agent not a string", `{"call_from":"+15550310000","call_to":"+15550319999","ai_agent_id":7}`, "ai_agent_id must be a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do("POST", "/v1/calls/make-call", "", tc.body)
			r.want(t, 400, "invalid_request")
			if !strings.Contains(r.Message, tc.wantIn) {
				t.Errorf("message: got %q, want it to mention %q", r.Message, tc.wantIn)
			}
		})
	}
	if got := len(b.twilio.Creates()); got != 0 {
		t.Errorf("Twilio create requests: got %d, want 0", got)
	}
	if b.snapshot() != before {
		t.Error("a refused make-call changed the database")
	}
	b.do("POST", "/v1/calls/make-call", "-", `{"call_from":"+15550310000","call_to":"+15550319999"}`).want(t, 401, "unauthorized")
}

func TestMakeCallTwilioErrorsRegisterNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.providerTimeout = 300 * time.Millisecond })
	b.phone("+15550320000", false)
	before := b.snapshot()
	for _, tc := range []struct {
		name       string
		script     func()
		wantStatus int
		wantCode   string
		wantIn     string
	}{
		{"refused by Twilio", func() {
			b.twilio.FailNextWith("", 1, twiliotest.Error{Status: 400, Code: 21215, Message: "Geo Permission configuration is not permitting call"})
		}, 400, "invalid_request", "21215"},
		{"Twilio down", func() { b.twilio.FailNext("", 1, 500) }, 503, "unavailable", "Twilio"},
		{"Twilio rate limiting", func() { b.twilio.FailNextWith("", 1, twiliotest.ErrTooManyRequests) }, 503, "unavailable", "rate limiting"},
		{"Twilio too slow", func() { b.twilio.SetDelay("", time.Second) }, 503, "unavailable", "did not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.script()
			r := b.do("POST", "/v1/calls/make-call", "", map[string]any{"call_from": "+15550320000", "call_to": "+15550329999"})
			r.want(t, tc.wantStatus, tc.wantCode)
			if !strings.Contains(r.Message, tc.wantIn) {
				t.Errorf("message: got %q, want it to mention %q", r.Message, tc.wantIn)
			}
			if b.snapshot() != before {
				t.Error("a failed make-call registered something")
			}
		})
	}
}

func TestMakeCallConfiguration(t *testing.T) {
	t.Parallel()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name       string
		twilio     func(*api.TwilioConfig)
		wantStatus int
		wantIn     string
	}{
		{"no TWILIO_VOICE_URL", func(c *api.TwilioConfig) { c.VoiceURL = "" }, 503, "TWILIO_VOICE_URL"},
		{"no dialer", func(c *api.TwilioConfig) { c.Dialer = nil }, 503, "not configured"},
		{"no platform account", func(c *api.TwilioConfig) { c.AccountSID, c.AuthToken = "", "" }, 503, "TWILIO_ACCOUNT_SID"},
		{"simulated, nothing else configured", func(c *api.TwilioConfig) {
			*c = api.TwilioConfig{Dialer: twilio.Simulated{Log: discard}, Simulated: true, PublicBaseURL: testPublicURL}
		}, 201, "Call placed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(o *options) { o.deps = func(d *api.Deps) { tc.twilio(&d.Twilio) } })
			b.phone("+15550330000", false)
			lookups := len(b.twilio.Requests())
			r := b.do("POST", "/v1/calls/make-call", "", map[string]any{"call_from": "+15550330000", "call_to": "+15550339999"})
			if r.Status != tc.wantStatus || !strings.Contains(r.Message, tc.wantIn) {
				t.Fatalf("got %d %q, want %d mentioning %q", r.Status, r.Message, tc.wantStatus, tc.wantIn)
			}
			if got := len(b.twilio.Requests()) - lookups; got != 0 {
				t.Errorf("Twilio requests: got %d, want 0", got)
			}
			if tc.wantStatus == 201 {
				if c := r.call(t); !strings.HasPrefix(endcall.Deref(c.CallSID), "CA") || c.CallStatus != "queued" {
					t.Errorf("simulated call: got sid %q status %q", endcall.Deref(c.CallSID), c.CallStatus)
				}
			}
		})
	}
}

// failingCreate is a store whose CreateCall fails as during an outage.
type failingCreate struct{ api.Store }

func (failingCreate) CreateCall(context.Context, *endcall.Call) (*endcall.Call, error) {
	return nil, endcall.Errorf(endcall.EUNAVAILABLE, "The database is unavailable; try again shortly.")
}

func TestMakeCallCancelsCallItCannotRegister(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.deps = func(d *api.Deps) { d.Store = failingCreate{d.Store} } })
	b.phone("+15550340000", false)
	r := b.do("POST", "/v1/calls/make-call", "", map[string]any{"call_from": "+15550340000", "call_to": "+15550349999"})
	r.want(t, 503, "unavailable")
	creates := b.twilio.Creates()
	if len(creates) != 1 {
		t.Fatalf("create requests: got %d, want 1", len(creates))
	}
	var sid string
	for _, req := range b.twilio.Requests() {
		if req.IsHangup() {
			sid = req.CallSID
		}
	}
	if c, ok := b.twilio.Call(sid); !ok || c.Status != "canceled" {
		t.Errorf("placed call: got %+v (found %v), want it canceled at Twilio", c, ok)
	}
}

// sameJSON reports whether got and want are equal JSON values; jsonb
// storage does not keep key order or spacing.
func sameJSON(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("not JSON: %s", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("not JSON: %s", want)
	}
	return reflect.DeepEqual(g, w)
}

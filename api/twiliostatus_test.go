package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	twclient "github.com/twilio/twilio-go/client"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/twilio/twiliotest"
)

// twilioSignature signs a callback exactly as Twilio does: HMAC-SHA1 keyed
// with the auth token over the URL followed by every POST parameter's name
// and value, sorted by name, in base64.
func twilioSignature(t *testing.T, token, rawURL string, form url.Values) string {
	t.Helper()
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	mac := hmac.New(sha1.New, []byte(token))
	io.WriteString(mac, rawURL)
	params := map[string]string{}
	for _, k := range keys {
		io.WriteString(mac, k+form.Get(k))
		params[k] = form.Get(k)
	}
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	validator := twclient.NewRequestValidator(token)
	if !validator.Validate(rawURL, params, sig) {
		t.Fatal("twilio-go's validator does not accept the test's signature")
	}
	return sig
}

// statusForm is a status callback body as Twilio sends it.
func statusForm(account, sid, status string) url.Values {
	return url.Values{"AccountSid": {account}, "ApiVersion": {"2010-04-01"}, "CallSid": {sid}, "CallStatus": {status},
		"Called": {"+15557654321"}, "Caller": {"+15550001111"}, "Direction": {"outbound-api"}, "From": {"+15550001111"},
		"To": {"+15557654321"}, "SequenceNumber": {"0"}, "Timestamp": {"Mon, 02 Mar 2026 10:00:00 +0000"},
		"CallbackSource": {"call-progress-events"}}
}

// ack is the data of a status callback answer.
type ack struct {
	CallID     *string `json:"call_id"`
	CallStatus *string `json:"call_status"`
	Changed    bool    `json:"changed"`
}

// postStatus posts form to the status callback with signature, which ""
// leaves off. path may carry a query string.
func (b *bundle) postStatus(path string, form url.Values, signature string) (response, ack) {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signature != "" {
		req.Header.Set("X-Twilio-Signature", signature)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var env struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
		Error   struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		b.t.Fatalf("status callback: body is not JSON: %s", raw)
	}
	var a ack
	json.Unmarshal(env.Data, &a)
	return response{Status: res.StatusCode, Body: raw, Message: env.Message, Code: env.Error.Code, Data: env.Data}, a
}

// callback posts a status callback for sid signed with token for account.
func (b *bundle) callback(account, token, sid, status string) (response, ack) {
	b.t.Helper()
	form := statusForm(account, sid, status)
	return b.postStatus("/v1/providers/twilio/status", form,
		twilioSignature(b.t, token, testPublicURL+"/v1/providers/twilio/status", form))
}

func (b *bundle) getCall(id string) *endcall.Call {
	b.t.Helper()
	c, err := b.store.GetCall(context.Background(), b.workspace, id)
	if err != nil {
		b.t.Fatal(err)
	}
	return c
}

func TestTwilioStatusMovesCallForwardThenEndsIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.phone("+15550400000", false)
	r := b.do("POST", "/v1/calls/make-call", "", map[string]any{"call_from": "+15550400000", "call_to": "+15550409999"})
	r.want(t, 201, "")
	c := r.call(t)
	sid := endcall.Deref(c.CallSID)

	for _, step := range []struct {
		status      string
		wantChanged bool
		wantStatus  endcall.CallStatus
	}{
		{"initiated", false, "queued"},
		{"ringing", true, "ringing"},
		{"ringing", false, "ringing"},
		{"in-progress", true, "in-progress"},
		{"ringing", false, "in-progress"},
		{"in-progress", false, "in-progress"},
		{"completed", true, "completed"},
		{"completed", false, "completed"},
		{"busy", false, "completed"},
		{"in-progress", false, "completed"},
	} {
		before := b.snapshot()
		r, a := b.callback(b.platformSID, b.platformToken, sid, step.status)
		r.want(t, 200, "")
		got := b.getCall(c.ID)
		if a.Changed != step.wantChanged || got.CallStatus != step.wantStatus || endcall.Deref(a.CallID) != c.ID {
			t.Fatalf("after %s: got changed %v status %q call %q, want changed %v status %q call %q",
				step.status, a.Changed, got.CallStatus, endcall.Deref(a.CallID), step.wantChanged, step.wantStatus, c.ID)
		}
		if !step.wantChanged && b.snapshot() != before {
			t.Fatalf("after %s: a callback that changed nothing changed the database", step.status)
		}
		if step.status == "in-progress" && got.StartedAt == nil {
			t.Fatalf("after %s: started_at is null", step.status)
		}
	}
	got := b.getCall(c.ID)
	if endcall.Deref(got.DisconnectReason) != "Call completed (provider)" || endcall.Deref(got.ProviderHangupStatus) != "skipped" ||
		got.EndedAt == nil || got.CallDuration == nil || endcall.Deref(got.AnalysisStatus) != "pending" {
		t.Errorf("ended call: got reason %q hangup %q ended %v duration %v analysis %q", endcall.Deref(got.DisconnectReason),
			endcall.Deref(got.ProviderHangupStatus), got.EndedAt, got.CallDuration, endcall.Deref(got.AnalysisStatus))
	}
	if n := b.twilio.HangupCount(sid); n != 0 {
		t.Errorf("hangup requests: got %d, want 0 (Twilio reported the end)", n)
	}
	if got := b.tasks("default"); !slices.Contains(got, "analyze:"+c.ID) {
		t.Errorf("default queue: got %v, want analyze:%s", got, c.ID)
	}
}

func TestTwilioStatusFinalStatuses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550410000", false)
	for _, tc := range []struct {
		status, from, wantReason string
	}{
		{"completed", "in-progress", "Call completed (provider)"},
		{"busy", "ringing", "busy"},
		{"no-answer", "ringing", "no-answer"},
		{"failed", "queued", "failed"},
		{"canceled", "queued", "canceled"},
	} {
		t.Run(tc.status, func(t *testing.T) {
			c := b.activeCall("+15550410000", account, tc.from, nil)
			r, a := b.callback(b.platformSID, b.platformToken, endcall.Deref(c.CallSID), tc.status)
			r.want(t, 200, "")
			got := b.getCall(c.ID)
			if !a.Changed || got.CallStatus != endcall.CallStatus(tc.status) || endcall.Deref(got.DisconnectReason) != tc.wantReason ||
				endcall.Deref(got.ProviderHangupStatus) != "skipped" || got.EndedAt == nil {
				t.Errorf("got changed %v status %q reason %q hangup %q ended %v, want status %q reason %q hangup skipped",
					a.Changed, got.CallStatus, endcall.Deref(got.DisconnectReason), endcall.Deref(got.ProviderHangupStatus), got.EndedAt, tc.status, tc.wantReason)
			}
			if n := b.twilio.HangupCount(endcall.Deref(c.CallSID)); n != 0 {
				t.Errorf("hangup requests: got %d, want 0", n)
			}
		})
	}
}

func TestTwilioStatusRefusesBadSignatures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550420000", false)
	_, byotAccount := b.phone("+15550420001", true)
	c := b.activeCall("+15550420000", account, "in-progress", nil)
	sid := endcall.Deref(c.CallSID)
	path := "/v1/providers/twilio/status"
	signed := statusForm(b.platformSID, sid, "completed")
	good := twilioSignature(t, b.platformToken, testPublicURL+path, signed)
	unknown := twiliotest.NewSID("AC")
	before := b.snapshot()

	for _, tc := range []struct {
		name      string
		path      string
		form      url.Values
		signature string
	}{
		{"no signature", path, signed, ""},
		{"wrong token", path, signed, twilioSignature(t, "not-the-token", testPublicURL+path, signed)},
		{"signed for another host", path, signed, twilioSignature(t, b.platformToken, "http://localhost:8080"+path, signed)},
		{"signed without the query string", path + "?attempt=2", signed, good},
		{"parameter changed after signing", path, statusForm(b.platformSID, sid, "busy"), good},
		{"unknown account", path, statusForm(unknown, sid, "completed"),
			twilioSignature(t, "any-token", testPublicURL+path, statusForm(unknown, sid, "completed"))},
		{"no account", path, url.Values{"CallSid": {sid}, "CallStatus": {"completed"}},
			twilioSignature(t, b.platformToken, testPublicURL+path, url.Values{"CallSid": {sid}, "CallStatus": {"completed"}})},
		{"account with a NUL", path, statusForm("AC\x00", sid, "completed"),
			twilioSignature(t, "any-token", testPublicURL+path, statusForm("AC\x00", sid, "completed"))},
		{"account not UTF-8", path, statusForm("AC\xff", sid, "completed"),
			twilioSignature(t, "any-token", testPublicURL+path, statusForm("AC\xff", sid, "completed"))},
		{"BYOT account signed with the platform token", path, statusForm(byotAccount, sid, "completed"),
			twilioSignature(t, b.platformToken, testPublicURL+path, statusForm(byotAccount, sid, "completed"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := b.postStatus(tc.path, tc.form, tc.signature)
			r.want(t, 403, "forbidden")
			if r.Message == "" {
				t.Error("403 without a message")
			}
		})
	}
	if b.snapshot() != before {
		t.Error("a refused callback changed the database")
	}
	if got := b.getCall(c.ID).CallStatus; got != "in-progress" {
		t.Errorf("call status: got %q, want in-progress", got)
	}

	// A signed callback naming a CallSid that Postgres text cannot hold.
	for _, bad := range []string{"CA\x00", "CA\xff"} {
		form := statusForm(b.platformSID, bad, "completed")
		r, _ := b.postStatus(path, form, twilioSignature(t, b.platformToken, testPublicURL+path, form))
		r.want(t, 400, "invalid_request")
	}

	// The same callback, properly signed, ends the call; a query string is
	// part of the signed URL.
	r, a := b.postStatus(path+"?attempt=2", signed, twilioSignature(t, b.platformToken, testPublicURL+path+"?attempt=2", signed))
	r.want(t, 200, "")
	if !a.Changed {
		t.Errorf("signed callback: got %s, want the call ended", r.Body)
	}
}

func TestTwilioStatusStaysWithinTheCallsAccount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, byotAccount := b.phone("+15550430000", true)
	victim := b.activeCall("+15550430000", byotAccount, "in-progress", nil)

	// Another workspace registers the victim's account SID with a token of
	// its own choosing: its signatures validate for that account, but must
	// not reach the victim's calls.
	ctx := context.Background()
	attacker, otherKey, err := b.store.CreateAPIKey(ctx, "attacker-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	// Twilio refuses the made-up token, so the API does too; the number is
	// stored behind its back, as simulated telephony would.
	b.do("POST", "/v1/phone-numbers", otherKey, map[string]any{"number": "+15550439999", "provider": "twilio",
		"twilio_account_sid": byotAccount, "twilio_auth_token": "attacker-chosen-token-0123456789"}).want(t, 400, "invalid_request")
	if _, err := b.store.CreatePhoneNumber(ctx, attacker, "+15550439999", "twilio",
		&endcall.ProviderCredentials{AccountSID: byotAccount, AuthToken: "attacker-chosen-token-0123456789"}); err != nil {
		t.Fatal(err)
	}
	before := b.snapshot()
	r, a := b.callback(byotAccount, "attacker-chosen-token-0123456789", endcall.Deref(victim.CallSID), "completed")
	r.want(t, 200, "")
	if a.Changed || a.CallID != nil {
		t.Errorf("attacker's callback: got %s, want nothing changed and no call named", r.Body)
	}
	// Nor can the platform account reach a BYOT account's call.
	r, a = b.callback(b.platformSID, b.platformToken, endcall.Deref(victim.CallSID), "completed")
	r.want(t, 200, "")
	if a.Changed || a.CallID != nil {
		t.Errorf("platform account's callback for a BYOT call: got %s, want nothing changed", r.Body)
	}
	// An unknown CallSid, properly signed, is acknowledged and ignored.
	r, a = b.callback(b.platformSID, b.platformToken, twiliotest.NewSID("CA"), "completed")
	r.want(t, 200, "")
	if a.Changed || a.CallID != nil {
		t.Errorf("unknown CallSid: got %s, want nothing changed", r.Body)
	}
	if b.snapshot() != before {
		t.Fatal("callbacks from outside the call's account changed the database")
	}
}

func TestTwilioStatusBYOTAccount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The fake knows the BYOT token; register it through the API as a user would.
	account, token := b.twilio.NewAccount()
	b.twilio.AddNumber(account, "+15550440000")
	b.do("POST", "/v1/phone-numbers", "", map[string]any{"number": "+15550440000", "provider": "twilio",
		"twilio_account_sid": account, "twilio_auth_token": token}).want(t, 201, "")
	c := b.activeCall("+15550440000", account, "ringing", nil)
	r, a := b.callback(account, token, endcall.Deref(c.CallSID), "in-progress")
	r.want(t, 200, "")
	if got := b.getCall(c.ID); !a.Changed || got.CallStatus != "in-progress" || got.StartedAt == nil {
		t.Errorf("BYOT callback: got changed %v status %q started %v", a.Changed, got.CallStatus, got.StartedAt)
	}
	// Deleting the number does not orphan its calls' callbacks.
	b.do("DELETE", "/v1/phone-numbers/"+endcall.Deref(c.PhoneNumberID), "", nil).want(t, 200, "")
	r, a = b.callback(account, token, endcall.Deref(c.CallSID), "completed")
	r.want(t, 200, "")
	if got := b.getCall(c.ID); !a.Changed || got.CallStatus != "completed" {
		t.Errorf("callback after the number was deleted: got changed %v status %q", a.Changed, got.CallStatus)
	}
}

func TestTwilioStatusBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := "/v1/providers/twilio/status"
	noStatus := url.Values{"AccountSid": {b.platformSID}, "CallSid": {twiliotest.NewSID("CA")}}
	r, _ := b.postStatus(path, noStatus, twilioSignature(t, b.platformToken, testPublicURL+path, noStatus))
	r.want(t, 400, "invalid_request")
	if !strings.Contains(r.Message, "CallStatus") {
		t.Errorf("message: got %q, want it to name CallStatus", r.Message)
	}
	_, account := b.phone("+15550450000", false)
	c := b.activeCall("+15550450000", account, "in-progress", nil)
	weird := statusForm(b.platformSID, endcall.Deref(c.CallSID), "exploded")
	r, _ = b.postStatus(path, weird, twilioSignature(t, b.platformToken, testPublicURL+path, weird))
	r.want(t, 400, "invalid_request")
	b.doWithType("POST", path, "application/json", `{"CallSid":"CA1"}`).want(t, 415, "unsupported_media_type")
}

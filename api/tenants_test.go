package api_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/twilio/twiliotest"
)

// otherWorkspace creates a second workspace with a platform number of its
// own and returns its API key.
func (b *bundle) otherWorkspace(number string) string {
	b.t.Helper()
	ctx := context.Background()
	ws, key, err := b.store.CreateAPIKey(ctx, "other-"+b.t.Name())
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.store.CreatePhoneNumber(ctx, ws, number, "twilio", nil); err != nil {
		b.t.Fatal(err)
	}
	return key
}

func TestRoomTakeOverIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.phone("+15550500000", false)
	victim := b.activeCall("+15550500000", b.platformSID, "in-progress", map[string]any{"room_name": "victim-room"})
	otherKey := b.otherWorkspace("+15550500001")
	register := func(key, room string) response {
		return b.do("POST", "/v1/calls", key, map[string]any{"call_from": "+15550500001", "call_to": "+15557654321",
			"call_direction": "outbound", "room_name": room})
	}

	before := b.snapshot()
	r := register(otherKey, "victim-room")
	r.want(t, 409, "conflict")
	if b.snapshot() != before {
		t.Error("a refused registration changed the database")
	}
	own := register(otherKey, "attacker-room")
	own.want(t, 201, "")
	b.do("PATCH", "/v1/calls/"+own.call(t).ID, otherKey, map[string]any{"room_name": "victim-room"}).want(t, 409, "conflict")
	if got := b.getCallIn(otherKey, own.call(t).ID); got == nil || *got != "attacker-room" {
		t.Errorf("after a refused PATCH: room_name %v, want attacker-room", got)
	}

	// The room's own workspace may bring another call into it.
	transfer := b.activeCall("+15550500000", b.platformSID, "in-progress", map[string]any{"room_name": "victim-room"})

	// The name is free again only once every call in the room has ended.
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": victim.ID}).want(t, 200, "")
	register(otherKey, "victim-room").want(t, 409, "conflict")
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": transfer.ID}).want(t, 200, "")
	register(otherKey, "victim-room").want(t, 201, "")
}

// Two workspaces racing for one room: only one of them gets it.
func TestRoomRaceHasOneWinner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.phone("+15550510000", false)
	otherKey := b.otherWorkspace("+15550510001")
	const n = 8
	var wg sync.WaitGroup
	status := make([][2]int, n)
	for i := range n {
		for j, who := range []struct{ key, from string }{{"", "+15550510000"}, {otherKey, "+15550510001"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status[i][j] = b.do("POST", "/v1/calls", who.key, map[string]any{"call_from": who.from, "call_to": "+15557654321",
					"call_direction": "outbound", "room_name": "contested"}).Status
			}()
		}
	}
	wg.Wait()
	var workspaces int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(DISTINCT workspace_id) FROM calls WHERE room_name = 'contested'`).Scan(&workspaces); err != nil {
		t.Fatal(err)
	}
	if workspaces != 1 {
		t.Errorf("room held by %d workspaces at once, want 1 (statuses %v)", workspaces, status)
	}
	for _, s := range status {
		for _, code := range s {
			if code != 201 && code != 409 {
				t.Errorf("status %d, want 201 or 409 (%v)", code, status)
			}
		}
	}
}

// getCallIn reads a call's room_name through the API with key.
func (b *bundle) getCallIn(key, id string) *string {
	b.t.Helper()
	r := b.do("GET", "/v1/calls/"+id, key, nil)
	r.want(b.t, 200, "")
	return r.call(b.t).RoomName
}

// Another workspace registers many numbers with the victim's account SID
// and made-up tokens: the victim's genuine callbacks still validate.
func TestTwilioStatusSurvivesTokenPoisoning(t *testing.T) {
	t.Parallel()
	b := setup(t)
	account, token := b.twilio.NewAccount()
	b.twilio.AddNumber(account, "+15550520000")
	b.do("POST", "/v1/phone-numbers", "", map[string]any{"number": "+15550520000", "provider": "twilio",
		"twilio_account_sid": account, "twilio_auth_token": token}).want(t, 201, "")
	c := b.activeCall("+15550520000", account, "ringing", nil)

	ctx := context.Background()
	attacker, _, err := b.store.CreateAPIKey(ctx, "attacker-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		bogus := &endcall.ProviderCredentials{AccountSID: account, AuthToken: fmt.Sprintf("made-up-token-%04d-0123456789", i)}
		if _, err := b.store.CreatePhoneNumber(ctx, attacker, fmt.Sprintf("+1555053%04d", i), "twilio", bogus); err != nil {
			t.Fatal(err)
		}
	}

	r, a := b.callback(account, token, endcall.Deref(c.CallSID), "in-progress")
	r.want(t, 200, "")
	if !a.Changed {
		t.Errorf("genuine callback for the victim's call: got %s, want the call moved on", r.Body)
	}
	// A call placed outside endcall on the same account is acknowledged, not refused.
	r, a = b.callback(account, token, twiliotest.NewSID("CA"), "completed")
	r.want(t, 200, "")
	if a.Changed || a.CallID != nil {
		t.Errorf("genuine callback for an unknown call: got %s, want nothing changed", r.Body)
	}
}

// The token of a deleted number no longer authenticates callbacks of its
// account, except for the calls placed with it.
func TestTwilioStatusDeletedNumbersTokensDoNotCount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	account, token := b.twilio.NewAccount()
	b.twilio.AddNumber(account, "+15550540000")
	r := b.do("POST", "/v1/phone-numbers", "", map[string]any{"number": "+15550540000", "provider": "twilio",
		"twilio_account_sid": account, "twilio_auth_token": token})
	r.want(t, 201, "")
	c := b.activeCall("+15550540000", account, "ringing", nil)
	b.do("DELETE", "/v1/phone-numbers/"+endcall.Deref(c.PhoneNumberID), "", nil).want(t, 200, "")

	r, _ = b.callback(account, token, twiliotest.NewSID("CA"), "completed")
	r.want(t, 403, "forbidden")
	r, a := b.callback(account, token, endcall.Deref(c.CallSID), "completed")
	r.want(t, 200, "")
	if !a.Changed {
		t.Errorf("callback for the deleted number's own call: got %s, want it ended", r.Body)
	}
}

func TestPhoneNumberIsLookedUpInItsAccount(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.providerTimeout = 300 * time.Millisecond })
	account, token := b.twilio.NewAccount()
	b.twilio.AddNumber(account, "+15550600001")
	b.twilio.AddNumber(b.platformSID, "+15550600002")
	byot := func(number, token string) map[string]any {
		return map[string]any{"number": number, "provider": "twilio", "twilio_account_sid": account, "twilio_auth_token": token}
	}
	before := b.snapshot()
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		wantIn string
	}{
		{"a number the platform's account does not hold", map[string]any{"number": "+15550600001", "provider": "twilio"}, 400, "does not hold the number +15550600001"},
		{"a number the BYOT account does not hold", byot("+15550600002", token), 400, "does not hold the number +15550600002"},
		{"wrong BYOT credentials", byot("+15550600001", "wrong-token-0123456789abcdef"), 400, "refused the credentials"},
		{"a BYOT account Twilio does not know", map[string]any{"number": "+15550600001", "provider": "twilio",
			"twilio_account_sid": twiliotest.NewSID("AC"), "twilio_auth_token": token}, 400, "refused the credentials"},
	} {
		r := b.do("POST", "/v1/phone-numbers", "", tc.body)
		r.want(t, tc.status, "invalid_request")
		if !strings.Contains(r.Message, tc.wantIn) {
			t.Errorf("%s: message %q, want it to say %q", tc.name, r.Message, tc.wantIn)
		}
	}
	b.twilio.SetDelay("", time.Second)
	r := b.do("POST", "/v1/phone-numbers", "", byot("+15550600001", token))
	r.want(t, 503, "unavailable")
	b.twilio.SetDelay("", 0)
	if b.snapshot() != before {
		t.Error("a refused number was stored")
	}
	// Each lookup asks the account the number will be used with, with its credentials.
	for _, req := range b.twilio.NumberLookups() {
		if req.AccountSID != req.AuthUser || req.Method != "GET" || req.Form.Get("PhoneNumber") == "" {
			t.Errorf("lookup %s", req)
		}
	}

	b.do("POST", "/v1/phone-numbers", "", byot("+15550600001", token)).want(t, 201, "")
	b.do("POST", "/v1/phone-numbers", "", map[string]any{"number": "+15550600002", "provider": "twilio"}).want(t, 201, "")
}

func TestSimulatedTelephonyStoresNumbersUnchecked(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *options) { o.deps = func(d *api.Deps) { d.Twilio.Numbers = nil } })
	b.do("POST", "/v1/phone-numbers", "", map[string]any{"number": "+15550610000", "provider": "twilio"}).want(t, 201, "")
	if got := len(b.twilio.Requests()); got != 0 {
		t.Errorf("Twilio requests: got %d, want 0", got)
	}
}

func TestPlatformNumberBelongsToOneWorkspace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	id, _ := b.phone("+15550620000", false)
	_, otherKey, err := b.store.CreateAPIKey(context.Background(), "other-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	claim := func(key string) response {
		return b.do("POST", "/v1/phone-numbers", key, map[string]any{"number": "+15550620000", "provider": "twilio"})
	}
	before := b.snapshot()
	r := claim(otherKey)
	r.want(t, 409, "conflict")
	if !strings.Contains(r.Message, "another workspace") {
		t.Errorf("message %q, want it to say another workspace holds the number", r.Message)
	}
	if b.snapshot() != before {
		t.Error("a refused claim changed the database")
	}
	// Once the holder lets it go, the number may move.
	b.do("DELETE", "/v1/phone-numbers/"+id, "", nil).want(t, 200, "")
	claim(otherKey).want(t, 201, "")
	claim("").want(t, 409, "conflict")

	// Racing claims of a free number: one workspace gets it.
	b.twilio.AddNumber(b.platformSID, "+15550620001")
	var wg sync.WaitGroup
	for _, key := range []string{"", otherKey, "", otherKey} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.do("POST", "/v1/phone-numbers", key, map[string]any{"number": "+15550620001", "provider": "twilio"})
		}()
	}
	wg.Wait()
	var holders int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM phone_numbers WHERE number = '+15550620001' AND deleted_at IS NULL`).Scan(&holders); err != nil {
		t.Fatal(err)
	}
	if holders != 1 {
		t.Errorf("number held %d times, want once", holders)
	}
}

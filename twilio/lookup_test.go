package twilio_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/twilio/twiliotest"
)

func TestLookupNumber(t *testing.T) {
	t.Parallel()
	b := setup(t, time.Second)
	ctx := context.Background()
	b.fake.AddNumber(b.platformSID, "+15550700000")
	b.fake.AddNumber(b.platformSID, "+155507000001") // contains the first: Twilio's filter matches it too
	b.fake.AddNumber(b.byot.AccountSID, "+15550700001")

	for _, tc := range []struct {
		name   string
		creds  *endcall.ProviderCredentials
		number string
		code   string
		wantIn string
	}{
		{"platform number", nil, "+15550700000", "", ""},
		{"BYOT number", b.byot, "+15550700001", "", ""},
		{"held by another account", nil, "+15550700001", endcall.EINVALID, "platform's Twilio account does not hold the number +15550700001"},
		{"only a longer number matches", b.byot, "+1555070000", endcall.EINVALID, "does not hold"},
		{"wrong token", &endcall.ProviderCredentials{AccountSID: b.byot.AccountSID, AuthToken: "0123456789abcdef0123456789abcdef"}, "+15550700001",
			endcall.EINVALID, "refused the credentials given for account " + b.byot.AccountSID},
		{"unknown account", &endcall.ProviderCredentials{AccountSID: twiliotest.NewSID("AC"), AuthToken: b.byot.AuthToken}, "+15550700001",
			endcall.EINVALID, "refused the credentials"},
	} {
		err := b.client.LookupNumber(ctx, tc.creds, tc.number)
		if endcall.ErrorCode(err) != tc.code || (err != nil && !strings.Contains(endcall.ErrorMessage(err), tc.wantIn)) {
			t.Errorf("%s: got %v, want code %q mentioning %q", tc.name, err, tc.code, tc.wantIn)
		}
	}
	for _, r := range b.fake.NumberLookups() {
		if r.Method != "GET" || r.AuthUser != r.AccountSID {
			t.Errorf("lookup %s: want a GET in the credentials' own account", r)
		}
	}

	b.fake.FailNext("", 1, http.StatusServiceUnavailable)
	if err := b.client.LookupNumber(ctx, nil, "+15550700000"); endcall.ErrorCode(err) != endcall.EUNAVAILABLE {
		t.Errorf("Twilio down: got %v, want unavailable", err)
	}
	b.fake.SetDelay("", 3*time.Second)
	if err := b.client.LookupNumber(ctx, nil, "+15550700000"); endcall.ErrorCode(err) != endcall.EUNAVAILABLE || !strings.Contains(endcall.ErrorMessage(err), "did not answer") {
		t.Errorf("Twilio slow: got %v, want unavailable after the timeout", err)
	}
}

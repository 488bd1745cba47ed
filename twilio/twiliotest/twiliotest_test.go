package twiliotest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/endcall/endcall/twilio/twiliotest"
)

// post sends a form-encoded POST as twilio-go does and returns the status
// and decoded JSON body.
func post(t *testing.T, rawURL, user, pass string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	return resp.StatusCode, body
}

func callURL(s *twiliotest.Server, account, call string) string {
	return s.URL() + "/2010-04-01/Accounts/" + account + "/Calls/" + call + ".json"
}

func TestWireFormat(t *testing.T) {
	t.Parallel()
	s := twiliotest.New(t)
	acct, token := s.NewAccount()
	call := s.NewCall(acct, "in-progress")
	hangup := url.Values{"Status": {"completed"}}

	tests := []struct {
		name       string
		user, pass string
		wantStatus int
		wantBody   map[string]any
	}{
		{
			name: "no credentials", wantStatus: 401,
			wantBody: map[string]any{"code": 20003.0, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401.0},
		},
		{
			name: "wrong token", user: acct, pass: "nope", wantStatus: 401,
			wantBody: map[string]any{"code": 20003.0, "status": 401.0},
		},
		{
			name: "hangup", user: acct, pass: token, wantStatus: 200,
			wantBody: map[string]any{"sid": call, "account_sid": acct, "status": "completed", "api_version": "2010-04-01",
				"uri": "/2010-04-01/Accounts/" + acct + "/Calls/" + call + ".json"},
		},
		{
			name: "hangup again", user: acct, pass: token, wantStatus: 400,
			wantBody: map[string]any{"code": 21220.0, "message": "Call is not in-progress. Cannot redirect.", "more_info": "https://www.twilio.com/docs/errors/21220", "status": 400.0},
		},
	}
	for _, tt := range tests {
		status, body := post(t, callURL(s, acct, call), tt.user, tt.pass, hangup)
		if status != tt.wantStatus {
			t.Errorf("%s: status: got %d, want %d", tt.name, status, tt.wantStatus)
		}
		for k, want := range tt.wantBody {
			if body[k] != want {
				t.Errorf("%s: body %s: got %v, want %v", tt.name, k, body[k], want)
			}
		}
	}
	// Twilio dates are RFC 2822.
	status, body := post(t, s.URL()+"/2010-04-01/Accounts/"+acct+"/Calls.json", acct, token,
		url.Values{"From": {"+15005550006"}, "To": {"+14155551212"}, "Url": {"https://x.example/twiml"}})
	if status != 201 {
		t.Fatalf("create: status %d, want 201", status)
	}
	if _, err := time.Parse(time.RFC1123Z, body["date_created"].(string)); err != nil {
		t.Errorf("date_created %v: %v", body["date_created"], err)
	}

	reqs := s.Requests()
	if len(reqs) != 5 {
		t.Fatalf("requests: got %d, want 5", len(reqs))
	}
	for i, want := range []int{401, 401, 200, 400, 201} {
		if reqs[i].ResponseStatus != want {
			t.Errorf("request %d (%s): response status %d, want %d", i, reqs[i], reqs[i].ResponseStatus, want)
		}
	}
	if !reqs[2].Authenticated || reqs[1].Authenticated || reqs[2].AuthUser != acct || reqs[2].AccountSID != acct || reqs[2].CallSID != call {
		t.Errorf("recorded auth: got %+v and %+v", reqs[1], reqs[2])
	}
	if got := s.HangupCount(call); got != 4 {
		t.Errorf("HangupCount: got %d, want 4", got)
	}
}

func TestScripts(t *testing.T) {
	t.Parallel()
	s := twiliotest.New(t)
	acct, token := s.NewAccount()
	call := s.NewCall(acct, "ringing")
	s.FailNext(call, 2, 500)
	s.FailNextWith(call, 1, twiliotest.ErrTooManyRequests)
	cancel := url.Values{"Status": {"canceled"}}

	var got []int
	for range 4 {
		status, _ := post(t, callURL(s, acct, call), acct, token, cancel)
		got = append(got, status)
	}
	want := []int{500, 500, 429, 200}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses: got %v, want %v", got, want)
		}
	}
	if c, _ := s.Call(call); c.Status != "canceled" {
		t.Errorf("status: got %q, want canceled", c.Status)
	}

	// OnUpdate can hold requests back to line up a race, then answer.
	other := s.NewCall(acct, "in-progress")
	release := make(chan struct{})
	var mu sync.Mutex
	seen := 0
	s.OnUpdate(func(r twiliotest.Request) *twiliotest.Error {
		mu.Lock()
		seen++
		mu.Unlock()
		<-release
		if r.CallSID == other {
			e := twiliotest.ErrorFor(503)
			return &e
		}
		return nil
	})
	done := make(chan int)
	go func() {
		// Not post: t.Fatal must not be called from this goroutine.
		req, _ := http.NewRequest(http.MethodPost, callURL(s, acct, other), strings.NewReader("Status=completed"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(acct, token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	for {
		mu.Lock()
		n := seen
		mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if status := <-done; status != 503 {
		t.Errorf("hooked update: got %d, want 503", status)
	}
}

func TestUnknownCalls(t *testing.T) {
	t.Parallel()
	s := twiliotest.New(t)
	acct, token := s.NewAccount()
	other, _ := s.NewAccount()
	sid := twiliotest.NewSID("CA")
	hangup := url.Values{"Status": {"completed"}}

	if status, body := post(t, callURL(s, acct, sid), acct, token, hangup); status != 404 || body["code"] != 20404.0 {
		t.Errorf("unknown call: got %d %v, want 404 with code 20404", status, body)
	}
	if status, _ := post(t, callURL(s, other, s.NewCall(other, "in-progress")), acct, token, hangup); status != 404 {
		t.Errorf("another account's call: got %d, want 404", status)
	}
	s.AllowUnknownCalls()
	if status, body := post(t, callURL(s, acct, sid), acct, token, hangup); status != 200 || body["status"] != "completed" {
		t.Errorf("unknown call allowed: got %d %v, want 200 completed", status, body)
	}
}

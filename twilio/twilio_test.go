package twilio_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/twilio"
	"github.com/endcall/endcall/twilio/twiliotest"
)

// bundle is what a test needs: a fake Twilio, a platform account and a
// BYOT account registered with it, and a client pointed at the fake.
type bundle struct {
	fake                         *twiliotest.Server
	platformSID, platformToken   string
	byot                         *endcall.ProviderCredentials
	client                       *twilio.Client
	secretsThatMustNeverBeLogged []string
}

func setup(t testing.TB, timeout time.Duration) *bundle {
	t.Helper()
	fake := twiliotest.New(t)
	psid, ptoken := fake.NewAccount()
	bsid, btoken := fake.NewAccount()
	c := twilio.New(twilio.Config{BaseURL: fake.URL(), AccountSID: psid, AuthToken: ptoken, Timeout: timeout})
	t.Cleanup(c.CloseIdleConnections)
	return &bundle{
		fake: fake, platformSID: psid, platformToken: ptoken,
		byot:                         &endcall.ProviderCredentials{AccountSID: bsid, AuthToken: btoken},
		client:                       c,
		secretsThatMustNeverBeLogged: []string{ptoken, btoken},
	}
}

// errKind classifies a Hangup error: "", "temporary" or "permanent".
func errKind(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var he *endcall.HangupError
	if !errors.As(err, &he) {
		t.Fatalf("error %v (%T) is not an *endcall.HangupError", err, err)
	}
	if he.Permanent {
		return "permanent"
	}
	return "temporary"
}

func TestHangup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// arrange registers what the case needs and returns the credentials
		// and call SID to hang up, and the hangup status to send.
		arrange    func(b *bundle) (creds *endcall.ProviderCredentials, callSID, status string)
		wantResult endcall.HangupStatus
		wantErr    string // "", "temporary", "permanent"
		// wantStatuses are the Status values the fake must have received,
		// in order; wantAccount the account of path and Basic auth.
		wantStatuses []string
		wantAccount  func(b *bundle) string
		wantFinal    string // the fake's call status afterwards
	}{
		{
			name: "platform credentials",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return nil, b.fake.NewCall(b.platformSID, "in-progress"), "completed"
			},
			wantResult: endcall.HangupSucceeded, wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.platformSID }, wantFinal: "completed",
		},
		{
			name: "BYOT credentials",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return b.byot, b.fake.NewCall(b.byot.AccountSID, "in-progress"), "completed"
			},
			wantResult: endcall.HangupSucceeded, wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.byot.AccountSID }, wantFinal: "completed",
		},
		{
			name: "queued call is canceled",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return nil, b.fake.NewCall(b.platformSID, "queued"), "canceled"
			},
			wantResult: endcall.HangupSucceeded, wantStatuses: []string{"canceled"},
			wantAccount: func(b *bundle) string { return b.platformSID }, wantFinal: "canceled",
		},
		{
			name: "empty status means completed",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return nil, b.fake.NewCall(b.platformSID, "in-progress"), ""
			},
			wantResult: endcall.HangupSucceeded, wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.platformSID }, wantFinal: "completed",
		},
		{
			name: "cancel of a call answered meanwhile completes it",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return nil, b.fake.NewCall(b.platformSID, "in-progress"), "canceled"
			},
			wantResult: endcall.HangupSucceeded, wantStatuses: []string{"canceled", "completed"},
			wantAccount: func(b *bundle) string { return b.platformSID }, wantFinal: "completed",
		},
		{
			name: "21220 call already over",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return nil, b.fake.NewCall(b.platformSID, "completed"), "completed"
			},
			wantResult: endcall.HangupAlreadyEnded, wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.platformSID }, wantFinal: "completed",
		},
		{
			name: "500 is temporary",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				sid := b.fake.NewCall(b.platformSID, "in-progress")
				b.fake.FailNext(sid, 1, 500)
				return nil, sid, "completed"
			},
			wantErr: "temporary", wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.platformSID }, wantFinal: "in-progress",
		},
		{
			name: "503 is temporary",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				sid := b.fake.NewCall(b.platformSID, "in-progress")
				b.fake.FailNext(sid, 1, 503)
				return nil, sid, "completed"
			},
			wantErr: "temporary", wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.platformSID }, wantFinal: "in-progress",
		},
		{
			name: "429 is temporary",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				sid := b.fake.NewCall(b.byot.AccountSID, "in-progress")
				b.fake.FailNext(sid, 1, 429)
				return b.byot, sid, "completed"
			},
			wantErr: "temporary", wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.byot.AccountSID }, wantFinal: "in-progress",
		},
		{
			name: "404 unknown call counts as already ended",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return nil, twiliotest.NewSID("CA"), "completed"
			},
			wantResult: endcall.HangupAlreadyEnded, wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.platformSID },
		},
		{
			name: "another account's call reads as unknown, so already ended",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return b.byot, b.fake.NewCall(b.platformSID, "in-progress"), "completed"
			},
			wantResult: endcall.HangupAlreadyEnded, wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.byot.AccountSID }, wantFinal: "in-progress",
		},
		{
			name: "401 wrong token is permanent",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				creds := &endcall.ProviderCredentials{AccountSID: b.byot.AccountSID, AuthToken: "0123456789abcdef0123456789abcdef"}
				return creds, b.fake.NewCall(b.byot.AccountSID, "in-progress"), "completed"
			},
			wantErr: "permanent", wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.byot.AccountSID }, wantFinal: "in-progress",
		},
		{
			name: "403 is permanent",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				sid := b.fake.NewCall(b.platformSID, "in-progress")
				b.fake.FailNext(sid, 1, 403)
				return nil, sid, "completed"
			},
			wantErr: "permanent", wantStatuses: []string{"completed"},
			wantAccount: func(b *bundle) string { return b.platformSID }, wantFinal: "in-progress",
		},
		{
			name: "token with illegal characters is refused before sending",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				creds := &endcall.ProviderCredentials{AccountSID: b.byot.AccountSID, AuthToken: "not/a:token"}
				return creds, b.fake.NewCall(b.byot.AccountSID, "in-progress"), "completed"
			},
			wantErr: "permanent", wantFinal: "in-progress",
		},
		{
			name: "incomplete BYOT credentials",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return &endcall.ProviderCredentials{AccountSID: b.byot.AccountSID}, b.fake.NewCall(b.byot.AccountSID, "in-progress"), "completed"
			},
			wantErr: "permanent", wantFinal: "in-progress",
		},
		{
			name: "call SID that would change the path",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return nil, "CA1/../../Messages", "completed"
			},
			wantErr: "permanent",
		},
		{
			name: "status other than completed or canceled",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, string, string) {
				return nil, b.fake.NewCall(b.platformSID, "in-progress"), "busy"
			},
			wantErr: "permanent", wantFinal: "in-progress",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 2*time.Second)
			creds, sid, status := tt.arrange(b)

			got, err := b.client.Hangup(context.Background(), endcall.HangupTarget{Credentials: creds, CallSID: sid, Status: endcall.CallStatus(status)})

			if got != tt.wantResult {
				t.Errorf("result: got %q, want %q", got, tt.wantResult)
			}
			if k := errKind(t, err); k != tt.wantErr {
				t.Errorf("error: got %q (%v), want %q", k, err, tt.wantErr)
			}
			if err != nil {
				for _, secret := range b.secretsThatMustNeverBeLogged {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q contains an auth token", err)
					}
				}
			}
			reqs := b.fake.Requests()
			var gotStatuses []string
			for _, r := range reqs {
				gotStatuses = append(gotStatuses, r.Form.Get("Status"))
				wantPath := "/2010-04-01/Accounts/" + tt.wantAccount(b) + "/Calls/" + sid + ".json"
				if r.Method != http.MethodPost || r.Path != wantPath {
					t.Errorf("request: got %s %s, want POST %s", r.Method, r.Path, wantPath)
				}
				if r.AuthUser != tt.wantAccount(b) {
					t.Errorf("Basic auth user: got %q, want %q", r.AuthUser, tt.wantAccount(b))
				}
			}
			if !slices.Equal(gotStatuses, tt.wantStatuses) {
				t.Errorf("Status values sent: got %q, want %q", gotStatuses, tt.wantStatuses)
			}
			if tt.wantFinal != "" {
				c, _ := b.fake.Call(sid)
				if c.Status != tt.wantFinal {
					t.Errorf("call status at Twilio: got %q, want %q", c.Status, tt.wantFinal)
				}
			}
		})
	}
}

func TestHangupNoCredentials(t *testing.T) {
	t.Parallel()
	fake := twiliotest.New(t)
	c := twilio.New(twilio.Config{BaseURL: fake.URL()})

	got, err := c.Hangup(context.Background(), endcall.HangupTarget{CallSID: twiliotest.NewSID("CA"), Status: "completed"})

	if got != "" || errKind(t, err) != "permanent" {
		t.Errorf("got (%q, %v), want a permanent error", got, err)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("requests: got %d, want 0", n)
	}
}

// TestHangupRetryAfter500 is the background retry's view: the first attempt
// fails temporarily, the second succeeds.
func TestHangupRetryAfter500(t *testing.T) {
	t.Parallel()
	b := setup(t, 2*time.Second)
	sid := b.fake.NewCall(b.platformSID, "in-progress")
	b.fake.FailNext(sid, 1, 500)

	var results []string
	for range 2 {
		got, err := b.client.Hangup(context.Background(), endcall.HangupTarget{CallSID: sid, Status: "completed"})
		results = append(results, string(got)+"/"+errKind(t, err))
	}

	if want := []string{"/temporary", "succeeded/"}; !slices.Equal(results, want) {
		t.Errorf("results: got %q, want %q", results, want)
	}
	if got := b.fake.HangupCount(sid); got != 2 {
		t.Errorf("hangup requests: got %d, want 2", got)
	}
}

func TestHangupTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration
		ctx     time.Duration // caller's deadline; 0 for none
	}{
		{name: "client timeout", timeout: 200 * time.Millisecond},
		{name: "caller deadline", timeout: 5 * time.Second, ctx: 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.timeout)
			sid := b.fake.NewCall(b.platformSID, "in-progress")
			b.fake.SetDelay(sid, 3*time.Second)
			ctx := context.Background()
			if tt.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctx)
				defer cancel()
			}

			start := time.Now()
			got, err := b.client.Hangup(ctx, endcall.HangupTarget{CallSID: sid, Status: "completed"})
			elapsed := time.Since(start)

			if got != "" || errKind(t, err) != "temporary" {
				t.Errorf("got (%q, %v), want a temporary error", got, err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v: want it to wrap context.DeadlineExceeded", err)
			}
			if elapsed < 150*time.Millisecond || elapsed > time.Second {
				t.Errorf("returned after %s, want about 200ms", elapsed)
			}
		})
	}
}

// TestHangupNonJSONErrors covers error answers that are not Twilio JSON, as
// a proxy or load balancer in front of Twilio would send them.
func TestHangupNonJSONErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status  int
		wantErr string
	}{
		{status: 502, wantErr: "temporary"},
		{status: 404, wantErr: "permanent"},
		{status: 429, wantErr: "temporary"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(tt.status)
				fmt.Fprint(w, "<html><body>Bad Gateway</body></html>")
			}))
			defer srv.Close()
			c := twilio.New(twilio.Config{BaseURL: srv.URL, AccountSID: "AC1", AuthToken: "t0ken"})

			got, err := c.Hangup(context.Background(), endcall.HangupTarget{CallSID: "CA1", Status: "completed"})

			if got != "" || errKind(t, err) != tt.wantErr {
				t.Errorf("got (%q, %v), want a %s error", got, err, tt.wantErr)
			}
			var api *twilio.APIError
			if !errors.As(err, &api) || api.Status != tt.status {
				t.Errorf("error %v: want an *APIError with status %d", err, tt.status)
			}
		})
	}
}

func TestHangupConnectionError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more

	c := twilio.New(twilio.Config{BaseURL: url, AccountSID: "AC1", AuthToken: "t0ken"})
	got, err := c.Hangup(context.Background(), endcall.HangupTarget{CallSID: "CA1", Status: "completed"})

	if got != "" || errKind(t, err) != "temporary" {
		t.Errorf("got (%q, %v), want a temporary error", got, err)
	}
	if strings.Contains(err.Error(), "api.twilio.com") {
		t.Errorf("error %q names api.twilio.com, not where the request went", err)
	}
}

// TestBaseURL proves that requests go to BaseURL: nothing listens on
// api.twilio.com from here, so the fake seeing the request is the proof.
func TestBaseURL(t *testing.T) {
	t.Parallel()
	var host string
	var mu sync.Mutex
	fake := twiliotest.New(t)
	sid, token := fake.NewAccount()
	// A front server records the Host header and forwards to the fake.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		host = r.Host
		mu.Unlock()
		http.Redirect(w, r, fake.URL()+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer front.Close()

	for _, base := range []string{fake.URL(), fake.URL() + "/"} {
		c := twilio.New(twilio.Config{BaseURL: base, AccountSID: sid, AuthToken: token})
		call := fake.NewCall(sid, "in-progress")
		if got, err := c.Hangup(context.Background(), endcall.HangupTarget{CallSID: call, Status: "completed"}); err != nil || got != endcall.HangupSucceeded {
			t.Errorf("BaseURL %q: got (%q, %v), want succeeded", base, got, err)
		}
		if n := fake.HangupCount(call); n != 1 {
			t.Errorf("BaseURL %q: fake saw %d hangups, want 1", base, n)
		}
	}

	// Redirects are not followed, and the Host header is BaseURL's host.
	c := twilio.New(twilio.Config{BaseURL: front.URL, AccountSID: sid, AuthToken: token})
	call := fake.NewCall(sid, "in-progress")
	_, err := c.Hangup(context.Background(), endcall.HangupTarget{CallSID: call, Status: "completed"})
	if errKind(t, err) != "temporary" {
		t.Errorf("redirect: got %v, want a temporary error", err)
	}
	if n := fake.HangupCount(call); n != 0 {
		t.Errorf("redirect was followed: fake saw %d hangups", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := strings.TrimPrefix(front.URL, "http://"); host != want {
		t.Errorf("Host header: got %q, want %q", host, want)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg     twilio.Config
		wantErr bool
	}{
		{cfg: twilio.Config{}},
		{cfg: twilio.Config{BaseURL: "https://api.twilio.com"}},
		{cfg: twilio.Config{BaseURL: "http://127.0.0.1:4010/"}},
		{cfg: twilio.Config{BaseURL: "api.twilio.com"}, wantErr: true},
		{cfg: twilio.Config{BaseURL: "ftp://api.twilio.com"}, wantErr: true},
		{cfg: twilio.Config{BaseURL: "http://mock/twilio"}, wantErr: true},
		{cfg: twilio.Config{BaseURL: "http://user:pw@mock"}, wantErr: true},
		{cfg: twilio.Config{Timeout: -time.Second}, wantErr: true},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("Validate(%+v): got %v, want error %v", tt.cfg, err, tt.wantErr)
		}
	}

	c := twilio.New(twilio.Config{BaseURL: "not a url", AccountSID: "AC1", AuthToken: "t"})
	if _, err := c.Hangup(context.Background(), endcall.HangupTarget{CallSID: "CA1", Status: "completed"}); errKind(t, err) != "permanent" {
		t.Errorf("Hangup with an invalid BaseURL: got %v, want a permanent error", err)
	}
}

// TestConcurrentHangups hangs one call up from 20 goroutines: the fake sees
// 20 requests, exactly one of which ends the call.
func TestConcurrentHangups(t *testing.T) {
	t.Parallel()
	b := setup(t, 2*time.Second)
	sid := b.fake.NewCall(b.byot.AccountSID, "in-progress")

	var wg sync.WaitGroup
	results := make([]endcall.HangupStatus, 20)
	for i := range results {
		wg.Go(func() {
			got, err := b.client.Hangup(context.Background(), endcall.HangupTarget{Credentials: b.byot, CallSID: sid, Status: "completed"})
			if err != nil {
				t.Errorf("hangup %d: %v", i, err)
			}
			results[i] = got
		})
	}
	wg.Wait()

	counts := map[endcall.HangupStatus]int{}
	for _, r := range results {
		counts[r]++
	}
	if counts[endcall.HangupSucceeded] != 1 || counts[endcall.HangupAlreadyEnded] != 19 {
		t.Errorf("outcomes: got %v, want 1 succeeded and 19 already_ended", counts)
	}
	if got := b.fake.HangupCount(sid); got != 20 {
		t.Errorf("hangup requests: got %d, want 20", got)
	}
}

// TestConnectionReuse checks that error answers do not cost a new
// connection each. twilio-go never closes the body of an error answer; when
// its JSON decoder stops before the end of the body (trailing bytes here),
// the connection would stay pinned for good without the client's own close.
func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	t.Run("fake Twilio", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 2*time.Second)
		for i := range 12 {
			sid := b.fake.NewCall(b.platformSID, "in-progress")
			switch i % 3 {
			case 1:
				b.fake.SetCallStatus(sid, "completed") // 21220
			case 2:
				b.fake.FailNext(sid, 1, 500)
			}
			_, _ = b.client.Hangup(context.Background(), endcall.HangupTarget{CallSID: sid, Status: "completed"})
		}
		if got := b.fake.Connections(); got != 1 {
			t.Errorf("connections: got %d, want 1", got)
		}
	})
	t.Run("error body with trailing bytes", func(t *testing.T) {
		t.Parallel()
		var conns atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(500)
			fmt.Fprint(w, `{"code":20500,"message":"Internal Server Error","more_info":"","status":500}`+strings.Repeat(" ", 20000))
		}))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		defer srv.Close()
		c := twilio.New(twilio.Config{BaseURL: srv.URL, AccountSID: "AC1", AuthToken: "t0ken"})
		defer c.CloseIdleConnections()
		for range 10 {
			if _, err := c.Hangup(context.Background(), endcall.HangupTarget{CallSID: "CA1", Status: "completed"}); errKind(t, err) != "temporary" {
				t.Fatalf("got %v, want a temporary error", err)
			}
		}
		if got := conns.Load(); got != 1 {
			t.Errorf("connections: got %d, want 1", got)
		}
	})
}

func TestCreateCall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		params   twilio.CreateCallParams
		byot     bool
		wantForm map[string][]string
	}{
		{
			name: "all parameters",
			params: twilio.CreateCallParams{From: "+15005550006", To: "+14155551212",
				URL: "https://agent.example.com/twiml?x=1&y=2", StatusCallback: "https://endcall.example.com/v1/providers/twilio/status",
				TimeLimit: 600},
			wantForm: map[string][]string{
				"From":                 {"+15005550006"},
				"To":                   {"+14155551212"},
				"Url":                  {"https://agent.example.com/twiml?x=1&y=2"},
				"StatusCallback":       {"https://endcall.example.com/v1/providers/twilio/status"},
				"StatusCallbackEvent":  {"initiated", "ringing", "answered", "completed"},
				"StatusCallbackMethod": {"POST"},
				"TimeLimit":            {"600"},
			},
		},
		{
			name:   "no callback, no time limit, BYOT",
			params: twilio.CreateCallParams{From: "+15005550006", To: "+14155551212", URL: "https://agent.example.com/twiml"},
			byot:   true,
			wantForm: map[string][]string{
				"From": {"+15005550006"},
				"To":   {"+14155551212"},
				"Url":  {"https://agent.example.com/twiml"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 2*time.Second)
			var creds *endcall.ProviderCredentials
			account := b.platformSID
			if tt.byot {
				creds, account = b.byot, b.byot.AccountSID
			}

			sid, err := b.client.CreateCall(context.Background(), creds, tt.params)
			if err != nil {
				t.Fatalf("CreateCall: %v", err)
			}

			creates := b.fake.Creates()
			if len(creates) != 1 {
				t.Fatalf("create requests: got %d, want 1", len(creates))
			}
			r := creates[0]
			if want := "/2010-04-01/Accounts/" + account + "/Calls.json"; r.Path != want || r.AuthUser != account {
				t.Errorf("request: got %s as %q, want %s as %q", r.Path, r.AuthUser, want, account)
			}
			if len(r.Form) != len(tt.wantForm) {
				t.Errorf("form: got %v, want %v", r.Form, tt.wantForm)
			}
			for k, want := range tt.wantForm {
				if got := r.Form[k]; !slices.Equal(got, want) {
					t.Errorf("form %s: got %q, want %q", k, got, want)
				}
			}
			c, ok := b.fake.Call(sid)
			if !ok || !strings.HasPrefix(sid, "CA") || c.Status != "queued" || c.AccountSID != account {
				t.Errorf("call %q at Twilio: got %+v (known %v), want a queued call of %s", sid, c, ok, account)
			}
		})
	}
}

func TestCreateCallErrors(t *testing.T) {
	t.Parallel()
	valid := twilio.CreateCallParams{From: "+15005550006", To: "+14155551212", URL: "https://agent.example.com/twiml"}
	tests := []struct {
		name         string
		arrange      func(b *bundle) (*endcall.ProviderCredentials, twilio.CreateCallParams)
		wantCode     string
		wantContains []string
		wantRequests int
	}{
		{
			name: "invalid To number",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, twilio.CreateCallParams) {
				p := valid
				p.To = "555-1212"
				return nil, p
			},
			wantCode: endcall.EINVALID, wantContains: []string{"21211", "Invalid 'To' Phone Number"}, wantRequests: 1,
		},
		{
			name: "wrong BYOT token",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, twilio.CreateCallParams) {
				return &endcall.ProviderCredentials{AccountSID: b.byot.AccountSID, AuthToken: "ffffffffffffffffffffffffffffffff"}, valid
			},
			wantCode: endcall.EINVALID, wantContains: []string{"20003", "Authenticate"}, wantRequests: 1,
		},
		{
			name: "Twilio 500",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, twilio.CreateCallParams) {
				b.fake.FailNext("", 1, 500)
				return nil, valid
			},
			wantCode: endcall.EUNAVAILABLE, wantContains: []string{"unavailable"}, wantRequests: 1,
		},
		{
			name: "Twilio 429",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, twilio.CreateCallParams) {
				b.fake.FailNext("", 1, 429)
				return b.byot, valid
			},
			wantCode: endcall.EUNAVAILABLE, wantContains: []string{"20429"}, wantRequests: 1,
		},
		{
			name: "timeout",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, twilio.CreateCallParams) {
				b.fake.SetDelay("", 2*time.Second)
				return nil, valid
			},
			wantCode: endcall.EUNAVAILABLE, wantContains: []string{"did not answer within 200ms"}, wantRequests: 1,
		},
		{
			name: "missing From",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, twilio.CreateCallParams) {
				p := valid
				p.From = ""
				return nil, p
			},
			wantCode: endcall.EINVALID, wantContains: []string{"From"},
		},
		{
			name: "missing URL",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, twilio.CreateCallParams) {
				p := valid
				p.URL = ""
				return nil, p
			},
			wantCode: endcall.EINVALID, wantContains: []string{"TwiML"},
		},
		{
			name: "incomplete credentials",
			arrange: func(b *bundle) (*endcall.ProviderCredentials, twilio.CreateCallParams) {
				return &endcall.ProviderCredentials{AccountSID: b.byot.AccountSID}, valid
			},
			wantCode: endcall.EINVALID, wantContains: []string{"credentials"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 200*time.Millisecond)
			creds, p := tt.arrange(b)

			sid, err := b.client.CreateCall(context.Background(), creds, p)

			if sid != "" || endcall.ErrorCode(err) != tt.wantCode {
				t.Fatalf("got (%q, %v), want code %s", sid, err, tt.wantCode)
			}
			msg := endcall.ErrorMessage(err)
			for _, want := range tt.wantContains {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q: want it to contain %q", msg, want)
				}
			}
			for _, secret := range b.secretsThatMustNeverBeLogged {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains an auth token", err)
				}
			}
			if got := len(b.fake.Requests()); got != tt.wantRequests {
				t.Errorf("requests: got %d, want %d", got, tt.wantRequests)
			}
		})
	}
}

func TestCreateCallNoPlatformCredentials(t *testing.T) {
	t.Parallel()
	c := twilio.New(twilio.Config{BaseURL: twiliotest.New(t).URL()})
	_, err := c.CreateCall(context.Background(), nil, twilio.CreateCallParams{From: "+15005550006", To: "+14155551212", URL: "https://x.example/twiml"})
	if endcall.ErrorCode(err) != endcall.EINVALID {
		t.Errorf("got %v, want %s", err, endcall.EINVALID)
	}
}

// sign computes X-Twilio-Signature the documented way: base64 of the
// HMAC-SHA1, keyed by the auth token, of the URL followed by every form
// parameter's name and value, sorted by name.
func sign(token, url string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := url
	for _, k := range keys {
		s += k + params[k]
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func TestValidateSignature(t *testing.T) {
	t.Parallel()
	const token = "12345678901234567890123456789012"
	const url = "https://endcall.example.com/v1/providers/twilio/status"
	params := map[string]string{
		"CallSid":     "CA1234567890ABCDE",
		"CallStatus":  "completed",
		"AccountSid":  "AC123",
		"From":        "+14158675310",
		"To":          "+18005551212",
		"Duration":    "42",
		"Caller Name": "a b&c=d",
	}
	good := sign(token, url, params)
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for k, v := range params {
			m[k] = v
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name      string
		token     string
		url       string
		params    map[string]string
		signature string
		want      bool
	}{
		{name: "valid", token: token, url: url, params: params, signature: good, want: true},
		{name: "valid, explicit default port", token: token, url: "https://endcall.example.com:443/v1/providers/twilio/status", params: params, signature: good, want: true},
		{name: "valid, no params", token: token, url: url, params: nil, signature: sign(token, url, nil), want: true},
		{name: "wrong token", token: "x" + token[1:], url: url, params: params, signature: good},
		{name: "tampered param", token: token, url: url, params: with("CallStatus", "in-progress"), signature: good},
		{name: "extra param", token: token, url: url, params: with("Extra", "1"), signature: good},
		{name: "other URL", token: token, url: url + "?x=1", params: params, signature: good},
		{name: "http instead of https", token: token, url: "http://endcall.example.com/v1/providers/twilio/status", params: params, signature: good},
		{name: "empty signature", token: token, url: url, params: params, signature: ""},
		{name: "garbage signature", token: token, url: url, params: params, signature: "not base64!"},
		{name: "empty token", token: "", url: url, params: params, signature: sign("", url, params)},
	}
	for _, tt := range tests {
		if got := twilio.ValidateSignature(tt.token, tt.url, tt.params, tt.signature); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSimulated(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := twilio.Simulated{Log: slog.New(slog.NewJSONHandler(&buf, nil))}
	creds := &endcall.ProviderCredentials{AccountSID: "AC1", AuthToken: "supersecrettoken"}

	got, err := s.Hangup(context.Background(), endcall.HangupTarget{Credentials: creds, CallSID: "CA42", Status: "canceled"})

	if got != endcall.HangupSucceeded || err != nil {
		t.Errorf("got (%q, %v), want (%q, nil)", got, err, endcall.HangupSucceeded)
	}
	line := buf.String()
	for _, want := range []string{`"call_sid":"CA42"`, `"status":"canceled"`} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q: want it to contain %s", line, want)
		}
	}
	if strings.Contains(line, "supersecrettoken") {
		t.Errorf("log %q contains the auth token", line)
	}

	sid, err := s.CreateCall(context.Background(), nil, twilio.CreateCallParams{From: "+1", To: "+2"})
	if err != nil || len(sid) != 34 || !strings.HasPrefix(sid, "CA") {
		t.Errorf("CreateCall: got (%q, %v), want a CA... SID", sid, err)
	}
}

func BenchmarkHangup(b *testing.B) {
	for _, mode := range []string{"platform", "byot"} {
		b.Run(mode, func(b *testing.B) {
			bb := setup(b, 5*time.Second)
			var creds *endcall.ProviderCredentials
			account := bb.platformSID
			if mode == "byot" {
				creds, account = bb.byot, bb.byot.AccountSID
			}
			sids := make([]string, b.N)
			for i := range sids {
				sids[i] = bb.fake.NewCall(account, "in-progress")
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if got, err := bb.client.Hangup(ctx, endcall.HangupTarget{Credentials: creds, CallSID: sids[i], Status: "completed"}); err != nil || got != endcall.HangupSucceeded {
					b.Fatalf("got (%q, %v)", got, err)
				}
			}
		})
	}
}

// BenchmarkHangupCanned measures the client side alone, as far as one
// process allows: the server answers every request with one canned call
// resource and does nothing else.
func BenchmarkHangupCanned(b *testing.B) {
	body := []byte(`{"account_sid":"AC1","sid":"CA1","status":"completed","api_version":"2010-04-01","uri":"/2010-04-01/Accounts/AC1/Calls/CA1.json"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	c := twilio.New(twilio.Config{BaseURL: srv.URL, AccountSID: "AC1", AuthToken: "t0ken"})
	defer c.CloseIdleConnections()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if got, err := c.Hangup(ctx, endcall.HangupTarget{CallSID: "CA1", Status: "completed"}); err != nil || got != endcall.HangupSucceeded {
			b.Fatalf("got (%q, %v)", got, err)
		}
	}
}

func BenchmarkHangupParallel(b *testing.B) {
	bb := setup(b, 5*time.Second)
	bb.fake.AllowUnknownCalls()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if got, err := bb.client.Hangup(ctx, endcall.HangupTarget{Credentials: bb.byot, CallSID: twiliotest.NewSID("CA"), Status: "completed"}); err != nil || got != endcall.HangupSucceeded {
				b.Errorf("got (%q, %v)", got, err)
				return
			}
		}
	})
}

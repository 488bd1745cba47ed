package twilio

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	twclient "github.com/twilio/twilio-go/client"
	twapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/endcall/endcall"
)

// DefaultBaseURL is where Twilio REST requests go unless Config.BaseURL says otherwise.
const DefaultBaseURL = "https://api.twilio.com"

// DefaultTimeout bounds one request when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Config configures a Client.
type Config struct {
	// BaseURL is the scheme and host every request is sent to, paths
	// unchanged (TWILIO_API_BASE_URL). Empty means DefaultBaseURL.
	BaseURL string
	// AccountSID and AuthToken are the platform's credentials, used when a
	// call has no BYOT credentials. Both may be empty.
	AccountSID, AuthToken string
	// Timeout bounds each request (PROVIDER_TIMEOUT). Zero means DefaultTimeout.
	Timeout time.Duration
}

// Validate reports a BaseURL that is not an absolute http(s) URL made of a
// scheme and host only, or a negative timeout.
func (cfg Config) Validate() error {
	if _, err := parseBaseURL(cfg.BaseURL); err != nil {
		return err
	}
	if cfg.Timeout < 0 {
		return fmt.Errorf("twilio: timeout %s is negative", cfg.Timeout)
	}
	return nil
}

func parseBaseURL(s string) (*url.URL, error) {
	if s == "" {
		s = DefaultBaseURL
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("twilio: base URL %q is not an absolute http(s) URL", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("twilio: base URL %q must be a scheme and host only", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// Client talks to the Twilio REST API through twilio-go. It is safe for
// concurrent use; its connections are pooled and shared by all accounts.
type Client struct {
	base      *url.URL
	baseErr   error
	platform  *endcall.ProviderCredentials
	timeout   time.Duration
	transport http.RoundTripper
}

var _ endcall.Telephony = (*Client)(nil)

// New returns a Client. An invalid BaseURL (see Config.Validate) makes every
// request fail.
func New(cfg Config) *Client {
	c := &Client{timeout: cfg.Timeout}
	c.base, c.baseErr = parseBaseURL(cfg.BaseURL)
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if cfg.AccountSID != "" && cfg.AuthToken != "" {
		c.platform = &endcall.ProviderCredentials{AccountSID: cfg.AccountSID, AuthToken: cfg.AuthToken}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Every request goes to one host; keep enough idle connections for a
	// busy API process instead of the default two.
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	c.transport = t
	return c
}

// CloseIdleConnections closes pooled connections that are not in use.
func (c *Client) CloseIdleConnections() {
	if t, ok := c.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// APIError is an error answer of the Twilio REST API: the HTTP status and
// Twilio's error code and message.
type APIError struct {
	Status   int
	Code     int
	Message  string
	MoreInfo string
}

// Error describes the answer without credentials: status, code and message.
func (e *APIError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("HTTP %d from Twilio", e.Status)
	}
	return fmt.Sprintf("HTTP %d, Twilio error %d: %s", e.Status, e.Code, e.Message)
}

// Twilio error codes the client acts on.
const (
	codeNotInProgress = 21220 // "Call is not in-progress. Cannot redirect."
	codeNotFound      = 20404
	codeAuthenticate  = 20003
	codeBadUsername   = 21222 // twilio-go's own check of the account SID
	codeBadPassword   = 21224 // twilio-go's own check of the auth token
)

// Hangup ends t.CallSID at Twilio by updating the call with
// Status=completed, or canceled for a call that is still queued or ringing,
// using t.Credentials or, when they are nil, the platform's credentials.
// With a final message an in-progress call is given TwiML instead, which
// says the message and then hangs up. It returns endcall.HangupSucceeded or
// endcall.HangupAlreadyEnded; every error is an *endcall.HangupError,
// Permanent when retrying cannot help.
func (c *Client) Hangup(ctx context.Context, t endcall.HangupTarget) (endcall.HangupStatus, error) {
	status := t.Status
	if status == "" {
		status = endcall.StatusCompleted
	}
	if status != endcall.StatusCompleted && status != endcall.StatusCanceled {
		return "", permanent(fmt.Errorf("twilio: hangup status %q is neither completed nor canceled", status))
	}
	if !validSID(t.CallSID) {
		return "", permanent(fmt.Errorf("twilio: call SID %q is not a Twilio SID", t.CallSID))
	}
	creds, err := c.credentials(t.Credentials)
	if err != nil {
		return "", permanent(err)
	}

	params := new(twapi.UpdateCallParams)
	if status == endcall.StatusCompleted && t.FinalMessage != "" {
		params.SetTwiml(SayThenHangup(t.FinalMessage))
	} else {
		params.SetStatus(string(status))
	}
	got, err := c.updateCall(ctx, creds, t.CallSID, params)
	if err == nil && status == endcall.StatusCanceled && endcall.CallStatus(got) == endcall.StatusInProgress {
		// Twilio ignores "canceled" for a call that was answered in the
		// meantime; such a call must be completed instead.
		_, err = c.updateCall(ctx, creds, t.CallSID, new(twapi.UpdateCallParams).SetStatus(string(endcall.StatusCompleted)))
	}
	if err == nil {
		return endcall.HangupSucceeded, nil
	}

	var api *APIError
	if errors.As(err, &api) && (api.Code == codeNotInProgress || api.Code == codeNotFound) {
		return endcall.HangupAlreadyEnded, nil
	}
	return "", &endcall.HangupError{
		Permanent: isPermanent(err),
		Err:       fmt.Errorf("twilio: hang up call %s: %w", t.CallSID, err),
	}
}

// SayThenHangup is the TwiML that says message to the caller and then hangs
// up; the message is XML-escaped.
func SayThenHangup(message string) string {
	var b strings.Builder
	b.WriteString("<Response><Say>")
	// EscapeText fails only when its writer does, and a Builder never does.
	_ = xml.EscapeText(&b, []byte(message))
	b.WriteString("</Say><Hangup/></Response>")
	return b.String()
}

// updateCall makes one UpdateCall request and returns the status of the
// call resource Twilio answered with.
func (c *Client) updateCall(ctx context.Context, creds *endcall.ProviderCredentials, callSID string, params *twapi.UpdateCallParams) (string, error) {
	var got string
	err := c.do(ctx, creds, func(api *twapi.ApiService) error {
		call, err := api.UpdateCall(callSID, params)
		if err == nil && call.Status != nil {
			got = *call.Status
		}
		return err
	})
	return got, err
}

// CreateCallParams are the parameters of an outbound call.
type CreateCallParams struct {
	From, To string
	// URL returns the TwiML that connects the call.
	URL string
	// StatusCallback receives initiated, ringing, answered and completed
	// events by POST; empty for none.
	StatusCallback string
	// TimeLimit is the maximum call duration in seconds; zero for Twilio's default.
	TimeLimit int
}

// CreateCall places an outbound call with creds, or the platform's
// credentials when creds is nil, and returns its SID. Twilio's 4xx answers
// come back as an *endcall.Error with code EINVALID; outages, 429s and
// timeouts as EUNAVAILABLE.
func (c *Client) CreateCall(ctx context.Context, creds *endcall.ProviderCredentials, p CreateCallParams) (string, error) {
	switch {
	case p.From == "":
		return "", endcall.Errorf(endcall.EINVALID, "A caller number (From) is required to place a call.")
	case p.To == "":
		return "", endcall.Errorf(endcall.EINVALID, "A number to call (To) is required to place a call.")
	case p.URL == "":
		return "", endcall.Errorf(endcall.EINVALID, "No TwiML URL is configured to connect the call.")
	}
	creds, err := c.credentials(creds)
	if err != nil {
		return "", endcall.Errorf(endcall.EINVALID, "No Twilio credentials are available for this phone number.")
	}

	params := (&twapi.CreateCallParams{}).SetFrom(p.From).SetTo(p.To).SetUrl(p.URL)
	if p.StatusCallback != "" {
		params.SetStatusCallback(p.StatusCallback).
			SetStatusCallbackEvent([]string{"initiated", "ringing", "answered", "completed"}).
			SetStatusCallbackMethod(http.MethodPost)
	}
	if p.TimeLimit > 0 {
		params.SetTimeLimit(p.TimeLimit)
	}
	var sid string
	err = c.do(ctx, creds, func(api *twapi.ApiService) error {
		call, err := api.CreateCall(params)
		if err == nil {
			if call.Sid == nil || *call.Sid == "" {
				return errors.New("twilio: created call has no sid")
			}
			sid = *call.Sid
		}
		return err
	})
	if err == nil {
		return sid, nil
	}

	var api *APIError
	var te *timeoutError
	switch {
	case errors.As(err, &te):
		return "", endcall.Errorf(endcall.EUNAVAILABLE, "Twilio did not answer within %s.", te.after)
	case errors.As(err, &api) && api.Status == http.StatusTooManyRequests:
		return "", endcall.Errorf(endcall.EUNAVAILABLE, "Twilio is rate limiting requests (Twilio error %d: %s).", api.Code, api.Message)
	case errors.As(err, &api) && api.Status >= 400 && api.Status < 500:
		return "", endcall.Errorf(endcall.EINVALID, "Twilio refused the call (Twilio error %d: %s).", api.Code, api.Message)
	case errors.As(err, &api):
		return "", endcall.Errorf(endcall.EUNAVAILABLE, "Twilio is unavailable (HTTP %d).", api.Status)
	case errors.As(err, new(*permanentError)):
		return "", fmt.Errorf("twilio: create call: %w", err)
	}
	return "", endcall.Errorf(endcall.EUNAVAILABLE, "Twilio could not be reached.")
}

// LookupNumber checks, through the account's IncomingPhoneNumbers list,
// that the Twilio account of creds (the platform's when nil) holds number.
// Credentials Twilio refuses and a number the account does not hold are
// *endcall.Error EINVALID, each with its own message; outages, 429s and
// timeouts are EUNAVAILABLE.
func (c *Client) LookupNumber(ctx context.Context, creds *endcall.ProviderCredentials, number string) error {
	whose, refused := "The platform's Twilio account", "Twilio refused the platform's credentials."
	if creds != nil {
		whose = "Twilio account " + creds.AccountSID
		refused = "Twilio refused the credentials given for account " + creds.AccountSID + "."
	}
	if c.baseErr != nil {
		return fmt.Errorf("twilio: look up number: %w", c.baseErr)
	}
	creds, err := c.credentials(creds)
	if err != nil {
		return endcall.Errorf(endcall.EINVALID, "No Twilio credentials are available to check this number: give twilio_account_sid and twilio_auth_token.")
	}
	held := false
	err = c.do(ctx, creds, func(api *twapi.ApiService) error {
		// The filter also matches numbers that merely contain it; one page
		// of them is plenty to find the exact one.
		params := (&twapi.ListIncomingPhoneNumberParams{}).SetPhoneNumber(number).SetPageSize(50).SetLimit(50)
		list, err := api.ListIncomingPhoneNumber(params)
		for _, n := range list {
			held = held || (n.PhoneNumber != nil && *n.PhoneNumber == number)
		}
		return err
	})
	var api *APIError
	var te *timeoutError
	switch {
	case err == nil && held:
		return nil
	case err == nil:
		return endcall.Errorf(endcall.EINVALID, "%s does not hold the number %s.", whose, number)
	case errors.As(err, new(*permanentError)),
		errors.As(err, &api) && (api.Status == http.StatusUnauthorized || api.Code == codeAuthenticate):
		return endcall.Errorf(endcall.EINVALID, "%s", refused)
	case errors.As(err, &te):
		return endcall.Errorf(endcall.EUNAVAILABLE, "Twilio did not answer within %s; the number could not be checked.", te.after)
	case errors.As(err, &api) && api.Status == http.StatusNotFound:
		return endcall.Errorf(endcall.EINVALID, "%s does not hold the number %s.", whose, number)
	case errors.As(err, &api) && api.Status >= 400 && api.Status < 500 && api.Status != http.StatusTooManyRequests:
		return endcall.Errorf(endcall.EINVALID, "Twilio refused to look the number up (Twilio error %d: %s).", api.Code, api.Message)
	}
	return endcall.Errorf(endcall.EUNAVAILABLE, "Twilio could not be reached; the number could not be checked.")
}

// credentials picks creds or the platform's.
func (c *Client) credentials(creds *endcall.ProviderCredentials) (*endcall.ProviderCredentials, error) {
	if creds == nil {
		if c.platform == nil {
			return nil, errors.New("twilio: no credentials: the phone number has none and TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN are unset")
		}
		return c.platform, nil
	}
	if creds.AccountSID == "" || creds.AuthToken == "" {
		return nil, fmt.Errorf("twilio: incomplete credentials for account %q", creds.AccountSID)
	}
	return creds, nil
}

// do runs fn against a twilio-go API service bound to creds, ctx and the
// client's timeout, and translates what went wrong into an *APIError, a
// *timeoutError or a plain transport error.
//
// twilio-go has no context parameter and sends every request with
// context.Background(), so a cached RestClient could only honour a fixed
// http.Client timeout, never the caller's context. Instead each call gets
// its own small twilio-go client whose transport attaches ctx to the
// request, rewrites the scheme and host to BaseURL, and closes error
// bodies that twilio-go leaves open. Connections stay pooled in the shared
// transport, so this costs a few small allocations and no handshakes.
func (c *Client) do(ctx context.Context, creds *endcall.ProviderCredentials, fn func(*twapi.ApiService) error) error {
	if c.baseErr != nil {
		return &permanentError{c.baseErr}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	budget := time.Until(dl).Round(time.Millisecond)

	rt := &requestTransport{ctx: ctx, base: c.base, next: c.transport}
	tc := &twclient.Client{
		Credentials: twclient.NewCredentials(creds.AccountSID, creds.AuthToken),
		HTTPClient: &http.Client{
			Transport:     rt,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	tc.SetAccountSid(creds.AccountSID)
	// A RequestHandler literal rather than NewRequestHandler: TWILIO_EDGE
	// and TWILIO_REGION must not reroute requests meant for BaseURL.
	err := fn(twapi.NewApiService(&twclient.RequestHandler{Client: tc}))
	rt.closeBody()
	if err == nil {
		if rt.status >= 300 {
			return &APIError{Status: rt.status}
		}
		return nil
	}
	return translate(ctx, err, rt, budget)
}

// translate turns a twilio-go error into an *APIError, *timeoutError,
// *permanentError or a plain error that never carries the auth token.
func translate(ctx context.Context, err error, rt *requestTransport, budget time.Duration) error {
	var rest *twclient.TwilioRestError
	if errors.As(err, &rest) {
		if !rt.sent {
			// twilio-go refuses non-alphanumeric credentials before sending.
			return &permanentError{fmt.Errorf("twilio: malformed credentials (Twilio error %d: %s)", rest.Code, rest.Message)}
		}
		status := rest.Status
		if status == 0 {
			status = rt.status
		}
		return &APIError{Status: status, Code: rest.Code, Message: rest.Message, MoreInfo: rest.MoreInfo}
	}
	if rt.status >= 400 {
		// An error answer whose body is not Twilio JSON (a proxy's HTML
		// page, say): twilio-go only says it could not decode it.
		return &APIError{Status: rt.status}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err) {
		return &timeoutError{after: budget, err: context.DeadlineExceeded}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// Drop the URL: it names api.twilio.com, not where the request went.
		err = ue.Err
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isPermanent reports whether retrying a failed request cannot help.
func isPermanent(err error) bool {
	var pe *permanentError
	if errors.As(err, &pe) {
		return true
	}
	var api *APIError
	if !errors.As(err, &api) {
		return false // timeouts, connection errors
	}
	switch {
	case api.Code == codeNotFound || api.Code == codeAuthenticate ||
		api.Code == codeBadUsername || api.Code == codeBadPassword:
		return true
	case api.Status == http.StatusRequestTimeout, api.Status == http.StatusConflict,
		api.Status == http.StatusTooEarly, api.Status == http.StatusTooManyRequests:
		return false
	}
	return api.Status >= 400 && api.Status < 500
}

func permanent(err error) error { return &endcall.HangupError{Permanent: true, Err: err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// timeoutError is a request that did not finish within the timeout.
type timeoutError struct {
	after time.Duration
	err   error
}

func (e *timeoutError) Error() string { return fmt.Sprintf("no answer within %s", e.after) }
func (e *timeoutError) Unwrap() error { return e.err }
func (e *timeoutError) Timeout() bool { return true }

// validSID accepts the letters, digits, '-' and '_' of Twilio SIDs and test
// SIDs; anything else could change the request path.
func validSID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// requestTransport carries one API call's context to its HTTP requests and
// sends them to the configured base URL.
type requestTransport struct {
	ctx    context.Context
	base   *url.URL
	next   http.RoundTripper
	sent   bool
	status int
	body   io.ReadCloser
}

func (t *requestTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.closeBody()
	r := req.WithContext(t.ctx)
	u := *req.URL
	u.Scheme, u.Host = t.base.Scheme, t.base.Host
	r.URL, r.Host = &u, t.base.Host
	t.sent = true
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	t.status = resp.StatusCode
	resp.Body = &drainingBody{ReadCloser: resp.Body}
	t.body = resp.Body
	return resp, nil
}

// closeBody closes the last response body. twilio-go never closes the body
// of an error answer, which would otherwise pin its connection.
func (t *requestTransport) closeBody() {
	if t.body != nil {
		_ = t.body.Close()
		t.body = nil
	}
}

// drainingBody reads what is left of a small body before closing it, so
// that the connection goes back to the pool; Close is idempotent.
type drainingBody struct {
	io.ReadCloser
	closed bool
}

func (b *drainingBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	_, _ = io.CopyN(io.Discard, b.ReadCloser, 64<<10)
	return b.ReadCloser.Close()
}

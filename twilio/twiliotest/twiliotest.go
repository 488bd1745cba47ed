// Package twiliotest is a fake Twilio REST API for tests. It is an
// httptest.Server that speaks Twilio's wire format (form-encoded POST bodies,
// HTTP Basic auth with AccountSid:AuthToken, JSON call resources and JSON
// error bodies), so that the real twilio-go client can be pointed at it.
//
// A test registers accounts and calls, optionally scripts failures, delays
// or a hook, and afterwards asserts on the recorded requests:
//
//	fake := twiliotest.New(t)
//	sid, token := fake.NewAccount()
//	call := fake.NewCall(sid, "in-progress")
//	fake.FailNext(call, 1, http.StatusInternalServerError)
//	// ... point the code under test at fake.URL() ...
//	if got := fake.HangupCount(call); got != 2 { ... }
//
// The Calls resource is served: create (POST Calls.json), fetch
// (GET Calls/{Sid}.json) and update (POST Calls/{Sid}.json); and the list of
// an account's IncomingPhoneNumbers (GET IncomingPhoneNumbers.json, with
// the PhoneNumber filter), which holds the numbers given to AddNumber.
// Everything is safe for concurrent use.
package twiliotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Error is a Twilio JSON error body; Status is also the HTTP status code.
type Error struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Errors Twilio answers with, as the fake sends them.
var (
	// ErrNotInProgress is what Twilio answers when a call that is already
	// over is updated.
	ErrNotInProgress = Error{Status: 400, Code: 21220, Message: "Call is not in-progress. Cannot redirect.", MoreInfo: moreInfo(21220)}
	// ErrAuthenticate is the answer to missing or wrong credentials.
	ErrAuthenticate = Error{Status: 401, Code: 20003, Message: "Authenticate", MoreInfo: moreInfo(20003)}
	// ErrTooManyRequests is Twilio's rate-limit answer.
	ErrTooManyRequests = Error{Status: 429, Code: 20429, Message: "Too Many Requests", MoreInfo: moreInfo(20429)}
	// ErrInternal is Twilio's generic server error.
	ErrInternal = Error{Status: 500, Code: 20500, Message: "Internal Server Error", MoreInfo: moreInfo(20500)}
	// ErrUnavailable is Twilio's answer when a service is down.
	ErrUnavailable = Error{Status: 503, Code: 20503, Message: "Service Unavailable", MoreInfo: moreInfo(20503)}
)

func moreInfo(code int) string { return "https://www.twilio.com/docs/errors/" + strconv.Itoa(code) }

// ErrorFor returns the error body Twilio typically sends with an HTTP
// status: 21220 for 400, 20003 for 401, 20404 for 404, 20429 for 429, 20500
// for 500 and so on.
func ErrorFor(status int) Error {
	switch status {
	case 400:
		return ErrNotInProgress
	case 401:
		return ErrAuthenticate
	case 403:
		return Error{Status: 403, Code: 20403, Message: "Forbidden", MoreInfo: moreInfo(20403)}
	case 404:
		return Error{Status: 404, Code: 20404, Message: "The requested resource was not found", MoreInfo: moreInfo(20404)}
	case 429:
		return ErrTooManyRequests
	case 500:
		return ErrInternal
	case 503:
		return ErrUnavailable
	}
	code := 20000 + status
	return Error{Status: status, Code: code, Message: http.StatusText(status), MoreInfo: moreInfo(code)}
}

// Request is one request the fake received, recorded on arrival.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	// AccountSID is the account in the path; AuthUser the Basic auth user.
	AccountSID string
	AuthUser   string
	// Authenticated is true when AuthUser and its token matched a
	// registered account.
	Authenticated bool
	// CallSID is the call updated or fetched; empty for a create.
	CallSID string
	// Form holds the decoded form body (and query).
	Form url.Values
	// ResponseStatus is the HTTP status answered; 0 while still in flight.
	ResponseStatus int
}

// IsHangup reports whether r asks Twilio to end a call: by status, or with
// TwiML that ends in <Hangup/>.
func (r Request) IsHangup() bool {
	s := r.Form.Get("Status")
	return r.Method == http.MethodPost && r.CallSID != "" &&
		(s == "completed" || s == "canceled" || strings.HasSuffix(r.Form.Get("Twiml"), "<Hangup/></Response>"))
}

// IsCreate reports whether r creates a call.
func (r Request) IsCreate() bool {
	return r.Method == http.MethodPost && r.CallSID == "" && strings.HasSuffix(r.Path, "/Calls.json")
}

// Call is the fake's view of one call.
type Call struct {
	SID        string
	AccountSID string
	Status     string
	From, To   string
	// Params are the form values the call was created with (nil for calls
	// registered with AddCall).
	Params  url.Values
	Created time.Time
	Updated time.Time
	Started *time.Time
	Ended   *time.Time
}

// Server is the fake Twilio REST API.
type Server struct {
	srv *httptest.Server

	mu           sync.Mutex
	accounts     map[string]string // sid -> token
	calls        map[string]*Call
	numbers      map[string][]IncomingNumber // account SID -> its numbers
	failures     map[string][]Error          // key: call SID, "" = any request
	delays       map[string]time.Duration
	onUpdate     func(Request) *Error
	allowUnknown bool
	requests     []Request
	conns        int
	inFlight     map[string]int // account in the path -> requests being answered
	maxInFlight  map[string]int
}

// New starts a fake Twilio API that is closed when t ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		accounts: map[string]string{},
		calls:    map[string]*Call{},
		numbers:  map[string][]IncomingNumber{},
		failures: map[string][]Error{},
		delays:   map[string]time.Duration{},

		inFlight:    map[string]int{},
		maxInFlight: map[string]int{},
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the base URL (scheme and host) to send Twilio requests to, e.g.
// as TWILIO_API_BASE_URL.
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down; New arranges for it to happen when the test ends.
func (s *Server) Close() { s.srv.Close() }

// Connections returns how many TCP connections clients have opened.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// AddAccount registers an account and the auth token that authenticates it.
func (s *Server) AddAccount(sid, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[sid] = token
}

// NewAccount registers an account with a fresh AC... SID and a random token
// and returns them.
func (s *Server) NewAccount() (sid, token string) {
	sid, token = NewSID("AC"), randomHex(16)
	s.AddAccount(sid, token)
	return sid, token
}

// IncomingNumber is a phone number an account holds.
type IncomingNumber struct {
	SID         string
	AccountSID  string
	PhoneNumber string
	Created     time.Time
}

// AddNumber makes accountSID hold an E.164 number and returns the number's
// PN... SID.
func (s *Server) AddNumber(accountSID, number string) string {
	n := IncomingNumber{SID: NewSID("PN"), AccountSID: accountSID, PhoneNumber: number, Created: time.Now().UTC()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.numbers[accountSID] = append(s.numbers[accountSID], n)
	return n.SID
}

// NumberLookups returns the requests that listed IncomingPhoneNumbers.
func (s *Server) NumberLookups() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if strings.HasSuffix(r.Path, "/IncomingPhoneNumbers.json") {
			out = append(out, r)
		}
	}
	return out
}

// AddCall registers a call of accountSID with the given Twilio status
// (queued, ringing, in-progress, completed, ...).
func (s *Server) AddCall(accountSID, callSID, status string) {
	now := time.Now().UTC()
	c := &Call{SID: callSID, AccountSID: accountSID, Status: status,
		From: "+15005550006", To: "+14155551212", Created: now, Updated: now}
	if status != "queued" && status != "ringing" {
		c.Started = &now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[callSID] = c
}

// NewCall registers a call of accountSID with a fresh CA... SID and returns
// the SID.
func (s *Server) NewCall(accountSID, status string) string {
	sid := NewSID("CA")
	s.AddCall(accountSID, sid, status)
	return sid
}

// SetCallStatus changes a call's status, as if it had moved on at Twilio.
func (s *Server) SetCallStatus(callSID, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.calls[callSID]; ok {
		c.Status = status
	}
}

// Call returns the fake's copy of a call.
func (s *Server) Call(callSID string) (Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.calls[callSID]
	if !ok {
		return Call{}, false
	}
	return *c, true
}

// AllowUnknownCalls makes updates and fetches of calls the fake does not
// know succeed, as if each were an in-progress call of the authenticated
// account. By default they answer 404 (error 20404), as Twilio does.
func (s *Server) AllowUnknownCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowUnknown = true
}

// FailNext makes the next n authenticated requests for callSID answer
// statusCode with the Twilio error body ErrorFor(statusCode). An empty
// callSID matches any request, creates included.
func (s *Server) FailNext(callSID string, n, statusCode int) {
	s.FailNextWith(callSID, n, ErrorFor(statusCode))
}

// FailNextWith is FailNext with an explicit Twilio error.
func (s *Server) FailNextWith(callSID string, n int, e Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[callSID] = append(s.failures[callSID], e)
	}
}

// SetDelay makes every request for callSID wait d before it is answered, or
// until the client gives up. An empty callSID delays every request.
func (s *Server) SetDelay(callSID string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays[callSID] = d
}

// OnUpdate installs a hook run for every authenticated call update before
// it is applied, outside the fake's lock (it may block). A non-nil return
// is answered instead of the update.
func (s *Server) OnUpdate(fn func(Request) *Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onUpdate = fn
}

// Requests returns every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	copy(out, s.requests)
	return out
}

// Hangups returns the requests that asked to end callSID (Status=completed
// or canceled), whatever they were answered.
func (s *Server) Hangups(callSID string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.CallSID == callSID && r.IsHangup() {
			out = append(out, r)
		}
	}
	return out
}

// MaxInFlight returns the most requests to accountSID (the account in the
// path) that were being answered at once, delays included.
func (s *Server) MaxInFlight(accountSID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight[accountSID]
}

// HangupCount returns how many hangup requests for callSID were received,
// whatever they were answered.
func (s *Server) HangupCount(callSID string) int { return len(s.Hangups(callSID)) }

// Creates returns the requests that created calls.
func (s *Server) Creates() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.IsCreate() {
			out = append(out, r)
		}
	}
	return out
}

// NewSID returns a Twilio-style SID: prefix and 32 hex digits.
func NewSID(prefix string) string { return prefix + randomHex(16) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

const apiPrefix = "/2010-04-01/Accounts/"

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	req := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path}
	if err := r.ParseForm(); err == nil {
		req.Form = r.Form
	}
	account, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, apiPrefix), "/")
	if !strings.HasPrefix(r.URL.Path, apiPrefix) {
		ok = false
	}
	req.AccountSID = account
	if ok && strings.HasPrefix(rest, "Calls/") && strings.HasSuffix(rest, ".json") {
		req.CallSID = strings.TrimSuffix(strings.TrimPrefix(rest, "Calls/"), ".json")
	}
	user, pass, hasAuth := r.BasicAuth()
	req.AuthUser = user

	s.mu.Lock()
	token, known := s.accounts[user]
	req.Authenticated = hasAuth && known && token == pass
	idx := len(s.requests)
	s.requests = append(s.requests, req)
	delay, hasDelay := s.delays[req.CallSID]
	if !hasDelay || req.CallSID == "" {
		delay = s.delays[""]
	}
	s.inFlight[account]++
	s.maxInFlight[account] = max(s.maxInFlight[account], s.inFlight[account])
	s.mu.Unlock()

	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		s.mu.Lock()
		s.requests[idx].ResponseStatus = rec.status
		s.inFlight[account]--
		s.mu.Unlock()
	}()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	if !req.Authenticated {
		rec.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(rec, ErrAuthenticate)
		return
	}
	numbers := rest == "IncomingPhoneNumbers.json"
	if !ok || (rest != "Calls.json" && !numbers && req.CallSID == "") || strings.Contains(req.CallSID, "/") {
		writeError(rec, notFound(r.URL.Path))
		return
	}
	if account != user {
		// Credentials of one account cannot reach another's resources.
		writeError(rec, notFound(r.URL.Path))
		return
	}
	if e, failed := s.popFailure(req.CallSID); failed {
		writeError(rec, e)
		return
	}

	switch {
	case numbers && r.Method == http.MethodGet:
		s.listNumbers(rec, req)
	case numbers:
		writeError(rec, Error{Status: 405, Code: 20004, Message: "Method not allowed", MoreInfo: moreInfo(20004)})
	case req.CallSID == "" && r.Method == http.MethodPost:
		s.create(rec, req)
	case req.CallSID != "" && r.Method == http.MethodGet:
		s.fetch(rec, req)
	case req.CallSID != "" && r.Method == http.MethodPost:
		s.update(r.Context(), rec, req)
	default:
		writeError(rec, Error{Status: 405, Code: 20004, Message: "Method not allowed", MoreInfo: moreInfo(20004)})
	}
}

func (s *Server) popFailure(callSID string) (Error, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range []string{callSID, ""} {
		if q := s.failures[key]; len(q) > 0 {
			s.failures[key] = q[1:]
			return q[0], true
		}
		if callSID == "" {
			break
		}
	}
	return Error{}, false
}

func notFound(path string) Error {
	return Error{Status: 404, Code: 20404,
		Message:  "The requested resource " + path + " was not found",
		MoreInfo: moreInfo(20404)}
}

// lookup returns the call or nil; it creates unknown calls when allowed.
// s.mu must be held.
func (s *Server) lookup(account, sid string) *Call {
	c, ok := s.calls[sid]
	if !ok && s.allowUnknown {
		now := time.Now().UTC()
		c = &Call{SID: sid, AccountSID: account, Status: "in-progress",
			From: "+15005550006", To: "+14155551212", Created: now, Updated: now, Started: &now}
		s.calls[sid] = c
	}
	if c == nil || c.AccountSID != account {
		return nil
	}
	return c
}

func (s *Server) fetch(w http.ResponseWriter, req Request) {
	s.mu.Lock()
	c := s.lookup(req.AccountSID, req.CallSID)
	var body []byte
	if c != nil {
		body = resource(c)
	}
	s.mu.Unlock()
	if c == nil {
		writeError(w, notFound(req.Path))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) update(ctx context.Context, w http.ResponseWriter, req Request) {
	s.mu.Lock()
	hook := s.onUpdate
	s.mu.Unlock()
	if hook != nil {
		if e := hook(req); e != nil {
			writeError(w, *e)
			return
		}
		if ctx.Err() != nil {
			return
		}
	}

	s.mu.Lock()
	c := s.lookup(req.AccountSID, req.CallSID)
	if c == nil {
		s.mu.Unlock()
		writeError(w, notFound(req.Path))
		return
	}
	active := c.Status == "queued" || c.Status == "ringing" || c.Status == "in-progress"
	if !active {
		s.mu.Unlock()
		writeError(w, ErrNotInProgress)
		return
	}
	now := time.Now().UTC()
	switch st := req.Form.Get("Status"); st {
	case "":
		// TwiML that hangs up ends the call once it has run, which the fake
		// takes as at once; any other redirect changes nothing it models.
		if strings.HasSuffix(req.Form.Get("Twiml"), "<Hangup/></Response>") {
			c.Status, c.Ended, c.Updated = "completed", &now, now
		}
	case "completed":
		c.Status, c.Ended, c.Updated = "completed", &now, now
	case "canceled":
		// Twilio cancels queued or ringing calls only; an in-progress call
		// is left as it is.
		if c.Status != "in-progress" {
			c.Status, c.Ended, c.Updated = "canceled", &now, now
		}
	default:
		s.mu.Unlock()
		writeError(w, Error{Status: 400, Code: 20001,
			Message: "Invalid Status: " + st, MoreInfo: moreInfo(20001)})
		return
	}
	body := resource(c)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) create(w http.ResponseWriter, req Request) {
	f := req.Form
	var e *Error
	switch {
	case f.Get("To") == "":
		e = &Error{Status: 400, Code: 21201, Message: "No 'To' number is specified", MoreInfo: moreInfo(21201)}
	case !validNumber(f.Get("To")):
		e = &Error{Status: 400, Code: 21211, Message: "Invalid 'To' Phone Number: " + f.Get("To"), MoreInfo: moreInfo(21211)}
	case f.Get("From") == "":
		e = &Error{Status: 400, Code: 21213, Message: "No 'From' number is specified", MoreInfo: moreInfo(21213)}
	case f.Get("Url") == "" && f.Get("Twiml") == "" && f.Get("ApplicationSid") == "":
		e = &Error{Status: 400, Code: 21205, Message: "Url parameter is required.", MoreInfo: moreInfo(21205)}
	}
	if e != nil {
		writeError(w, *e)
		return
	}
	now := time.Now().UTC()
	c := &Call{SID: NewSID("CA"), AccountSID: req.AccountSID, Status: "queued",
		From: f.Get("From"), To: f.Get("To"), Params: f, Created: now, Updated: now}
	s.mu.Lock()
	s.calls[c.SID] = c
	body := resource(c)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

// listNumbers answers one page holding every number of the account that
// contains the PhoneNumber filter, as Twilio matches partial numbers.
func (s *Server) listNumbers(w http.ResponseWriter, req Request) {
	filter := req.Form.Get("PhoneNumber")
	uri := req.Path + "?" + req.Form.Encode()
	list := []any{}
	s.mu.Lock()
	for _, n := range s.numbers[req.AccountSID] {
		if !strings.Contains(n.PhoneNumber, filter) {
			continue
		}
		base := apiPrefix + n.AccountSID + "/IncomingPhoneNumbers/" + n.SID
		list = append(list, map[string]any{
			"account_sid":   n.AccountSID,
			"api_version":   "2010-04-01",
			"capabilities":  map[string]bool{"voice": true, "sms": true, "mms": true, "fax": false},
			"date_created":  rfc2822(&n.Created),
			"date_updated":  rfc2822(&n.Created),
			"friendly_name": n.PhoneNumber,
			"origin":        "twilio",
			"phone_number":  n.PhoneNumber,
			"sid":           n.SID,
			"status":        "in-use",
			"uri":           base + ".json",
			"voice_method":  "POST",
			"voice_url":     nil,
		})
	}
	s.mu.Unlock()
	body, _ := json.Marshal(map[string]any{
		"end":                    max(len(list)-1, 0),
		"first_page_uri":         uri,
		"incoming_phone_numbers": list,
		"next_page_uri":          nil,
		"page":                   0,
		"page_size":              50,
		"previous_page_uri":      nil,
		"start":                  0,
		"uri":                    uri,
	})
	writeJSON(w, http.StatusOK, body)
}

// validNumber accepts E.164 numbers and the client:/sip: identifiers Twilio
// also dials.
func validNumber(n string) bool {
	if strings.HasPrefix(n, "client:") || strings.HasPrefix(n, "sip:") {
		return true
	}
	if len(n) < 3 || len(n) > 16 || n[0] != '+' {
		return false
	}
	for _, r := range n[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// resource renders a call as Twilio's JSON call resource. s.mu must be held.
func resource(c *Call) []byte {
	uri := apiPrefix + c.AccountSID + "/Calls/" + c.SID
	sub := func(name string) string { return uri + "/" + name + ".json" }
	var duration any
	if c.Ended != nil {
		d := 0
		if c.Started != nil {
			d = int(c.Ended.Sub(*c.Started).Seconds())
		}
		duration = strconv.Itoa(d)
	}
	body, _ := json.Marshal(map[string]any{
		"account_sid":      c.AccountSID,
		"annotation":       nil,
		"answered_by":      nil,
		"api_version":      "2010-04-01",
		"caller_name":      nil,
		"date_created":     rfc2822(&c.Created),
		"date_updated":     rfc2822(&c.Updated),
		"direction":        "outbound-api",
		"duration":         duration,
		"end_time":         rfc2822(c.Ended),
		"forwarded_from":   nil,
		"from":             c.From,
		"from_formatted":   c.From,
		"group_sid":        nil,
		"parent_call_sid":  nil,
		"phone_number_sid": "PN" + strings.Repeat("0", 32),
		"price":            nil,
		"price_unit":       "USD",
		"queue_time":       "0",
		"sid":              c.SID,
		"start_time":       rfc2822(c.Started),
		"status":           c.Status,
		"subresource_uris": map[string]string{
			"notifications":                      sub("Notifications"),
			"recordings":                         sub("Recordings"),
			"payments":                           sub("Payments"),
			"events":                             sub("Events"),
			"siprec":                             sub("Siprec"),
			"streams":                            sub("Streams"),
			"transcriptions":                     sub("Transcriptions"),
			"user_defined_message_subscriptions": sub("UserDefinedMessageSubscriptions"),
			"user_defined_messages":              sub("UserDefinedMessages"),
		},
		"to":           c.To,
		"to_formatted": c.To,
		"trunk_sid":    nil,
		"uri":          uri + ".json",
	})
	return body
}

func rfc2822(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(time.RFC1123Z)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, e Error) {
	body, _ := json.Marshal(e)
	writeJSON(w, e.Status, body)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// String describes a request for test failure messages; it never includes
// credentials.
func (r Request) String() string {
	return fmt.Sprintf("%s %s (auth %q, status %d, form %v)", r.Method, r.Path, r.AuthUser, r.ResponseStatus, r.Form)
}

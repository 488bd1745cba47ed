// Package webhooktest is a fake webhook receiver for tests, cmd/devpeer and
// cmd/bench. It verifies every delivery with the official Standard Webhooks
// library, as a receiver following the specification does, records what it
// received and answers as it is told.
//
//	rc := webhooktest.New(t)
//	rc.SetSecret(secret) // the endpoint's, from its creation
//	rc.FailFirst(2, http.StatusInternalServerError)
//	// ... register rc.URL as an endpoint and end a call ...
//	for _, d := range rc.Deliveries() { ... d.ID, d.Type, d.CallID, d.Attempt ... }
//
// A request that is not a valid delivery (a POST of JSON whose signature
// verifies) is answered 401; with New it also fails the test, since every
// delivery endcall sends is valid. Everything is safe
// for concurrent use.
package webhooktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// maxBody is the most of a request body the fake reads.
const maxBody = 1 << 20

// Reply is one scripted answer. The zero Reply answers 204 at once.
type Reply struct {
	Status int
	Body   string
	// RetryAfter and Location, when set, are sent as those headers.
	RetryAfter string
	Location   string
	// Delay holds the answer back; the request's end cuts it short.
	Delay time.Duration
}

// Delivery is one request the fake received.
type Delivery struct {
	Time time.Time
	Path string
	// ID and Timestamp are the webhook-id and webhook-timestamp headers.
	ID, Timestamp string
	// Type and CallID are the body's type and data.id.
	Type, CallID string
	// Attempt counts the requests with this ID, from 1.
	Attempt int
	Header  http.Header
	Body    []byte
	// VerifyErr is why the request is not a valid delivery (not a POST of
	// JSON, or a signature that does not verify); nil when it is.
	VerifyErr error
	// Status is the HTTP status answered.
	Status int
}

// VerifyWith reports whether d verifies with another secret, e.g. the
// endpoint's new secret after a rotation.
func (d Delivery) VerifyWith(secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	return wh.Verify(d.Body, d.Header)
}

// Server is the fake receiver. It is an http.Handler; New also serves it.
type Server struct {
	// URL is the base URL to register as an endpoint; empty for a Server
	// from NewHandler. Any path under it is accepted.
	URL string

	report func(format string, args ...any)

	mu         sync.Mutex
	verifier   *standardwebhooks.Webhook
	replies    []Reply
	before     func(Delivery)
	keep       bool
	deliveries []Delivery
	attempts   map[string]int // webhook-id -> requests
	count      int
	rejected   int
	scriptFrom int // valid deliveries received before Script
}

// New serves a fake receiver on 127.0.0.1 until the test ends. Deliveries
// that do not verify fail the test.
func New(t testing.TB) *Server {
	t.Helper()
	s := NewHandler()
	s.report = t.Errorf
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// NewHandler returns the fake without serving it, to mount on a server of
// one's own. Deliveries that do not verify are answered 401 and counted.
func NewHandler() *Server {
	return &Server{keep: true, attempts: map[string]int{}}
}

// SetSecret sets the endpoint secret ("whsec_...") deliveries are verified
// with.
func (s *Server) SetSecret(secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verifier = wh
	return nil
}

// Script sets the answers to the next valid deliveries: the nth (from 0)
// gets replies[n], and every one after the last reply gets the last.
func (s *Server) Script(replies ...Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replies, s.scriptFrom = replies, s.count-s.rejected
}

// FailFirst scripts the next n valid deliveries to be answered status,
// and every later one 204.
func (s *Server) FailFirst(n, status int) {
	replies := make([]Reply, n+1)
	for i := range n {
		replies[i].Status = status
	}
	s.Script(replies...)
}

// Before installs a hook run for every delivery before it is answered,
// outside the fake's lock: it may block, holding the answer back.
func (s *Server) Before(fn func(Delivery)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before = fn
}

// CountOnly stops the fake from keeping deliveries, so that its memory
// stays bounded: Deliveries returns nothing, while Count, Rejected and the
// Before hook still work. It also keeps no per-ID attempt counts (Attempt
// is then always 1).
func (s *Server) CountOnly() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = false
	s.deliveries, s.attempts = nil, nil
}

// Deliveries returns the requests received so far, in arrival order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.deliveries...)
}

// ByType returns the deliveries of an event type, in arrival order.
func (s *Server) ByType(typ string) []Delivery {
	var out []Delivery
	for _, d := range s.Deliveries() {
		if d.Type == typ {
			out = append(out, d)
		}
	}
	return out
}

// Events returns the event types received for a call, in arrival order.
func (s *Server) Events(callID string) []string {
	var out []string
	for _, d := range s.Deliveries() {
		if d.CallID == callID {
			out = append(out, d.Type)
		}
	}
	return out
}

// Count returns how many requests the fake received.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Rejected returns how many requests were not valid deliveries.
func (s *Server) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// ServeHTTP verifies, records and answers one delivery.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := Delivery{Time: time.Now(), Path: r.URL.Path, Header: r.Header,
		ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp")}
	d.Body, _ = io.ReadAll(io.LimitReader(r.Body, maxBody))
	var ev struct {
		Type string `json:"type"`
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if json.Unmarshal(d.Body, &ev) == nil {
		d.Type, d.CallID = ev.Type, ev.Data.ID
	}

	d.VerifyErr = s.verify(r, d.Body)

	var rp Reply
	s.mu.Lock()
	d.Attempt = 1
	if s.attempts != nil {
		s.attempts[d.ID]++
		d.Attempt = s.attempts[d.ID]
	}
	switch {
	case d.VerifyErr != nil:
		s.rejected++
		rp = Reply{Status: http.StatusUnauthorized, Body: `{"error":"invalid signature"}`}
	case len(s.replies) > 0:
		rp = s.replies[min(s.count-s.rejected-s.scriptFrom, len(s.replies)-1)]
	}
	s.count++
	d.Status = rp.Status
	if d.Status == 0 {
		d.Status = http.StatusNoContent
	}
	idx := -1
	if s.keep {
		idx = len(s.deliveries)
		s.deliveries = append(s.deliveries, d)
	}
	before := s.before
	s.mu.Unlock()

	if d.VerifyErr != nil && s.report != nil {
		s.report("webhooktest: delivery %s (%s of call %s) does not verify: %v", d.ID, d.Type, d.CallID, d.VerifyErr)
	}
	if before != nil {
		before(d)
	}
	if rp.Delay > 0 {
		t := time.NewTimer(rp.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.setStatus(idx, 0)
			return
		}
	}
	if rp.RetryAfter != "" {
		w.Header().Set("Retry-After", rp.RetryAfter)
	}
	if rp.Location != "" {
		w.Header().Set("Location", rp.Location)
	}
	if rp.Body != "" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(rp.Body)))
	}
	w.WriteHeader(d.Status)
	io.WriteString(w, rp.Body)
}

// verify checks a request as the specification has it: a POST of JSON
// whose signature verifies with the endpoint's secret.
func (s *Server) verify(r *http.Request, body []byte) error {
	if r.Method != http.MethodPost {
		return fmt.Errorf("webhooktest: method %s, want POST", r.Method)
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return fmt.Errorf("webhooktest: Content-Type %q, want application/json", r.Header.Get("Content-Type"))
	}
	s.mu.Lock()
	verifier := s.verifier
	s.mu.Unlock()
	if verifier == nil {
		return errors.New("webhooktest: no secret set")
	}
	return verifier.Verify(body, r.Header)
}

// setStatus records that delivery idx was answered status (0: not at all).
func (s *Server) setStatus(idx, status int) {
	if idx < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx < len(s.deliveries) {
		s.deliveries[idx].Status = status
	}
}

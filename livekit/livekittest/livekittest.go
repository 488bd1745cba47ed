// Package livekittest is a fake LiveKit RoomService for tests, cmd/devpeer
// and cmd/bench. It speaks the Twirp wire protocol of DeleteRoom
// (POST /twirp/livekit.RoomService/DeleteRoom, a JSON body {"room":...})
// and verifies every request's access token as LiveKit does: an HS256 JWT
// whose issuer is the API key, signed with the API secret, unexpired, with
// the video grant roomCreate.
//
//	fake := livekittest.New(t, "key", "secret")
//	fake.AddRoom("room-1")
//	fake.FailNext("room-1", 1, http.StatusServiceUnavailable)
//	// ... point the code under test at fake.URL ...
//	if got := fake.Count("room-1"); got != 2 { ... }
//
// A room the fake does not hold, or holds no longer, answers 404 with the
// Twirp code not_found, as LiveKit does. Everything is safe for concurrent
// use.
package livekittest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DeleteRoomPath is the Twirp route of RoomService.DeleteRoom.
const DeleteRoomPath = "/twirp/livekit.RoomService/DeleteRoom"

// Error is a Twirp error: Code and Msg are its JSON body, Status the HTTP
// status it is sent with.
type Error struct {
	Status int    `json:"-"`
	Code   string `json:"code"`
	Msg    string `json:"msg"`
}

// Error describes the error as "code: msg".
func (e *Error) Error() string { return e.Code + ": " + e.Msg }

// ErrorFor returns the Twirp error LiveKit sends with an HTTP status:
// unauthenticated for 401, not_found for 404, resource_exhausted for 429,
// internal for 500 and so on.
func ErrorFor(status int) Error {
	code := map[int]string{
		400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
		408: "deadline_exceeded", 409: "aborted", 412: "failed_precondition", 429: "resource_exhausted",
		500: "internal", 501: "unimplemented", 503: "unavailable",
	}[status]
	if code == "" {
		code = "unknown"
	}
	return Error{Status: status, Code: code, Msg: strings.ToLower(http.StatusText(status))}
}

// Request is one request the fake received.
type Request struct {
	Time time.Time
	// Room is the room named in the body; empty when the body did not parse.
	Room string
	// Err says why the request was refused before it reached a room
	// (credentials, route, body); nil for a well-formed, authorized one.
	Err error
	// NotBefore and Expires are the access token's nbf and exp claims, when
	// it verified; NotBefore is zero without an nbf claim.
	NotBefore, Expires time.Time
	// Status is the HTTP status answered; 0 when the client gave up first.
	Status int
}

// Server is the fake RoomService. It is an http.Handler; New also serves it.
type Server struct {
	// URL is the base URL to configure as LIVEKIT_URL; empty for a Server
	// from NewHandler until it is served.
	URL string

	key    string
	secret []byte

	mu           sync.Mutex
	rooms        map[string]*room
	allowUnknown bool
	failures     map[string][]Error // key: room, "" = any room
	delays       map[string]time.Duration
	onDelete     func(Request)
	keep         bool
	requests     []Request
	refused      int
	conns        int
}

// room is what the fake knows of one room name.
type room struct {
	exists   bool
	requests int
}

// New serves a fake RoomService for the API key and secret on 127.0.0.1
// until the test ends.
func New(t testing.TB, key, secret string) *Server {
	t.Helper()
	s := NewHandler(key, secret)
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// NewHandler returns the fake without serving it, to mount on a server of
// one's own (as cmd/devpeer does).
func NewHandler(key, secret string) *Server {
	return &Server{key: key, secret: []byte(secret), rooms: map[string]*room{},
		failures: map[string][]Error{}, delays: map[string]time.Duration{}, keep: true}
}

// AddRoom makes a room exist, as if participants had joined it.
func (s *Server) AddRoom(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.room(name).exists = true
}

// AllowUnknownRooms makes every room the fake has not seen exist until it
// is deleted, for callers that never create rooms. A second deletion of a
// room still answers not_found.
func (s *Server) AllowUnknownRooms() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowUnknown = true
}

// FailNext makes the next n authorized requests for room answer status
// with ErrorFor(status). An empty room matches any request.
func (s *Server) FailNext(room string, n, status int) { s.FailNextWith(room, n, ErrorFor(status)) }

// FailNextWith is FailNext with an explicit Twirp error.
func (s *Server) FailNextWith(room string, n int, e Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[room] = append(s.failures[room], e)
	}
}

// SetDelay makes every request for room wait d before it is answered, or
// until the client gives up. An empty room delays every request.
func (s *Server) SetDelay(room string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays[room] = d
}

// OnDelete installs a hook that sees every request as it is answered.
func (s *Server) OnDelete(fn func(Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onDelete = fn
}

// CountOnly stops the fake from keeping each request, so that its memory
// stays bounded by the rooms it has seen: Requests returns nothing, while
// Count, Refused and OnDelete still work.
func (s *Server) CountOnly() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = false
	s.requests = nil
}

// Requests returns every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Deleted returns the room of every authorized request, in arrival order,
// whatever it was answered: a room asked for twice appears twice.
func (s *Server) Deleted() []string {
	var out []string
	for _, r := range s.Requests() {
		if r.Err == nil {
			out = append(out, r.Room)
		}
	}
	return out
}

// Count returns how many authorized requests named room.
func (s *Server) Count(room string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.rooms[room]; ok {
		return r.requests
	}
	return 0
}

// Refused returns how many requests were refused before reaching a room.
func (s *Server) Refused() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Connections returns how many TCP connections clients have opened to a
// Server from New.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// room returns the record of name, creating it. s.mu must be held.
func (s *Server) room(name string) *room {
	r, ok := s.rooms[name]
	if !ok {
		r = &room{exists: s.allowUnknown}
		s.rooms[name] = r
	}
	return r
}

// ServeHTTP answers DeleteRoom; any other route is Twirp's bad_route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Read first: the server notices a client gone only once the body is read.
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	req := Request{Time: time.Now()}
	name, nbf, exp, e := s.check(r, raw)
	req.Room, req.NotBefore, req.Expires = name, nbf, exp
	if e != nil {
		req.Err = e
	}

	s.mu.Lock()
	if req.Err == nil {
		s.room(req.Room).requests++
	} else {
		s.refused++
	}
	delay, ok := s.delays[req.Room]
	if !ok {
		delay = s.delays[""]
	}
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client gave up: nothing is deleted or answered.
			t.Stop()
			s.record(req)
			return
		}
	}
	if e == nil {
		e = s.delete(req.Room)
	}
	req.Status = http.StatusOK
	if e != nil {
		req.Status = e.Status
	}
	s.record(req)

	w.Header().Set("Content-Type", "application/json")
	if e != nil {
		body, _ := json.Marshal(e)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(e.Status)
		w.Write(body)
		return
	}
	io.WriteString(w, "{}")
}

// record keeps req and shows it to the OnDelete hook.
func (s *Server) record(req Request) {
	s.mu.Lock()
	if s.keep {
		s.requests = append(s.requests, req)
	}
	hook := s.onDelete
	s.mu.Unlock()
	if hook != nil {
		hook(req)
	}
}

// check validates the route, the access token and the body as LiveKit
// does, and returns the room, or the error the request is refused with.
func (s *Server) check(r *http.Request, raw []byte) (room string, nbf, exp time.Time, e *Error) {
	if r.Method != http.MethodPost || r.URL.Path != DeleteRoomPath {
		return "", nbf, exp, &Error{Status: http.StatusNotFound, Code: "bad_route", Msg: "no handler for path " + strconv.Quote(r.URL.Path)}
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return "", nbf, exp, &Error{Status: http.StatusNotFound, Code: "bad_route", Msg: "unexpected Content-Type: " + strconv.Quote(r.Header.Get("Content-Type"))}
	}
	c, err := s.authorize(r.Header.Get("Authorization"))
	if err != nil {
		return "", nbf, exp, &Error{Status: http.StatusUnauthorized, Code: "unauthenticated", Msg: err.Error()}
	}
	if !c.Video.RoomCreate {
		return "", nbf, exp, &Error{Status: http.StatusForbidden, Code: "permission_denied", Msg: "permissions denied: the token lacks video.roomCreate"}
	}
	if c.NotBefore != nil {
		nbf = c.NotBefore.Time
	}
	exp = c.ExpiresAt.Time
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil || json.Unmarshal(body["room"], &room) != nil {
		return "", nbf, exp, &Error{Status: http.StatusBadRequest, Code: "malformed", Msg: "the json request could not be decoded: " + strconv.Quote(string(raw))}
	}
	if len(body) != 1 || room == "" {
		return room, nbf, exp, &Error{Status: http.StatusBadRequest, Code: "invalid_argument", Msg: "want only a room name, got " + strconv.Quote(string(raw))}
	}
	return room, nbf, exp, nil
}

// claims are the access-token claims LiveKit reads for a server API call.
type claims struct {
	jwt.RegisteredClaims
	Video struct {
		RoomCreate bool `json:"roomCreate"`
	} `json:"video"`
}

// authorize verifies a bearer access token and returns its claims.
func (s *Server) authorize(header string) (*claims, error) {
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		return nil, errors.New("authorization header must be a bearer token")
	}
	var c claims
	_, err := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(s.key), jwt.WithExpirationRequired())
	if err != nil {
		return nil, fmt.Errorf("invalid token: %w", err)
	}
	return &c, nil
}

// delete applies one authorized DeleteRoom: a scripted failure, else the
// room goes, or not_found when there is none.
func (s *Server) delete(name string) *Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range []string{name, ""} {
		if q := s.failures[key]; len(q) > 0 {
			s.failures[key] = q[1:]
			return &q[0]
		}
	}
	rm := s.room(name)
	if !rm.exists {
		return &Error{Status: http.StatusNotFound, Code: "not_found", Msg: "requested room does not exist"}
	}
	rm.exists = false
	return nil
}

package livekit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// deleteRoomPath is the Twirp route of RoomService.DeleteRoom.
const deleteRoomPath = "/twirp/livekit.RoomService/DeleteRoom"

// tokenTTL is how long a request's access token is valid: long enough for
// one request, short enough to be useless if it leaks.
const tokenTTL = 10 * time.Minute

// maxErrorBody caps how much of an error answer is read.
const maxErrorBody = 64 << 10

// ErrPermanent is matched (errors.Is) by failures that retrying cannot fix.
var ErrPermanent = errors.New("livekit: permanent failure")

// Error is a failed LiveKit request. Permanent tells retriable failures
// (5xx, 408, 429, timeouts, connection errors) from the rest.
type Error struct {
	StatusCode int    // HTTP status; 0 when no answer was received
	Code       string // Twirp error code, e.g. "unauthenticated"; "" when none
	Msg        string // Twirp message or a description of the failure
	Permanent  bool
	Err        error // underlying transport error, if any
}

// Error describes the failure with LiveKit's status, Twirp code and message.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("livekit: delete room: ")
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
		if e.Code != "" {
			fmt.Fprintf(&b, " (%s)", e.Code)
		}
		if e.Msg != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		if e.Msg != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes the transport error, e.g. for context.DeadlineExceeded.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrPermanent) true for permanent failures.
func (e *Error) Is(target error) bool { return target == ErrPermanent && e.Permanent }

// Client talks to one LiveKit server with one API key.
type Client struct {
	baseURL   string
	apiKey    string
	apiSecret []byte
	http      *http.Client
	now       func() time.Time
}

// New returns a client for the LiveKit server at baseURL (LIVEKIT_URL;
// ws:// and wss:// URLs, as LiveKit configurations usually give, are
// turned into http:// and https://). timeout bounds each request.
func New(baseURL, apiKey, apiSecret string, timeout time.Duration) *Client {
	u := strings.TrimRight(strings.TrimSpace(baseURL), "/")
	switch {
	case strings.HasPrefix(u, "wss://"):
		u = "https://" + u[len("wss://"):]
	case strings.HasPrefix(u, "ws://"):
		u = "http://" + u[len("ws://"):]
	}
	// Every request goes to one host, from up to WORKER_CONCURRENCY tasks
	// at once: keep that many connections idle rather than net/http's two,
	// so that a busy worker does not open (and, over TLS, handshake) a
	// connection for most room deletions.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return &Client{
		baseURL:   u,
		apiKey:    apiKey,
		apiSecret: []byte(apiSecret),
		http: &http.Client{
			Transport: t,
			Timeout:   timeout,
			// A redirect means a misconfigured URL; following it could
			// send the token elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now: time.Now,
	}
}

// claims are the LiveKit access-token claims a server API call needs.
type claims struct {
	jwt.RegisteredClaims
	Video videoGrant `json:"video"`
}

type videoGrant struct {
	RoomCreate bool `json:"roomCreate,omitempty"`
}

// token signs a short-lived access token allowed to manage rooms.
func (c *Client) token() (string, error) {
	now := c.now()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.apiKey,
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(tokenTTL)),
		},
		Video: videoGrant{RoomCreate: true},
	})
	return t.SignedString(c.apiSecret)
}

// DeleteRoom deletes room, ending it for every participant. A room that
// does not exist (404 or Twirp "not_found") is already gone, so it returns
// nil. Errors are *Error; those matching ErrPermanent must not be retried.
func (c *Client) DeleteRoom(ctx context.Context, room string) error {
	if room == "" {
		return &Error{Msg: "empty room name", Permanent: true}
	}
	if c.apiKey == "" || len(c.apiSecret) == 0 {
		return &Error{Msg: "LiveKit API key and secret are required", Permanent: true}
	}
	body, err := json.Marshal(struct {
		Room string `json:"room"`
	}{room})
	if err != nil {
		return &Error{Msg: "encoding request", Permanent: true, Err: err}
	}
	tok, err := c.token()
	if err != nil {
		return &Error{Msg: "signing token", Permanent: true, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+deleteRoomPath, bytes.NewReader(body))
	if err != nil {
		return &Error{Msg: "invalid LiveKit URL", Permanent: true, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)

	resp, err := c.http.Do(req)
	if err != nil {
		return &Error{Msg: "request failed", Err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))

	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	var twerr struct {
		Code string `json:"code"`
		Msg  string `json:"msg"`
	}
	_ = json.Unmarshal(raw, &twerr)
	if resp.StatusCode == http.StatusNotFound || twerr.Code == "not_found" {
		return nil
	}
	e := &Error{StatusCode: resp.StatusCode, Code: twerr.Code, Msg: twerr.Msg}
	if e.Msg == "" {
		e.Msg = http.StatusText(resp.StatusCode)
	}
	e.Permanent = permanentStatus(resp.StatusCode)
	return e
}

// permanentStatus reports whether an error status will not change on retry:
// 4xx (bad credentials, bad request) and redirects, except Twirp's 408
// (deadline_exceeded, canceled), 409 (aborted) and 429 (resource_exhausted).
// 5xx are temporary.
func permanentStatus(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
		return false
	}
	return status < 500
}

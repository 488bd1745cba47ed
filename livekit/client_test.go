package livekit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testKey    = "APIabc123"
	testSecret = "a-long-enough-livekit-api-secret-for-hs256"
)

// fakeLiveKit answers DeleteRoom like a LiveKit server: it verifies the
// access token and the request, then answers with status and body.
type fakeLiveKit struct {
	t      *testing.T
	status int
	body   string
	delay  time.Duration
	rooms  chan string
}

func newFake(t *testing.T, status int, body string) (*fakeLiveKit, *httptest.Server) {
	t.Helper()
	f := &fakeLiveKit{t: t, status: status, body: body, rooms: make(chan string, 10)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeLiveKit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body) // first: the server notices a client gone only once the body is read
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	t := f.t
	if got, want := r.Method, http.MethodPost; got != want {
		t.Errorf("method: got %q, want %q", got, want)
	}
	if got, want := r.URL.Path, "/twirp/livekit.RoomService/DeleteRoom"; got != want {
		t.Errorf("path: got %q, want %q", got, want)
	}
	if got, want := r.Header.Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type: got %q, want %q", got, want)
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		t.Errorf("Authorization: got %q, want a bearer token", r.Header.Get("Authorization"))
	}
	var c struct {
		jwt.RegisteredClaims
		Video map[string]any `json:"video"`
	}
	_, err := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return []byte(testSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(testKey), jwt.WithExpirationRequired())
	if err != nil {
		t.Errorf("token: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"code":"unauthenticated","msg":"invalid token"}`)
		return
	}
	if c.NotBefore == nil {
		t.Errorf("token: no nbf claim")
	}
	if ttl := c.ExpiresAt.Sub(time.Now()); ttl <= 0 || ttl > 15*time.Minute {
		t.Errorf("token: expires in %v, want a short positive lifetime", ttl)
	}
	if got := c.Video["roomCreate"]; got != true {
		t.Errorf("token: video.roomCreate: got %v, want true", got)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Errorf("body %q: %v", raw, err)
	}
	if len(body) != 1 {
		t.Errorf("body: got %q, want only a room field", raw)
	}
	room, _ := body["room"].(string)
	f.rooms <- room
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	io.WriteString(w, f.body)
}

func TestDeleteRoom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		status        int
		body          string
		wantErr       bool
		wantPermanent bool
	}{
		{"deleted", 200, `{}`, false, false},
		{"404 already gone", 404, `{"code":"not_found","msg":"room not found"}`, false, false},
		{"404 without body", 404, ``, false, false},
		{"not_found code on another status", 400, `{"code":"not_found","msg":"requested room does not exist"}`, false, false},
		{"401", 401, `{"code":"unauthenticated","msg":"invalid token"}`, true, true},
		{"403", 403, `{"code":"permission_denied","msg":"permissions denied"}`, true, true},
		{"400 other Twirp error", 400, `{"code":"invalid_argument","msg":"bad room"}`, true, true},
		{"429", 429, `{"code":"resource_exhausted","msg":"slow down"}`, true, false},
		{"500", 500, `{"code":"internal","msg":"boom"}`, true, false},
		{"503 plain text", 503, `upstream unavailable`, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, srv := newFake(t, tt.status, tt.body)
			c := New(srv.URL+"/", testKey, testSecret, 5*time.Second)
			err := c.DeleteRoom(context.Background(), "room-42")
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("DeleteRoom: got %v, want error %v", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrPermanent); got != tt.wantPermanent {
				t.Errorf("errors.Is(%v, ErrPermanent): got %v, want %v", err, got, tt.wantPermanent)
			}
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.StatusCode != tt.status) {
				t.Errorf("error: got %#v, want an *Error with status %d", err, tt.status)
			}
			if got := <-f.rooms; got != "room-42" {
				t.Errorf("room: got %q, want %q", got, "room-42")
			}
		})
	}
}

func TestDeleteRoomWrongSecretIsPermanent(t *testing.T) {
	t.Parallel()
	// A server with another secret: its own verification fails and answers 401.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte("other-secret"), nil },
			jwt.WithValidMethods([]string{"HS256"})); err == nil {
			t.Errorf("token verified with the wrong secret")
		}
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"code":"unauthenticated","msg":"invalid token"}`)
	}))
	defer srv.Close()
	err := New(srv.URL, testKey, testSecret, 5*time.Second).DeleteRoom(context.Background(), "r")
	if !errors.Is(err, ErrPermanent) {
		t.Errorf("got %v, want a permanent error", err)
	}
	if !strings.Contains(err.Error(), "unauthenticated") {
		t.Errorf("error %q: want it to name the Twirp code", err)
	}
}

func TestDeleteRoomTemporaryFailures(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		f, srv := newFake(t, 200, `{}`)
		f.delay = 5 * time.Second
		start := time.Now()
		err := New(srv.URL, testKey, testSecret, 200*time.Millisecond).DeleteRoom(context.Background(), "r")
		if err == nil || errors.Is(err, ErrPermanent) {
			t.Errorf("got %v, want a temporary error", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("took %v, want about the 200ms timeout", el)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		err := New(url, testKey, testSecret, time.Second).DeleteRoom(context.Background(), "r")
		if err == nil || errors.Is(err, ErrPermanent) {
			t.Errorf("got %v, want a temporary error", err)
		}
	})
}

func TestDeleteRoomBadInput(t *testing.T) {
	t.Parallel()
	_, srv := newFake(t, 200, `{}`)
	tests := []struct {
		name string
		c    *Client
		room string
	}{
		{"empty room", New(srv.URL, testKey, testSecret, time.Second), ""},
		{"no key", New(srv.URL, "", testSecret, time.Second), "r"},
		{"no secret", New(srv.URL, testKey, "", time.Second), "r"},
		{"bad URL", New("http://bad host", testKey, testSecret, time.Second), "r"},
	}
	for _, tt := range tests {
		if err := tt.c.DeleteRoom(context.Background(), tt.room); !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: got %v, want a permanent error", tt.name, err)
		}
	}
}

func TestNewURLSchemes(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"wss://example.livekit.cloud", "https://example.livekit.cloud"},
		{"ws://localhost:7880/", "http://localhost:7880"},
		{"https://lk.example.com", "https://lk.example.com"},
		{" http://127.0.0.1:7880// ", "http://127.0.0.1:7880"},
	}
	for _, tt := range tests {
		if got := New(tt.in, "k", "s", time.Second).baseURL; got != tt.want {
			t.Errorf("New(%q).baseURL: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDeleteRoomViaWebSocketURL(t *testing.T) {
	t.Parallel()
	f, srv := newFake(t, 200, `{}`)
	ws := "ws://" + strings.TrimPrefix(srv.URL, "http://")
	if err := New(ws, testKey, testSecret, 5*time.Second).DeleteRoom(context.Background(), "room-ws"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	if got := <-f.rooms; got != "room-ws" {
		t.Errorf("room: got %q, want %q", got, "room-ws")
	}
}

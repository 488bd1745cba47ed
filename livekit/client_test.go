package livekit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/endcall/endcall/livekit/livekittest"
)

const (
	testKey    = "APIabc123"
	testSecret = "a-long-enough-livekit-api-secret-for-hs256"
)

func TestDeleteRoom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		fail          *livekittest.Error // answered instead of the deletion
		exists        bool
		wantErr       bool
		wantPermanent bool
	}{
		{name: "deleted", exists: true},
		{name: "404 already gone"},
		{name: "not_found code on another status", exists: true,
			fail: &livekittest.Error{Status: 400, Code: "not_found", Msg: "requested room does not exist"}},
		{name: "401", exists: true, fail: ptr(livekittest.ErrorFor(401)), wantErr: true, wantPermanent: true},
		{name: "403", exists: true, fail: ptr(livekittest.ErrorFor(403)), wantErr: true, wantPermanent: true},
		{name: "400 other Twirp error", exists: true, fail: ptr(livekittest.ErrorFor(400)), wantErr: true, wantPermanent: true},
		{name: "408", exists: true, fail: ptr(livekittest.ErrorFor(408)), wantErr: true},
		{name: "429", exists: true, fail: ptr(livekittest.ErrorFor(429)), wantErr: true},
		{name: "500", exists: true, fail: ptr(livekittest.ErrorFor(500)), wantErr: true},
		{name: "503", exists: true, fail: ptr(livekittest.ErrorFor(503)), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := livekittest.New(t, testKey, testSecret)
			if tt.exists {
				fake.AddRoom("room-42")
			}
			if tt.fail != nil {
				fake.FailNextWith("room-42", 1, *tt.fail)
			}
			c := New(fake.URL+"/", testKey, testSecret, 5*time.Second)
			err := c.DeleteRoom(context.Background(), "room-42")
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("DeleteRoom: got %v, want error %v", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrPermanent); got != tt.wantPermanent {
				t.Errorf("errors.Is(%v, ErrPermanent): got %v, want %v", err, got, tt.wantPermanent)
			}
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.StatusCode != tt.fail.Status || e.Code != tt.fail.Code) {
				t.Errorf("error: got %#v, want an *Error with status %d and code %q", err, tt.fail.Status, tt.fail.Code)
			}
			reqs := fake.Requests()
			if len(reqs) != 1 || reqs[0].Err != nil || reqs[0].Room != "room-42" {
				t.Fatalf("requests: got %+v, want one authorized request for room-42", reqs)
			}
			if reqs[0].NotBefore.IsZero() {
				t.Errorf("token: no nbf claim")
			}
			if ttl := time.Until(reqs[0].Expires); ttl <= 0 || ttl > 15*time.Minute {
				t.Errorf("token: expires in %v, want a short positive lifetime", ttl)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestDeleteRoomOddAnswers covers answers no LiveKit server sends but a
// proxy in front of one may: a 404 without a Twirp body, and plain text.
func TestDeleteRoomOddAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		status        int
		body          string
		wantErr       bool
		wantPermanent bool
	}{
		{"404 without body", 404, ``, false, false},
		{"503 plain text", 503, `upstream unavailable`, true, false},
		{"401 plain text", 401, `unauthorized`, true, true},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.status)
			io.WriteString(w, tt.body)
		}))
		err := New(srv.URL, testKey, testSecret, 5*time.Second).DeleteRoom(context.Background(), "room-42")
		srv.Close()
		if gotErr := err != nil; gotErr != tt.wantErr {
			t.Errorf("%s: got %v, want error %v", tt.name, err, tt.wantErr)
		}
		if got := errors.Is(err, ErrPermanent); got != tt.wantPermanent {
			t.Errorf("%s: errors.Is(%v, ErrPermanent): got %v, want %v", tt.name, err, got, tt.wantPermanent)
		}
	}
}

func TestDeleteRoomWrongSecretIsPermanent(t *testing.T) {
	t.Parallel()
	// A server with another secret: its verification fails and it answers 401.
	fake := livekittest.New(t, testKey, "another-secret-of-the-same-livekit-server")
	fake.AddRoom("r")
	err := New(fake.URL, testKey, testSecret, 5*time.Second).DeleteRoom(context.Background(), "r")
	if !errors.Is(err, ErrPermanent) {
		t.Errorf("got %v, want a permanent error", err)
	}
	if !strings.Contains(err.Error(), "unauthenticated") {
		t.Errorf("error %q: want it to name the Twirp code", err)
	}
	if n := fake.Refused(); n != 1 {
		t.Errorf("refused: got %d requests, want 1", n)
	}
}

func TestDeleteRoomWrongKeyIsPermanent(t *testing.T) {
	t.Parallel()
	fake := livekittest.New(t, "another-key", testSecret)
	fake.AddRoom("r")
	if err := New(fake.URL, testKey, testSecret, 5*time.Second).DeleteRoom(context.Background(), "r"); !errors.Is(err, ErrPermanent) {
		t.Errorf("got %v, want a permanent error", err)
	}
}

func TestDeleteRoomTemporaryFailures(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		fake := livekittest.New(t, testKey, testSecret)
		fake.AddRoom("r")
		fake.SetDelay("", 5*time.Second)
		start := time.Now()
		err := New(fake.URL, testKey, testSecret, 200*time.Millisecond).DeleteRoom(context.Background(), "r")
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
	fake := livekittest.New(t, testKey, testSecret)
	fake.AllowUnknownRooms()
	tests := []struct {
		name string
		c    *Client
		room string
	}{
		{"empty room", New(fake.URL, testKey, testSecret, time.Second), ""},
		{"no key", New(fake.URL, "", testSecret, time.Second), "r"},
		{"no secret", New(fake.URL, testKey, "", time.Second), "r"},
		{"bad URL", New("http://bad host", testKey, testSecret, time.Second), "r"},
	}
	for _, tt := range tests {
		if err := tt.c.DeleteRoom(context.Background(), tt.room); !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: got %v, want a permanent error", tt.name, err)
		}
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("LiveKit got %d requests, want none", n)
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
	fake := livekittest.New(t, testKey, testSecret)
	fake.AddRoom("room-ws")
	ws := "ws://" + strings.TrimPrefix(fake.URL, "http://")
	if err := New(ws, testKey, testSecret, 5*time.Second).DeleteRoom(context.Background(), "room-ws"); err != nil {
		t.Fatalf("DeleteRoom: %v", err)
	}
	if got := fake.Count("room-ws"); got != 1 {
		t.Errorf("requests for room-ws: got %d, want 1", got)
	}
}

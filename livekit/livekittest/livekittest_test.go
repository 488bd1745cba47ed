package livekittest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/endcall/endcall/livekit/livekittest"
)

const (
	key    = "APIkey"
	secret = "a-livekit-api-secret-long-enough-for-hs256"
)

// token signs an access token with the given issuer, secret, lifetime and
// roomCreate grant.
func token(t *testing.T, iss, sec string, ttl time.Duration, roomCreate bool) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": iss, "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
		"video": map[string]any{"roomCreate": roomCreate},
	}).SignedString([]byte(sec))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends one raw request and returns its status and Twirp code.
func post(t *testing.T, url, path, contentType, auth, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var e struct {
		Code string `json:"code"`
	}
	json.Unmarshal(raw, &e)
	return res.StatusCode, e.Code
}

func TestWire(t *testing.T) {
	t.Parallel()
	fake := livekittest.New(t, key, secret)
	fake.AddRoom("r1")
	good := token(t, key, secret, time.Minute, true)
	tests := []struct {
		name, path, contentType, auth, body string
		wantStatus                          int
		wantCode                            string
	}{
		{"no token", livekittest.DeleteRoomPath, "application/json", "", `{"room":"r1"}`, 401, "unauthenticated"},
		{"wrong secret", livekittest.DeleteRoomPath, "application/json", token(t, key, "other", time.Minute, true), `{"room":"r1"}`, 401, "unauthenticated"},
		{"wrong issuer", livekittest.DeleteRoomPath, "application/json", token(t, "other", secret, time.Minute, true), `{"room":"r1"}`, 401, "unauthenticated"},
		{"expired", livekittest.DeleteRoomPath, "application/json", token(t, key, secret, -time.Minute, true), `{"room":"r1"}`, 401, "unauthenticated"},
		{"no roomCreate", livekittest.DeleteRoomPath, "application/json", token(t, key, secret, time.Minute, false), `{"room":"r1"}`, 403, "permission_denied"},
		{"other route", "/twirp/livekit.RoomService/ListRooms", "application/json", good, `{}`, 404, "bad_route"},
		{"protobuf", livekittest.DeleteRoomPath, "application/protobuf", good, `{"room":"r1"}`, 404, "bad_route"},
		{"bad body", livekittest.DeleteRoomPath, "application/json", good, `{"room":`, 400, "malformed"},
		{"extra field", livekittest.DeleteRoomPath, "application/json", good, `{"room":"r1","x":1}`, 400, "invalid_argument"},
		{"deleted", livekittest.DeleteRoomPath, "application/json", good, `{"room":"r1"}`, 200, ""},
		{"deleted again", livekittest.DeleteRoomPath, "application/json", good, `{"room":"r1"}`, 404, "not_found"},
		{"never existed", livekittest.DeleteRoomPath, "application/json", good, `{"room":"r2"}`, 404, "not_found"},
	}
	for _, tt := range tests {
		status, code := post(t, fake.URL, tt.path, tt.contentType, tt.auth, tt.body)
		if status != tt.wantStatus || code != tt.wantCode {
			t.Errorf("%s: got %d %q, want %d %q", tt.name, status, code, tt.wantStatus, tt.wantCode)
		}
	}
	if got, want := fake.Refused(), 9; got != want {
		t.Errorf("Refused: got %d, want %d", got, want)
	}
	if got := fake.Count("r1"); got != 2 {
		t.Errorf("Count(r1): got %d, want 2", got)
	}
}

func TestKnobs(t *testing.T) {
	t.Parallel()
	fake := livekittest.New(t, key, secret)
	fake.AllowUnknownRooms()
	fake.FailNext("a", 2, http.StatusServiceUnavailable)
	var hooked []int
	fake.OnDelete(func(r livekittest.Request) { hooked = append(hooked, r.Status) })
	good := token(t, key, secret, time.Minute, true)
	var got []int
	for range 4 {
		status, _ := post(t, fake.URL, livekittest.DeleteRoomPath, "application/json", good, `{"room":"a"}`)
		got = append(got, status)
	}
	if want := []int{503, 503, 200, 404}; !slices.Equal(got, want) || !slices.Equal(hooked, want) {
		t.Errorf("statuses: got %v (hook saw %v), want %v", got, hooked, want)
	}
	if got := fake.Deleted(); len(got) != 4 || got[3] != "a" {
		t.Errorf("Deleted: got %v, want a four times", got)
	}

	fake.CountOnly()
	fake.SetDelay("b", 200*time.Millisecond)
	start := time.Now()
	if status, _ := post(t, fake.URL, livekittest.DeleteRoomPath, "application/json", good, `{"room":"b"}`); status != 200 {
		t.Errorf("b: got %d, want 200", status)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("delayed answer took %v, want at least 200ms", d)
	}
	if fake.Count("b") != 1 || len(fake.Requests()) != 0 {
		t.Errorf("CountOnly: Count %d, %d requests kept; want 1, none", fake.Count("b"), len(fake.Requests()))
	}
}

package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// callRec is what the outside world saw of one seeded call: when each
// fake received what concerns it (Unix nanoseconds, 0 for never), and how
// often.
type callRec struct {
	id      string
	hangups atomic.Int32
	room    atomic.Int64
	rooms   atomic.Int32
	// ended and analyzed are the arrival times at endpoint 0 and 1.
	ended    [2]atomic.Int64
	analyzed [2]atomic.Int64
	// responded is when the end request's response was read (freshness).
	responded atomic.Int64
}

// tracker indexes the seeded calls by what each fake sees of them.
type tracker struct {
	mu     sync.RWMutex
	byID   map[string]*callRec
	bySID  map[string]*callRec
	byRoom map[string]*callRec

	dupDeliveries atomic.Int64
	dupRooms      atomic.Int64
	unknown       atomic.Int64
}

func newTracker() *tracker {
	return &tracker{byID: map[string]*callRec{}, bySID: map[string]*callRec{}, byRoom: map[string]*callRec{}}
}

func (t *tracker) add(id, sid, room string) *callRec {
	r := &callRec{id: id}
	t.mu.Lock()
	t.byID[id], t.bySID[sid], t.byRoom[room] = r, r, r
	t.mu.Unlock()
	return r
}

func (t *tracker) lookup(m map[string]*callRec, key string) *callRec {
	t.mu.RLock()
	r := m[key]
	t.mu.RUnlock()
	if r == nil {
		t.unknown.Add(1)
	}
	return r
}

// fakeLiveKit answers RoomService.DeleteRoom, checking the access token of
// every 20th request the way LiveKit does.
type fakeLiveKit struct {
	key, secret string
	calls       *tracker
	srv         *httptest.Server
	n           atomic.Int64
	badTokens   atomic.Int64
	conns       atomic.Int64
}

func newFakeLiveKit(key, secret string, calls *tracker) *fakeLiveKit {
	f := &fakeLiveKit{key: key, secret: secret, calls: calls}
	f.srv = newLocalServer(http.HandlerFunc(f.serve), &f.conns)
	return f
}

func (f *fakeLiveKit) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/twirp/livekit.RoomService/DeleteRoom" {
		http.NotFound(w, r)
		return
	}
	if f.n.Add(1)%20 == 1 {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(f.secret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(f.key), jwt.WithExpirationRequired())
		video, _ := claims["video"].(map[string]any)
		if err != nil || video["roomCreate"] != true {
			f.badTokens.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"code":"unauthenticated","msg":"invalid token"}`)
			return
		}
	}
	var req struct {
		Room string `json:"room"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if rec := f.calls.lookup(f.calls.byRoom, req.Room); rec != nil {
		if rec.rooms.Add(1) > 1 {
			f.calls.dupRooms.Add(1)
		}
		rec.room.CompareAndSwap(0, time.Now().UnixNano())
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, "{}")
}

// receiver is a webhook receiver with two endpoints, /0 and /1. It records
// when each event of each call arrived, and verifies the signature of every
// 25th delivery (and of every delivery of an unknown call) with the
// official Standard Webhooks library.
type receiver struct {
	calls    *tracker
	srv      *httptest.Server
	mu       sync.RWMutex
	verifier [2]*standardwebhooks.Webhook
	n        atomic.Int64
	verified atomic.Int64
	rejected atomic.Int64
	bad      atomic.Int64
	conns    atomic.Int64
	// arrivals are the arrival times (Unix nanoseconds) of every request
	// at each endpoint, for its pace.
	arrivals [2][]int64
}

func newReceiver(calls *tracker) *receiver {
	rc := &receiver{calls: calls}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /0", func(w http.ResponseWriter, r *http.Request) { rc.serve(w, r, 0) })
	mux.HandleFunc("POST /1", func(w http.ResponseWriter, r *http.Request) { rc.serve(w, r, 1) })
	rc.srv = newLocalServer(mux, &rc.conns)
	return rc
}

// setSecret gives endpoint i's signing secret, for verification.
func (rc *receiver) setSecret(i int, secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	rc.mu.Lock()
	rc.verifier[i] = wh
	rc.mu.Unlock()
	return nil
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request, endpoint int) {
	at := time.Now().UnixNano()
	rc.mu.Lock()
	rc.arrivals[endpoint] = append(rc.arrivals[endpoint], at)
	rc.mu.Unlock()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		rc.bad.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rec := rc.calls.lookup(rc.calls.byID, ev.Data.ID)
	if rc.n.Add(1)%25 == 0 || rec == nil {
		rc.mu.RLock()
		wh := rc.verifier[endpoint]
		rc.mu.RUnlock()
		if wh == nil || wh.Verify(body, r.Header) != nil {
			rc.rejected.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rc.verified.Add(1)
	}
	if rec != nil {
		var slot *atomic.Int64
		switch ev.Type {
		case "call.ended":
			slot = &rec.ended[endpoint]
		case "call.analyzed":
			slot = &rec.analyzed[endpoint]
		default:
			rc.bad.Add(1)
		}
		if slot != nil && !slot.CompareAndSwap(0, at) {
			rc.calls.dupDeliveries.Add(1)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// arrivalsSince returns the arrival times at an endpoint since t.
func (rc *receiver) arrivalsSince(endpoint int, t time.Time) []int64 {
	rc.mu.RLock()
	defer rc.mu.RUnlock()
	var out []int64
	for _, at := range rc.arrivals[endpoint] {
		if at >= t.UnixNano() {
			out = append(out, at)
		}
	}
	return out
}

// newLocalServer serves h on a free port of 127.0.0.1 and counts the
// connections its clients open in conns.
func newLocalServer(h http.Handler, conns *atomic.Int64) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	return srv
}

package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/endcall/endcall/livekit/livekittest"
	"github.com/endcall/endcall/twilio/twiliotest"
	"github.com/endcall/endcall/webhook/webhooktest"
)

// The outside world of the bench is the repository's wire fakes: Twilio
// (twilio/twiliotest), LiveKit (livekit/livekittest), two webhook receivers
// (webhook/webhooktest) and, for (h), an LLM (analysis/llmtest). Their hooks
// feed the tracker, and they keep counters rather than every request, so
// that long runs stay small.

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
	defer t.mu.RUnlock()
	return m[key]
}

// fakeTwilio is the Twilio fake with every hangup counted on the call it
// ends.
type fakeTwilio struct {
	*twiliotest.Server
}

func newFakeTwilio(tb *benchTB, account, token string, calls *tracker) *fakeTwilio {
	srv := twiliotest.New(tb)
	srv.AddAccount(account, token)
	// endcall looks the bench's number up in the account before storing it.
	srv.AddNumber(account, benchNumber)
	// Seeded calls are unknown to the fake until their first request, which
	// finds them in progress.
	srv.AllowUnknownCalls()
	srv.OnUpdate(func(r twiliotest.Request) *twiliotest.Error {
		if r.IsHangup() {
			if rec := calls.lookup(calls.bySID, r.CallSID); rec != nil {
				rec.hangups.Add(1)
			}
		}
		return nil
	})
	return &fakeTwilio{Server: srv}
}

// setDelay makes every Twilio request take d (0: answer at once).
func (f *fakeTwilio) setDelay(d time.Duration) { f.SetDelay("", d) }

// refused counts the requests the fake did not authenticate.
func (f *fakeTwilio) refused() int {
	n := 0
	for _, r := range f.Requests() {
		if !r.Authenticated {
			n++
		}
	}
	return n
}

// benchNumber is the platform number every bench call is placed from.
const benchNumber = "+15550000000"

// newFakeLiveKit starts the LiveKit fake, which verifies every access
// token, and records on each seeded call when its room's first deletion
// request arrived and how many came.
func newFakeLiveKit(tb *benchTB, key, secret string, calls *tracker) *livekittest.Server {
	lk := livekittest.New(tb, key, secret)
	// Seeded rooms were never created in the fake: each exists until deleted.
	lk.AllowUnknownRooms()
	lk.CountOnly()
	lk.OnDelete(func(r livekittest.Request) {
		if r.Err != nil {
			return
		}
		if rec := calls.lookup(calls.byRoom, r.Room); rec != nil {
			if rec.rooms.Add(1) > 1 {
				calls.dupRooms.Add(1)
			}
			rec.room.CompareAndSwap(0, r.Time.UnixNano())
		}
	})
	return lk
}

// receiver is two webhook endpoints, each a webhooktest fake verifying
// every delivery with the official Standard Webhooks library. It records on
// each seeded call when each of its events first arrived at each endpoint,
// and the arrival times at each endpoint for its pace.
type receiver struct {
	ep    [2]*webhooktest.Server
	srv   [2]*httptest.Server
	conns atomic.Int64
	calls *tracker

	mu       sync.Mutex
	arrivals [2][]int64 // Unix nanoseconds
}

func newReceiver(calls *tracker) *receiver {
	rc := &receiver{calls: calls}
	for i := range rc.ep {
		rc.ep[i] = webhooktest.NewHandler()
		rc.ep[i].CountOnly()
		rc.ep[i].Before(func(d webhooktest.Delivery) { rc.record(i, d) })
		rc.srv[i] = newLocalServer(rc.ep[i], &rc.conns)
	}
	return rc
}

// url is the URL of endpoint i.
func (rc *receiver) url(i int) string { return rc.srv[i].URL }

func (rc *receiver) close() {
	for _, s := range rc.srv {
		s.Close()
	}
}

// received returns how many requests both endpoints got, and how many of
// them did not verify.
func (rc *receiver) received() (n, rejected int) {
	for _, ep := range rc.ep {
		n += ep.Count()
		rejected += ep.Rejected()
	}
	return n, rejected
}

func (rc *receiver) record(endpoint int, d webhooktest.Delivery) {
	at := d.Time.UnixNano()
	rc.mu.Lock()
	rc.arrivals[endpoint] = append(rc.arrivals[endpoint], at)
	rc.mu.Unlock()
	if d.VerifyErr != nil {
		return
	}
	rec := rc.calls.lookup(rc.calls.byID, d.CallID)
	if rec == nil {
		return // a call of an earlier run on the same servers
	}
	slot := &rec.analyzed[endpoint]
	if d.Type == "call.ended" {
		slot = &rec.ended[endpoint]
	}
	if !slot.CompareAndSwap(0, at) {
		rc.calls.dupDeliveries.Add(1)
	}
}

// arrivalsSince returns the arrival times at an endpoint since t.
func (rc *receiver) arrivalsSince(endpoint int, t time.Time) []int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
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

// benchTB lets the fakes' New functions, which only ask their testing.TB
// for Helper and Cleanup, run outside a test. Any other method panics (nil
// TB).
type benchTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func (t *benchTB) Helper() {}

func (t *benchTB) Cleanup(f func()) {
	t.mu.Lock()
	t.cleanups = append(t.cleanups, f)
	t.mu.Unlock()
}

// close runs the cleanups, closing the fakes, last registered first.
func (t *benchTB) close() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

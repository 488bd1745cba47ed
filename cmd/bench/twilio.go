package main

import (
	"sync"
	"testing"
	"time"

	"github.com/endcall/endcall/twilio/twiliotest"
)

// fakeTwilio is the repository's Twilio wire fake (twilio/twiliotest) with
// every hangup counted on the call it ends.
type fakeTwilio struct {
	*twiliotest.Server
	tb *benchTB
}

func newFakeTwilio(account, token string, calls *tracker) *fakeTwilio {
	tb := &benchTB{}
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
	return &fakeTwilio{Server: srv, tb: tb}
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

func (f *fakeTwilio) close() { f.tb.close() }

// benchTB lets twiliotest.New, which only asks its testing.TB for Helper
// and Cleanup, run outside a test. Any other method panics (nil TB).
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

func (t *benchTB) close() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// benchNumber is the platform number every bench call is placed from.
const benchNumber = "+15550000000"

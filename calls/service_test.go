package calls

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/twilio"
	"github.com/endcall/endcall/twilio/twiliotest"
)

// batchSizes is the real store, noting the size of every batch it is given.
type batchSizes struct {
	endcall.EndStore
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) EndCalls(ctx context.Context, targets []endcall.EndTarget,
	decide func(context.Context, int, endcall.LockedCall) (endcall.Ending, error)) []endcall.EndOutcome {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(targets))
	b.mu.Unlock()
	return b.EndStore.EndCalls(ctx, targets, decide)
}

type bundle struct {
	svc    *Service
	store  *postgres.Store
	sizes  *batchSizes
	fake   *twiliotest.Server
	other  *pgxpool.Pool // connections of the test's own, beside the store's small pool
	ws     string
	sid    string
	phone  string
	result chan endResult
}

type endResult struct {
	callID string
	res    endcall.EndResult
	err    error
}

func newBundle(t *testing.T) *bundle {
	t.Helper()
	pool := testenv.DB(t)
	b := &bundle{store: postgres.NewStore(pool, nil), fake: twiliotest.New(t), result: make(chan endResult, 64)}
	other, err := pgxpool.New(context.Background(), pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	b.other = other
	redis, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(redis)
	t.Cleanup(func() { client.Close() })
	var token string
	b.sid, token = b.fake.NewAccount()
	b.sizes = &batchSizes{EndStore: b.store}
	b.svc = &Service{Store: b.sizes, Queue: &jobs.Enqueuer{Client: client},
		Telephony: twilio.New(twilio.Config{BaseURL: b.fake.URL(), AccountSID: b.sid, AuthToken: token, Timeout: 30 * time.Second}),
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)), ProviderTimeout: 30 * time.Second, EnqueueTimeout: 5 * time.Second}
	ctx := context.Background()
	if b.ws, _, err = b.store.CreateAPIKey(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	p, err := b.store.CreatePhoneNumber(ctx, b.ws, "+15551110000", "twilio", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.phone = p.ID
	return b
}

// newCall registers an in-progress call that the fake provider knows.
func (b *bundle) newCall(t *testing.T) (id, sid string) {
	t.Helper()
	sid = b.fake.NewCall(b.sid, "in-progress")
	now := time.Now().UTC()
	c, err := b.store.CreateCall(context.Background(), &endcall.Call{WorkspaceID: b.ws, PhoneNumberID: &b.phone, CallSID: &sid,
		CallProvider: "twilio", CallFrom: "+15551110000", CallTo: "+15552220000", CallDirection: "outbound",
		CallStatus: endcall.StatusInProgress, StartedAt: &now, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID, sid
}

// end ends a call in the background; its result arrives on b.result.
func (b *bundle) end(id string) {
	go func() {
		res, err := b.svc.End(context.Background(), endcall.EndRequest{WorkspaceID: b.ws, CallID: id, Reason: "test", Trigger: endcall.TriggerAPI})
		b.result <- endResult{id, res, err}
	}()
}

// ended waits for n results and checks that each ended its call.
func (b *bundle) ended(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case r := <-b.result:
			if r.err != nil || r.res.AlreadyEnded {
				t.Fatalf("end of %s: already ended %v, err %v", r.callID, r.res.AlreadyEnded, r.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("an end did not finish")
		}
	}
}

// until polls cond until it holds (or fails the test after 10 s).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// lockWaits counts the database's transactions waiting on a row lock.
func (b *bundle) lockWaits(t *testing.T) int {
	var n int
	if err := b.other.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// hold makes the provider hold the hangups of the calls slow names until
// the returned open is called (at the latest when the test ends, or the
// fake's handlers would never return). Each held hangup sends on arrived.
func (b *bundle) hold(t *testing.T) (slow func(sid string), arrived <-chan struct{}, open func()) {
	gate := make(chan struct{})
	open = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open)
	var mu sync.Mutex
	held := map[string]bool{}
	arrivals := make(chan struct{}, 16)
	b.fake.OnUpdate(func(r twiliotest.Request) *twiliotest.Error {
		mu.Lock()
		isHeld := held[r.CallSID]
		mu.Unlock()
		if isHeld {
			arrivals <- struct{}{}
			<-gate
		}
		return nil
	})
	slow = func(sid string) {
		mu.Lock()
		defer mu.Unlock()
		held[sid] = true
	}
	return slow, arrivals, open
}

// endsAtOnce ends a new call and checks that it is the next end to finish,
// within 10 s however long the held hangups are held.
func (b *bundle) endsAtOnce(t *testing.T, held string) string {
	t.Helper()
	id, sid := b.newCall(t)
	b.end(id)
	select {
	case r := <-b.result:
		if r.callID != id || r.err != nil || r.res.AlreadyEnded {
			t.Fatalf("first end to finish: %+v, want %s ended", r, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the end waited behind %s", held)
	}
	return sid
}

// hungUpOnce checks that each call was hung up exactly once.
func (b *bundle) hungUpOnce(t *testing.T, sids ...string) {
	t.Helper()
	for _, sid := range sids {
		if n := b.fake.HangupCount(sid); n != 1 {
			t.Errorf("call %s hung up %d times, want once", sid, n)
		}
	}
}

// TestEndsWaitingForATransactionShareOne holds every transaction's turn
// while ten ends arrive. When the turns come free, the ten go into one
// transaction, and every call is still hung up exactly once.
func TestEndsWaitingForATransactionShareOne(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	turns := b.svc.turns()
	for range transactions {
		turns <- struct{}{}
	}
	const n = 10
	var sids []string
	for range n {
		id, sid := b.newCall(t)
		sids = append(sids, sid)
		b.end(id)
	}
	until(t, "the ends wait for a transaction", func() bool {
		b.svc.mu.Lock()
		defer b.svc.mu.Unlock()
		return len(b.svc.waiting) == n
	})
	for range transactions {
		<-turns
	}
	b.ended(t, n)

	b.sizes.mu.Lock()
	sizes := b.sizes.sizes
	b.sizes.mu.Unlock()
	if len(sizes) != 1 || sizes[0] != n {
		t.Errorf("batches of %v, want one of %d", sizes, n)
	}
	b.hungUpOnce(t, sids...)
}

// TestSlowHangupsDoNotHoldOtherEnds makes the provider hold the hangups of
// two calls, each in a transaction of its own, so that every transaction is
// waiting on the provider. Another call's end still goes through at once:
// a transaction gives its turn up once it has run for slowTransaction.
func TestSlowHangupsDoNotHoldOtherEnds(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	slow, arrived, open := b.hold(t)
	var sids []string
	for range transactions {
		id, sid := b.newCall(t)
		slow(sid)
		sids = append(sids, sid)
		b.end(id)
		<-arrived
	}
	sid := b.endsAtOnce(t, "other calls' slow hangups")
	open()
	b.ended(t, transactions)
	b.hungUpOnce(t, append(sids, sid)...)
}

// TestRepeatedEndsOfASlowCallDoNotHoldOtherEnds holds one call's hangup at
// the provider and ends that call twice more: each repeat takes a
// transaction and waits on the row lock of the first. Another call's end
// still goes through, and the slow call is ended, and hung up, once.
func TestRepeatedEndsOfASlowCallDoNotHoldOtherEnds(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	slow, arrived, open := b.hold(t)
	slowID, slowSID := b.newCall(t)
	slow(slowSID)
	b.end(slowID)
	<-arrived
	for i := range transactions {
		b.end(slowID)
		until(t, "the repeated end waits on the row lock", func() bool { return b.lockWaits(t) == i+1 })
	}
	sid := b.endsAtOnce(t, "repeated ends of a call whose hangup is slow")
	open()
	ended, already := 0, 0
	for range 1 + transactions {
		r := <-b.result
		switch {
		case r.err != nil:
			t.Fatalf("end of %s: %v", r.callID, r.err)
		case r.res.AlreadyEnded:
			already++
		default:
			ended++
		}
	}
	if ended != 1 || already != transactions {
		t.Errorf("the slow call: %d ends ended it, %d found it ended; want 1 and %d", ended, already, transactions)
	}
	b.hungUpOnce(t, slowSID, sid)
}

// panicking is a store whose EndCalls panics, as a bug would.
type panicking struct{ endcall.EndStore }

func (panicking) EndCalls(context.Context, []endcall.EndTarget,
	func(context.Context, int, endcall.LockedCall) (endcall.Ending, error)) []endcall.EndOutcome {
	panic("bug")
}

// TestPanicFailsTheBatchOnly: a panic while ending a batch gives every end
// in it an error, instead of leaving them waiting or ending the process,
// and the transaction's turn is free again for the next ends.
func TestPanicFailsTheBatchOnly(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.svc.Store = panicking{b.store}
	for range 2 * transactions {
		id, _ := b.newCall(t)
		b.end(id)
	}
	for range 2 * transactions {
		select {
		case r := <-b.result:
			if r.err == nil {
				t.Errorf("end of %s succeeded through a panicking store", r.callID)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("an end was left waiting after a panic")
		}
	}
	if n := len(b.svc.slots); n != 0 {
		t.Errorf("%d turns still held after the panics", n)
	}
}

package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/postgres"
)

// newCall registers an active, started call in the workspace.
func newCall(t *testing.T, store *postgres.Store, ws string, phoneID, room *string) *endcall.Call {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	started := now.Add(-42 * time.Second)
	sid := "CA" + uuid.NewString()[:32]
	c, err := store.CreateCall(context.Background(), &endcall.Call{WorkspaceID: ws, PhoneNumberID: phoneID, CallSID: &sid,
		CallProvider: "twilio", CallFrom: "+15550000001", CallTo: "+15550000002", CallDirection: "outbound",
		CallStatus: endcall.StatusInProgress, RoomName: room, StartedAt: &started, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEndCallsBatch ends one batch that holds every kind of target: active
// calls of two workspaces (one with BYOT credentials and a subscribed
// endpoint), a target named twice, an ended call, another workspace's call,
// a missing call and an ID that is not a UUID. Only the two active calls are
// decided and ended, each once, in one commit with the work they owe.
func TestEndCallsBatch(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	cipher, err := postgres.NewCipher(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	store := postgres.NewStore(pool, cipher)
	ctx := context.Background()
	ws1, _, err := store.CreateAPIKey(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	ws2, _, err := store.CreateAPIKey(ctx, "two")
	if err != nil {
		t.Fatal(err)
	}
	endpoint, err := store.CreateEndpoint(ctx, ws1, "https://example.com/hook", []string{endcall.EventCallEnded}, nil, "whsec_"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	creds := &endcall.ProviderCredentials{AccountSID: "AC" + uuid.NewString()[:32], AuthToken: "byot-token"}
	phone, err := store.CreatePhoneNumber(ctx, ws1, "+15550001000", "twilio", creds)
	if err != nil {
		t.Fatal(err)
	}
	room := "room-a"
	a := newCall(t, store, ws1, &phone.ID, &room)
	b := newCall(t, store, ws2, nil, nil)
	ended := newCall(t, store, ws1, nil, nil)
	if _, err := pool.Exec(ctx, `UPDATE calls SET ended_at = now(), call_status = 'completed' WHERE id = $1`, ended.ID); err != nil {
		t.Fatal(err)
	}
	others := newCall(t, store, ws2, nil, nil)

	targets := []endcall.EndTarget{
		{WorkspaceID: ws1, CallID: a.ID},
		{WorkspaceID: ws2, CallID: strings.ToUpper(b.ID)}, // not in canonical form
		{WorkspaceID: ws1, CallID: a.ID},                  // named twice
		{WorkspaceID: ws1, CallID: ended.ID},
		{WorkspaceID: ws1, CallID: others.ID}, // another workspace's
		{WorkspaceID: ws1, CallID: uuid.NewString()},
		{WorkspaceID: ws1, CallID: "not-a-uuid"},
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	var mu sync.Mutex
	decided := map[int]endcall.LockedCall{}
	outs := store.EndCalls(ctx, targets, func(_ context.Context, i int, lc endcall.LockedCall) (endcall.Ending, error) {
		mu.Lock()
		decided[i] = lc
		mu.Unlock()
		return endcall.Ending{Status: endcall.StatusCompleted, Reason: fmt.Sprintf("reason %d", i), HangupStatus: endcall.HangupSucceeded, At: at}, nil
	})
	if len(outs) != len(targets) {
		t.Fatalf("%d outcomes for %d targets", len(outs), len(targets))
	}

	if len(decided) != 2 || decided[0].Call == nil || decided[1].Call == nil {
		t.Fatalf("decided targets %v, want exactly 0 and 1", slices.Sorted(mapsKeys(decided)))
	}
	if c := decided[0].Credentials; c == nil || *c != *creds {
		t.Errorf("call a decided with credentials %+v, want its phone number's BYOT credentials", c)
	}
	if decided[1].Credentials != nil {
		t.Errorf("call b decided with credentials %+v, want the platform's (nil)", decided[1].Credentials)
	}

	// The two ended calls: as stored, with the work they owe.
	for i, want := range map[int][]string{0: {endcall.WorkRoomDelete, endcall.WorkAnalyze, endcall.WorkDeliver}, 1: {endcall.WorkAnalyze}} {
		o := outs[i]
		if o.Err != nil || !o.Ended {
			t.Fatalf("target %d: ended %v, err %v; want ended", i, o.Ended, o.Err)
		}
		var kinds []string
		for _, w := range o.Work {
			kinds = append(kinds, w.Kind)
			if w.CallID != o.Call.ID {
				t.Errorf("target %d owes work for call %s", i, w.CallID)
			}
		}
		if !slices.Equal(kinds, want) {
			t.Errorf("target %d owes %v, want %v", i, kinds, want)
		}
		stored, err := store.GetCall(ctx, o.Call.WorkspaceID, o.Call.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(o.Call)
		exp, _ := json.Marshal(stored)
		if !bytes.Equal(got, exp) {
			t.Errorf("target %d returned\n%s\nbut stored\n%s", i, got, exp)
		}
		if stored.EndedAt == nil || !stored.EndedAt.Equal(at) || *stored.DisconnectReason != fmt.Sprintf("reason %d", i) || *stored.CallDuration < 42 {
			t.Errorf("target %d stored ended_at %v, reason %v, duration %v", i, stored.EndedAt, *stored.DisconnectReason, *stored.CallDuration)
		}
	}

	// Both ended in one transaction: their rows carry the same xmin.
	var xmins int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT xmin::text) FROM calls WHERE id = ANY ($1)`, []string{a.ID, b.ID}).Scan(&xmins); err != nil {
		t.Fatal(err)
	}
	if xmins != 1 {
		t.Errorf("the two calls were ended in %d transactions, want one", xmins)
	}

	// Exactly one call.ended delivery, for call a, to ws1's endpoint, with
	// its body fixed in the same commit.
	var deliveryID, callID, endpointID string
	var body []byte
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) OVER (), id, call_id::text, endpoint_id::text, body FROM webhook_deliveries`).
		Scan(&n, &deliveryID, &callID, &endpointID, &body); err != nil {
		t.Fatal(err)
	}
	if n != 1 || callID != a.ID || endpointID != endpoint.ID || len(body) == 0 || outs[0].Work[2].DeliveryID != deliveryID {
		t.Errorf("deliveries: %d, first for call %s endpoint %s body %d bytes, id %s (owed %s)", n, callID, endpointID, len(body), deliveryID, outs[0].Work[2].DeliveryID)
	}

	// The copy of a reads as already ended, without work of its own.
	if o := outs[2]; o.Err != nil || o.Ended || o.Work != nil || o.Call == nil || o.Call.EndedAt == nil {
		t.Errorf("second target for a: %+v, want the ended call, not ended again", o)
	}
	if o := outs[3]; o.Err != nil || o.Ended || o.Call == nil || o.Call.ID != ended.ID {
		t.Errorf("ended call: %+v, want it as found", o)
	}
	for _, i := range []int{4, 5, 6} {
		if o := outs[i]; endcall.ErrorCode(o.Err) != endcall.ENOTFOUND || o.Call != nil {
			t.Errorf("target %d (%s): %+v, want not found", i, targets[i].CallID, o)
		}
	}
	if c, err := store.GetCall(ctx, ws2, others.ID); err != nil || c.EndedAt != nil {
		t.Errorf("another workspace's call changed: %+v, %v", c, err)
	}
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestEndCallsSharingCallsDoNotDeadlock makes two batches that share calls
// meet mid-lock. Two other transactions hold c and d while batch 1 names
// a, c, b and batch 2 names b, d, a. Locked in the order named, batch 1
// would hold a and wait on c, batch 2 hold b and wait on d, and once c and
// d are free each would wait on the other: a deadlock. Both lock in id
// order, so one waits for the other, and each call ends exactly once.
func TestEndCallsSharingCallsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	store := postgres.NewStore(pool, nil)
	ctx := context.Background()
	ws, _, err := store.CreateAPIKey(ctx, "deadlock")
	if err != nil {
		t.Fatal(err)
	}
	decide := func(context.Context, int, endcall.LockedCall) (endcall.Ending, error) {
		return endcall.Ending{Status: endcall.StatusCompleted, Reason: "r", HangupStatus: endcall.HangupSucceeded, At: time.Now()}, nil
	}
	// The holders and the watch have connections of their own: the store's
	// pool is small.
	other, err := pgxpool.New(ctx, pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	waiting := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			var waits int
			if err := other.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waits); err != nil {
				t.Fatal(err)
			}
			if waits >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d transactions wait on a lock, want %d", waits, n)
			}
		}
	}
	hold := func(id string) func() {
		tx, err := other.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM calls WHERE id = $1 FOR UPDATE`, id); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// With a table this small the planner would scan it whole and lock in
	// its physical order, the same for both; with enough calls it walks the
	// primary key in the order named, as in production.
	if _, err := pool.Exec(ctx, `INSERT INTO calls (workspace_id, call_from, call_to, call_direction, call_status)
		SELECT $1, '+15550000001', '+15550000002', 'outbound', 'completed' FROM generate_series(1, 5000)`, ws); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE calls`); err != nil {
		t.Fatal(err)
	}
	// Several rounds: the ids' order relative to each other varies.
	for round := range 4 {
		var ids []string
		for range 4 {
			ids = append(ids, newCall(t, store, ws, nil, nil).ID)
		}
		a, b, c, d := ids[0], ids[1], ids[2], ids[3]
		releaseC, releaseD := hold(c), hold(d)
		var wg sync.WaitGroup
		outs := make([][]endcall.EndOutcome, 2)
		for k, named := range [][]string{{a, c, b}, {b, d, a}} {
			var targets []endcall.EndTarget
			for _, id := range named {
				targets = append(targets, endcall.EndTarget{WorkspaceID: ws, CallID: id})
			}
			wg.Go(func() { outs[k] = store.EndCalls(ctx, targets, decide) })
			waiting(k + 1)
		}
		releaseC()
		releaseD()
		wg.Wait()
		endedBy := map[string]int{}
		for _, batch := range outs {
			for _, o := range batch {
				if o.Err != nil {
					t.Fatalf("round %d: %v", round, o.Err)
				}
				if o.Ended {
					endedBy[o.Call.ID]++
				}
			}
		}
		for _, id := range ids {
			if endedBy[id] != 1 {
				t.Fatalf("round %d: calls ended %v times, want once each", round, endedBy)
			}
		}
	}
}

// TestEndCallsPanicInDecideFailsOnlyItsCall: decide runs on goroutines of
// the store's, where a panic would end the process; it becomes that call's
// error, and the rest of the batch ends.
func TestEndCallsPanicInDecideFailsOnlyItsCall(t *testing.T) {
	t.Parallel()
	store := postgres.NewStore(testenv.DB(t), nil)
	ctx := context.Background()
	ws, _, err := store.CreateAPIKey(ctx, "panic")
	if err != nil {
		t.Fatal(err)
	}
	bad, good := newCall(t, store, ws, nil, nil), newCall(t, store, ws, nil, nil)
	outs := store.EndCalls(ctx, []endcall.EndTarget{{WorkspaceID: ws, CallID: bad.ID}, {WorkspaceID: ws, CallID: good.ID}},
		func(_ context.Context, i int, _ endcall.LockedCall) (endcall.Ending, error) {
			if i == 0 {
				panic("bug")
			}
			return endcall.Ending{Status: endcall.StatusCompleted, Reason: "r", HangupStatus: endcall.HangupSucceeded, At: time.Now()}, nil
		})
	if outs[0].Err == nil || outs[0].Ended {
		t.Errorf("the panicking call: %+v, want an error", outs[0])
	}
	if outs[1].Err != nil || !outs[1].Ended {
		t.Errorf("the other call: %+v, want it ended", outs[1])
	}
	if c, err := store.GetCall(ctx, ws, bad.ID); err != nil || c.EndedAt != nil {
		t.Errorf("the panicking call was changed: %+v, %v", c, err)
	}
}

package postgres_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/postgres"
)

// insertCall adds a call with the given times (seconds before now; started
// < 0 means never started), own limit (0: none) and ended state.
func insertCall(t *testing.T, pool *pgxpool.Pool, ws string, now time.Time, createdAgo, startedAgo, maxSeconds int, ended bool) string {
	t.Helper()
	var started, endedAt *time.Time
	if startedAgo >= 0 {
		s := now.Add(-time.Duration(startedAgo) * time.Second)
		started = &s
	}
	status := "in-progress"
	if ended {
		endedAt, status = &now, "completed"
	}
	var max *int
	if maxSeconds > 0 {
		max = &maxSeconds
	}
	var id string
	err := pool.QueryRow(context.Background(), `INSERT INTO calls (workspace_id, call_from, call_to, call_direction,
		call_status, created_at, started_at, max_duration_seconds, ended_at)
		VALUES ($1, '+15550000001', '+15550000002', 'outbound', $2, $3, $4, $5, $6) RETURNING id`,
		ws, status, now.Add(-time.Duration(createdAgo)*time.Second), started, max, endedAt).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestOverdueCalls(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	store := postgres.NewStore(pool, nil)
	ctx := context.Background()
	ws, _, err := store.CreateAPIKey(ctx, "overdue")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Microsecond)
	const defaultMax = 3600 // seconds
	ids := map[string]string{
		// Overdue by 10 s on the default limit, counted from started_at.
		"default, started": insertCall(t, pool, ws, now, 9000, defaultMax+10, 0, false),
		// Never started: counted from created_at; overdue by 5 s.
		"default, never started": insertCall(t, pool, ws, now, defaultMax+5, -1, 0, false),
		// Own limit of 60 s, overdue by 40 s: the oldest deadline.
		"own limit": insertCall(t, pool, ws, now, 200, 100, 60, false),
		// Exactly at its limit: due.
		"own limit, due now": insertCall(t, pool, ws, now, 30, 30, 30, false),
	}
	// Not overdue, or already ended.
	insertCall(t, pool, ws, now, 9000, 100, 0, false)                 // started late, within the default
	insertCall(t, pool, ws, now, 100, -1, 0, false)                   // young, never started
	insertCall(t, pool, ws, now, 9000, defaultMax-5, 0, false)        // 5 s to go
	insertCall(t, pool, ws, now, 9000, 100, 7200, false)              // own limit longer than the default
	insertCall(t, pool, ws, now, 9000, 9000, 0, true)                 // ended long ago
	insertCall(t, pool, ws, now, 9000, 9000, 60, true)                // ended, own limit
	insertCall(t, pool, ws, now, 9000, defaultMax+3000, 10000, false) // own limit not reached yet

	got, err := store.OverdueCalls(ctx, now, defaultMax*time.Second, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []string
	for _, c := range got {
		gotIDs = append(gotIDs, c.ID)
		if c.WorkspaceID != ws {
			t.Errorf("call %s: workspace %q, want %q", c.ID, c.WorkspaceID, ws)
		}
	}
	want := []string{ids["own limit"], ids["default, started"], ids["default, never started"], ids["own limit, due now"]}
	if !slices.Equal(gotIDs, want) {
		t.Errorf("got %v, want %v (oldest deadline first)", gotIDs, want)
	}

	got, err = store.OverdueCalls(ctx, now, defaultMax*time.Second, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != want[0] || got[1].ID != want[1] {
		t.Errorf("with limit 2: got %d calls, want the first two of %v", len(got), want)
	}

	got, err = store.OverdueCalls(ctx, now, defaultMax*time.Second, 2, []string{want[0], want[2]})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != want[1] || got[1].ID != want[3] {
		t.Errorf("passing over the first and third: got %d calls, want %v and %v", len(got), want[1], want[3])
	}
}

// TestOverdueScanUsesIndexes checks the plan of the scan on a table of
// thousands of calls that are not overdue: one range scan of each partial
// index and no sequential scan of calls.
func TestOverdueScanUsesIndexes(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	store := postgres.NewStore(pool, nil)
	ctx := context.Background()
	ws, _, err := store.CreateAPIKey(ctx, "explain")
	if err != nil {
		t.Fatal(err)
	}
	// 4000 active calls within their limits (half with their own), 4000
	// ended ones, and a few overdue.
	_, err = pool.Exec(ctx, `INSERT INTO calls (workspace_id, call_from, call_to, call_direction, call_status,
			created_at, started_at, max_duration_seconds, ended_at)
		SELECT $1, '+15550000001', '+15550000002', 'outbound',
			CASE WHEN i % 2 = 0 THEN 'completed' ELSE 'in-progress' END,
			now() - (i % 600) * interval '1 second', now() - (i % 600) * interval '1 second',
			CASE WHEN i % 4 < 2 THEN 900 END,
			CASE WHEN i % 2 = 0 THEN now() END
		FROM generate_series(1, 8000) i`, ws)
	if err != nil {
		t.Fatal(err)
	}
	insertCall(t, pool, ws, time.Now(), 9000, 9000, 0, false)
	insertCall(t, pool, ws, time.Now(), 9000, 9000, 60, false)
	if _, err := pool.Exec(ctx, `ANALYZE calls`); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	var raw []byte
	if err := pool.QueryRow(ctx, `EXPLAIN (FORMAT JSON) `+postgres.OverdueSQL, now, now.Add(-time.Hour), 100, []string{}).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var plan []struct {
		Plan planNode `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plan); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rows, err := pool.Query(ctx, `EXPLAIN `+postgres.OverdueSQL, now, now.Add(-time.Hour), 100, []string{})
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		text.WriteString(line + "\n")
	}
	rows.Close()
	t.Logf("plan of the overdue scan:\n%s", text.String())

	scans := map[string]string{} // index or relation → node type
	plan[0].Plan.walk(func(n planNode) {
		switch {
		case n.IndexName != "":
			scans[n.IndexName] = n.NodeType
		case n.RelationName != "":
			scans[n.RelationName] = n.NodeType
		}
	})
	for _, index := range []string{"calls_active_default_limit", "calls_active_own_limit"} {
		if scans[index] != "Index Scan" {
			t.Errorf("%s: got %q, want an Index Scan (scans: %v)", index, scans[index], scans)
		}
	}
	if typ, ok := scans["calls"]; ok {
		t.Errorf("calls is read by a %s, want only the two index scans", typ)
	}
}

type planNode struct {
	NodeType     string     `json:"Node Type"`
	RelationName string     `json:"Relation Name"`
	IndexName    string     `json:"Index Name"`
	Plans        []planNode `json:"Plans"`
}

func (n planNode) walk(f func(planNode)) {
	f(n)
	for _, c := range n.Plans {
		c.walk(f)
	}
}

func TestOverdueScanLock(t *testing.T) {
	t.Parallel()
	store := postgres.NewStore(testenv.DB(t), nil)
	ctx := context.Background()
	release, ok, err := store.TryLockOverdueScan(ctx)
	if err != nil || !ok {
		t.Fatalf("first lock: ok %v, err %v; want taken", ok, err)
	}
	if _, ok, err := store.TryLockOverdueScan(ctx); err != nil || ok {
		t.Fatalf("second lock while held: ok %v, err %v; want refused", ok, err)
	}
	// The lock holds no connection while the scan waits on the provider.
	if n := store.Pool().Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections held with the lock", n)
	}
	release()
	release, ok, err = store.TryLockOverdueScan(ctx)
	if err != nil || !ok {
		t.Fatalf("lock after release: ok %v, err %v; want taken", ok, err)
	}
	// A lease whose holder died lapses: the next scan takes it.
	if _, err := store.Pool().Exec(ctx, `UPDATE leases SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	release2, ok, err := store.TryLockOverdueScan(ctx)
	if err != nil || !ok {
		t.Fatalf("lock after the lease lapsed: ok %v, err %v; want taken", ok, err)
	}
	// The lapsed holder's release does not free the new holder's lease.
	release()
	if _, ok, err := store.TryLockOverdueScan(ctx); err != nil || ok {
		t.Fatalf("lock after a stale release: ok %v, err %v; want refused", ok, err)
	}
	release2()
}

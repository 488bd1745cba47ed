package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/postgres"
)

// clock is a settable clock for the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// insertCalls adds n completed calls to ws, created a second apart from
// created, with campaign (NULL when "").
func insertCalls(t *testing.T, pool *pgxpool.Pool, ws string, n int, created time.Time, campaign string) {
	t.Helper()
	var camp any
	if campaign != "" {
		camp = campaign
	}
	_, err := pool.Exec(context.Background(), `INSERT INTO calls (workspace_id, call_from, call_to, call_direction,
		call_status, campaign_id, created_at, updated_at)
		SELECT $1, '+15550000001', '+15550000002', 'outbound', 'completed', $3, $4::timestamptz + i * interval '1 second', now()
		FROM generate_series(1, $2::int) i`, ws, n, camp, created)
	if err != nil {
		t.Fatal(err)
	}
}

func newWorkspace(t *testing.T, store *postgres.Store, name string) string {
	t.Helper()
	ws, _, err := store.CreateAPIKey(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func query(t *testing.T, store *postgres.Store, q endcall.CallQuery) ([]*endcall.Call, int) {
	t.Helper()
	if q.PerPage == 0 {
		q.PerPage = 10
	}
	if q.SortColumn == "" {
		q.SortColumn, q.Descending = "created_at", true
	}
	calls, total, err := store.QueryCalls(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return calls, total
}

// TestQueryCallsCountCache checks the count cache of QueryCalls with its
// real threshold: a total above 10,000 is reused for 10 seconds by queries
// with the same filters whatever their page and sort, and by no other
// query or workspace; smaller totals are always counted afresh.
func TestQueryCallsCountCache(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	store := postgres.NewStore(pool, nil)
	clk := &clock{t: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	store.SetNow(clk.now)
	a, b := newWorkspace(t, store, "a"), newWorkspace(t, store, "b")
	created := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	big := postgres.CountCacheThreshold + 1
	insertCalls(t, pool, a, big-40, created, "")
	insertCalls(t, pool, a, 40, created.Add(time.Hour), "camp")
	insertCalls(t, pool, b, 3, created, "")

	if _, total := query(t, store, endcall.CallQuery{WorkspaceID: a}); total != big {
		t.Fatalf("a: total %d, want %d", total, big)
	}
	if _, total := query(t, store, endcall.CallQuery{WorkspaceID: a, CampaignID: "camp"}); total != 40 {
		t.Fatalf("a, camp: total %d, want 40", total)
	}
	// One more call of each kind in a; one more in b.
	newest := created.Add(48 * time.Hour)
	insertCalls(t, pool, a, 1, newest, "camp")
	insertCalls(t, pool, b, 1, newest, "")

	// The large total is reused, for any page, size and sort; the page
	// itself is read afresh.
	for _, q := range []endcall.CallQuery{
		{WorkspaceID: a},
		{WorkspaceID: a, Page: 7, PerPage: 25},
		{WorkspaceID: a, SortColumn: "call_duration", Descending: false},
	} {
		calls, total := query(t, store, q)
		if total != big {
			t.Errorf("%+v: total %d, want the cached %d", q, total, big)
		}
		if q.Page == 0 && q.SortColumn == "" && !calls[0].CreatedAt.Equal(newest.Add(time.Second)) {
			t.Errorf("first call created %s, want the new call (%s)", calls[0].CreatedAt, newest.Add(time.Second))
		}
	}
	// Small totals are exact at once.
	if _, total := query(t, store, endcall.CallQuery{WorkspaceID: a, CampaignID: "camp"}); total != 41 {
		t.Errorf("a, camp: total %d, want 41 (small counts are never cached)", total)
	}
	// Other filters have their own count, even one matching the same calls.
	if _, total := query(t, store, endcall.CallQuery{WorkspaceID: a, Statuses: []endcall.CallStatus{"completed"}}); total != big+1 {
		t.Errorf("a, completed: total %d, want %d", total, big+1)
	}
	// Another workspace never sees a's count.
	if _, total := query(t, store, endcall.CallQuery{WorkspaceID: b}); total != 4 {
		t.Errorf("b: total %d, want 4", total)
	}

	// Still cached just before the TTL; counted again at it.
	clk.add(postgres.CountCacheTTL - time.Millisecond)
	if _, total := query(t, store, endcall.CallQuery{WorkspaceID: a}); total != big {
		t.Errorf("a before the TTL: total %d, want the cached %d", total, big)
	}
	clk.add(time.Millisecond)
	if _, total := query(t, store, endcall.CallQuery{WorkspaceID: a}); total != big+1 {
		t.Errorf("a after the TTL: total %d, want %d", total, big+1)
	}
}

// TestQueryCallsCountCacheConcurrent runs identical queries at once, with
// a low threshold, under the race detector in make test.
func TestQueryCallsCountCacheConcurrent(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	store := postgres.NewStore(pool, nil)
	store.SetCountCacheThreshold(5)
	ws := newWorkspace(t, store, "c")
	insertCalls(t, pool, ws, 30, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), "")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			calls, total, err := store.QueryCalls(context.Background(),
				endcall.CallQuery{WorkspaceID: ws, PerPage: 10, Page: i % 3, SortColumn: "created_at", Descending: true})
			if err != nil {
				t.Error(err)
			} else if total != 30 || len(calls) != 10 {
				t.Errorf("got %d calls of %d, want 10 of 30", len(calls), total)
			}
		})
	}
	wg.Wait()
}

// TestQueryCallsSearch checks searches against a plain reading of the
// rows: the page (walked in created_at order, or, when the walk runs out of
// budget, planned), paging, and the count, which for a search alone is
// taken from call_search: the workspace's matches only.
func TestQueryCallsSearch(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	store := postgres.NewStore(pool, nil)
	a, b := newWorkspace(t, store, "a"), newWorkspace(t, store, "b")
	created := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	// More calls than a walk visits for a first page (3,000); "rare" only
	// in the oldest ones, so its walk comes back short.
	insertCalls(t, pool, a, 3200, created, "")
	insertCalls(t, pool, b, 30, created, "")
	_, err := pool.Exec(context.Background(), `UPDATE calls SET
		notes = CASE WHEN extract(epoch FROM created_at)::int % 3 = 0 THEN 'Wants a REFUND' END,
		transcript = CASE WHEN extract(epoch FROM created_at)::int % 5 = 0 THEN 'user: refund please' END,
		call_feedback = CASE WHEN created_at <= '2026-02-01 00:00:20+00' THEN 'rare: 100%' END,
		call_status = CASE WHEN extract(epoch FROM created_at)::int % 2 = 0 THEN 'completed' ELSE 'busy' END`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		search, like string
		statuses     []endcall.CallStatus
	}{
		{"Refund", "%refund%", nil},
		{"rare: 100%", `%rare: 100\%%`, nil},
		{"Refund", "%refund%", []endcall.CallStatus{"busy"}},
		{"zebra", "%zebra%", nil},
	} {
		rows, _ := pool.Query(context.Background(), `SELECT id::text FROM calls WHERE workspace_id = $1
			AND (notes ILIKE $2 OR transcript ILIKE $2 OR call_feedback ILIKE $2 OR call_to ILIKE $2)
			AND ($3::text[] IS NULL OR call_status = ANY ($3)) ORDER BY created_at DESC, id DESC`, a, tc.like, tc.statuses)
		want, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, perPage := range []int{10, 100} {
			var got []string
			for page := 0; ; page++ {
				calls, total := query(t, store, endcall.CallQuery{WorkspaceID: a, Search: tc.search, Statuses: tc.statuses,
					Page: page, PerPage: perPage})
				if total != len(want) {
					t.Errorf("%q %v: total %d, want %d", tc.search, tc.statuses, total, len(want))
				}
				for _, c := range calls {
					got = append(got, c.ID)
				}
				if len(calls) < perPage {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%q %v, %d a page: got %d calls, want %d, or another order", tc.search, tc.statuses, perPage, len(got), len(want))
			}
		}
	}
}

// TestQueryCallsStartedRange checks started_at ranges sorted by created_at
// (whose page is bounded by the workspace's gaps between created_at and
// started_at) against a plain reading of the rows, with calls that
// started long before or after they were created, as a client may say.
func TestQueryCallsStartedRange(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	store := postgres.NewStore(pool, nil)
	ws, other := newWorkspace(t, store, "a"), newWorkspace(t, store, "b")
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// 200 calls an hour apart; most start 20 s after creation, some never,
	// some were started (by the client's say) days before or after.
	_, err := pool.Exec(context.Background(), `INSERT INTO calls (workspace_id, call_from, call_to, call_direction,
		call_status, created_at, started_at)
		SELECT $1, '+15550000001', '+15550000002', 'outbound', 'completed', $2::timestamptz + i * interval '1 hour',
			CASE WHEN i % 7 = 0 THEN NULL
				WHEN i % 31 = 0 THEN $2::timestamptz + i * interval '1 hour' - interval '9 days'
				WHEN i % 37 = 0 THEN $2::timestamptz + i * interval '1 hour' + interval '5 days'
				ELSE $2::timestamptz + i * interval '1 hour' + interval '20 seconds' END
		FROM generate_series(1, 200) i`, ws, base)
	if err != nil {
		t.Fatal(err)
	}
	day := func(d int) *time.Time { t := base.AddDate(0, 0, d); return &t }
	for _, r := range []struct{ from, before *time.Time }{
		{day(2), day(4)}, {day(-10), day(1)}, {day(3), nil}, {nil, day(2)}, {day(8), day(20)}, {day(30), day(40)},
	} {
		for _, desc := range []bool{true, false} {
			rows, _ := pool.Query(context.Background(), `SELECT id::text FROM calls WHERE workspace_id = $1
				AND ($2::timestamptz IS NULL OR started_at >= $2) AND ($3::timestamptz IS NULL OR started_at < $3)
				ORDER BY created_at, id`, ws, r.from, r.before)
			want, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if desc {
				slices.Reverse(want)
			}
			var got []string
			for page := 0; ; page++ {
				calls, total := query(t, store, endcall.CallQuery{WorkspaceID: ws, StartedFrom: r.from, StartedBefore: r.before,
					Page: page, PerPage: 7, SortColumn: "created_at", Descending: desc})
				if total != len(want) {
					t.Errorf("%v–%v: total %d, want %d", r.from, r.before, total, len(want))
				}
				if len(calls) == 0 {
					break
				}
				for _, c := range calls {
					got = append(got, c.ID)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%v–%v desc=%v: got %d calls, want %d, or another order", r.from, r.before, desc, len(got), len(want))
			}
		}
	}
	// A workspace none of whose calls started: empty, not an error.
	insertCalls(t, pool, other, 3, base, "")
	if calls, total := query(t, store, endcall.CallQuery{WorkspaceID: other, StartedFrom: day(-100), StartedBefore: day(100)}); len(calls) != 0 || total != 0 {
		t.Errorf("never started: got %d calls of %d", len(calls), total)
	}
}

// TestQueryCallsStartedRangeDST checks the created_at bounds of a
// started_at range in a session time zone with daylight saving time, where
// adding "9 days" to a time across the change adds 9 days and an hour less.
func TestQueryCallsStartedRangeDST(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	cfg := pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["timezone"] = "America/New_York"
	ny, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ny.Close()
	store := postgres.NewStore(ny, nil)
	ws := newWorkspace(t, store, "dst")
	// Started 9 days after it was created, across the change of 8 March.
	created := time.Date(2026, 3, 1, 0, 10, 0, 0, time.UTC)
	_, err = pool.Exec(context.Background(), `INSERT INTO calls (workspace_id, call_from, call_to, call_direction,
		call_status, created_at, started_at) VALUES ($1, '+15550000001', '+15550000002', 'outbound', 'completed', $2, $3)`,
		ws, created, created.AddDate(0, 0, 9))
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	before := from.AddDate(0, 0, 1)
	for _, q := range []endcall.CallQuery{
		{WorkspaceID: ws, StartedFrom: &from},
		{WorkspaceID: ws, StartedFrom: &from, StartedBefore: &before},
		{WorkspaceID: ws, StartedFrom: &from, SortColumn: "created_at", Descending: false},
	} {
		if calls, total := query(t, store, q); len(calls) != 1 || total != 1 {
			t.Errorf("%+v: got %d calls of %d, want 1", q, len(calls), total)
		}
	}
}

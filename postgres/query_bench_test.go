package postgres_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/postgres"
)

// seedNow is the instant the seeded history ends at; calls go back from it
// one every 30 seconds.
var seedNow = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// seedHistory inserts n calls in one statement: 90% in workspace big (the
// one queried), the rest spread over nine others. Newest first: the last
// 300 calls of big are still active; of the others 70% completed with a
// generated transcript, the rest busy, no-answer, failed or canceled. 60%
// belong to one of 200 campaigns, all to one of 25 agents, and about 1%
// of transcripts mention a refund.
func seedHistory(b *testing.B, pool *pgxpool.Pool, big string, others []string, n int) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	// The insert commits synchronously: make test's servers commit
	// asynchronously (scripts/services.sh --fast), and until its commit is
	// flushed the VACUUM below cannot mark the pages all-visible, which
	// would leave no count index-only.
	tx, err := pool.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
		b.Fatal(err)
	}
	_, err = tx.Exec(ctx, `
WITH w AS (SELECT ARRAY['hello','thanks','order','delivery','tomorrow','account','payment','please','number','address',
	'confirm','schedule','appointment','price','discount','warranty','manager','problem','help','great','invoice',
	'subscription','upgrade','question','minutes','shipping','tracking','balance','card','morning'] AS a),
s AS (
	SELECT i, CASE WHEN i % 10 = 0 THEN ($3::uuid[])[1 + (i / 10) % array_length($3::uuid[], 1)] ELSE $2::uuid END AS ws,
		$4::timestamptz - (($1::int - i) * interval '30 seconds') AS created,
		CASE WHEN i > $1::int - 300 THEN (ARRAY['queued','ringing','in-progress','in-progress'])[1 + i % 4]
			WHEN i % 100 < 70 THEN 'completed' WHEN i % 100 < 78 THEN 'busy' WHEN i % 100 < 86 THEN 'no-answer'
			WHEN i % 100 < 90 THEN 'failed' ELSE 'canceled' END AS status
	FROM generate_series(1, $1::int) i
)
INSERT INTO calls (workspace_id, call_from, call_to, call_direction, call_status, ai_agent_id, campaign_id,
	started_at, ended_at, call_duration, disconnect_reason, notes, call_feedback, transcript, analysis_sentiment,
	created_at, updated_at)
SELECT s.ws, '+15550000000', '+1555' || lpad(((s.i::bigint * 7919) % 10000000)::text, 7, '0'), 'outbound', s.status,
	'agent-' || s.i % 25,
	CASE WHEN s.i % 5 < 3 THEN 'camp-' || s.i % 200 END,
	CASE WHEN s.status IN ('completed', 'in-progress') THEN s.created + interval '5 seconds' END,
	CASE WHEN s.status NOT IN ('queued', 'ringing', 'in-progress') THEN s.created + interval '5 seconds' + ((s.i::bigint * 7919) % 600) * interval '1 second' END,
	CASE WHEN s.status = 'completed' THEN (s.i::bigint * 7919) % 600 WHEN s.status NOT IN ('queued', 'ringing', 'in-progress') THEN 0 END,
	CASE WHEN s.status = 'completed' THEN 'Ended Via API call' WHEN s.status NOT IN ('queued', 'ringing', 'in-progress') THEN s.status END,
	CASE WHEN s.i % 20 = 0 THEN 'Customer asked about ' || w.a[1 + s.i % 30] || ' and ' || w.a[1 + (s.i / 3) % 30] END,
	CASE WHEN s.i % 50 = 0 THEN 'Agent was ' || w.a[1 + (s.i / 5) % 30] END,
	CASE WHEN s.status = 'completed' THEN
		'agent: ' || w.a[1 + s.i % 30] || ' ' || w.a[1 + (s.i / 7) % 30] || ' ' || w.a[1 + (s.i / 11) % 30] ||
		E'\nuser: ' || w.a[1 + (s.i / 13) % 30] || ' ' || w.a[1 + (s.i / 17) % 30] || ' ' || w.a[1 + (s.i / 19) % 30] ||
		E'\nagent: ' || w.a[1 + (s.i / 23) % 30] || ' ' || w.a[1 + (s.i / 29) % 30] || ' ' || w.a[1 + (s.i / 31) % 30] ||
		E'\nuser: ' || w.a[1 + (s.i / 37) % 30] || ' ' || w.a[1 + (s.i / 41) % 30] || ' ' || w.a[1 + (s.i / 43) % 30] ||
		CASE WHEN s.i % 97 = 0 THEN ' I want a refund' ELSE '' END ||
		E'\nagent: ' || w.a[1 + (s.i / 47) % 30] || ' ' || w.a[1 + (s.i / 53) % 30] || ' ' || w.a[1 + (s.i / 59) % 30] ||
		E'\nuser: ' || w.a[1 + (s.i / 61) % 30] || ' ' || w.a[1 + (s.i / 67) % 30] || ' ' || w.a[1 + (s.i / 71) % 30] ||
		E'\nagent: ' || w.a[1 + (s.i / 73) % 30] || ' ' || w.a[1 + (s.i / 79) % 30] || ' ' || w.a[1 + (s.i / 83) % 30] ||
		E'\nuser: ' || w.a[1 + (s.i / 89) % 30] || ' ' || w.a[1 + (s.i / 101) % 30] || ' ' || w.a[1 + (s.i / 103) % 30] END,
	CASE WHEN s.status = 'completed' THEN (ARRAY['positive','neutral','negative'])[1 + s.i % 3] END,
	s.created, s.created
FROM s, w`, n, big, others, seedNow)
	if err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d calls in %s", n, time.Since(start).Round(time.Second))
	start = time.Now()
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE calls`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE call_search`); err != nil {
		b.Fatal(err)
	}
	var pages, visible int
	if err := pool.QueryRow(ctx, `SELECT relpages, relallvisible FROM pg_class WHERE relname = 'calls'`).Scan(&pages, &visible); err != nil {
		b.Fatal(err)
	}
	b.Logf("vacuumed in %s: %d of the %d pages of calls all-visible", time.Since(start).Round(time.Second), visible, pages)
}

// BenchmarkQueryCalls seeds a fresh database with ENDCALL_BENCH_CALLS calls
// (1,000,000 unless set) and measures the common GET /v1/calls/query
// queries at the store: page and count, at once. Each sub-benchmark
// reports its p50 and p99, and the latency of its first query (first-ms),
// which counts the matches: the later ones reuse a total above
// postgres.CountCacheThreshold. The plans of both statements are logged.
// It runs only under -bench:
//
//	go test ./postgres -run '^$' -bench QueryCalls -benchtime 100x -v
func BenchmarkQueryCalls(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("ENDCALL_BENCH_CALLS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("ENDCALL_BENCH_CALLS=%q: want an integer of at least 1000", v)
		}
	}
	ctx := context.Background()
	pool := testenv.DB(b)
	store := postgres.NewStore(pool, nil)
	var big string
	others := make([]string, 9)
	for i := range 10 {
		id, _, err := store.CreateAPIKey(ctx, fmt.Sprintf("bench-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			big = id
		} else {
			others[i-1] = id
		}
	}
	seedHistory(b, pool, big, others, n)

	day := func(d time.Time) *time.Time { return &d }
	lastWeek, lastMonth := day(seedNow.AddDate(0, 0, -7)), day(seedNow.AddDate(0, 0, -30))
	for _, bc := range []struct {
		name string
		q    endcall.CallQuery
	}{
		{"default", endcall.CallQuery{}},
		{"page_100", endcall.CallQuery{Page: 100}},
		{"last_7_days", endcall.CallQuery{StartedFrom: lastWeek, StartedBefore: day(seedNow.AddDate(0, 0, 1))}},
		{"status_completed", endcall.CallQuery{Statuses: endcall.StatusesMatching("completed")}},
		{"status_busy", endcall.CallQuery{Statuses: endcall.StatusesMatching("busy")}},
		{"campaign", endcall.CallQuery{CampaignID: "camp-7"}},
		{"agent", endcall.CallQuery{AIAgentID: "agent-3"}},
		{"campaign_last_30_days", endcall.CallQuery{CampaignID: "camp-7", StartedFrom: lastMonth}},
		{"search_refund", endcall.CallQuery{Search: "refund"}},
		{"search_number", endcall.CallQuery{Search: "5551234"}},
		{"sort_duration_desc", endcall.CallQuery{SortColumn: "call_duration"}},
		{"filter_duration_gte_300", endcall.CallQuery{Filters: []endcall.CallFilter{{Column: "call_duration", Operator: endcall.OpGte, Value: int64(300)}}}},
		{"disconnect_reason", endcall.CallQuery{DisconnectReason: "no-answer"}},
	} {
		q := bc.q
		q.WorkspaceID, q.PerPage = big, 10
		if q.SortColumn == "" {
			q.SortColumn = "created_at"
		}
		q.Descending = true
		b.Run(bc.name, func(b *testing.B) {
			// A store of its own: its first query counts, however recently
			// another case counted the same filters; the rest reuse a
			// total above postgres.CountCacheThreshold.
			store := postgres.NewStore(pool, nil)
			t0 := time.Now()
			if _, _, err := store.QueryCalls(ctx, q); err != nil {
				b.Fatal(err)
			}
			first := time.Since(t0)
			var total int
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				_, n, err := store.QueryCalls(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				total = n
			}
			slices.Sort(lat)
			ms := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(ms(0.50), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
			b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
			b.ReportMetric(float64(total), "total")
			page, count, err := store.ExplainCallQuery(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("total %d\npage:\n%s\ncount:\n%s", total, page, count)
		})
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/postgres"
)

// historySQL inserts $3 ended calls of workspace $1 (IDs and SIDs in order,
// after a prefix from $2, so that their unique indexes fill in order),
// one every 7 seconds back from now (about 81 days for a million): 75%
// completed, the rest no-answer, busy, failed or canceled; half with an
// agent, a tenth in one of 20 campaigns, a fifth of the completed ones with
// a transcript, one in a hundred with notes. All their post-call work is
// done, as it is for old calls.
const historySQL = `
INSERT INTO calls (id, workspace_id, call_sid, call_provider, call_from, call_to, call_direction, call_status,
	call_duration, ai_agent_id, campaign_id, room_name, transcript, notes, disconnect_reason,
	provider_hangup_status, room_status, analysis_status, analysis_sentiment, started_at, ended_at,
	created_at, updated_at)
SELECT (left($2::text, 8) || '-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, $1::uuid,
	'CA' || left($2::text, 8) || lpad(to_hex(g), 24, '0'), 'twilio', '+15550000001', '+1555' || lpad((g::bigint * 7919 % 9999991)::text, 7, '0'),
	CASE WHEN g % 3 = 0 THEN 'inbound' ELSE 'outbound' END, st,
	CASE WHEN st = 'completed' THEN 20 + g * 31 % 900 ELSE 0 END,
	CASE WHEN g % 2 = 0 THEN 'agent-' || (g / 2 % 50) END,
	CASE WHEN g % 10 = 0 THEN 'campaign-' || (g / 10 % 20) END,
	'room-h' || g,
	CASE WHEN st = 'completed' AND g % 5 = 0 THEN (ARRAY[
		'agent: Hello, this is Ava from Acme Energy.' || E'\n' || 'user: Yes, what is this about?' || E'\n' || 'agent: Your bill was higher than usual.' || E'\n' || 'user: Thank you, that helps.',
		'agent: I am calling about your order.' || E'\n' || 'user: It arrived broken and I want a refund.' || E'\n' || 'agent: The refund is on its way.',
		'agent: Confirming your appointment tomorrow at ten.' || E'\n' || 'user: Tomorrow works, is there parking?' || E'\n' || 'agent: Yes, behind the building.'
	])[1 + g / 5 % 3] END,
	CASE WHEN g % 100 = 0 THEN 'Customer asked for a callback about invoice ' || g END,
	CASE WHEN st = 'completed' THEN (CASE WHEN g % 5 < 3 THEN 'Ended Via API call' ELSE 'Call completed (provider)' END) ELSE st END,
	'succeeded', 'deleted', 'completed', (ARRAY['positive', 'neutral', 'negative'])[1 + g % 3],
	CASE WHEN st = 'completed' THEN t END,
	t + make_interval(secs => CASE WHEN st = 'completed' THEN 20 + g * 31 % 900 ELSE 30 END),
	t - interval '5 seconds',
	t + make_interval(secs => CASE WHEN st = 'completed' THEN 25 + g * 31 % 900 ELSE 35 END)
FROM (SELECT g, now() - make_interval(secs => g * 7) AS t,
	(ARRAY['completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'completed',
		'completed', 'completed', 'completed', 'completed', 'completed', 'completed', 'completed',
		'no-answer', 'no-answer', 'busy', 'failed', 'canceled'])[1 + g % 20] AS st
	FROM generate_series(1, $3::int) g) s`

// activeSQL adds $2 calls of workspace $1 ($3 in their SIDs) that are active and recent, half
// with their own limit, so that the overdue scan has live calls to look at
// and none to end.
const activeSQL = `
INSERT INTO calls (workspace_id, call_sid, call_provider, call_from, call_to, call_direction, call_status,
	room_name, max_duration_seconds, started_at, created_at, updated_at)
SELECT $1::uuid, 'CA' || md5('active' || g::text || $3::text), 'twilio', '+15550000001', '+15557654321', 'outbound', 'in-progress',
	'room-a' || g, CASE WHEN g % 2 = 0 THEN 3600 END, now() - make_interval(secs => g), now() - make_interval(secs => g), now()
FROM generate_series(1, $2::int) g`

// seedHistory inserts the history and the active calls of workspace ws.
// Loading a million rows into indexed tables row by row takes minutes, so
// the secondary indexes of calls and call_search (those that back no
// constraint) are dropped first and built again afterwards from their own
// definitions: the schema ends up exactly as migrated.
func (b *bench) seedHistory(ctx context.Context, ws string) error {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, `SELECT i.indexname, i.indexdef FROM pg_indexes i
		WHERE i.schemaname = current_schema() AND i.tablename IN ('calls', 'call_search')
		AND NOT EXISTS (SELECT 1 FROM pg_constraint c
			WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)`)
	if err != nil {
		return err
	}
	type index struct{ name, def string }
	var indexes []index
	for rows.Next() {
		var ix index
		if err := rows.Scan(&ix.name, &ix.def); err != nil {
			rows.Close()
			return err
		}
		indexes = append(indexes, ix)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, ix := range indexes {
		if _, err := conn.Exec(ctx, `DROP INDEX `+pgx.Identifier{ix.name}.Sanitize()); err != nil {
			return err
		}
	}
	t := time.Now()
	_, salt := uuid()
	// The search trigger copies each row into call_search; one INSERT ...
	// SELECT does the same for all of them in a fraction of the time.
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, historySQL, ws, salt, b.o.history); err != nil {
		return fmt.Errorf("seeding history: %w", err)
	}
	if _, err := conn.Exec(ctx, activeSQL, ws, 200, salt); err != nil {
		return fmt.Errorf("seeding active calls: %w", err)
	}
	if _, err := conn.Exec(ctx, `RESET session_replication_role`); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `INSERT INTO call_search (call_id, workspace_id, call_to, notes, call_feedback, transcript)
		SELECT id, workspace_id, call_to, notes, call_feedback, transcript FROM calls WHERE workspace_id = $1
		ON CONFLICT (call_id) DO NOTHING`, ws); err != nil {
		return fmt.Errorf("seeding call_search: %w", err)
	}
	logf("(d) inserted in %s; building %d indexes", time.Since(t).Round(100*time.Millisecond), len(indexes))
	t = time.Now()
	if _, err := conn.Exec(ctx, `SET maintenance_work_mem = '256MB'`); err != nil {
		return err
	}
	for _, ix := range indexes {
		if _, err := conn.Exec(ctx, ix.def); err != nil {
			return fmt.Errorf("rebuilding %s: %w", ix.name, err)
		}
	}
	if _, err := conn.Exec(ctx, `RESET maintenance_work_mem`); err != nil {
		return err
	}
	logf("(d) indexes built in %s", time.Since(t).Round(100*time.Millisecond))
	// As autovacuum would have done on tables this old.
	for _, table := range []string{"calls", "call_search"} {
		if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) `+table); err != nil {
			return err
		}
	}
	return nil
}

// planSummary shortens a plan to its scan nodes and execution time.
func planSummary(lines []string) string {
	var parts []string
	for _, l := range lines {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "->"))
		switch {
		case strings.Contains(l, " Scan ") || strings.HasPrefix(l, "Seq Scan"):
			if i := strings.Index(l, "  ("); i > 0 {
				l = l[:i]
			}
			parts = append(parts, l)
		case strings.HasPrefix(l, "Execution Time:"):
			parts = append(parts, strings.TrimPrefix(l, "Execution Time: "))
		}
	}
	return strings.Join(parts, "; ")
}

// queryCase is one common GET /v1/calls/query, as a query string and as the
// CallQuery the API makes of it (for the plan).
type queryCase struct {
	name string
	qs   url.Values
	q    endcall.CallQuery
}

// capture records the statements a pool sends, for EXPLAIN.
type capture struct {
	mu    sync.Mutex
	on    bool
	stmts []captured
}

type captured struct {
	conn *pgx.Conn
	sql  string
	args []any
}

func (c *capture) add(conn *pgx.Conn, sql string, args []any) {
	c.mu.Lock()
	if c.on {
		c.stmts = append(c.stmts, captured{conn, sql, args})
	}
	c.mu.Unlock()
}

func (c *capture) start() {
	c.mu.Lock()
	c.on, c.stmts = true, nil
	c.mu.Unlock()
}

// stop returns the statements recorded since start, one connection's after
// another's (QueryCalls sends its page and its count on two connections at
// once), each connection's in the order sent.
func (c *capture) stop() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	var out []captured
	done := map[*pgx.Conn]bool{}
	for _, s := range c.stmts {
		if done[s.conn] {
			continue
		}
		done[s.conn] = true
		for _, t := range c.stmts {
			if t.conn == s.conn {
				out = append(out, t)
			}
		}
	}
	return out
}

func (c *capture) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.add(conn, d.SQL, d.Args)
	return ctx
}
func (c *capture) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *capture) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *capture) TraceBatchQuery(_ context.Context, conn *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.add(conn, d.SQL, d.Args)
}
func (c *capture) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// queries is (d): GET /v1/calls/query with common filters through the API,
// and one overdue scan through the store, on a workspace of o.history
// calls, with the plans of their statements checked for sequential scans
// of calls.
func (b *bench) queries(ctx context.Context) error {
	created, err := createAPIKey(ctx, b.bin, b.baseEnv(), "history")
	if err != nil {
		return err
	}
	t0 := time.Now()
	logf("(d) seeding %s calls", num(float64(b.o.history)))
	if err := b.seedHistory(ctx, created.WorkspaceID); err != nil {
		return err
	}
	logf("(d) seeded in %s", time.Since(t0).Round(100*time.Millisecond))

	day := func(d int) time.Time {
		t := time.Now().UTC().AddDate(0, 0, -d)
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	// A week in the middle of the seeded span (a call every 7 s).
	mid := b.o.history * 7 / 86400 / 2
	from, to := day(mid+3), day(mid-3)
	before := to.AddDate(0, 0, 1)
	ws := created.WorkspaceID
	base := endcall.CallQuery{WorkspaceID: ws, PerPage: 10, SortColumn: "created_at", Descending: true}
	with := func(f func(*endcall.CallQuery)) endcall.CallQuery { q := base; f(&q); return q }
	cases := []queryCase{
		{"newest first, no filter", url.Values{}, base},
		{"status=completed", url.Values{"status": {"completed"}},
			with(func(q *endcall.CallQuery) { q.Statuses = endcall.StatusesMatching("completed") })},
		{"campaign_id", url.Values{"campaign_id": {"campaign-7"}},
			with(func(q *endcall.CallQuery) { q.CampaignID = "campaign-7" })},
		{"ai_agent_id", url.Values{"ai_agent_id": {"agent-12"}},
			with(func(q *endcall.CallQuery) { q.AIAgentID = "agent-12" })},
		{"7-day start_date/end_date", url.Values{"start_date": {from.Format("2006-01-02")}, "end_date": {to.Format("2006-01-02")}},
			with(func(q *endcall.CallQuery) { q.StartedFrom, q.StartedBefore = &from, &before })},
		{"search=refund", url.Values{"search": {"refund"}},
			with(func(q *endcall.CallQuery) { q.Search = "refund" })},
		{"disconnect_reason=busy", url.Values{"disconnect_reason": {"busy"}},
			with(func(q *endcall.CallQuery) { q.DisconnectReason = "busy" })},
		{"status + 7 days + page 5", url.Values{"status": {"completed"}, "start_date": {from.Format("2006-01-02")},
			"end_date": {to.Format("2006-01-02")}, "page": {"5"}},
			with(func(q *endcall.CallQuery) {
				q.Statuses = endcall.StatusesMatching("completed")
				q.StartedFrom, q.StartedBefore, q.Page = &from, &before, 5
			})},
	}

	// The plans, from the store's own SQL for the same filters.
	capt := &capture{}
	cfg, err := pgxpool.ParseConfig(b.dbURL)
	if err != nil {
		return err
	}
	cfg.ConnConfig.Tracer = capt
	tpool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer tpool.Close()
	store := postgres.NewStore(tpool, nil)
	var plans strings.Builder
	seqScans, explained := 0, 0
	// explain replays the statements of one store call on one connection:
	// transaction control and settings as they are, the rest under EXPLAIN.
	explain := func(name string, stmts []captured) error {
		conn, err := b.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		defer func() {
			if conn.Conn().PgConn().TxStatus() != 'I' {
				conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
			}
		}()
		for _, s := range stmts {
			head := strings.ToUpper(strings.TrimSpace(s.sql))
			if strings.HasPrefix(head, "BEGIN") || strings.HasPrefix(head, "COMMIT") || strings.HasPrefix(head, "ROLLBACK") ||
				strings.HasPrefix(head, "SET ") || strings.Contains(head, "SET_CONFIG(") {
				if _, err := conn.Exec(ctx, s.sql, s.args...); err != nil {
					return fmt.Errorf("replaying %s: %w", name, err)
				}
				continue
			}
			var lines []string
			rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+s.sql, s.args...)
			if err != nil {
				return fmt.Errorf("explain %s: %w", name, err)
			}
			for rows.Next() {
				var l string
				if err := rows.Scan(&l); err != nil {
					rows.Close()
					return err
				}
				lines = append(lines, l)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("explain %s: %w", name, err)
			}
			plan := strings.Join(lines, "\n")
			if strings.Contains(plan, "Seq Scan on calls") {
				seqScans++
				b.notes = append(b.notes, fmt.Sprintf("(d) PLAN CHECK FAILED: %q reads calls with a sequential scan", name))
			}
			explained++
			fmt.Fprintf(&plans, "-- %s\n%s\n\n", name, plan)
			logf("(d) plan %-40s %s", name+":", planSummary(lines))
		}
		return nil
	}
	for _, c := range cases {
		capt.start()
		if _, _, err := store.QueryCalls(ctx, c.q); err != nil {
			capt.stop()
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if err := explain("query: "+c.name, capt.stop()); err != nil {
			return err
		}
	}
	capt.start()
	if _, err := store.OverdueCalls(ctx, time.Now(), time.Hour, 100, nil); err != nil {
		capt.stop()
		return fmt.Errorf("overdue scan: %w", err)
	}
	if err := explain("overdue scan", capt.stop()); err != nil {
		return err
	}
	if b.o.plans != "" {
		if err := os.WriteFile(b.o.plans, []byte(plans.String()), 0o644); err != nil {
			return err
		}
	}

	// Latency through the API. The service keeps a total above 10,000 for
	// 10 s (postgres.QueryCalls), so the first request of such a query
	// counts and the others reuse its total: the first is reported on its
	// own row, the rest (after 5 warm-up requests) as p99 and p50.
	var first []row
	cached := 0
	for _, c := range cases {
		lat := make([]time.Duration, 0, b.o.querySamples)
		stopAt := time.Now().Add(b.o.queryTime)
		var cold time.Duration
		total := 0
		for i := 0; i < b.o.querySamples+5 && (i < 25 || time.Now().Before(stopAt)); i++ {
			t := time.Now()
			n, tot, err := queryAPI(ctx, b.api.http, b.proc.url, created.APIKey, c.qs)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			switch d := time.Since(t); {
			case i == 0:
				cold, total = d, tot
			case i >= 5:
				lat = append(lat, d)
			}
			if n == 0 {
				return fmt.Errorf("%s: no calls returned", c.name)
			}
		}
		p50, p99 := percentile(lat, 50), percentile(lat, 99)
		logf("(d) query %-28s total %s; first request %s; %d samples: p50 %s, p99 %s", c.name, num(float64(total)), ms(cold), len(lat), ms(p50), ms(p99))
		what := "p99 (p50)"
		if total > postgres.CountCacheThreshold {
			what = "p99 (p50), total cached"
			cached++
			first = append(first, row{fmt.Sprintf("(d) GET /v1/calls/query on %s calls, %s: first request, %s counted (one sample)",
				num(float64(b.o.history)), c.name, num(float64(total))), ms(cold), "", "", ""})
		}
		b.rows = append(b.rows, row{fmt.Sprintf("(d) GET /v1/calls/query on %s calls, %s: %s", num(float64(b.o.history)), c.name, what),
			fmt.Sprintf("%s (%s)", ms(p99), ms(p50)), "", "", "≤ 20 ms"})
	}
	b.rows = append(b.rows, first...)
	b.notes = append(b.notes, fmt.Sprintf("(d) %d of the %d queries match more than %s calls: the service counts them exactly once "+
		"and reuses the total for 10 s (any page or sort of the same filters), so their p99 is of requests that reuse it; "+
		"the first request of each, which counts, is on its own row.", cached, len(cases), num(postgres.CountCacheThreshold)))

	lat := make([]time.Duration, 0, b.o.querySamples)
	for i := range b.o.querySamples + 5 {
		t := time.Now()
		found, err := b.store.OverdueCalls(ctx, time.Now(), time.Hour, 100, nil)
		if err != nil {
			return err
		}
		if len(found) != 0 {
			return fmt.Errorf("overdue scan found %d calls; none should be overdue", len(found))
		}
		if i >= 5 {
			lat = append(lat, time.Since(t))
		}
	}
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	logf("(d) overdue scan p50 %s, p99 %s", ms(p50), ms(p99))
	b.rows = append(b.rows, row{fmt.Sprintf("(d) overdue scan (store.OverdueCalls, none overdue, 200 active) on %s calls: p99 (p50)", num(float64(b.o.history))),
		fmt.Sprintf("%s (%s)", ms(p99), ms(p50)), "", "", "≤ 10 ms"})
	check := fmt.Sprintf("no Seq Scan on calls in any of the %d plans", explained)
	if seqScans > 0 {
		check = fmt.Sprintf("%d of %d plans with a Seq Scan on calls", seqScans, explained)
	}
	b.notes = append(b.notes, fmt.Sprintf("(d) one client, through the API with the workspace's API key: %d requests a query after 5 warm-up "+
		"(at least 20 when %s is not enough); the overdue scan calls the store directly; "+
		"plans of the store's SQL for the same filters checked: %s.", b.o.querySamples, b.o.queryTime, check))
	return nil
}

// queryAPI makes one GET /v1/calls/query and returns how many calls its
// page holds and its pagination total.
func queryAPI(ctx context.Context, c *http.Client, base, key string, qs url.Values) (int, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/calls/query?"+qs.Encode(), nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, 0, err
	}
	if res.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("HTTP %d: %.300s", res.StatusCode, raw)
	}
	var env struct {
		Data       []json.RawMessage `json:"data"`
		Pagination struct {
			Total int `json:"total"`
		} `json:"pagination"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return 0, 0, err
	}
	return len(env.Data), env.Pagination.Total, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/endcall/endcall"
)

// notNullColumns are the sortable columns that never hold NULL; every other
// one sorts its NULLs last in both directions, so that "longest calls first"
// does not open with the calls that have no duration yet. Leaving the NULLS
// clause off for these keeps the ORDER BY identical to their indexes.
var notNullColumns = map[string]bool{"created_at": true, "updated_at": true, "call_status": true, "call_to": true, "call_from": true}

// sqlOperators maps the comparison operators to SQL. ne treats NULL as
// different from every value, which is what "not equal to X" means to a
// user; the others are plain SQL comparisons.
var sqlOperators = map[string]string{
	endcall.OpEq: "=", endcall.OpNe: "IS DISTINCT FROM", endcall.OpGt: ">", endcall.OpGte: ">=",
	endcall.OpLt: "<", endcall.OpLte: "<=",
}

// callQuery is the SQL of one CallQuery: the page and the count share the
// arguments and the WHERE clause, to which the page may add conditions
// that steer its plan (pageWhere, walkWhere) and which a search alone
// counts in call_search (searchWhere).
type callQuery struct {
	where string
	args  []any
	order string
	// pageWhere adds conditions to the page's WHERE that are true of every
	// matching call (see skewBounds), to steer its plan.
	pageWhere string
	// searchWhere, when search is the only filter, is the search's
	// condition on call_search s alone: the count then needs no calls.
	searchWhere string
	// For a search sorted by created_at, walkWhere is the WHERE without
	// the search and probe the search's test of one call c (see walkSQL).
	walkWhere, probe string
}

// column returns the SQL of a whitelisted column. The store checks the
// whitelist again rather than trusting its caller, since the name goes
// into the SQL text.
func column(name string, sortable bool) (string, error) {
	_, filterable := endcall.FilterColumns[name]
	if (sortable && !slices.Contains(endcall.SortColumns, name)) || (!sortable && !filterable) {
		return "", fmt.Errorf("postgres: column %q is not in the query whitelist", name)
	}
	return "c." + name, nil
}

// escapeLike makes s match literally inside a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// buildCallQuery turns q into parameterised SQL: every value is an
// argument, and the only names in the text come from the whitelist.
func buildCallQuery(q endcall.CallQuery) (callQuery, error) {
	var cq callQuery
	conds := []string{}
	arg := func(v any) string {
		cq.args = append(cq.args, v)
		return fmt.Sprintf("$%d", len(cq.args))
	}
	ws := arg(q.WorkspaceID)
	conds = append(conds, "c.workspace_id = "+ws)
	searchAt := -1
	if q.CampaignID != "" {
		conds = append(conds, "c.campaign_id = "+arg(q.CampaignID))
	}
	if q.AIAgentID != "" {
		conds = append(conds, "c.ai_agent_id = "+arg(q.AIAgentID))
	}
	if q.Statuses != nil {
		conds = append(conds, "c.call_status = ANY ("+arg(q.Statuses)+"::text[])")
	}
	if q.Search != "" {
		p := arg("%" + escapeLike(q.Search) + "%")
		// call_search holds the searchable columns with their trigram
		// indexes (see migration 00002), and each call's workspace.
		match := fmt.Sprintf(`s.workspace_id = %[1]s
			AND (s.call_to ILIKE %[2]s OR s.notes ILIKE %[2]s OR s.call_feedback ILIKE %[2]s OR s.transcript ILIKE %[2]s)`, ws, p)
		conds = append(conds, `c.id IN (SELECT s.call_id FROM call_search s WHERE `+match+`)`)
		searchAt = len(conds) - 1
		cq.probe = fmt.Sprintf(`(SELECT s.call_to ILIKE %[1]s OR s.notes ILIKE %[1]s OR s.call_feedback ILIKE %[1]s OR s.transcript ILIKE %[1]s
			FROM call_search s WHERE s.call_id = c.id)`, p)
		if q.CampaignID == "" && q.AIAgentID == "" && q.Statuses == nil && q.DisconnectReason == "" &&
			q.StartedFrom == nil && q.StartedBefore == nil && len(q.Filters) == 0 {
			cq.searchWhere = match
		}
	}
	if q.DisconnectReason != "" {
		conds = append(conds, "c.disconnect_reason = "+arg(q.DisconnectReason))
	}
	var from, before string
	if q.StartedFrom != nil {
		from = arg(*q.StartedFrom)
		conds = append(conds, "c.started_at >= "+from)
	}
	if q.StartedBefore != nil {
		before = arg(*q.StartedBefore)
		conds = append(conds, "c.started_at < "+before)
	}
	for _, f := range q.Filters {
		col, err := column(f.Column, false)
		if err != nil {
			return cq, err
		}
		switch op := f.Operator; {
		case op == endcall.OpIsNull:
			conds = append(conds, col+" IS NULL")
		case op == endcall.OpNotNull:
			conds = append(conds, col+" IS NOT NULL")
		case op == endcall.OpContains:
			s, ok := f.Value.(string)
			if !ok {
				return cq, fmt.Errorf("postgres: contains on %s needs a string, got %T", f.Column, f.Value)
			}
			conds = append(conds, col+" ILIKE "+arg("%"+escapeLike(s)+"%"))
		case sqlOperators[op] != "":
			if f.Value == nil {
				return cq, fmt.Errorf("postgres: operator %s on %s needs a value", op, f.Column)
			}
			conds = append(conds, col+" "+sqlOperators[op]+" "+arg(f.Value))
		default:
			return cq, fmt.Errorf("postgres: unknown filter operator %q", op)
		}
	}
	cq.where = strings.Join(conds, " AND ")

	sort := q.SortColumn
	if sort == "" {
		sort = "created_at"
	}
	if sort == "created_at" {
		cq.pageWhere = skewBounds(ws, from, before)
		if searchAt >= 0 {
			cq.walkWhere = strings.Join(slices.Delete(slices.Clone(conds), searchAt, searchAt+1), " AND ")
		}
	}
	if cq.walkWhere == "" {
		cq.probe = ""
	}
	col, err := column(sort, true)
	if err != nil {
		return cq, err
	}
	dir := "ASC"
	if q.Descending {
		dir = "DESC"
	}
	nulls := ""
	if !notNullColumns[sort] {
		nulls = " NULLS LAST"
	}
	// The id breaks ties so that paging is stable.
	cq.order = fmt.Sprintf("%s %s%s, c.id %s", col, dir, nulls, dir)
	return cq, nil
}

// skewBounds returns, for a started_at range sorted by created_at, the
// range of created_at its calls can have, as SQL conditions on c ("" when
// there is no range). ws, from and before are the parameters of the
// workspace and of the range's bounds (from or before "" when not given).
//
// The page of a range sorted by created_at would otherwise walk the
// created_at index from the newest call, past every call newer than the
// range (a week 40 days back: 450,000 rows, 90 ms), because the planner
// takes started_at and created_at to be independent. They are not: a call
// starts when it is answered, moments after it is created. But started_at
// may also be given by the client, so no fixed gap is assumed: each call's
// created_at - started_at is indexed (migration 00005), and the smallest
// and largest of the workspace, two index probes, bound created_at:
//
//	from <= started_at < before  ⇒  from + min <= created_at < before + max
//
// The walk then starts and stops at the range. The bounds are exact for
// any data (a call far off the usual gap only widens them) and are read
// in the page's own snapshot. When no call of the workspace has started,
// the bounds are NULL and so is the range: empty either way.
func skewBounds(ws, from, before string) string {
	skew := func(agg string) string {
		return fmt.Sprintf(`(SELECT %s(k.created_at - k.started_at) FROM calls k WHERE k.workspace_id = %s AND k.started_at IS NOT NULL)`, agg, ws)
	}
	// The gap is an interval of days and time, each day 24 hours; added to
	// a timestamptz, a day is a calendar day of the session's time zone,
	// an hour short or long across a change of daylight saving time. In
	// UTC every day has 24 hours.
	plus := func(t, gap string) string {
		return fmt.Sprintf("((%s::timestamptz AT TIME ZONE 'UTC') + %s) AT TIME ZONE 'UTC'", t, gap)
	}
	var conds []string
	if from != "" {
		conds = append(conds, "c.created_at >= "+plus(from, skew("min")))
	}
	if before != "" {
		conds = append(conds, "c.created_at < "+plus(before, skew("max")))
	}
	return strings.Join(conds, " AND ")
}

// pageSQL and countSQL are the two statements of a query.
func (cq callQuery) pageSQL(limit, offset int) (string, []any) {
	args := append(slices.Clip(cq.args), limit, offset)
	where := cq.where
	if cq.pageWhere != "" {
		where += " AND " + cq.pageWhere
	}
	return fmt.Sprintf(`SELECT %s FROM calls c WHERE %s ORDER BY %s LIMIT $%d OFFSET $%d`,
		callColumns, where, cq.order, len(args)-1, len(args)), args
}

// walkSQL is the first try at the page of a search sorted by created_at:
// the newest budget calls that pass the other filters, each tested
// against its call_search row, in order, until the page is full. The
// planner would choose between this walk and reading every trigram match
// (then every matching call, then sorting them) from its estimate of how
// many calls match, which for a pattern is a guess from a sample: on 1M
// calls, search=refund (0.7% of them) flipped between 3 ms and 44 ms from
// one ANALYZE to the next. A full page is the right page, since the walk
// visits calls in the page's order; a page short of limit may be the last
// one or a walk that ran out of budget, so the walk answers no rows then,
// and StreamCalls asks the planner (pageSQL): a pattern so rare is one its
// sample shows as rare. The walk finds the page's IDs first and reads
// their calls only once the page is known to be full.
func (cq callQuery) walkSQL(limit, offset, budget int) (string, []any) {
	args := append(slices.Clip(cq.args), budget, limit, offset)
	where := cq.walkWhere
	if cq.pageWhere != "" {
		where += " AND " + cq.pageWhere
	}
	n := len(args)
	return fmt.Sprintf(`WITH walk AS MATERIALIZED (SELECT c.id FROM (SELECT c.* FROM calls c WHERE %s ORDER BY %s LIMIT $%d) c
		WHERE %s ORDER BY %s LIMIT $%d OFFSET $%d)
		SELECT %s FROM calls c WHERE c.id IN (SELECT id FROM walk) AND (SELECT count(*) FROM walk) = $%d ORDER BY %s`,
		where, cq.order, n-2, cq.probe, cq.order, n-1, n, callColumns, n-1, cq.order), args
}

// walkBudget is how many calls walkSQL visits for a page ending at end:
// enough to find it when one call in 300 matches, within 3,000 and
// 30,000 (2 to 30 ms).
func walkBudget(end int) int {
	return min(max(300*end, 3_000), 30_000)
}

// countSQL counts the matches. A search alone is counted in call_search,
// without calls: it holds a row for every call (its trigger and foreign
// key keep it so), with the call's workspace, so the total is the same.
func (cq callQuery) countSQL() (string, []any) {
	if cq.searchWhere != "" {
		return `SELECT count(*) FROM call_search s WHERE ` + cq.searchWhere, cq.args
	}
	return `SELECT count(*) FROM calls c WHERE ` + cq.where, cq.args
}

// Statement timeouts of StreamCalls. Filters that no index serves
// (contains on notes in a large workspace) would otherwise let one request
// occupy a backend for minutes; every indexed query of the benchmark
// finishes in well under a second on a million calls.
const (
	// countStatementTimeout bounds a count.
	countStatementTimeout = 5 * time.Second
	// pageStatementTimeout bounds a page, whose statement lasts until its
	// last row is sent: up to 100 MiB of transcripts to a client that may
	// read slowly. The rows it reads are bounded anyway (maxOffset).
	pageStatementTimeout = 30 * time.Second
)

// querySettingsSQL sets, for the rest of a transaction, how StreamCalls
// statements are planned (see there) and how long each may run ($1, in
// milliseconds).
const querySettingsSQL = `SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
	set_config('max_parallel_workers_per_gather', '0', true),
	set_config('statement_timeout', $1, true)`

// QueryCalls returns one page of the workspace's calls matching q, and how
// many match in all: StreamCalls, collected.
func (s *Store) QueryCalls(ctx context.Context, q endcall.CallQuery) ([]*endcall.Call, int, error) {
	calls := []*endcall.Call{}
	total, err := s.StreamCalls(ctx, q, func(c *endcall.Call) error {
		calls = append(calls, c)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return calls, total, nil
}

// StreamCalls reads one page of the workspace's calls matching q, calling
// each with every call in order as it is read, so that a page of large
// transcripts is never held whole; then it returns how many match in all.
// An error of each ends the read and is returned as it is.
//
// The page and the count run at the same time, each in one round trip on
// its own connection; the page never waits for the count while it holds
// its connection, so that pages waiting for counts cannot take every
// connection the counts need. The count is exact, but one that found more
// than 10,000 calls is kept for up to 10 seconds (countCache) and reused
// by any query of the workspace with the same filters, whatever its page
// or sort: counting a million calls takes about 80 ms, a page well under
// one. Identical counts in flight at once run once (a small total is
// counted again for each request that joined another's count).
//
// Each statement runs in a read-only transaction that forces custom
// plans: the best plan depends on the values (one workspace may hold most
// of the calls; a search pattern decides whether its trigram index helps),
// and the generic plan Postgres switches a prepared statement to after
// five executions cannot see them (on 1M calls it made a search by phone
// number 9 times slower). It also keeps each query to one process:
// parallel workers contend with the other requests, and under load made
// the count of a 900k-call workspace 3 times slower.
func (s *Store) StreamCalls(ctx context.Context, q endcall.CallQuery, each func(*endcall.Call) error) (int, error) {
	if q.PerPage <= 0 {
		return 0, fmt.Errorf("postgres: query per_page %d is not positive", q.PerPage)
	}
	cq, err := buildCallQuery(q)
	if err != nil {
		return 0, err
	}
	countSQL, countArgs := cq.countSQL()
	key := countKey(countSQL, countArgs)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the count, when the page failed first
	type counted struct {
		total int
		err   error
	}
	done := make(chan counted, 1)
	go func() {
		total, err := s.counts.count(ctx, key, s.now, func(ctx context.Context) (int, error) {
			var total int
			err := s.readOnly(ctx, countStatementTimeout, countSQL, countArgs, func(br pgx.BatchResults) error {
				return br.QueryRow().Scan(&total)
			})
			return total, err
		})
		done <- counted{total, err}
	}()

	var eachErr error
	rows := 0
	page := func(sql string, args []any) error {
		return s.readOnly(ctx, pageStatementTimeout, sql, args, func(br pgx.BatchResults) error {
			r, err := br.Query()
			if err != nil {
				return err
			}
			defer r.Close()
			for r.Next() {
				c, err := scanCall(r)
				if err != nil {
					return err
				}
				rows++
				if err := each(c); err != nil {
					eachErr = err
					return err
				}
			}
			return r.Err()
		})
	}
	offset := q.Page * q.PerPage
	// The walk cannot fill a page that ends beyond its budget. It answers
	// a full page or nothing, so that nothing it streams is taken back.
	walked := false
	if end := offset + q.PerPage; cq.probe != "" && end <= walkBudget(end) {
		walked = true
		err = page(cq.walkSQL(q.PerPage, offset, walkBudget(end)))
	}
	if err == nil && (!walked || rows == 0) {
		err = page(cq.pageSQL(q.PerPage, offset))
	}
	if err == nil {
		c := <-done
		if err = c.err; err == nil {
			return c.total, nil
		}
	}
	if eachErr != nil && err == eachErr {
		return 0, err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "57014" && ctx.Err() == nil {
		return 0, endcall.Errorf(endcall.EUNAVAILABLE, "The query took too long; narrow its filters.")
	}
	return 0, dbError(err)
}

// readOnly runs one statement in one round trip, in a read-only
// transaction with QueryCalls' settings; read takes its result. An error
// leaves the connection in a transaction; the pool then discards it
// rather than reuse it.
func (s *Store) readOnly(ctx context.Context, timeout time.Duration, sql string, args []any, read func(pgx.BatchResults) error) error {
	var batch pgx.Batch
	batch.Queue(`BEGIN READ ONLY`)
	batch.Queue(querySettingsSQL, strconv.FormatInt(timeout.Milliseconds(), 10))
	batch.Queue(sql, args...)
	batch.Queue(`COMMIT`)
	br := s.pool.SendBatch(ctx, &batch)
	defer br.Close()
	for range 2 {
		if _, err := br.Exec(); err != nil {
			return err
		}
	}
	if err := read(br); err != nil {
		return err
	}
	if _, err := br.Exec(); err != nil {
		return err
	}
	return br.Close()
}

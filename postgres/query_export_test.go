package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
)

// ExplainCallQuery returns EXPLAIN (ANALYZE, BUFFERS) of the page (a
// search's walk first) and the count statement of q, planned with
// QueryCalls' settings, for the benchmark to print.
func (s *Store) ExplainCallQuery(ctx context.Context, q endcall.CallQuery) (page, count string, err error) {
	cq, err := buildCallQuery(q)
	if err != nil {
		return "", "", err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", "", err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, querySettingsSQL, strconv.FormatInt(countStatementTimeout.Milliseconds(), 10)); err != nil {
		return "", "", err
	}
	explain := func(sql string, args []any) (string, error) {
		rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+sql, args...)
		if err != nil {
			return "", err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		return strings.Join(lines, "\n"), err
	}
	offset := q.Page * q.PerPage
	pageSQL, pageArgs := cq.pageSQL(q.PerPage, offset)
	if page, err = explain(pageSQL, pageArgs); err != nil {
		return "", "", err
	}
	if cq.probe != "" {
		walkSQL, walkArgs := cq.walkSQL(q.PerPage, offset, walkBudget(offset+q.PerPage))
		walk, err := explain(walkSQL, walkArgs)
		if err != nil {
			return "", "", err
		}
		page = walk + "\n(if the walk finds less than a page:)\n" + page
	}
	count, err = explain(cq.countSQL())
	return page, count, err
}

// StatementTimeouts returns the statement_timeout that StreamCalls' count
// and page statements run under.
func (s *Store) StatementTimeouts(ctx context.Context) (count, page string, err error) {
	for _, t := range []struct {
		d   time.Duration
		dst *string
	}{{countStatementTimeout, &count}, {pageStatementTimeout, &page}} {
		err = s.readOnly(ctx, t.d, `SELECT current_setting('statement_timeout')`, nil, func(br pgx.BatchResults) error {
			return br.QueryRow().Scan(t.dst)
		})
		if err != nil {
			return "", "", err
		}
	}
	return count, page, nil
}

package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/postgres"
)

// A growing backlog of owed work outruns the statistics of the partial
// "owed" indexes. The setup reproduces that (autovacuum off, analysed while
// empty, then 3,000 owed calls and deliveries), checks that a plain
// col = 'pending' lookup then walks an owed index, and requires every
// point statement of the store to go by key instead.
func TestPointStatementsDoNotWalkOwedIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.DB(t)
	setup := []string{
		`ALTER TABLE calls SET (autovacuum_enabled = false)`,
		`ALTER TABLE webhook_deliveries SET (autovacuum_enabled = false)`,
		`INSERT INTO workspaces (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'plans')`,
		`INSERT INTO webhook_endpoints (id, workspace_id, url, events, secret) VALUES
			('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001', 'https://example.com/', '{call.ended,call.analyzed}', 'whsec_x')`,
		// Calls whose work is done, analysed as the whole table...
		owedCalls("'succeeded', 'deleted', 'completed'"), deliveries("'succeeded'"),
		`ANALYZE calls`, `ANALYZE webhook_deliveries`,
		// ...then a backlog the statistics have not seen.
		owedCalls("'retrying', 'pending', 'pending'"), deliveries("'pending'"),
	}
	for _, sql := range setup {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var callID string
	if err := pool.QueryRow(ctx, `SELECT id FROM calls WHERE room_status = 'pending' LIMIT 1`).Scan(&callID); err != nil {
		t.Fatal(err)
	}
	plan := func(sql string, args ...any) string {
		t.Helper()
		rows, err := pool.Query(ctx, "EXPLAIN "+sql, args...)
		if err != nil {
			t.Fatalf("EXPLAIN %s: %v", sql, err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, line)
		}
		return strings.Join(lines, "\n")
	}
	owed := func(p string) bool {
		return strings.Contains(p, "calls_owed_work") || strings.Contains(p, "webhook_deliveries_due")
	}

	control := plan(`UPDATE calls SET room_status = $2 WHERE id = $1 AND room_status = 'pending'`, callID, "deleted")
	if !owed(control) {
		t.Fatalf("the setup does not reproduce the trap: a plain room_status = 'pending' lookup goes\n%s", control)
	}
	for _, st := range postgres.PointStatements {
		if p := plan(st.SQL, st.Args(callID)...); owed(p) {
			t.Errorf("%s walks an owed index:\n%s", st.Name, p)
		}
	}
}

// owedCalls inserts 3,000 ended calls with the given hangup, room and
// analysis statuses.
func owedCalls(statuses string) string {
	return `INSERT INTO calls (workspace_id, call_from, call_to, call_direction, call_status, ended_at,
			provider_hangup_status, room_status, analysis_status)
		SELECT '00000000-0000-0000-0000-000000000001', '+15550000000', '+15550000001', 'outbound', 'completed',
			now() - i * interval '1 ms', ` + statuses + `
		FROM generate_series(1, 3000) i`
}

// deliveries inserts a call.analyzed delivery with status for each call
// that has none.
func deliveries(status string) string {
	return `INSERT INTO webhook_deliveries (id, workspace_id, endpoint_id, call_id, event, status)
		SELECT 'msg_' || c.id, c.workspace_id, '00000000-0000-0000-0000-000000000002', c.id, 'call.analyzed', ` + status + `
		FROM calls c WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.call_id = c.id)`
}

package postgres

import (
	"context"
	"time"

	"github.com/endcall/endcall"
)

// overdueSQL lists active calls past their deadline, oldest deadline first.
// Each branch is a range scan of one partial index (calls_active_default_limit
// and calls_active_own_limit of migration 00001), so the cost follows the
// number of overdue calls, not of all calls. $1 is now, $2 now minus
// MAX_CALL_DURATION, $3 the batch size.
const overdueSQL = `
(SELECT ` + callColumns + `, coalesce(c.started_at, c.created_at) + ($1::timestamptz - $2::timestamptz) AS deadline
	FROM calls c
	WHERE c.ended_at IS NULL AND c.max_duration_seconds IS NULL
		AND coalesce(c.started_at, c.created_at) <= $2::timestamptz
	ORDER BY coalesce(c.started_at, c.created_at)
	LIMIT $3::int)
UNION ALL
(SELECT ` + callColumns + `, call_deadline(c.started_at, c.created_at, c.max_duration_seconds)
	FROM calls c
	WHERE c.ended_at IS NULL AND c.max_duration_seconds IS NOT NULL
		AND call_deadline(c.started_at, c.created_at, c.max_duration_seconds) <= $1::timestamptz
	ORDER BY call_deadline(c.started_at, c.created_at, c.max_duration_seconds)
	LIMIT $3::int)
ORDER BY deadline
LIMIT $3::int`

// OverdueCalls returns up to limit calls still active at now past their own
// max_duration_seconds, or past defaultMax (MAX_CALL_DURATION) when they have
// none, counted from started_at (created_at when never started). The calls
// overdue the longest come first.
func (s *Store) OverdueCalls(ctx context.Context, now time.Time, defaultMax time.Duration, limit int) ([]*endcall.Call, error) {
	rows, err := s.pool.Query(ctx, overdueSQL, now, now.Add(-defaultMax), limit)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	var calls []*endcall.Call
	for rows.Next() {
		var deadline time.Time
		c, err := scanCall(rows, &deadline)
		if err != nil {
			return nil, dbError(err)
		}
		calls = append(calls, c)
	}
	return calls, dbError(rows.Err())
}

// overdueScanLockKey is the advisory lock that one overdue scan holds while
// it runs ("overdue" in ASCII).
const overdueScanLockKey int64 = 0x6f7665726475650

// TryLockOverdueScan takes the overdue-scan lock unless another scan, in any
// process, holds it. The lock is tied to one connection, held until release
// is called, and let go by Postgres if the process dies.
func (s *Store) TryLockOverdueScan(ctx context.Context) (release func(), ok bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, dbError(err)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, overdueScanLockKey).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, false, dbError(err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, overdueScanLockKey); err != nil {
			// Closing the session is what surely lets the lock go.
			conn.Conn().Close(ctx)
		}
		conn.Release()
	}, true, nil
}

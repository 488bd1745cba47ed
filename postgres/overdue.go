package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/endcall/endcall"
)

// overdueSQL lists active calls past their deadline, oldest deadline first.
// Each branch is a range scan of one partial index (calls_active_default_limit
// and calls_active_own_limit of migration 00001), so the cost follows the
// number of overdue calls, not of all calls. $1 is now, $2 now minus
// MAX_CALL_DURATION, $3 the batch size, $4 calls to pass over.
const overdueSQL = `
(SELECT ` + callColumns + `, coalesce(c.started_at, c.created_at) + ($1::timestamptz - $2::timestamptz) AS deadline
	FROM calls c
	WHERE c.ended_at IS NULL AND c.max_duration_seconds IS NULL
		AND coalesce(c.started_at, c.created_at) <= $2::timestamptz AND c.id <> ALL ($4::uuid[])
	ORDER BY coalesce(c.started_at, c.created_at)
	LIMIT $3::int)
UNION ALL
(SELECT ` + callColumns + `, call_deadline(c.started_at, c.created_at, c.max_duration_seconds)
	FROM calls c
	WHERE c.ended_at IS NULL AND c.max_duration_seconds IS NOT NULL
		AND call_deadline(c.started_at, c.created_at, c.max_duration_seconds) <= $1::timestamptz
		AND c.id <> ALL ($4::uuid[])
	ORDER BY call_deadline(c.started_at, c.created_at, c.max_duration_seconds)
	LIMIT $3::int)
ORDER BY deadline
LIMIT $3::int`

// OverdueCalls returns up to limit calls still active at now past their own
// max_duration_seconds, or past defaultMax (MAX_CALL_DURATION) when they have
// none, counted from started_at (created_at when never started). The calls
// overdue the longest come first. The calls named in skip are passed over.
func (s *Store) OverdueCalls(ctx context.Context, now time.Time, defaultMax time.Duration, limit int, skip []string) ([]*endcall.Call, error) {
	if skip == nil {
		skip = []string{}
	}
	rows, err := s.pool.Query(ctx, overdueSQL, now, now.Add(-defaultMax), limit, skip)
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

// overdueScanLease is how long a scan's lock lasts unless released: longer
// than a scan may run (its task's timeout), so that a process that dies
// mid-scan holds the scan back for at most this long.
const overdueScanLease = 3 * time.Minute

// TryLockOverdueScan takes the overdue-scan lock unless another scan, in any
// process, holds it. The lock is a lease in a row, not a session lock, so
// that no connection is held while the scan's ends wait on the provider.
func (s *Store) TryLockOverdueScan(ctx context.Context) (release func(), ok bool, err error) {
	holder := uuid.NewString()
	tag, err := s.pool.Exec(ctx, `INSERT INTO leases AS l (name, holder, expires_at)
		VALUES ('overdue_scan', $1, now() + $2::interval)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE l.expires_at <= now()`, holder, overdueScanLease)
	if err != nil || tag.RowsAffected() == 0 {
		return nil, false, dbError(err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// A lease not let go here lapses by itself.
		s.pool.Exec(ctx, `DELETE FROM leases WHERE name = 'overdue_scan' AND holder = $1`, holder)
	}, true, nil
}

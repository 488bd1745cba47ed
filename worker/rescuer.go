package worker

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Rescuer hands the tasks of a dead worker back to their queue. asynq's own
// recoverer looks once a minute for leases that expired 30 s before, so a
// task whose worker was killed runs again 60 to 120 s later; the contract
// promises 90 s. A live worker renews its leases every 5 s, 30 s ahead, and
// gives a task up itself once its lease has run out, so a lease expired
// Margin ago belongs to a worker that is gone (or cut off from Redis).
//
// The rescue is one Lua script over asynq's keys (asynq:{queue}:active,
// :lease, :retry, :archived, :pending and the task hash, as of asynq v0.26;
// TestRescuer pins them): it moves the task from active to retry, due now,
// as the recoverer would, but without counting the lost run as a retry (its
// outcome was never known) or recording an error. That holds for a task on
// its last attempt too, which the recoverer would archive: the contract
// says a killed task runs again, and the attempt that died was not made.
// When the recoverer gets to such a task first, it archives it "for an
// expired lease"; the rescuer hands that task back to pending as well. A
// task rescued maxRescues times (as one that kills its worker would be) is
// left to the recoverer, and archived. Several rescuers may run: each script
// acts once.
type Rescuer struct {
	Redis redis.UniversalClient
	// Inspector reads an archived task's last error.
	Inspector *asynq.Inspector
	// Interval is how often leases are looked at; Margin how long ago a
	// lease must have expired, for clocks that differ between hosts (asynq's
	// recoverer allows 30 s).
	Interval, Margin time.Duration
	Log              *slog.Logger

	// passed holds the archived tasks looked at and left, by queue and ID,
	// with their archive score, so that each is inspected once however many
	// deliveries fail for good. Used by Run's goroutine alone.
	passed map[string]float64
}

const (
	// maxRescues bounds the rescues of one task.
	maxRescues = 3
	// archivedLookback is how far back the rescuer looks for tasks the
	// recoverer archived for an expired lease: far enough to cover a
	// rescuer that was down or cut off from Redis for a while, near enough
	// that an operator's choice to leave an old one archived stands.
	archivedLookback = 10 * time.Minute
)

// rescueScript moves task ARGV[1] from active to retry, due at ARGV[2], if
// its lease expired before ARGV[3] (both in Unix seconds, as asynq scores
// them) and it has been rescued fewer than ARGV[4] times.
//
// KEYS[1] the task hash, KEYS[2] active, KEYS[3] lease, KEYS[4] retry.
var rescueScript = redis.NewScript(`
local lease = redis.call("ZSCORE", KEYS[3], ARGV[1])
if not lease or tonumber(lease) >= tonumber(ARGV[3]) then
	return 0
end
if redis.call("HGET", KEYS[1], "state") ~= "active" then
	return 0
end
if tonumber(redis.call("HGET", KEYS[1], "endcall_rescues") or "0") >= tonumber(ARGV[4]) then
	return 0
end
if redis.call("LREM", KEYS[2], 0, ARGV[1]) == 0 then
	return 0
end
redis.call("ZREM", KEYS[3], ARGV[1])
redis.call("ZADD", KEYS[4], ARGV[2], ARGV[1])
redis.call("HSET", KEYS[1], "state", "retry")
redis.call("HINCRBY", KEYS[1], "endcall_rescues", 1)
return 1`)

// unarchiveScript moves task ARGV[1] from archived to pending if it is
// still archived at ARGV[2] (Unix seconds, its score when it was seen) and
// has been rescued fewer than ARGV[3] times.
//
// KEYS[1] the task hash, KEYS[2] archived, KEYS[3] pending.
var unarchiveScript = redis.NewScript(`
local at = redis.call("ZSCORE", KEYS[2], ARGV[1])
if not at or tonumber(at) ~= tonumber(ARGV[2]) then
	return 0
end
if redis.call("HGET", KEYS[1], "state") ~= "archived" then
	return 0
end
if tonumber(redis.call("HGET", KEYS[1], "endcall_rescues") or "0") >= tonumber(ARGV[3]) then
	return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("LPUSH", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[1], "state", "pending")
redis.call("HINCRBY", KEYS[1], "endcall_rescues", 1)
return 1`)

// Run rescues at once and then every Interval until ctx is done.
func (r *Rescuer) Run(ctx context.Context) error {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		if _, err := r.rescue(ctx, time.Now().Add(-r.Margin)); err != nil && ctx.Err() == nil {
			r.Log.Warn("rescuing the tasks of dead workers failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// rescue hands back every task whose lease expired before cutoff, and every
// task the recoverer archived for an expired lease since archivedLookback,
// and returns how many it handed back.
func (r *Rescuer) rescue(ctx context.Context, cutoff time.Time) (int, error) {
	var errs []error
	n := 0
	for q := range queues {
		prefix := "asynq:{" + q + "}:"
		ids, err := r.Redis.ZRangeByScore(ctx, prefix+"lease", &redis.ZRangeBy{
			Min: "-inf", Max: "(" + strconv.FormatInt(cutoff.Unix(), 10)}).Result()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range ids {
			keys := []string{prefix + "t:" + id, prefix + "active", prefix + "lease", prefix + "retry"}
			moved, err := rescueScript.Run(ctx, r.Redis, keys, id, time.Now().Unix(), cutoff.Unix(), maxRescues).Int()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if moved == 1 {
				n++
				r.Log.Warn("task's worker is gone (its lease expired); handed back to the queue", "queue", q, "task_id", id)
			}
		}
		m, err := r.unarchive(ctx, q, time.Now().Add(-archivedLookback))
		n += m
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// unarchive hands back to queue q's pending list the tasks that asynq's
// recoverer archived, since the given time, because their worker died on
// their last attempt. The recoverer archives with the error ErrLeaseExpired
// and the failure time as the archive's score; a task an operator archived
// later keeps an older failure time, and stays.
func (r *Rescuer) unarchive(ctx context.Context, q string, since time.Time) (int, error) {
	prefix := "asynq:{" + q + "}:"
	archived, err := r.Redis.ZRangeByScoreWithScores(ctx, prefix+"archived", &redis.ZRangeBy{
		Min: strconv.FormatInt(since.Unix(), 10), Max: "+inf"}).Result()
	if err != nil {
		return 0, err
	}
	if r.passed == nil {
		r.passed = map[string]float64{}
	}
	for key, score := range r.passed {
		if score < float64(since.Unix()) {
			delete(r.passed, key)
		}
	}
	var errs []error
	n := 0
	for _, z := range archived {
		id, _ := z.Member.(string)
		if score, ok := r.passed[q+"/"+id]; ok && score == z.Score {
			continue
		}
		info, err := r.Inspector.GetTaskInfo(q, id)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			continue
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		if info.LastErr != asynq.ErrLeaseExpired.Error() || info.LastFailedAt.Unix() != int64(z.Score) {
			r.passed[q+"/"+id] = z.Score
			continue
		}
		keys := []string{prefix + "t:" + id, prefix + "archived", prefix + "pending"}
		moved, err := unarchiveScript.Run(ctx, r.Redis, keys, id, int64(z.Score), maxRescues).Int()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if moved == 0 {
			r.passed[q+"/"+id] = z.Score // rescued enough, or moved meanwhile
			continue
		}
		n++
		r.Log.Warn("task archived when its worker died on its last attempt; handed back to the queue", "queue", q, "task_id", id)
	}
	return n, errors.Join(errs...)
}

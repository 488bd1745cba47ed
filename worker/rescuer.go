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
// :lease, :retry and the task hash, as of asynq v0.26; TestRescuer pins
// them): it moves the task from active to retry, due now, as the recoverer
// would, but without counting the lost run as a retry (its outcome was
// never known) or recording an error. A task without retries left, which
// the recoverer would archive, and one rescued maxRescues times (as one
// that kills its worker would be) are left to the recoverer. Several
// rescuers may run: the script acts once.
type Rescuer struct {
	Redis     redis.UniversalClient
	Inspector *asynq.Inspector
	// Interval is how often leases are looked at; Margin how long ago a
	// lease must have expired, for clocks that differ between hosts (asynq's
	// recoverer allows 30 s).
	Interval, Margin time.Duration
	Log              *slog.Logger
}

// maxRescues bounds the rescues of one task.
const maxRescues = 3

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

// rescue hands back every task whose lease expired before cutoff and
// returns how many it handed back.
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
			info, err := r.Inspector.GetTaskInfo(q, id)
			if errors.Is(err, asynq.ErrTaskNotFound) {
				continue
			} else if err != nil {
				errs = append(errs, err)
				continue
			} else if info.Retried >= info.MaxRetry {
				continue
			}
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
	}
	return n, errors.Join(errs...)
}

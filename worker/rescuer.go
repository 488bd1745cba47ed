package worker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
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
// :lease, :retry, :archived and the task hash, as of asynq v0.26;
// TestRescuer pins them): it moves the task from active to retry, due Delay
// later, as the recoverer would, but without counting the lost run as a retry (its
// outcome was never known) or recording an error. That holds for a task on
// its last attempt too, which the recoverer would archive: the contract says
// a killed task runs again, and the attempt that died was not made. When
// the recoverer gets to such a task first and archives it for an expired
// lease, the rescuer hands it back from the archive too. A task rescued
// maxRescues times (as one that kills its worker would be) is left to the
// recoverer, which counts its deaths as failures and archives it when its
// retries run out. Several rescuers may run: each script acts once.
type Rescuer struct {
	Redis redis.UniversalClient
	// Inspector reads an archived task's last error.
	Inspector *asynq.Inspector
	// Interval is how often leases are looked at; Margin how long ago a
	// lease must have expired, for clocks that differ between hosts (asynq's
	// recoverer allows 30 s).
	Interval, Margin time.Duration
	// Delay is how long a handed-back task waits in retry: HandBackDelay.
	Delay time.Duration
	Log   *slog.Logger

	mu sync.Mutex
	// readFrom is, by queue, where the next look at the archive starts: the
	// start of the last pass that read it without error, less Margin for
	// hosts whose clocks lag (they score their archives), less a second
	// for scores truncated to seconds. It is kept however old it gets, so
	// that a long Redis outage skips no archive (asynq keeps at most 10,000
	// archived tasks a queue).
	readFrom map[string]time.Time
}

// HandBackDelay is how long a task whose worker died waits in retry before
// it runs again, whether a rescuer or asynq's recoverer hands it back.
// asynq's recoverer lists expired leases, then retries them one round trip
// at a time; one that listed a task before its hand-back then finds it
// waiting, not running again, and leaves it.
const HandBackDelay = 5 * time.Second

const (
	// maxRescues bounds the rescues of one task.
	maxRescues = 3
	// archivedLookback is how far back a rescuer that has just started
	// looks for tasks the recoverer archived for an expired lease: the
	// recoverer runs only in processes that run a rescuer too, but the
	// process may have died just after the archive.
	archivedLookback = 10 * time.Minute
	// staleArchive: a task archived for an expired lease sooner than this
	// after its last rescue was archived by a recoverer that listed it
	// before the rescue, while its new run may be live. A genuine archive
	// of the new run comes a minute or more after the rescue (its lease
	// runs 30 s, and the recoverer waits 30 s more); a stale one within
	// seconds.
	staleArchive = 30 * time.Second
	// maxArchivedErrors bounds the errors one pass reports for a queue.
	maxArchivedErrors = 3
)

// rescueScript moves task ARGV[1] from active to retry, due at ARGV[4], if
// its lease expired before ARGV[2] and it has been rescued fewer than
// ARGV[3] times, and records ARGV[5] as its rescue time (times in Unix
// seconds, as asynq scores them).
//
// KEYS[1] the task hash, KEYS[2] active, KEYS[3] lease, KEYS[4] retry.
var rescueScript = redis.NewScript(`
local lease = redis.call("ZSCORE", KEYS[3], ARGV[1])
if not lease or tonumber(lease) >= tonumber(ARGV[2]) then
	return 0
end
if redis.call("HGET", KEYS[1], "state") ~= "active" then
	return 0
end
if tonumber(redis.call("HGET", KEYS[1], "endcall_rescues") or "0") >= tonumber(ARGV[3]) then
	return 0
end
if redis.call("LREM", KEYS[2], 0, ARGV[1]) == 0 then
	return 0
end
redis.call("ZREM", KEYS[3], ARGV[1])
redis.call("ZADD", KEYS[4], ARGV[4], ARGV[1])
redis.call("HSET", KEYS[1], "state", "retry", "endcall_rescued_at", ARGV[5])
redis.call("HINCRBY", KEYS[1], "endcall_rescues", 1)
return 1`)

// unarchiveScript moves task ARGV[1] from archived to retry, due at ARGV[5],
// if it is still archived at ARGV[2] (its score when it was read), was not
// rescued within ARGV[3] seconds before that, and has been rescued fewer
// than ARGV[4] times, and records ARGV[6] as its rescue time (times in Unix
// seconds).
//
// KEYS[1] the task hash, KEYS[2] archived, KEYS[3] retry.
var unarchiveScript = redis.NewScript(`
local at = redis.call("ZSCORE", KEYS[2], ARGV[1])
if not at or tonumber(at) ~= tonumber(ARGV[2]) then
	return 0
end
if redis.call("HGET", KEYS[1], "state") ~= "archived" then
	return 0
end
local rescued = redis.call("HGET", KEYS[1], "endcall_rescued_at")
if rescued and tonumber(ARGV[2]) - tonumber(rescued) < tonumber(ARGV[3]) then
	return 0
end
if tonumber(redis.call("HGET", KEYS[1], "endcall_rescues") or "0") >= tonumber(ARGV[4]) then
	return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("ZADD", KEYS[3], ARGV[5], ARGV[1])
redis.call("HSET", KEYS[1], "state", "retry", "endcall_rescued_at", ARGV[6])
redis.call("HINCRBY", KEYS[1], "endcall_rescues", 1)
return 1`)

// leaseExpired is the error asynq's recoverer archives a task with, as it
// appears in the task's encoded message.
var leaseExpired = []byte(asynq.ErrLeaseExpired.Error())

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

// rescue hands back every task whose lease expired before cutoff, then
// every task the recoverer archived for an expired lease, and returns how
// many it handed back.
func (r *Rescuer) rescue(ctx context.Context, cutoff time.Time) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	var errs []error
	n := 0
	for q := range queues {
		m, err := r.rescueLeases(ctx, q, cutoff)
		n += m
		errs = append(errs, err)
	}
	if r.readFrom == nil {
		r.readFrom = map[string]time.Time{}
	}
	for q := range queues {
		m, err := r.unarchive(ctx, q, r.archiveFrom(q, start))
		n += m
		errs = append(errs, err)
		// After an error the same tasks are read again; the scripts act once.
		if err == nil && ctx.Err() == nil {
			r.readFrom[q] = start.Add(-r.Margin - time.Second)
		}
	}
	return n, errors.Join(errs...)
}

// archiveFrom is where a pass starting at start reads queue q's archive
// from.
func (r *Rescuer) archiveFrom(q string, start time.Time) time.Time {
	if from, ok := r.readFrom[q]; ok {
		return from
	}
	return start.Add(-archivedLookback)
}

// rescueLeases hands back queue q's tasks whose lease expired before cutoff.
func (r *Rescuer) rescueLeases(ctx context.Context, q string, cutoff time.Time) (int, error) {
	prefix := "asynq:{" + q + "}:"
	ids, err := r.Redis.ZRangeByScore(ctx, prefix+"lease", &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(cutoff.Unix(), 10)}).Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		keys := []string{prefix + "t:" + id, prefix + "active", prefix + "lease", prefix + "retry"}
		now := time.Now()
		moved, err := rescueScript.Run(ctx, r.Redis, keys, id, cutoff.Unix(), maxRescues, now.Add(r.Delay).Unix(), now.Unix()).Int()
		if err != nil {
			return n, err
		}
		if moved == 1 {
			n++
			r.Log.Warn("task's worker is gone (its lease expired); handed back to the queue", "queue", q, "task_id", id)
		}
	}
	return n, nil
}

// unarchive hands back queue q's tasks that asynq's recoverer archived
// because their worker died on their last attempt, among those archived
// since from. The recoverer archives with the error ErrLeaseExpired and the
// failure time as the archive's score; a task an operator archives later
// keeps an older failure time, and stays. The messages are read in one
// round trip, and only those that carry the error are decoded through the
// Inspector.
func (r *Rescuer) unarchive(ctx context.Context, q string, from time.Time) (int, error) {
	prefix := "asynq:{" + q + "}:"
	archived, err := r.Redis.ZRangeByScoreWithScores(ctx, prefix+"archived", &redis.ZRangeBy{
		Min: strconv.FormatInt(from.Unix(), 10), Max: "+inf"}).Result()
	if err != nil || len(archived) == 0 {
		return 0, err
	}
	pipe := r.Redis.Pipeline()
	msgs := make([]*redis.StringCmd, len(archived))
	for i, z := range archived {
		msgs[i] = pipe.HGet(ctx, prefix+"t:"+z.Member.(string), "msg")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, err
	}

	var errs []error
	n := 0
	for i, z := range archived {
		if len(errs) == maxArchivedErrors || ctx.Err() != nil {
			break
		}
		msg, err := msgs[i].Bytes()
		if errors.Is(err, redis.Nil) || (err == nil && !bytes.Contains(msg, leaseExpired)) {
			continue // gone since, or archived for another reason
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		id := z.Member.(string)
		info, err := r.Inspector.GetTaskInfo(q, id)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			continue
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		if info.LastErr != asynq.ErrLeaseExpired.Error() || info.LastFailedAt.Unix() != int64(z.Score) {
			continue
		}
		keys := []string{prefix + "t:" + id, prefix + "archived", prefix + "retry"}
		now := time.Now()
		moved, err := unarchiveScript.Run(ctx, r.Redis, keys, id, int64(z.Score), int64(staleArchive/time.Second), maxRescues, now.Add(r.Delay).Unix(), now.Unix()).Int()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if moved == 1 {
			n++
			r.Log.Warn("task archived when its worker died on its last attempt; handed back to the queue", "queue", q, "task_id", id)
		}
	}
	return n, errors.Join(errs...)
}

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
// :lease, :archived, :pending and the task hash, as of asynq v0.26;
// TestRescuer pins them): it moves the task from active to the head of
// pending, to run next, without counting the lost run as a retry (its
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
	Log              *slog.Logger

	mu sync.Mutex
	// readTo is, by queue, the newest archive score read in a pass without
	// errors, so that each archived task is read about once however many
	// archive.
	readTo map[string]float64
}

const (
	// maxRescues bounds the rescues of one task.
	maxRescues = 3
	// archivedLookback is how far back a rescuer that has just started
	// looks for tasks the recoverer archived for an expired lease. The
	// recoverer runs only in processes that run a rescuer too, which looks
	// within Interval of it.
	archivedLookback = 2 * time.Minute
	// staleArchive: a task archived for an expired lease sooner than this
	// after its last rescue was archived by a recoverer that listed it
	// before the rescue, while its new run may be live (a new run's lease
	// expires 30 s after it starts, and the recoverer waits 30 s more).
	staleArchive = time.Minute
	// maxArchivedErrors bounds the errors one pass reports for a queue.
	maxArchivedErrors = 3
)

// rescueScript moves task ARGV[1] from active to the head of pending if its
// lease expired before ARGV[2] (Unix seconds, as asynq scores it) and it
// has been rescued fewer than ARGV[3] times; ARGV[4] is now in Unix
// nanoseconds (asynq's pending_since), ARGV[5] in seconds.
//
// KEYS[1] the task hash, KEYS[2] active, KEYS[3] lease, KEYS[4] pending.
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
redis.call("RPUSH", KEYS[4], ARGV[1])
redis.call("HSET", KEYS[1], "state", "pending", "pending_since", ARGV[4], "endcall_rescued_at", ARGV[5])
redis.call("HINCRBY", KEYS[1], "endcall_rescues", 1)
return 1`)

// unarchiveScript moves task ARGV[1] from archived to the head of pending if
// it is still archived at ARGV[2] (Unix seconds, its score when it was
// read), was not rescued within ARGV[3] seconds before that, and has been
// rescued fewer than ARGV[4] times; ARGV[5] is now in Unix nanoseconds.
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
local rescued = redis.call("HGET", KEYS[1], "endcall_rescued_at")
if rescued and tonumber(ARGV[2]) - tonumber(rescued) < tonumber(ARGV[3]) then
	return 0
end
if tonumber(redis.call("HGET", KEYS[1], "endcall_rescues") or "0") >= tonumber(ARGV[4]) then
	return 0
end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("RPUSH", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[1], "state", "pending", "pending_since", ARGV[5])
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
	var errs []error
	n := 0
	for q := range queues {
		m, err := r.rescueLeases(ctx, q, cutoff)
		n += m
		errs = append(errs, err)
	}
	for q := range queues {
		m, err := r.unarchive(ctx, q)
		n += m
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
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
		now := time.Now()
		keys := []string{prefix + "t:" + id, prefix + "active", prefix + "lease", prefix + "pending"}
		moved, err := rescueScript.Run(ctx, r.Redis, keys, id, cutoff.Unix(), maxRescues, now.UnixNano(), now.Unix()).Int()
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
// since the last pass (archivedLookback for the first). The recoverer
// archives with the error ErrLeaseExpired and the failure time as the
// archive's score; a task an operator archives later keeps an older failure
// time, and stays. The messages are read in one round trip, and only those
// that carry the error are decoded through the Inspector.
func (r *Rescuer) unarchive(ctx context.Context, q string) (int, error) {
	prefix := "asynq:{" + q + "}:"
	from := float64(time.Now().Add(-archivedLookback).Unix())
	if r.readTo == nil {
		r.readTo = map[string]float64{}
	}
	// A second's overlap: more may have been archived in the last second read.
	if to, ok := r.readTo[q]; ok && to-1 > from {
		from = to - 1
	}
	archived, err := r.Redis.ZRangeByScoreWithScores(ctx, prefix+"archived", &redis.ZRangeBy{
		Min: strconv.FormatFloat(from, 'f', 0, 64), Max: "+inf"}).Result()
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
		if err != nil || !bytes.Contains(msg, leaseExpired) {
			continue // gone since, or archived for another reason
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
		keys := []string{prefix + "t:" + id, prefix + "archived", prefix + "pending"}
		moved, err := unarchiveScript.Run(ctx, r.Redis, keys, id, int64(z.Score), int64(staleArchive/time.Second), maxRescues, time.Now().UnixNano()).Int()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if moved == 1 {
			n++
			r.Log.Warn("task archived when its worker died on its last attempt; handed back to the queue", "queue", q, "task_id", id)
		}
	}
	// After an error the same tasks are read again next time; the scripts
	// act once.
	if len(errs) == 0 && ctx.Err() == nil {
		r.readTo[q] = archived[len(archived)-1].Score
	}
	return n, errors.Join(errs...)
}

package worker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/worker"
)

// TestRescuer runs a real asynq worker whose handler never returns and
// checks the rescuer against asynq's keys, with cutoffs in the future so
// that live leases stand in for expired ones: a lease renewed by a live
// worker (expiring 25 to 30 s ahead) is left alone; a lease past the cutoff
// is handed back, asynq's Inspector sees the task waiting again, and it
// runs again without its lost run counted as a retry; after three rescues a
// task is left to asynq's recoverer. A task on its last attempt is rescued
// too: the attempt that died was never made.
func TestRescuer(t *testing.T) {
	t.Parallel()
	opt, rdb := rescuerRedis(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	type run struct {
		id      string
		retried int
	}
	runs := make(chan run, 10)
	release := make(chan struct{})
	w := worker.New(worker.Config{Redis: opt, Concurrency: 8, ShutdownTimeout: time.Second, Log: log})
	w.Handle("test:hang", asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		runs <- run{id, retried}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	t.Cleanup(func() { close(release); cancel(); wg.Wait() })

	client := asynq.NewClient(opt)
	defer client.Close()
	inspector := asynq.NewInspector(opt)
	defer inspector.Close()
	if _, err := client.Enqueue(asynq.NewTask("test:hang", nil), asynq.TaskID("hang-1"), asynq.Queue(jobs.QueueDefault), asynq.MaxRetry(5)); err != nil {
		t.Fatal(err)
	}
	next := func(what string) run {
		t.Helper()
		select {
		case r := <-runs:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("no run %s", what)
		}
		return run{}
	}
	if r := next("at first"); r != (run{"hang-1", 0}) {
		t.Fatalf("first run: %+v", r)
	}

	r := &worker.Rescuer{Redis: rdb, Inspector: inspector, Log: log}
	if n, err := r.RescueBefore(ctx, time.Now().Add(20*time.Second)); err != nil || n != 0 {
		t.Fatalf("a live lease: rescued %d, %v; want 0", n, err)
	}
	select {
	case r := <-runs:
		t.Fatalf("ran again without a rescue: %+v", r)
	case <-time.After(time.Second):
	}
	for i := range 3 {
		if n, err := r.RescueBefore(ctx, time.Now().Add(40*time.Second)); err != nil || n != 1 {
			t.Fatalf("rescue %d: rescued %d, %v; want 1", i+1, n, err)
		}
		if i == 0 {
			info, err := inspector.GetTaskInfo(jobs.QueueDefault, "hang-1")
			if err != nil || (info.State != asynq.TaskStateRetry && info.State != asynq.TaskStatePending && info.State != asynq.TaskStateActive) {
				t.Fatalf("after a rescue the Inspector sees %+v, %v", info, err)
			}
		}
		if got := next("after a rescue"); got != (run{"hang-1", 0}) {
			t.Fatalf("run after rescue %d: %+v, want the same task with no retry counted", i+1, got)
		}
	}
	if n, err := r.RescueBefore(ctx, time.Now().Add(40*time.Second)); err != nil || n != 0 {
		t.Fatalf("a fourth rescue: rescued %d, %v; want 0 (left to asynq)", n, err)
	}

	// asynq would archive a task with no retry left; it runs again instead.
	if _, err := client.Enqueue(asynq.NewTask("test:hang", nil), asynq.TaskID("hang-last"), asynq.Queue(jobs.QueueWebhooks), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	if got := next("of the task with no retry left"); got != (run{"hang-last", 0}) {
		t.Fatalf("run: %+v", got)
	}
	if n, err := r.RescueBefore(ctx, time.Now().Add(40*time.Second)); err != nil || n != 1 {
		t.Fatalf("a task with no retry left: rescued %d, %v; want 1", n, err)
	}
	if got := next("after the rescue of the task with no retry left"); got != (run{"hang-last", 0}) {
		t.Fatalf("run after rescue: %+v", got)
	}
}

// TestRescuerScriptsCheckAgainWhatWasListed runs the rescuer's scripts on
// tasks that changed after a pass listed them (another rescuer handed them
// back and a worker took one again, or an operator ran one and it was
// archived again): neither acts. Then a pass hands a task back due Delay
// later and records when it did, which the guard against a stale recoverer
// reads.
func TestRescuerScriptsCheckAgainWhatWasListed(t *testing.T) {
	t.Parallel()
	_, rdb := rescuerRedis(t)
	ctx := context.Background()
	prefix := "asynq:{" + jobs.QueueDefault + "}:"
	now := time.Now()

	// Running again: active, with a lease 30 s ahead, listed by a pass
	// whose cutoff was when its old lease had expired.
	if err := rdb.HSet(ctx, prefix+"t:live", "state", "active").Err(); err != nil {
		t.Fatal(err)
	}
	rdb.LPush(ctx, prefix+"active", "live")
	rdb.ZAdd(ctx, prefix+"lease", redis.Z{Score: float64(now.Add(30 * time.Second).Unix()), Member: "live"})
	keys := []string{prefix + "t:live", prefix + "active", prefix + "lease", prefix + "retry"}
	if moved, err := worker.RescueScript.Run(ctx, rdb, keys, "live", now.Unix(), 3, now.Unix(), now.Unix()).Int(); err != nil || moved != 0 {
		t.Fatalf("rescue script on a live lease: %d, %v; want 0", moved, err)
	}
	if n, err := rdb.ZCard(ctx, prefix+"lease").Result(); err != nil || n != 1 {
		t.Fatalf("lease entries after the script: %d, %v; want the live one", n, err)
	}

	// Archived again at a later score than the one the pass read.
	if err := rdb.HSet(ctx, prefix+"t:again", "state", "archived").Err(); err != nil {
		t.Fatal(err)
	}
	rdb.ZAdd(ctx, prefix+"archived", redis.Z{Score: float64(now.Unix()), Member: "again"})
	keys = []string{prefix + "t:again", prefix + "archived", prefix + "retry"}
	if moved, err := worker.UnarchiveScript.Run(ctx, rdb, keys, "again", now.Unix()-100, 30, 3, now.Unix(), now.Unix()).Int(); err != nil || moved != 0 {
		t.Fatalf("unarchive script on a task archived since: %d, %v; want 0", moved, err)
	}
	if state, err := rdb.HGet(ctx, prefix+"t:again", "state").Result(); err != nil || state != "archived" {
		t.Fatalf("the task archived since is %q, %v", state, err)
	}

	// A pass whose cutoff is past the lease hands it back.
	r := &worker.Rescuer{Redis: rdb, Delay: 5 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	before := time.Now()
	if n, err := r.RescueBefore(ctx, before.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("rescued %d, %v; want 1", n, err)
	}
	due, err := rdb.ZScore(ctx, prefix+"retry", "live").Result()
	if err != nil || int64(due) < before.Add(4*time.Second).Unix() || int64(due) > time.Now().Add(5*time.Second).Unix() {
		t.Fatalf("due at %v (%v), want 5 s after the rescue at %d", due, err, before.Unix())
	}
	at, err := rdb.HGet(ctx, prefix+"t:live", "endcall_rescued_at").Int64()
	if err != nil || at < before.Unix() || at > time.Now().Unix() {
		t.Fatalf("endcall_rescued_at %d, %v; want the time of the rescue, %d", at, err, before.Unix())
	}
}

// TestRescuerReadsTheArchiveFromItsLastGoodPass: however long Redis stays
// unreachable, the next pass reads the archive from the start of the last
// pass that read it, so that no task archived in between is skipped; a
// fresh rescuer looks 10 minutes back.
func TestRescuerReadsTheArchiveFromItsLastGoodPass(t *testing.T) {
	t.Parallel()
	_, rdb := rescuerRedis(t)
	ctx := context.Background()
	r := &worker.Rescuer{Redis: rdb, Margin: 30 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	now := time.Now()
	if from := r.ArchiveFrom(jobs.QueueDefault, now); !from.Equal(now.Add(-10 * time.Minute)) {
		t.Fatalf("a fresh rescuer reads from %v, want 10 minutes before %v", from, now)
	}

	good := time.Now()
	if _, err := r.RescueBefore(ctx, good.Add(-r.Margin)); err != nil {
		t.Fatal(err)
	}
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer down.Close()
	r.Redis = down
	time.Sleep(2 * time.Second) // so that a failed pass that moved it would show
	if _, err := r.RescueBefore(ctx, time.Now().Add(-r.Margin)); err == nil {
		t.Fatal("a pass with Redis unreachable reported no error")
	}
	from := r.ArchiveFrom(jobs.QueueDefault, time.Now().Add(time.Hour))
	if want := good.Add(-r.Margin - time.Second); from.Before(want) || from.After(want.Add(time.Second)) {
		t.Fatalf("an hour later the next pass reads from %v, want %v (the last good pass, less the margin and a second)", from, want)
	}
}

// TestRescuerHandsBackTasksArchivedForAnExpiredLease has asynq's own
// recoverer archive tasks whose worker was cut off from Redis on their last
// attempt, as it does when it gets to them before the rescuer. The lease
// scores are set a minute back, standing in for the minute the recoverer
// would otherwise be waited for. The rescuer hands such a task back to run
// next, and one the recoverer archives after that pass on the next. These
// stay archived: one an operator archived again later, one rescued three
// times already, one rescued moments before its archive (a recoverer that
// listed it before the rescue archived it, and its new run may be live),
// and one whose handler failed on its last attempt.
func TestRescuerHandsBackTasksArchivedForAnExpiredLease(t *testing.T) {
	t.Parallel()
	opt, rdb := rescuerRedis(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	runs := make(chan string, 10)
	start := func(o asynq.RedisClientOpt) {
		w := worker.New(worker.Config{Redis: o, Concurrency: 6, ShutdownTimeout: time.Second, Log: log})
		w.Handle("test:hang", asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			runs <- id
			<-ctx.Done()
			return ctx.Err()
		}))
		w.Handle("test:fail", asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return errors.New("failed for good") }))
		wg.Go(func() { w.Run(ctx) })
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	inspector := asynq.NewInspector(opt)
	defer inspector.Close()
	prefix := "asynq:{" + jobs.QueueDefault + "}:"
	expire := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if err := rdb.ZAddXX(ctx, prefix+"lease", redis.Z{Score: float64(time.Now().Add(-time.Minute).Unix()), Member: id}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	archivedForLease := func(ids ...string) func() bool {
		return func() bool {
			for _, id := range ids {
				info, err := inspector.GetTaskInfo(jobs.QueueDefault, id)
				if err != nil || info.State != asynq.TaskStateArchived || info.LastErr != asynq.ErrLeaseExpired.Error() {
					return false
				}
			}
			return true
		}
	}
	state := func(id string) asynq.TaskState {
		t.Helper()
		info, err := inspector.GetTaskInfo(jobs.QueueDefault, id)
		if err != nil {
			t.Fatal(err)
		}
		return info.State
	}

	// Worker A reaches Redis through a proxy, to be cut off mid-task.
	proxy := testenv.NewProxy(t, opt.Addr)
	viaProxy := opt
	viaProxy.Addr = proxy.Addr()
	start(viaProxy)
	const recovered, rearchived, thrice, justRescued, late = "recovered", "rearchived", "rescued-thrice", "just-rescued", "late"
	ids := []string{recovered, rearchived, thrice, justRescued, late}
	for _, id := range ids {
		if _, err := client.Enqueue(asynq.NewTask("test:hang", nil), asynq.TaskID(id), asynq.Queue(jobs.QueueDefault), asynq.MaxRetry(0)); err != nil {
			t.Fatal(err)
		}
	}
	for range ids {
		select {
		case <-runs:
		case <-time.After(10 * time.Second):
			t.Fatal("worker A did not take every task")
		}
	}
	proxy.Cut()
	expire(recovered, rearchived, thrice, justRescued)

	// Worker B's recoverer archives those four at start; the queue is
	// paused so that nothing runs before the rescuer has looked.
	if err := inspector.PauseQueue(jobs.QueueDefault); err != nil {
		t.Fatal(err)
	}
	start(opt)
	if _, err := client.Enqueue(asynq.NewTask("test:fail", nil), asynq.TaskID("failed"), asynq.Queue(jobs.QueueWebhooks), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "asynq's recoverer to archive the tasks", archivedForLease(recovered, rearchived, thrice, justRescued))
	waitFor(t, 10*time.Second, "the failed task to be archived", func() bool {
		info, err := inspector.GetTaskInfo(jobs.QueueWebhooks, "failed")
		return err == nil && info.State == asynq.TaskStateArchived
	})
	// An operator runs one and archives it again a second later.
	time.Sleep(1100 * time.Millisecond)
	if err := inspector.RunTask(jobs.QueueDefault, rearchived); err != nil {
		t.Fatal(err)
	}
	if err := inspector.ArchiveTask(jobs.QueueDefault, rearchived); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, prefix+"t:"+thrice, "endcall_rescues", 3).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, prefix+"t:"+justRescued, "endcall_rescued_at", time.Now().Unix()).Err(); err != nil {
		t.Fatal(err)
	}

	r := &worker.Rescuer{Redis: rdb, Inspector: inspector, Log: log}
	if n, err := r.RescueBefore(ctx, time.Now().Add(-30*time.Second)); err != nil || n != 1 {
		t.Fatalf("rescued %d, %v; want 1", n, err)
	}
	if got := state(recovered); got != asynq.TaskStateRetry && got != asynq.TaskStatePending {
		t.Fatalf("%s is %v, want retry or pending", recovered, got)
	}
	for id, want := range map[string]asynq.TaskState{rearchived: asynq.TaskStateArchived,
		thrice: asynq.TaskStateArchived, justRescued: asynq.TaskStateArchived, late: asynq.TaskStateActive} {
		if got := state(id); got != want {
			t.Fatalf("%s is %v, want %v", id, got, want)
		}
	}
	// The hand-back counts as a rescue, for the guard against a stale
	// recoverer and for the limit.
	if at, err := rdb.HGet(ctx, prefix+"t:"+recovered, "endcall_rescued_at").Int64(); err != nil || time.Since(time.Unix(at, 0)) > 10*time.Second {
		t.Fatalf("endcall_rescued_at of the handed-back task: %d, %v", at, err)
	}

	// The recoverer of worker C, started now, archives the last task: the
	// next pass finds it.
	expire(late)
	start(opt)
	waitFor(t, 10*time.Second, "asynq's recoverer to archive the late task", archivedForLease(late))
	if n, err := r.RescueBefore(ctx, time.Now().Add(-30*time.Second)); err != nil || n != 1 {
		t.Fatalf("the next pass rescued %d, %v; want 1 (the late task)", n, err)
	}
	if err := inspector.UnpauseQueue(jobs.QueueDefault); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case id := <-runs:
			got[id] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("the handed-back tasks did not both run: %v", got)
		}
	}
	if !got[recovered] || !got[late] {
		t.Fatalf("ran %v, want %s and %s", got, recovered, late)
	}
	select {
	case id := <-runs:
		t.Fatalf("%s ran too", id)
	case <-time.After(time.Second):
	}
}

// rescuerRedis is a Redis database of the test's own, as asynq's option
// and as a client closed when the test ends.
func rescuerRedis(t *testing.T) (asynq.RedisClientOpt, redis.UniversalClient) {
	t.Helper()
	conn, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	opt := conn.(asynq.RedisClientOpt)
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	t.Cleanup(func() { rdb.Close() })
	return opt, rdb
}

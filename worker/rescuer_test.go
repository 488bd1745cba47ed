package worker_test

import (
	"context"
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
// runs again without its lost run counted as a retry; after three rescues,
// or when it has no retries left, a task is left to asynq's recoverer.
func TestRescuer(t *testing.T) {
	t.Parallel()
	opt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	type run struct {
		id      string
		retried int
	}
	runs := make(chan run, 10)
	release := make(chan struct{})
	w := worker.New(worker.Config{Redis: opt, Concurrency: 6, ShutdownTimeout: time.Second, Log: log})
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

	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
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

	// A task with no retry left would be archived by asynq, not run again.
	if _, err := client.Enqueue(asynq.NewTask("test:hang", nil), asynq.TaskID("hang-last"), asynq.Queue(jobs.QueueWebhooks), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	if got := next("of the task with no retry left"); got != (run{"hang-last", 0}) {
		t.Fatalf("run: %+v", got)
	}
	if n, err := r.RescueBefore(ctx, time.Now().Add(40*time.Second)); err != nil || n != 0 {
		t.Fatalf("a task with no retry left: rescued %d, %v; want 0", n, err)
	}
}

package worker_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/worker"
)

// TestSchedulersOfTheRegistry: each periodic task type of jobs.Registry
// gets a scheduler with its interval, which enqueues its task once a slot.
func TestSchedulersOfTheRegistry(t *testing.T) {
	t.Parallel()
	opt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	inspector := asynq.NewInspector(opt)
	defer inspector.Close()
	d := &jobs.Deps{OverdueScanInterval: 7 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	got := map[string]time.Duration{}
	slot := time.Now().Truncate(time.Second)
	for _, s := range worker.Schedulers(client, d) {
		for i := range 2 {
			queued, err := s.Enqueue(context.Background(), slot)
			if err != nil || queued != (i == 0) {
				t.Fatalf("enqueue %d of the slot: %v, %v; want only the first to queue", i+1, queued, err)
			}
		}
		task, err := s.Task(slot)
		if err != nil {
			t.Fatal(err)
		}
		got[task.Type()] = s.Interval
	}
	want := map[string]time.Duration{jobs.TypeEndOverdue: 7 * time.Second, jobs.TypeDeliveryRetention: 10 * time.Minute}
	if len(got) != len(want) || got[jobs.TypeEndOverdue] != want[jobs.TypeEndOverdue] || got[jobs.TypeDeliveryRetention] != want[jobs.TypeDeliveryRetention] {
		t.Fatalf("schedulers %v, want %v", got, want)
	}
	if n, err := inspector.GetQueueInfo(jobs.QueueDefault); err != nil || n.Pending != 2 {
		t.Fatalf("queue %+v, %v; want the two periodic tasks pending", n, err)
	}
}

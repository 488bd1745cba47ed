package worker_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/webhook/webhooktest"
	"github.com/endcall/endcall/worker"
)

// TestTaskWhoseWorkerDiedRunsAgain kills the worker of a delivery mid-attempt
// and starts another, whose asynq recoverer runs at its start. A task with
// retries left is retried by the recoverer; one on its last attempt, and
// one with MaxRetry 0, are archived by it for their expired lease, and the
// reconciler queues them afresh, counting the revival in the payload. While
// the first worker lives, the reconciler leaves its task alone.
func TestTaskWhoseWorkerDiedRunsAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		schedule []time.Duration
		// fail is how many attempts fail before the one whose worker dies.
		fail int
		last bool
	}{
		{"with retries left", []time.Duration{100 * time.Millisecond, 100 * time.Millisecond}, 0, false},
		{"on its last attempt", []time.Duration{100 * time.Millisecond}, 1, true},
		{"with MaxRetry 0", nil, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := setupPipeline(t, func(o *pipelineOptions) { o.noWorker, o.schedule = true, tc.schedule })
			hung, release := make(chan struct{}), make(chan struct{})
			defer close(release)
			rc := webhooktest.New(t)
			rc.FailFirst(tc.fail, http.StatusInternalServerError)
			var received atomic.Int32
			rc.Before(func(webhooktest.Delivery) {
				if int(received.Add(1)) == tc.fail+1 {
					close(hung)
					<-release
				}
			})
			p.subscribe(rc, "call.ended")
			ctx := context.Background()
			doomed := p.startDoomedWorker()
			c := p.endCall(nil)
			task := "deliver:" + p.deliveryOf(c.ID)
			select {
			case <-hung:
			case <-time.After(20 * time.Second):
				t.Fatal("the attempt never reached the receiver")
			}
			p.waitSettled(c.ID)
			if n, err := p.reconciler().Reconcile(ctx); err != nil || n != 0 {
				t.Fatalf("reconcile with the worker alive: queued %d, %v; want nothing", n, err)
			}
			if got := p.taskState(jobs.QueueWebhooks, task); got != asynq.TaskStateActive {
				t.Fatalf("with the worker alive the task is %v, want active", got)
			}

			p.kill(doomed, jobs.QueueWebhooks, task)
			// Paused, so that the task is seen before it runs again.
			if err := p.inspect.PauseQueue(jobs.QueueWebhooks); err != nil {
				t.Fatal(err)
			}
			p.startWorker()
			waitFor(t, 10*time.Second, "asynq's recoverer", func() bool {
				info, err := p.inspect.GetTaskInfo(jobs.QueueWebhooks, task)
				if err != nil || info.LastErr != asynq.ErrLeaseExpired.Error() {
					return false
				}
				if tc.last {
					return info.State == asynq.TaskStateArchived
				}
				return info.State == asynq.TaskStateRetry || info.State == asynq.TaskStatePending
			})
			want := 0
			if tc.last {
				want = 1
			}
			if n, err := p.reconciler().Reconcile(ctx); err != nil || n != want {
				t.Fatalf("reconcile after the death: queued %d, %v; want %d", n, err, want)
			}
			if tc.last {
				info, err := p.inspect.GetTaskInfo(jobs.QueueWebhooks, task)
				if err != nil || info.State != asynq.TaskStatePending || jobs.Revivals(info.Payload) != 1 {
					t.Fatalf("the revived task: %+v, %v; want pending, its payload counting one revival", info, err)
				}
			}
			if err := p.inspect.UnpauseQueue(jobs.QueueWebhooks); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 20*time.Second, "the delivery", func() bool { return p.deliveryStatus(c.ID) == "succeeded" })
			got := rc.Deliveries()
			if len(got) != tc.fail+2 {
				t.Fatalf("the receiver got %d requests, want %d", len(got), tc.fail+2)
			}
			for _, r := range got {
				if r.ID != got[0].ID {
					t.Error("an attempt changed the webhook-id")
				}
			}
		})
	}
}

// TestReconcilerLeavesOtherArchivedTasksArchived: a task whose worker died
// on its last attempt stays archived once revived MaxRevivals times, as one
// that kills its worker every time would be; so does one whose work
// Postgres no longer owes when asked again (its outcome was recorded after
// the reconciler listed it), and one archived for another reason (an
// operator archived it).
func TestReconcilerLeavesOtherArchivedTasksArchived(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) { o.noWorker, o.schedule = true, nil })
	hung, release := make(chan struct{}, 2), make(chan struct{})
	defer close(release)
	rc := webhooktest.New(t)
	rc.Before(func(webhooktest.Delivery) {
		hung <- struct{}{}
		<-release
	})
	p.subscribe(rc, "call.ended")
	ctx := context.Background()
	poison, raced := p.endCall(nil), p.endCall(nil)
	poisonWork := endcall.Work{Kind: endcall.WorkDeliver, CallID: poison.ID, DeliveryID: p.deliveryOf(poison.ID)}
	poisonTask, racedTask := "deliver:"+poisonWork.DeliveryID, "deliver:"+p.deliveryOf(raced.ID)
	if err := p.inspect.DeleteTask(jobs.QueueWebhooks, poisonTask); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.enq.Revive(ctx, poisonWork, worker.MaxRevivals); !ok || err != nil {
		t.Fatalf("queueing the poison task: %v, %v", ok, err)
	}
	room := "room:" + poison.ID
	if err := p.inspect.ArchiveTask(jobs.QueueDefault, room); err != nil {
		t.Fatal(err)
	}

	doomed := p.startDoomedWorker()
	for range 2 {
		select {
		case <-hung:
		case <-time.After(20 * time.Second):
			t.Fatal("the deliveries did not both start")
		}
	}
	p.waitSettled(raced.ID)
	p.kill(doomed, jobs.QueueWebhooks, poisonTask, racedTask)
	p.startWorker()
	waitFor(t, 10*time.Second, "asynq's recoverer to archive both deliveries", func() bool {
		for _, id := range []string{poisonTask, racedTask} {
			info, err := p.inspect.GetTaskInfo(jobs.QueueWebhooks, id)
			if err != nil || info.State != asynq.TaskStateArchived || info.LastErr != asynq.ErrLeaseExpired.Error() {
				return false
			}
		}
		return true
	})

	r := p.reconciler()
	r.Store = racingStore{Store: p.store, after: func() {
		if _, err := p.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'failed' WHERE call_id = $1`, raced.ID); err != nil {
			t.Error(err)
		}
	}}
	if n, err := r.Reconcile(ctx); err != nil || n != 0 {
		t.Fatalf("reconcile: queued %d, %v; want nothing", n, err)
	}
	for id, queue := range map[string]string{poisonTask: jobs.QueueWebhooks, racedTask: jobs.QueueWebhooks, room: jobs.QueueDefault} {
		if got := p.taskState(queue, id); got != asynq.TaskStateArchived {
			t.Errorf("%s is %v, want it left archived", id, got)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if got := len(rc.Deliveries()); got != 2 {
		t.Errorf("the receiver got %d requests, want the 2 whose worker died", got)
	}
}

// racingStore runs after once OwedDeliveries has listed what is owed.
type racingStore struct {
	*postgres.Store
	after func()
}

func (r racingStore) OwedDeliveries(ctx context.Context, q endcall.OwedQuery) ([]endcall.Work, error) {
	work, err := r.Store.OwedDeliveries(ctx, q)
	if q.Of == nil {
		r.after()
	}
	return work, err
}

// doomedWorker is a worker of the pipeline that reaches Redis through a
// proxy, so that the test can kill it.
type doomedWorker struct{ proxy *testenv.Proxy }

func (p *pipeline) startDoomedWorker() *doomedWorker {
	p.t.Helper()
	opt := p.redis.(asynq.RedisClientOpt)
	proxy := testenv.NewProxy(p.t, opt.Addr)
	opt.Addr = proxy.Addr()
	w := p.workerOn(opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	p.t.Cleanup(func() { cancel(); <-done })
	return &doomedWorker{proxy: proxy}
}

// kill cuts the worker off from Redis, so that it can neither renew the
// leases of its tasks nor finish them, as if its process had died, and sets
// the leases of the tasks ids a minute back, standing in for the minute
// asynq's recoverer would otherwise be waited for. It fails the test when
// asynq keeps no lease of those tasks where it looks.
func (p *pipeline) kill(d *doomedWorker, queue string, ids ...string) {
	p.t.Helper()
	d.proxy.Cut()
	rdb := p.redis.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	ctx := context.Background()
	leases := "asynq:{" + queue + "}:lease"
	for _, id := range ids {
		if _, err := rdb.ZScore(ctx, leases, id).Result(); err != nil {
			p.t.Fatalf("the lease of %s in %s: %v", id, leases, err)
		}
		if err := rdb.ZAddXX(ctx, leases, redis.Z{Score: float64(time.Now().Add(-time.Minute).Unix()), Member: id}).Err(); err != nil {
			p.t.Fatal(err)
		}
	}
}

// waitSettled waits for the room and the analysis of a call.
func (p *pipeline) waitSettled(callID string) {
	p.t.Helper()
	waitFor(p.t, 20*time.Second, "the room and the analysis of "+callID, func() bool {
		c, err := p.store.CallByID(context.Background(), callID)
		return err == nil && c.RoomStatus != nil && *c.RoomStatus == "deleted" &&
			c.AnalysisStatus != nil && *c.AnalysisStatus == "completed"
	})
}

func (p *pipeline) taskState(queue, id string) asynq.TaskState {
	p.t.Helper()
	info, err := p.inspect.GetTaskInfo(queue, id)
	if err != nil {
		p.t.Fatalf("task %s: %v", id, err)
	}
	return info.State
}

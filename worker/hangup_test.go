package worker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/calls"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/twilio"
	"github.com/endcall/endcall/twilio/twiliotest"
	"github.com/endcall/endcall/worker"
)

type hangupBundle struct {
	store  *postgres.Store
	fake   *twiliotest.Server
	client *asynq.Client
	redis  asynq.RedisConnOpt
	svc    *calls.Service
	tel    *twilio.Client
	ws     string
	sid    string // platform account
	log    *slog.Logger
}

func setupHangup(t *testing.T) *hangupBundle {
	t.Helper()
	b := &hangupBundle{store: postgres.NewStore(testenv.DB(t), nil), fake: twiliotest.New(t),
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var err error
	if b.redis, err = asynq.ParseRedisURI(testenv.Redis(t)); err != nil {
		t.Fatal(err)
	}
	b.client = asynq.NewClient(b.redis)
	t.Cleanup(func() { b.client.Close() })
	var token string
	b.sid, token = b.fake.NewAccount()
	b.tel = twilio.New(twilio.Config{BaseURL: b.fake.URL(), AccountSID: b.sid, AuthToken: token, Timeout: time.Second})
	b.svc = &calls.Service{Store: b.store, Telephony: b.tel, Queue: &jobs.Enqueuer{Client: b.client, DeliverMaxRetry: 7},
		Log: b.log, ProviderTimeout: time.Second, EnqueueTimeout: time.Second}
	if b.ws, _, err = b.store.CreateAPIKey(context.Background(), "w"); err != nil {
		t.Fatal(err)
	}
	return b
}

// endWithFailingProvider ends a new call while the provider answers 500.
func (b *hangupBundle) endWithFailingProvider(t *testing.T, failures int) (*endcall.Call, string) {
	t.Helper()
	ctx := context.Background()
	p, err := b.store.CreatePhoneNumber(ctx, b.ws, "+15551110000", "twilio", nil)
	if err != nil {
		t.Fatal(err)
	}
	sid := b.fake.NewCall(b.sid, "in-progress")
	now := time.Now().UTC()
	c, err := b.store.CreateCall(ctx, &endcall.Call{WorkspaceID: b.ws, PhoneNumberID: &p.ID, CallSID: &sid, CallProvider: "twilio",
		CallFrom: "+15551110000", CallTo: "+15552220000", CallDirection: "outbound", CallStatus: "in-progress", StartedAt: &now, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	b.fake.FailNext(sid, failures, 500)
	res, err := b.svc.End(ctx, endcall.EndRequest{WorkspaceID: b.ws, CallID: c.ID, Reason: "x", Trigger: endcall.TriggerAPI})
	if err != nil {
		t.Fatal(err)
	}
	if got := *res.Call.ProviderHangupStatus; got != endcall.HangupRetrying {
		t.Fatalf("after a 500: provider_hangup_status %q, want retrying", got)
	}
	return res.Call, sid
}

// runWorker processes tasks until the test ends.
func (b *hangupBundle) runWorker(t *testing.T) {
	t.Helper()
	w := worker.New(worker.Config{Redis: b.redis, Concurrency: 2, ShutdownTimeout: 5 * time.Second, Log: b.log})
	w.Handle(jobs.TypeHangup, &jobs.HangupHandler{Store: b.store, Telephony: b.tel, Timeout: time.Second, Log: b.log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// waitHangupStatus polls the stored call until its provider_hangup_status
// is want, or fails after the deadline.
func (b *hangupBundle) waitHangupStatus(t *testing.T, callID string, want endcall.HangupStatus, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var got endcall.HangupStatus
	for time.Now().Before(deadline) {
		c, err := b.store.GetCall(context.Background(), b.ws, callID)
		if err != nil {
			t.Fatal(err)
		}
		if got = *c.ProviderHangupStatus; got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("provider_hangup_status: got %q, want %q within %v", got, want, within)
}

func TestHangupRetriedByTaskUntilSuccess(t *testing.T) {
	t.Parallel()
	b := setupHangup(t)
	c, sid := b.endWithFailingProvider(t, 1)
	b.runWorker(t)
	b.waitHangupStatus(t, c.ID, endcall.HangupSucceeded, 10*time.Second)
	if n := b.fake.HangupCount(sid); n != 2 {
		t.Errorf("hangup requests: got %d, want 2 (the failed one and the retry)", n)
	}
}

func TestHangupRetriesRunOut(t *testing.T) {
	t.Parallel()
	b := setupHangup(t)
	c, _ := b.endWithFailingProvider(t, 100)
	// The end queued the task with the full retry budget; replace it with
	// one whose budget is already spent, so the first failure is the last.
	insp := asynq.NewInspector(b.redis)
	defer insp.Close()
	if err := insp.DeleteTask(jobs.QueueCritical, "hangup:"+c.ID); err != nil {
		t.Fatal(err)
	}
	task, _ := (&jobs.Enqueuer{}).Task(endcall.Work{Kind: endcall.WorkHangup, CallID: c.ID})
	if _, err := b.client.Enqueue(task, asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	b.runWorker(t)
	b.waitHangupStatus(t, c.ID, endcall.HangupFailed, 10*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		archived, _ := insp.ListArchivedTasks(jobs.QueueCritical)
		if len(archived) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("archived hangup tasks: got %d, want 1", len(archived))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHangupRetryIsANoOpOnceSettled(t *testing.T) {
	t.Parallel()
	b := setupHangup(t)
	c, sid := b.endWithFailingProvider(t, 1)
	if err := b.store.FinishHangup(context.Background(), c.ID, endcall.HangupSucceeded); err != nil {
		t.Fatal(err)
	}
	b.runWorker(t)
	insp := asynq.NewInspector(b.redis)
	defer insp.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A finished task is not retained: gone means done, as a failed one
		// would wait for its retry.
		info, err := insp.GetTaskInfo(jobs.QueueCritical, "hangup:"+c.ID)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hangup task did not complete: %v %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := b.fake.HangupCount(sid); n != 1 {
		t.Errorf("hangup requests: got %d, want only the original one", n)
	}
}

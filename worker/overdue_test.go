package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/calls"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/twilio"
	"github.com/endcall/endcall/twilio/twiliotest"
	"github.com/endcall/endcall/webhook"
	"github.com/endcall/endcall/worker"
)

// overdueEnv is a database and a Redis shared by one or more worker
// processes, with Twilio faked on the wire and a webhook receiver.
type overdueEnv struct {
	dbURL    string
	redis    asynq.RedisConnOpt
	store    *postgres.Store
	twilio   *twiliotest.Server
	account  string
	token    string
	ws       string
	phoneID  string
	receiver *receiver
	log      *slog.Logger
	runs     *taskRuns
}

func setupOverdue(t *testing.T) *overdueEnv {
	t.Helper()
	e := &overdueEnv{dbURL: testenv.DatabaseURL(t), twilio: twiliotest.New(t), log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		runs: &taskRuns{n: map[string]int{}}, receiver: newReceiver(t, nil)}
	var err error
	if e.redis, err = asynq.ParseRedisURI(testenv.Redis(t)); err != nil {
		t.Fatal(err)
	}
	e.store = postgres.NewStore(e.pool(t), nil)
	e.account, e.token = e.twilio.NewAccount()
	ctx := context.Background()
	if e.ws, _, err = e.store.CreateAPIKey(ctx, "overdue"); err != nil {
		t.Fatal(err)
	}
	phone, err := e.store.CreatePhoneNumber(ctx, e.ws, "+15553330000", "twilio", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.phoneID = phone.ID
	if _, err := e.store.CreateEndpoint(ctx, e.ws, e.receiver.srv.URL, []string{endcall.EventCallEnded}, nil, nil,
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *overdueEnv) pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// startProcess runs what `endcall worker` runs for overdue calls, with its
// own connections as a separate process would have: the worker with the
// scan and delivery handlers, and the scheduler.
func (e *overdueEnv) startProcess(t *testing.T, interval time.Duration) {
	t.Helper()
	store := postgres.NewStore(e.pool(t), nil)
	client := asynq.NewClient(e.redis)
	t.Cleanup(func() { client.Close() })
	enq := &jobs.Enqueuer{Client: client, DeliverMaxRetry: 2}
	tel := twilio.New(twilio.Config{BaseURL: e.twilio.URL(), AccountSID: e.account, AuthToken: e.token, Timeout: time.Second})
	svc := &calls.Service{Store: store, Telephony: tel, Queue: enq, Log: e.log, ProviderTimeout: time.Second, EnqueueTimeout: time.Second}
	w := worker.New(worker.Config{Redis: e.redis, Concurrency: 5, ShutdownTimeout: 5 * time.Second, Log: e.log})
	scan := &jobs.EndOverdueHandler{Store: store, Calls: svc, MaxCallDuration: time.Hour, Log: e.log, Batch: 4}
	w.Handle(jobs.TypeEndOverdue, e.runs.count(scan))
	w.Handle(jobs.TypeDeliver, &jobs.DeliverHandler{Store: store, Schedule: []time.Duration{time.Second, time.Second}, Log: e.log,
		Client: webhook.NewHTTPClient(5*time.Second, true)})
	sched := &worker.Scheduler{Client: client, Interval: interval, Log: e.log,
		Task: func(slot time.Time) (*asynq.Task, error) { return jobs.NewEndOverdueTask(slot, interval) }}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx) })
	wg.Go(func() { sched.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// call registers an active call with a live provider call behind it.
// startedAgo < 0 means never started (created that long ago instead).
func (e *overdueEnv) call(t *testing.T, status endcall.CallStatus, startedAgo time.Duration, maxSeconds int) (*endcall.Call, string) {
	t.Helper()
	sid := e.twilio.NewCall(e.account, string(status))
	now := time.Now().UTC()
	c := &endcall.Call{WorkspaceID: e.ws, PhoneNumberID: &e.phoneID, CallSID: &sid, CallProvider: "twilio",
		CallFrom: "+15553330000", CallTo: "+15554440000", CallDirection: "outbound", CallStatus: status, CreatedAt: now}
	if startedAgo >= 0 {
		started := now.Add(-startedAgo)
		c.StartedAt, c.CreatedAt = &started, started.Add(-5*time.Second)
	} else {
		c.CreatedAt = now.Add(startedAgo)
	}
	if maxSeconds > 0 {
		c.MaxDurationSeconds = &maxSeconds
	}
	created, err := e.store.CreateCall(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return created, sid
}

func (e *overdueEnv) get(t *testing.T, id string) *endcall.Call {
	t.Helper()
	c, err := e.store.CallByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// taskRuns counts the runs of each task ID, across processes.
type taskRuns struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *taskRuns) count(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		r.mu.Lock()
		r.n[id]++
		r.mu.Unlock()
		return h.ProcessTask(ctx, t)
	})
}

func (r *taskRuns) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.n))
	for k, v := range r.n {
		out[k] = v
	}
	return out
}

// endedCallIDs returns the call IDs of the call.ended webhooks received.
func endedCallIDs(t *testing.T, rc *receiver) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, r := range rc.byType(endcall.EventCallEnded) {
		var body struct {
			Data endcall.Call `json:"data"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		ids[body.Data.ID]++
	}
	return ids
}

func TestOverdueCallsAreEndedThroughTheEndPath(t *testing.T) {
	t.Parallel()
	e := setupOverdue(t)
	type tc struct {
		name       string
		status     endcall.CallStatus
		startedAgo time.Duration
		maxSeconds int
		// Empty when the call must stay active.
		wantStatus endcall.CallStatus
		wantHangup string
	}
	cases := []tc{
		{"past its own limit", "in-progress", 2 * time.Minute, 60, "completed", "completed"},
		{"past the default limit", "in-progress", 61 * time.Minute, 0, "completed", "completed"},
		{"ringing, never started, past the default", "ringing", -61 * time.Minute, 0, "canceled", "canceled"},
		{"within its own limit", "in-progress", 2 * time.Minute, 600, "", ""},
		{"within the default limit", "in-progress", 50 * time.Minute, 0, "", ""},
		{"own limit longer than the default", "in-progress", 90 * time.Minute, 7200, "", ""},
		{"never started, young", "queued", -10 * time.Minute, 0, "", ""},
	}
	ids, sids := make([]string, len(cases)), make([]string, len(cases))
	for i, c := range cases {
		call, sid := e.call(t, c.status, c.startedAgo, c.maxSeconds)
		ids[i], sids[i] = call.ID, sid
	}
	e.startProcess(t, time.Second)

	waitFor(t, 20*time.Second, "a call.ended webhook for each overdue call", func() bool { return len(endedCallIDs(t, e.receiver)) == 3 })
	got := endedCallIDs(t, e.receiver)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			call := e.get(t, ids[i])
			hangups := e.twilio.Hangups(sids[i])
			if c.wantStatus == "" {
				if call.EndedAt != nil || len(hangups) != 0 || got[ids[i]] != 0 {
					t.Errorf("ended (at %v, %d hangups, %d webhooks), want untouched", call.EndedAt, len(hangups), got[ids[i]])
				}
				return
			}
			if call.EndedAt == nil || call.CallStatus != c.wantStatus {
				t.Errorf("call_status %q, ended_at %v; want %q and ended", call.CallStatus, call.EndedAt, c.wantStatus)
			}
			if call.DisconnectReason == nil || *call.DisconnectReason != endcall.ReasonOverdue {
				t.Errorf("disconnect_reason %v, want %q", call.DisconnectReason, endcall.ReasonOverdue)
			}
			if call.ProviderHangupStatus == nil || *call.ProviderHangupStatus != endcall.HangupSucceeded {
				t.Errorf("provider_hangup_status %v, want succeeded", call.ProviderHangupStatus)
			}
			if len(hangups) != 1 || hangups[0].Form.Get("Status") != c.wantHangup {
				t.Errorf("provider hangups %+v, want one with Status=%s", hangups, c.wantHangup)
			}
			if got[ids[i]] != 1 {
				t.Errorf("call.ended webhooks: got %d, want 1", got[ids[i]])
			}
		})
	}
}

// TestOverdueScanWithTwoWorkers runs two worker processes, each with its
// scheduler, against one database and one Redis: every scan slot runs once
// and every overdue call is ended, hung up and announced once.
func TestOverdueScanWithTwoWorkers(t *testing.T) {
	t.Parallel()
	e := setupOverdue(t)
	const n = 24
	ids, sids := make([]string, n), make([]string, n)
	for i := range n {
		c, sid := e.call(t, "in-progress", time.Duration(61+i)*time.Minute, 0)
		ids[i], sids[i] = c.ID, sid
	}
	e.startProcess(t, time.Second)
	e.startProcess(t, time.Second)

	waitFor(t, 30*time.Second, "a call.ended webhook for every call", func() bool { return len(endedCallIDs(t, e.receiver)) == n })
	// Let a few more slots pass, each raced by both schedulers.
	first := len(e.runs.snapshot())
	waitFor(t, 20*time.Second, "three more scan slots", func() bool { return len(e.runs.snapshot()) >= first+3 })

	for i := range n {
		if got := e.twilio.HangupCount(sids[i]); got != 1 {
			t.Errorf("call %s: %d provider hangups, want 1", ids[i], got)
		}
		if c := e.get(t, ids[i]); c.EndedAt == nil || c.DisconnectReason == nil || *c.DisconnectReason != endcall.ReasonOverdue {
			t.Errorf("call %s: ended_at %v, reason %v; want ended as overdue", ids[i], c.EndedAt, c.DisconnectReason)
		}
	}
	for id, count := range endedCallIDs(t, e.receiver) {
		if count != 1 {
			t.Errorf("call %s: %d call.ended webhooks, want 1", id, count)
		}
	}
	for id, count := range e.runs.snapshot() {
		if !strings.HasPrefix(id, "overdue:") || count != 1 {
			t.Errorf("task %s ran %d times, want once", id, count)
		}
	}
}

func TestSchedulerEnqueuesEachSlotOnce(t *testing.T) {
	t.Parallel()
	redisOpt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	const interval = time.Second
	schedulers := make([]*worker.Scheduler, 2)
	for i := range schedulers {
		client := asynq.NewClient(redisOpt)
		t.Cleanup(func() { client.Close() })
		schedulers[i] = &worker.Scheduler{Client: client, Interval: interval,
			Task: func(slot time.Time) (*asynq.Task, error) { return jobs.NewEndOverdueTask(slot, interval) }}
	}
	ctx := context.Background()
	slot := time.Now().Truncate(interval)
	for i, want := range []bool{true, false} {
		if queued, err := schedulers[i].Enqueue(ctx, slot); err != nil || queued != want {
			t.Errorf("scheduler %d, same slot: queued %v, err %v; want %v", i, queued, err, want)
		}
	}
	// Completed, the slot's task is retained, so a scheduler whose clock is
	// behind still cannot queue it again.
	inspector := asynq.NewInspector(redisOpt)
	defer inspector.Close()
	srv := asynq.NewServer(redisOpt, asynq.Config{Concurrency: 1, Queues: map[string]int{jobs.QueueDefault: 1}, LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	id := "overdue:" + strconv.FormatInt(slot.Unix(), 10)
	waitFor(t, 10*time.Second, "the slot's task to complete", func() bool {
		info, err := inspector.GetTaskInfo(jobs.QueueDefault, id)
		return err == nil && info.State == asynq.TaskStateCompleted
	})
	if queued, err := schedulers[1].Enqueue(ctx, slot); err != nil || queued {
		t.Errorf("after completion, same slot: queued %v, err %v; want refused", queued, err)
	}
	if queued, err := schedulers[1].Enqueue(ctx, slot.Add(interval)); err != nil || !queued {
		t.Errorf("next slot: queued %v, err %v; want queued", queued, err)
	}
}

// TestOverdueScanSkipsWhileAnotherRuns: a slot whose scan finds the previous
// one still running leaves the calls to it.
func TestOverdueScanSkipsWhileAnotherRuns(t *testing.T) {
	t.Parallel()
	e := setupOverdue(t)
	c, sid := e.call(t, "in-progress", 2*time.Hour, 0)
	client := asynq.NewClient(e.redis)
	defer client.Close()
	tel := twilio.New(twilio.Config{BaseURL: e.twilio.URL(), AccountSID: e.account, AuthToken: e.token, Timeout: time.Second})
	svc := &calls.Service{Store: e.store, Telephony: tel, Queue: &jobs.Enqueuer{Client: client}, Log: e.log,
		ProviderTimeout: time.Second, EnqueueTimeout: time.Second}
	h := &jobs.EndOverdueHandler{Store: e.store, Calls: svc, MaxCallDuration: time.Hour, Log: e.log}
	task, err := jobs.NewEndOverdueTask(time.Now(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	release, ok, err := e.store.TryLockOverdueScan(ctx)
	if err != nil || !ok {
		t.Fatalf("taking the scan lock: %v %v", ok, err)
	}
	if err := h.ProcessTask(ctx, task); err != nil {
		t.Fatalf("scan while another holds the lock: %v", err)
	}
	if got := e.get(t, c.ID); got.EndedAt != nil || e.twilio.HangupCount(sid) != 0 {
		t.Fatalf("the call was ended by a scan that should have skipped")
	}
	release()
	if err := h.ProcessTask(ctx, task); err != nil {
		t.Fatalf("scan: %v", err)
	}
	if got := e.get(t, c.ID); got.EndedAt == nil || e.twilio.HangupCount(sid) != 1 {
		t.Errorf("after the lock is free: ended_at %v, %d hangups; want ended with one hangup", got.EndedAt, e.twilio.HangupCount(sid))
	}
}

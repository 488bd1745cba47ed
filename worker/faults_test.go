package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/twilio/twiliotest"
	"github.com/endcall/endcall/webhook/webhooktest"
	"github.com/endcall/endcall/worker"
)

// redisServer is a private redis-server process that a test may stop and
// start again, empty, on the same port.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (make test installs it): %v", err)
	}
	r := &redisServer{t: t, port: testenv.FreePort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	waitFor(r.t, 10*time.Second, "redis to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stop kills the server; with --save "" it comes back empty.
func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

func TestRedisDownWhileCallsEndThenBackEmptyLosesNothing(t *testing.T) {
	t.Parallel()
	redis := startRedis(t)
	p := setupPipeline(t, func(o *pipelineOptions) {
		o.redisURL = redis.url()
		o.noWorker = true
	})
	rc := webhooktest.New(t)
	p.subscribe(rc)
	redis.stop()

	const n = 5
	var ids []string
	for range n {
		c := p.endCall(happyTranscript) // fails the test unless the end answers 200
		if *c.RoomStatus != "pending" || *c.AnalysisStatus != "pending" {
			t.Fatalf("owed work: room %q analysis %q", *c.RoomStatus, *c.AnalysisStatus)
		}
		ids = append(ids, c.ID)
	}
	redis.start()
	p.startWorker()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.reconciler().Run(ctx)

	waitFor(t, 30*time.Second, "every event at the endpoint", func() bool {
		return len(rc.ByType("call.ended")) == n && len(rc.ByType("call.analyzed")) == n
	})
	seen := map[string]bool{}
	for _, r := range rc.Deliveries() {
		seen[r.Header.Get("webhook-id")] = true
	}
	if len(seen) != 2*n {
		t.Errorf("distinct webhook-ids: got %d, want %d", len(seen), 2*n)
	}
	for _, id := range ids {
		var c endcall.Call
		waitFor(t, 10*time.Second, "call "+id+" settled", func() bool {
			p.do("GET", "/v1/calls/"+id, nil, &c)
			return *c.RoomStatus == "deleted" && *c.AnalysisStatus == "completed"
		})
	}
	if got := len(p.rooms.Deleted()); got != n {
		t.Errorf("rooms deleted: got %d, want %d", got, n)
	}
}

// TestWorkerKilledMidDeliveryLosesNothing kills the only worker during an
// attempt and starts its replacement 35 s later, as a restart with backoff
// would. The replacement's recoverer finds the lease expired at its second
// look, a minute after its first, and the task runs again about 100 s after
// the kill, within the 3 minutes promised.
func TestWorkerKilledMidDeliveryLosesNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for asynq's recoverer to find the dead worker's lease (about 100 s); skipped with -short")
	}
	bin := buildEndcall(t)
	dbURL, redisURL := testenv.DatabaseURL(t), testenv.Redis(t)
	p := setupPipeline(t, func(o *pipelineOptions) {
		o.databaseURL, o.redisURL, o.noWorker = dbURL, redisURL, true
	})
	inFlight := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	rc := webhooktest.New(t)
	rc.Before(func(webhooktest.Delivery) {
		first := false
		once.Do(func() { first = true; close(inFlight) })
		if first {
			<-release // hold the first attempt until its worker is dead
		}
	})
	defer close(release)
	endpointID, _ := p.subscribe(rc, "call.ended")
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+redisURL, "TELEPHONY_MODE=simulated",
		"WEBHOOK_ALLOW_PRIVATE_NETWORKS=true", "RECOVERY_SWEEP_INTERVAL=1s", "LOG_LEVEL=warn")

	first := startProcess(t, bin, env, "worker")
	p.endCall(nil)
	select {
	case <-inFlight:
	case <-time.After(20 * time.Second):
		t.Fatal("the delivery never reached the receiver")
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	killed := time.Now()
	time.Sleep(35 * time.Second)
	startProcess(t, bin, env, "worker")

	waitFor(t, 3*time.Minute-time.Since(killed), "the delivery within 3 minutes of the kill", func() bool { return len(rc.Deliveries()) >= 2 })
	t.Logf("redelivered %v after SIGKILL", time.Since(killed).Round(time.Second))
	got := rc.Deliveries()
	if got[1].Header.Get("webhook-id") != got[0].Header.Get("webhook-id") || string(got[1].Body) != string(got[0].Body) {
		t.Error("the retried attempt changed id or body")
	}
	waitFor(t, 10*time.Second, "succeeded", func() bool { return p.deliveries(endpointID)[0].Status == "succeeded" })
}

// buildEndcall builds the endcall binary into the test's temp dir.
func buildEndcall(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "endcall")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/endcall/endcall/cmd/endcall").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs bin with args until the test ends.
func startProcess(t *testing.T, bin string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var logs strings.Builder
	cmd.Stderr = &lockedWriter{w: &logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s %v logs:\n%s", filepath.Base(bin), args, logs.String())
		}
	})
	return cmd
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Outcomes are committed without waiting for the WAL flush, so a crash of
// Postgres can lose the record of work done after its task has finished.
// The test puts the rows back as such a crash leaves them; the reconciler must
// run that work again, and nothing else.
func TestLostOutcomeCommitsAreRedone(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t)
	rc := webhooktest.New(t)
	p.subscribe(rc)
	c := p.endCall(happyTranscript)
	ctx := context.Background()
	waitFor(t, 20*time.Second, "the post-call work", func() bool {
		got, err := p.store.CallByID(ctx, c.ID)
		return err == nil && len(rc.Deliveries()) == 2 && got.RoomStatus != nil && *got.RoomStatus == "deleted" &&
			got.AnalysisStatus != nil && *got.AnalysisStatus == "completed"
	})
	waitFor(t, 5*time.Second, "both deliveries recorded", func() bool {
		var pending int
		p.pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE call_id = $1 AND status <> 'succeeded'`, c.ID).Scan(&pending)
		return pending == 0
	})
	reconciler := p.reconciler()
	if n, err := reconciler.Reconcile(ctx); err != nil || n != 0 {
		t.Fatalf("a pass with nothing owed: queued %d, %v", n, err)
	}

	// What a crash leaves when it loses the room's and call.ended's outcome
	// commits (the analysis is committed durably: it owes deliveries).
	if _, err := p.pool.Exec(ctx, `UPDATE calls SET room_status = 'pending' WHERE id = $1`, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'pending', attempts = '[]' WHERE call_id = $1 AND event = 'call.ended'`, c.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := reconciler.Reconcile(ctx); err != nil || n != 2 {
		t.Fatalf("a pass after the lost outcomes: queued %d, %v; want the room and the call.ended delivery", n, err)
	}
	waitFor(t, 20*time.Second, "the work done again", func() bool {
		got, err := p.store.CallByID(ctx, c.ID)
		return err == nil && len(rc.ByType("call.ended")) == 2 && len(p.rooms.Deleted()) == 2 &&
			got.RoomStatus != nil && *got.RoomStatus == "deleted"
	})
	ended := rc.ByType("call.ended")
	if ended[0].Header.Get("webhook-id") != ended[1].Header.Get("webhook-id") || !bytes.Equal(ended[0].Body, ended[1].Body) {
		t.Error("the redone delivery changed its webhook-id or body")
	}
	if got := p.rooms.Deleted(); got[0] != got[1] {
		t.Errorf("rooms deleted %v, want the same room twice", got)
	}
	waitFor(t, 5*time.Second, "the redone delivery recorded", func() bool {
		var status string
		p.pool.QueryRow(ctx, `SELECT status FROM webhook_deliveries WHERE call_id = $1 AND event = 'call.ended'`, c.ID).Scan(&status)
		return status == "succeeded"
	})
	if n, err := reconciler.Reconcile(ctx); err != nil || n != 0 {
		t.Errorf("a pass once redone: queued %d, %v; want nothing", n, err)
	}
	if got := len(rc.ByType("call.analyzed")); got != 1 {
		t.Errorf("call.analyzed sent %d times, want 1: its outcome was not lost", got)
	}
}

// postgresServer is a private Postgres with durable commits, as in
// production, that a test may crash and restart on the same port, with the
// Redis that scripts/services.sh starts beside it.
type postgresServer struct {
	t                  *testing.T
	dir                string
	databaseURL, redis string
}

func startPostgres(t *testing.T) *postgresServer {
	t.Helper()
	s := &postgresServer{t: t, dir: filepath.Join(t.TempDir(), "services")}
	s.services("start", s.dir)
	t.Cleanup(func() { s.services("stop", s.dir) })
	raw, err := os.ReadFile(filepath.Join(s.dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "DATABASE_URL="); ok {
			s.databaseURL = v
		} else if v, ok := strings.CutPrefix(line, "REDIS_URL="); ok {
			s.redis = v
		}
	}
	pool, err := pgxpool.New(context.Background(), s.databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return s
}

// crash stops Postgres as a crash would and starts it again: commits whose
// WAL was not yet written are lost, then crash recovery runs.
func (s *postgresServer) crash() { s.services("crash-postgres", s.dir) }

func (s *postgresServer) services(args ...string) {
	s.t.Helper()
	out, err := exec.Command("bash", append([]string{"../scripts/services.sh"}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("services.sh %v: %v\n%s", args, err, out)
	}
}

// Postgres crashes while the post-call work of 20 calls is in flight: what
// was committed as owed must all be done in the end, each webhook event
// reaching the endpoint under one webhook-id however often it is sent.
func TestPostgresCrashMidPipelineLosesNothing(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t)
	p := setupPipeline(t, func(o *pipelineOptions) { o.databaseURL, o.redisURL = pg.databaseURL, pg.redis })
	// A slow receiver keeps deliveries in flight when the crash comes.
	rc := webhooktest.New(t)
	rc.Script(webhooktest.Reply{Delay: 100 * time.Millisecond})
	p.subscribe(rc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.reconciler().Run(ctx)

	const n = 20
	var ids []string
	for range n {
		ids = append(ids, p.endCall(happyTranscript).ID) // each answered 200: committed
	}
	waitFor(t, 10*time.Second, "the first deliveries", func() bool { return len(rc.Deliveries()) > 0 })
	pg.crash()
	t.Logf("crashed with %d requests received, %d rooms deleted", len(rc.Deliveries()), len(p.rooms.Deleted()))

	waitFor(t, 150*time.Second, "all post-call work recorded done", func() bool {
		var owed, delivered int
		err := p.pool.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM calls WHERE room_status = 'pending' OR analysis_status = 'pending'),
				(SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded')`).Scan(&owed, &delivered)
		return err == nil && owed == 0 && delivered == 2*n
	})
	seen := map[string]map[string]bool{} // event and call → webhook-ids received
	for _, r := range rc.Deliveries() {
		key := r.Type + " " + r.CallID
		if seen[key] == nil {
			seen[key] = map[string]bool{}
		}
		seen[key][r.ID] = true
	}
	for _, id := range ids {
		for _, event := range []string{"call.ended", "call.analyzed"} {
			if got := len(seen[event+" "+id]); got != 1 {
				t.Errorf("%s of call %s: %d webhook-ids received, want exactly 1", event, id, got)
			}
		}
	}
	rooms := map[string]bool{}
	for _, r := range p.rooms.Deleted() {
		rooms[r] = true
	}
	if len(rooms) != n {
		t.Errorf("rooms deleted: %d distinct, want %d", len(rooms), n)
	}
	t.Logf("after recovery: %d requests for %d events, %d room deletions for %d rooms",
		len(rc.Deliveries()), 2*n, len(p.rooms.Deleted()), n)
}

// Postgres down for longer than a delivery's whole retry schedule: its
// failures are outages, which use up no retry, so its task keeps retrying,
// never archived, and the delivery is made once Postgres is back. An outage
// on the last attempt, after a failed one, cannot be retried by asynq: the
// task is revoked instead of archived, and the reconciler queues the
// delivery afresh.
func TestPostgresDownLongerThanTheRetryScheduleLosesNothing(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t, func(o *pipelineOptions) {
		o.noWorker = true
		o.schedule = []time.Duration{100 * time.Millisecond} // one retry
	})
	store := &flakyStore{Store: p.store}
	store.down.Store(true)
	rc := webhooktest.New(t)
	// The second call's first attempt fails, and Postgres goes down before
	// its last.
	rc.Script(webhooktest.Reply{}, webhooktest.Reply{Status: http.StatusInternalServerError}, webhooktest.Reply{})
	var received atomic.Int32
	rc.Before(func(webhooktest.Delivery) {
		if received.Add(1) == 2 {
			store.down.Store(true)
		}
	})
	p.subscribe(rc, "call.ended")
	ctx := context.Background()
	w := worker.New(worker.Config{Redis: p.redis, Concurrency: 4, ShutdownTimeout: time.Second, Log: p.log})
	deps := p.deps()
	deps.Store = store
	w.HandleAll(deps)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() { stop(); <-done }()

	first := p.endCall(nil)
	task := "deliver:" + p.deliveryOf(first.ID)
	waitFor(t, 20*time.Second, "four runs on the outage (the schedule allows two)", func() bool { return store.tries.Load() >= 4 })
	info, err := p.inspect.GetTaskInfo(jobs.QueueWebhooks, task)
	if err != nil || info.State == asynq.TaskStateArchived || info.Retried != 0 {
		t.Fatalf("after four outages the task is %+v, %v; want it waiting to run again, no retry used", info, err)
	}
	store.down.Store(false)
	waitFor(t, 70*time.Second, "the delivery once Postgres is back", func() bool { return p.deliveryStatus(first.ID) == "succeeded" })

	second := p.endCall(nil)
	task = "deliver:" + p.deliveryOf(second.ID)
	waitFor(t, 20*time.Second, "the second delivery's first attempt", func() bool { return len(rc.Deliveries()) == 2 })
	waitFor(t, 20*time.Second, "the task revoked on its last attempt", func() bool {
		_, err := p.inspect.GetTaskInfo(jobs.QueueWebhooks, task)
		return errors.Is(err, asynq.ErrTaskNotFound)
	})
	if got := p.deliveryStatus(second.ID); got != "pending" {
		t.Fatalf("the delivery is %s; want it still owed", got)
	}
	store.down.Store(false)
	// The delivery is owed once its next attempt is due, up to a second
	// after asynq ran the attempt.
	waitFor(t, 10*time.Second, "the reconciler to queue the delivery", func() bool {
		n, err := p.reconciler().Reconcile(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	waitFor(t, 10*time.Second, "the delivery queued afresh", func() bool { return p.deliveryStatus(second.ID) == "succeeded" })
	if got := rc.Deliveries(); len(got) != 3 {
		t.Fatalf("the receiver got %d requests, want 3", len(got))
	}
}

// flakyStore is the pipeline's store whose deliveries meet an unavailable
// database while down is set, counting the tries.
type flakyStore struct {
	*postgres.Store
	down  atomic.Bool
	tries atomic.Int32
}

func (s *flakyStore) DeliveryJob(ctx context.Context, id string) (*endcall.DeliveryJob, error) {
	if s.down.Load() {
		s.tries.Add(1)
		return nil, endcall.Errorf(endcall.EUNAVAILABLE, "The database is unavailable; try again shortly.")
	}
	return s.Store.DeliveryJob(ctx, id)
}

// deliveryOf returns the ID of the one delivery of a call.
func (p *pipeline) deliveryOf(callID string) string {
	p.t.Helper()
	var id string
	if err := p.pool.QueryRow(context.Background(), `SELECT id FROM webhook_deliveries WHERE call_id = $1`, callID).Scan(&id); err != nil {
		p.t.Fatal(err)
	}
	return id
}

// deliveryStatus returns the status of the one delivery of a call.
func (p *pipeline) deliveryStatus(callID string) string {
	var status string
	p.pool.QueryRow(context.Background(), `SELECT status FROM webhook_deliveries WHERE call_id = $1`, callID).Scan(&status)
	return status
}

// TestKilledBetweenRecordAndHangupStillHangsUp kills the API process after
// it has recorded an end and while its hangup request is on the way (the
// request dies with it and never reaches Twilio). A worker started later
// finds the hangup still owed and makes it, exactly once.
func TestKilledBetweenRecordAndHangupStillHangsUp(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the owed hangup to age past PROVIDER_TIMEOUT (about 15 s); skipped with -short")
	}
	bin := buildEndcall(t)
	dbURL, redisURL := testenv.DatabaseURL(t), testenv.Redis(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.NewStore(pool, nil)
	ctx := context.Background()
	ws, key, err := store.CreateAPIKey(ctx, "killed")
	if err != nil {
		t.Fatal(err)
	}
	fake := twiliotest.New(t)
	account, token := fake.NewAccount()
	phone, err := store.CreatePhoneNumber(ctx, ws, "+15550001111", "twilio", nil)
	if err != nil {
		t.Fatal(err)
	}
	sid := fake.NewCall(account, string(endcall.StatusInProgress))
	now := time.Now()
	c, err := store.CreateCall(ctx, &endcall.Call{WorkspaceID: ws, PhoneNumberID: &phone.ID, CallSID: &sid, CallProvider: "twilio",
		CallFrom: "+15550001111", CallTo: "+15550002222", CallDirection: "outbound", CallStatus: endcall.StatusInProgress,
		StartedAt: &now, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}

	// The first request to Twilio is swallowed: the process is killed while
	// it waits, and the fake never sees it. Later ones reach the fake.
	arrived, stop := make(chan struct{}), make(chan struct{})
	var first sync.Once
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		swallowed := false
		first.Do(func() { swallowed = true; close(arrived) })
		if swallowed {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		httputil.NewSingleHostReverseProxy(mustParse(t, fake.URL())).ServeHTTP(w, r)
	}))
	defer gate.Close()
	defer gate.CloseClientConnections()
	defer close(stop)
	port := testenv.FreePort(t)
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "REDIS_URL="+redisURL, "TWILIO_API_BASE_URL="+gate.URL,
		"TWILIO_ACCOUNT_SID="+account, "TWILIO_AUTH_TOKEN="+token, "PROVIDER_TIMEOUT=2s",
		"RECOVERY_SWEEP_INTERVAL=1s", "LOG_LEVEL=warn", fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", port))
	api := startProcess(t, bin, env, "serve")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, 20*time.Second, "the API to be ready", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	go func() {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/calls/end", strings.NewReader(`{"call_id":"`+c.ID+`"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the hangup never left the API process")
	}
	if err := api.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	api.Wait()
	got, err := store.GetCall(ctx, ws, c.ID)
	if err != nil || got.EndedAt == nil || *got.ProviderHangupStatus != endcall.HangupPending {
		t.Fatalf("after the kill: %+v, %v; want ended with the hangup pending", got, err)
	}

	startProcess(t, bin, env, "worker")
	waitFor(t, 60*time.Second, "the owed hangup", func() bool {
		got, err := store.GetCall(ctx, ws, c.ID)
		return err == nil && *got.ProviderHangupStatus == endcall.HangupSucceeded
	})
	if n := fake.HangupCount(sid); n != 1 {
		t.Fatalf("Twilio saw %d hangups, want exactly 1", n)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

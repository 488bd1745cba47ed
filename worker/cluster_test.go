package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis"
	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/calls"
	"github.com/endcall/endcall/dashboard"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/twilio"
	"github.com/endcall/endcall/twilio/twiliotest"
	"github.com/endcall/endcall/webhook"
	"github.com/endcall/endcall/webhook/webhooktest"
	"github.com/endcall/endcall/worker"
)

// startRedisCluster starts a real three-node Redis Cluster (no replicas) in
// a temporary directory and returns its nodes' addresses. The nodes are
// killed when t ends. It skips t only when redis-server has no cluster
// support.
func startRedisCluster(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	var addrs []string
	for i := range 3 {
		port, busPort := testenv.FreePort(t), testenv.FreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		logPath := filepath.Join(dir, fmt.Sprintf("node%d.log", i))
		// Not daemonized, so that the test owns the process and kills it.
		cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-port", fmt.Sprint(busPort),
			"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port), "--cluster-node-timeout", "5000",
			"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", logPath)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis-server (run scripts/services.sh install): %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		deadline := time.Now().Add(15 * time.Second)
		for c.Ping(context.Background()).Err() != nil {
			select {
			case <-exited:
				logged, _ := os.ReadFile(logPath)
				out := stderr.String() + string(logged)
				if strings.Contains(out, "cluster") && (strings.Contains(out, "Bad directive") || strings.Contains(out, "not supported")) {
					t.Skipf("redis-server has no cluster support: %s", strings.TrimSpace(out))
				}
				t.Fatalf("redis-server on %s exited: %s", addr, out)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis-server on %s did not answer within 15s", addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	out, err := exec.Command("redis-cli", append(args, "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v: %s", err, out)
	}
	// Every node must see all slots served before clients rely on it.
	waitFor(t, 30*time.Second, "cluster_state:ok on every node", func() bool {
		for _, addr := range addrs {
			c := redis.NewClient(&redis.Options{Addr: addr})
			info, err := c.ClusterInfo(context.Background()).Result()
			c.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
		}
		return true
	})
	return addrs
}

// TestRedisCluster runs the whole pipeline on a real Redis Cluster, as
// REDIS_CLUSTER_ADDRS configures it: an end through the API is hung up,
// its post-call work runs on the worker and its webhooks arrive; the
// overdue scheduler, the readiness check and the dashboard work too.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	addrs := startRedisCluster(t)
	redisOpt := asynq.RedisClusterClientOpt{Addrs: addrs}
	ctx := context.Background()

	// The readiness check's client, made exactly as cmd/endcall makes it.
	rdb, ok := redisOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		t.Fatalf("the cluster option makes a %T, not a redis.UniversalClient", redisOpt.MakeRedisClient())
	}
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("readiness ping through the cluster client: %v", err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := postgres.NewStore(testenv.DB(t), nil)
	fake := twiliotest.New(t)
	account, token := fake.NewAccount()
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	enq := &jobs.Enqueuer{Client: client, DeliverMaxRetry: 2}
	tel := twilio.New(twilio.Config{BaseURL: fake.URL(), AccountSID: account, AuthToken: token, Timeout: time.Second})
	svc := &calls.Service{Store: store, Telephony: tel, Queue: enq, Log: log, ProviderTimeout: time.Second, EnqueueTimeout: time.Second}
	srv := httptest.NewServer(api.NewServer(api.Deps{Store: store, Webhooks: store, Redeliver: enq, AllowPrivateWebhooks: true, Calls: svc, Log: log}))
	defer srv.Close()

	w := worker.New(worker.Config{Redis: redisOpt, Concurrency: 5, ShutdownTimeout: 5 * time.Second, Log: log})
	w.Handle(jobs.TypeRoomDelete, &jobs.RoomHandler{Store: store})
	w.Handle(jobs.TypeAnalyze, &jobs.AnalyzeHandler{Store: store, Analyzer: analysis.Builtin{}, Queue: enq, Log: log})
	w.Handle(jobs.TypeDeliver, &jobs.DeliverHandler{Store: store, Schedule: []time.Duration{time.Second, time.Second}, Log: log,
		Client: webhook.NewHTTPClient(5*time.Second, true)})
	w.Handle(jobs.TypeEndOverdue, &jobs.EndOverdueHandler{Store: store, Calls: svc, MaxCallDuration: time.Hour, Log: log})
	sched := &worker.Scheduler{Client: client, Interval: time.Second, Log: log,
		Task: func(slot time.Time) (*asynq.Task, error) { return jobs.NewEndOverdueTask(slot, time.Second) }}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { w.Run(runCtx); done <- struct{}{} }()
	go func() { sched.Run(runCtx); done <- struct{}{} }()
	defer func() { stop(); <-done; <-done }()

	ws, key, err := store.CreateAPIKey(ctx, "cluster")
	if err != nil {
		t.Fatal(err)
	}
	phone, err := store.CreatePhoneNumber(ctx, ws, "+15553330000", "twilio", nil)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path string, body any, data any) int {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(res.Body).Decode(&env); err == nil && data != nil {
			json.Unmarshal(env.Data, data)
		}
		return res.StatusCode
	}
	rc := webhooktest.New(t)
	var ep struct{ Secret string }
	if code := call("POST", "/v1/webhooks", map[string]any{"url": rc.URL}, &ep); code != 201 {
		t.Fatalf("subscribe: %d", code)
	}
	if err := rc.SetSecret(ep.Secret); err != nil {
		t.Fatal(err)
	}

	// An end through the API.
	sid := fake.NewCall(account, "in-progress")
	var c endcall.Call
	if code := call("POST", "/v1/calls", map[string]any{"call_from": "+15553330000", "call_to": "+15554440000",
		"call_direction": "outbound", "call_sid": sid, "transcript_object": happyTranscript}, &c); code != 201 {
		t.Fatalf("create call: %d", code)
	}
	if code := call("POST", "/v1/calls/end", map[string]any{"call_id": c.ID}, &c); code != 200 {
		t.Fatalf("end call: %d", code)
	}
	// And an overdue call, for the scheduler and the scan.
	overdueSID := fake.NewCall(account, "in-progress")
	started := time.Now().Add(-2 * time.Hour)
	overdue, err := store.CreateCall(ctx, &endcall.Call{WorkspaceID: ws, PhoneNumberID: &phone.ID, CallSID: &overdueSID,
		CallProvider: "twilio", CallFrom: "+15553330000", CallTo: "+15554440000", CallDirection: "outbound",
		CallStatus: "in-progress", StartedAt: &started, CreatedAt: started})
	if err != nil {
		t.Fatal(err)
	}

	waitFor(t, 30*time.Second, "call.ended and call.analyzed of the API end, and call.ended of the overdue call", func() bool {
		return len(rc.ByType("call.ended")) == 2 && len(rc.ByType("call.analyzed")) == 2
	})
	got := endedCallIDs(rc)
	if got[c.ID] != 1 || got[overdue.ID] != 1 {
		t.Errorf("call.ended webhooks by call: %v, want one for %s and one for %s", got, c.ID, overdue.ID)
	}
	if fake.HangupCount(sid) != 1 || fake.HangupCount(overdueSID) != 1 {
		t.Errorf("provider hangups: %d and %d, want one each", fake.HangupCount(sid), fake.HangupCount(overdueSID))
	}
	if o, err := store.CallByID(ctx, overdue.ID); err != nil || o.DisconnectReason == nil || *o.DisconnectReason != endcall.ReasonOverdue {
		t.Errorf("overdue call: %+v, %v; want ended as overdue", o, err)
	}

	// The dashboard reads the cluster too.
	dash := dashboard.New(dashboard.Config{Redis: redisOpt, Username: "ops", Password: "pw"})
	defer dash.Close()
	for _, path := range []string{"/monitoring/api/queues", "/monitoring/api/redis_info"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		req.SetBasicAuth("ops", "pw")
		dash.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Errorf("dashboard %s on the cluster: %d %s", path, rec.Code, rec.Body)
		}
		if path == "/monitoring/api/queues" && !(strings.Contains(rec.Body.String(), `"default"`) && strings.Contains(rec.Body.String(), `"webhooks"`)) {
			t.Errorf("dashboard queues on the cluster: %s, want default and webhooks", rec.Body)
		}
	}
}

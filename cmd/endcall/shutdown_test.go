package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/twilio/twiliotest"
	"github.com/endcall/endcall/webhook/webhooktest"
)

// buildBinary compiles this command into the test's temporary directory,
// stamped as the Makefile does, and checks that --version shows the stamp.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build endcall: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "endcall")
	stamp := "-X main.version=v9.8.7 -X main.commit=abc123"
	if out, err := exec.Command(goTool, "build", "-ldflags", stamp, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "--version").Output(); err != nil || string(out) != "endcall v9.8.7 (commit abc123)\n" {
		t.Errorf("--version of the stamped binary: %q %v", out, err)
	}
	return bin
}

// gate holds requests until it is opened, and says when one arrives.
type gate struct {
	arrived chan struct{}
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{arrived: make(chan struct{}, 16), open: make(chan struct{})} }

func (g *gate) hold() {
	g.arrived <- struct{}{}
	select {
	case <-g.open:
	case <-time.After(time.Minute): // never hang the test
	}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func waitGate(t *testing.T, g *gate, what string) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestSIGTERMDrainsAndExitsZero sends SIGTERM to a real `endcall all` (after
// checking that it serves its dashboard) while an end request waits on the
// provider and a webhook attempt waits on its receiver: the listener closes
// at once, the end request still answers, the webhook attempt completes and
// is recorded, work queued during the drain stays in the queue, and the
// process exits 0.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dbURL, redisURL := testenv.DatabaseURL(t), testenv.Redis(t)

	fake := twiliotest.New(t)
	account, token := fake.NewAccount()
	fake.AddNumber(account, "+15553330000")
	heldSID := fake.NewCall(account, "in-progress")
	twilioGate := newGate()
	fake.OnUpdate(func(r twiliotest.Request) *twiliotest.Error {
		if r.CallSID == heldSID {
			twilioGate.hold()
		}
		return nil
	})
	hookGate := newGate()
	receiver := webhooktest.New(t)
	receiver.Before(func(webhooktest.Delivery) { hookGate.hold() })
	defer hookGate.release()
	defer twilioGate.release()

	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	environ := []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + dbURL, "REDIS_URL=" + redisURL, "HTTP_ADDR=" + addr,
		"TWILIO_API_BASE_URL=" + fake.URL(), "TWILIO_ACCOUNT_SID=" + account, "TWILIO_AUTH_TOKEN=" + token,
		"PROVIDER_TIMEOUT=20s", "WEBHOOK_ALLOW_PRIVATE_NETWORKS=true", "WEBHOOK_RETRY_SCHEDULE=1s",
		"OVERDUE_SCAN_INTERVAL=1s", "LOG_FORMAT=text", "DASHBOARD_USERNAME=ops", "DASHBOARD_PASSWORD=pw"}

	keyCmd := exec.Command(bin, "apikey", "create", "--workspace", "shutdown")
	keyCmd.Env = environ
	out, err := keyCmd.Output()
	if err != nil {
		t.Fatalf("apikey create: %v", err)
	}
	var created struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(out, &created); err != nil {
		t.Fatalf("apikey create printed %q: %v", out, err)
	}

	logFile, err := os.Create(filepath.Join(t.TempDir(), "endcall.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	logs := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	proc := exec.Command(bin, "all")
	proc.Env = environ
	proc.Stdout, proc.Stderr = logFile, logFile
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- proc.Wait() }()
	running := true
	defer func() {
		if running {
			proc.Process.Kill()
			// waitUp may have taken the exit already.
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
			}
		}
	}()
	base := "http://" + addr
	waitUp(t, base+"/healthz", exited)

	// The dashboard is mounted beside the API, behind its login.
	for _, tc := range []struct {
		user string
		want int
	}{{"", http.StatusUnauthorized}, {"ops", http.StatusOK}} {
		req, _ := http.NewRequest("GET", base+"/monitoring/api/queues", nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, "pw")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("dashboard as %q: got %d, want %d", tc.user, res.StatusCode, tc.want)
		}
	}

	api := func(method, path string, body any) (int, map[string]any) {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+created.APIKey)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		var env map[string]any
		json.NewDecoder(res.Body).Decode(&env)
		return res.StatusCode, env
	}
	newCall := func(sid string) string {
		t.Helper()
		code, env := api("POST", "/v1/calls", map[string]any{"call_from": "+15553330000", "call_to": "+15554440000",
			"call_direction": "outbound", "call_sid": sid})
		if code != 201 {
			t.Fatalf("create call: %d %v", code, env)
		}
		return env["data"].(map[string]any)["id"].(string)
	}
	if code, env := api("POST", "/v1/phone-numbers", map[string]any{"number": "+15553330000", "provider": "twilio"}); code != 201 {
		t.Fatalf("create phone number: %d %v", code, env)
	}
	if code, env := api("POST", "/v1/webhooks", map[string]any{"url": receiver.URL, "events": []string{"call.ended"}}); code != 201 {
		t.Fatalf("subscribe: %d %v", code, env)
	} else if err := receiver.SetSecret(env["data"].(map[string]any)["secret"].(string)); err != nil {
		t.Fatal(err)
	}

	// A task in flight: the call.ended webhook of a first call, held by its
	// receiver.
	first := newCall(fake.NewCall(account, "in-progress"))
	if code, env := api("POST", "/v1/calls/end", map[string]any{"call_id": first}); code != 200 {
		t.Fatalf("end the first call: %d %v", code, env)
	}
	waitGate(t, hookGate, "the first call's webhook to reach its receiver")

	// A request in flight: the end of a second call, held by the provider.
	second := newCall(heldSID)
	type answer struct {
		code int
		env  map[string]any
	}
	ended := make(chan answer, 1)
	go func() {
		code, env := api("POST", "/v1/calls/end", map[string]any{"call_id": second})
		ended <- answer{code, env}
	}()
	waitGate(t, twilioGate, "the second call's hangup to reach the provider")

	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused while the held request is still served.
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections 20s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case a := <-ended:
		t.Fatalf("the held end request answered before the provider did: %d %v", a.code, a.env)
	default:
	}
	twilioGate.release()
	a := <-ended
	if a.code != 200 || a.env["message"] != "Call ended" {
		t.Errorf("the end request in flight at SIGTERM: got %d %v, want 200 Call ended", a.code, a.env)
	}
	hookGate.release()

	select {
	case err := <-exited:
		running = false
		if err != nil {
			t.Fatalf("exit: %v, want status 0; logs:\n%s", err, logs())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("still running 40s after SIGTERM; logs:\n%s", logs())
	}
	if !strings.Contains(logs(), "stopped") {
		t.Errorf("no \"stopped\" line in the logs:\n%s", logs())
	}

	// The webhook attempt in flight finished and was recorded.
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var deliveries []struct{ id, call, status string }
	rows, err := pool.Query(context.Background(), `SELECT id, call_id::text, status FROM webhook_deliveries`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d struct{ id, call, status string }
		if err := rows.Scan(&d.id, &d.call, &d.status); err != nil {
			t.Fatal(err)
		}
		deliveries = append(deliveries, d)
	}
	rows.Close()
	if len(deliveries) != 2 {
		t.Fatalf("deliveries: got %+v, want one per call", deliveries)
	}
	redisOpt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspector(redisOpt)
	defer inspector.Close()
	for _, d := range deliveries {
		switch {
		case d.call == first && d.status != "succeeded":
			t.Errorf("the webhook in flight at SIGTERM: status %q, want succeeded", d.status)
		case d.call == second && d.status != "succeeded":
			// Queued during the drain and not fetched: it must wait in the
			// queue for the next worker.
			info, err := inspector.GetTaskInfo("webhooks", "deliver:"+d.id)
			if err != nil || (info.State != asynq.TaskStatePending && info.State != asynq.TaskStateRetry && info.State != asynq.TaskStateScheduled) {
				t.Errorf("the second call's webhook is %q and its task %+v (%v); want it back in the queue", d.status, info, err)
			}
		}
	}
}

// waitUp polls url until it answers 200, failing if the process exits.
func waitUp(t *testing.T, url string, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("endcall exited early: %v", err)
		default:
		}
		if res, err := http.Get(url); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200", url)
}

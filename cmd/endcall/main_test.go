package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/endcall/endcall/internal/testenv"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestInvalidConfigurationIsOneClearLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"no DATABASE_URL", map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, []string{"serve"}, "DATABASE_URL is required"},
		{"bad duration", map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x", "REDIS_URL": "redis://127.0.0.1:1/0", "PROVIDER_TIMEOUT": "5 sec"}, []string{"worker"}, "PROVIDER_TIMEOUT"},
		{"provider timeout beyond its task", map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x", "REDIS_URL": "redis://127.0.0.1:1/0", "PROVIDER_TIMEOUT": "40s"}, []string{"worker"}, "PROVIDER_TIMEOUT must be at most 20s"},
		{"webhook timeout beyond its task", map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x", "REDIS_URL": "redis://127.0.0.1:1/0", "WEBHOOK_TIMEOUT": "5m"}, []string{"all"}, "WEBHOOK_TIMEOUT must be at most 50s"},
		{"short JWT secret", map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x", "REDIS_URL": "redis://127.0.0.1:1/0", "JWT_SECRET": "x"}, []string{"serve"}, "JWT_SECRET must be at least 32 bytes"},
		{"migrate without DATABASE_URL", map[string]string{}, []string{"migrate"}, "DATABASE_URL is required"},
		{"unknown subcommand", map[string]string{}, []string{"dance"}, "unknown subcommand"},
		{"apikey without workspace", map[string]string{}, []string{"apikey", "create"}, "--workspace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, env(tc.vars), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("got error %v, want one line mentioning %q", err, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, env(nil), &stdout, &stderr); err != nil || !strings.HasPrefix(stdout.String(), "Usage: endcall") {
		t.Errorf("--help: err %v, stdout %q", err, stdout.String())
	}
	// Every subcommand's help is in one style and lists what it reads.
	for _, args := range [][]string{{"serve", "--help"}, {"worker", "-h"}, {"all", "--help"}, {"migrate", "--help"},
		{"apikey", "create", "--help"}, {"apikey", "list", "--help"}, {"apikey", "revoke", "--help"}} {
		stdout.Reset()
		if err := run(context.Background(), args, env(nil), &stdout, &stderr); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		out := stdout.String()
		if !strings.HasPrefix(out, "Usage: endcall "+strings.Join(args[:len(args)-1], " ")) || !strings.Contains(out, "\nEnvironment:\n  DATABASE_URL") ||
			strings.Contains(out, "README") {
			t.Errorf("%v: help not in the common style: %q", args, out)
		}
	}
	stdout.Reset()
	run(context.Background(), []string{"serve", "--help"}, env(nil), &stdout, &stderr)
	for _, v := range []string{"REDIS_URL", "WEBHOOK_RETRY_SCHEDULE", "LOG_FORMAT", "DASHBOARD_PASSWORD"} {
		if !strings.Contains(stdout.String(), v) {
			t.Errorf("serve --help does not list %s", v)
		}
	}
}

// TestVersion checks an unstamped build; buildBinary checks a stamped one.
func TestVersion(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, env(nil), &stdout, &stderr); err != nil ||
		!strings.HasPrefix(stdout.String(), "endcall "+version+" (commit ") {
		t.Errorf("--version: err %v, stdout %q", err, stdout.String())
	}
}

func TestMigrateAPIKeyAndServe(t *testing.T) {
	t.Parallel()
	dbURL := testenv.DatabaseURL(t) // migrated; make an unmigrated one too
	vars := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": testenv.Redis(t), "TELEPHONY_MODE": "simulated", "LOG_LEVEL": "error"}
	ctx := context.Background()

	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"migrate"}, env(vars), &stdout, &stderr); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	stdout.Reset()
	if err := run(ctx, []string{"apikey", "create", "--workspace", "acme"}, env(vars), &stdout, &stderr); err != nil {
		t.Fatalf("apikey create: %v", err)
	}
	var out map[string]string
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out) != 2 || !strings.HasPrefix(out["api_key"], "ek_") || len(out["workspace_id"]) != 36 {
		t.Fatalf("apikey create printed %q (%v), want one JSON object with workspace_id and api_key", stdout.String(), err)
	}
	if strings.Count(strings.TrimSpace(stdout.String()), "\n") != 0 {
		t.Errorf("apikey create printed more than one line: %q", stdout.String())
	}

	port := testenv.FreePort(t)
	vars["HTTP_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, []string{"all"}, env(vars), &stdout, &stderr) }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitUp(t, base+"/healthz", done)
	res, err := http.Get(base + "/readyz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", res, err)
	}
	res.Body.Close()
	req, _ := http.NewRequest("GET", base+"/v1/phone-numbers", nil)
	req.Header.Set("Authorization", "Bearer "+out["api_key"])
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("list phone numbers with the new key: %v %v", res, err)
	}
	endACall(t, base, out["api_key"])
	// The worker analyses the call; the metrics show the whole path.
	waitMetrics(t, base, `endcall_analyses_total{outcome="completed"} 1`, done)
	metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`endcall_http_requests_total{method="POST",route="/v1/calls/end",status="200"} 1`,
		`endcall_http_request_duration_seconds_bucket{method="POST",route="/v1/calls/end"`,
		`endcall_calls_ended_total{trigger="api"} 1`,
		`endcall_provider_hangups_total{outcome="skipped"} 1`,
		`asynq_queue_size{queue="default"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The alert rules of the docs read only what is exported.
	checkDocMetrics(t, metrics)
	// A wrong method on an operational path is a 405 with Allow too.
	res, err = http.Post(base+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 405 || res.Header.Get("Allow") != "GET" || res.Header.Get("X-Request-Id") == "" {
		t.Errorf("POST /healthz: %d Allow %q X-Request-Id %q", res.StatusCode, res.Header.Get("Allow"), res.Header.Get("X-Request-Id"))
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM-equivalent: got %v, want a clean exit", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop within 30s")
	}
}

func TestServeRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	if _, err := pool.Exec(context.Background(), `DROP TABLE goose_db_version`); err != nil {
		t.Fatal(err)
	}
	cfg := pool.Config().ConnConfig
	url := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	vars := map[string]string{"DATABASE_URL": url, "REDIS_URL": "redis://127.0.0.1:1/0"}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve"}, env(vars), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "endcall migrate") {
		t.Fatalf("got %v, want a refusal naming `endcall migrate`", err)
	}
}

// endACall registers a phone number and a call through the API and ends it.
func endACall(t *testing.T, base, key string) {
	t.Helper()
	post := func(path, body string) string {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var env struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		json.NewDecoder(res.Body).Decode(&env)
		if res.StatusCode >= 300 {
			t.Fatalf("POST %s: %d", path, res.StatusCode)
		}
		return env.Data.ID
	}
	post("/v1/phone-numbers", `{"number":"+15550001234","provider":"twilio"}`)
	id := post("/v1/calls", `{"call_from":"+15550001234","call_to":"+15550004321","call_direction":"outbound"}`)
	post("/v1/calls/end", `{"call_id":"`+id+`"}`)
}

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	io.Copy(&b, res.Body)
	return b.String()
}

// waitMetrics polls /metrics until it contains want.
func waitMetrics(t *testing.T, base, want string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(get(t, base+"/metrics"), want) {
		select {
		case err := <-done:
			t.Fatalf("process exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %s", want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Command bench measures endcall against the floor of its own I/O and
// prints one table (issue 6; `make bench` runs it).
//
// It builds endcall, runs `endcall all` as a subprocess against the durable
// Postgres and Redis named by DATABASE_URL and REDIS_URL (throwaway servers:
// it migrates, seeds and writes freely), with Twilio, LiveKit and two
// webhook receivers faked in this process on 127.0.0.1, and measures:
//
//	(a) POST /v1/calls/end by 32 keep-alive clients, beside the floor: the
//	    same UPDATE + owed-work INSERT, commit and asynq enqueues run
//	    directly by 32 goroutines;
//	(b) the post-call pipeline (room deleted, analysis stored, both events
//	    at both endpoints) for a burst of ends, beside asynq's no-op task
//	    rate;
//	(c) freshness: end response to call.ended arrival at a steady rate;
//	(d) GET /v1/calls/query and the overdue scan on 1M calls, with their
//	    plans checked;
//	(e) peak RSS of `endcall all` during (a) and (c).
//
// Every run is bounded in count and time; nothing but 127.0.0.1 is contacted.
//
//	DATABASE_URL=... REDIS_URL=... go run ./cmd/bench [-pprof DIR] [-cpuprofile FILE]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// options are the bench's flags.
type options struct {
	ends         int
	endsLimit    time.Duration
	conc         int
	pipeCalls    int
	noopTasks    int
	rate         int
	freshFor     time.Duration
	lowRate      int
	lowFor       time.Duration
	history      int
	querySamples int
	queryTime    time.Duration
	workerConc   int
	only         string
	pprofDir     string
	cpuProfile   string
	out          string
	appLog       string
	plans        string
	telephony    string
}

func main() {
	var o options
	flag.IntVar(&o.ends, "ends", 6000, "(a) ends per side (service, floor)")
	flag.DurationVar(&o.endsLimit, "ends-limit", 20*time.Second, "(a) time limit per side")
	flag.IntVar(&o.conc, "c", 32, "(a) concurrent clients / floor goroutines; (b) clients")
	flag.IntVar(&o.pipeCalls, "pipeline-calls", 2000, "(b) calls ended in the burst")
	flag.IntVar(&o.noopTasks, "noop-tasks", 20000, "(b) no-op tasks of the floor")
	flag.IntVar(&o.rate, "rate", 200, "(c) ends per second")
	flag.DurationVar(&o.freshFor, "fresh-for", 30*time.Second, "(c) duration of the steady load")
	flag.IntVar(&o.lowRate, "low-rate", 50, "(c) first, ends per second of a lighter load for comparison (0: none)")
	flag.DurationVar(&o.lowFor, "low-for", 10*time.Second, "(c) duration of the lighter load")
	flag.IntVar(&o.history, "history", 1_000_000, "(d) calls in the queried workspace")
	flag.IntVar(&o.querySamples, "query-samples", 100, "(d) requests per query")
	flag.DurationVar(&o.queryTime, "query-time", 3*time.Second, "(d) time per query, after which it stops at 20 requests")
	flag.IntVar(&o.workerConc, "worker-concurrency", 20, "WORKER_CONCURRENCY of endcall all, and of the no-op floor")
	flag.StringVar(&o.only, "only", "abcd", "which measurements to run (e rides on a and c)")
	flag.StringVar(&o.pprofDir, "pprof", "", "build endcall with net/http/pprof (benchpprof tag) and save its CPU and allocation profiles of (a), (b) and (c) in this directory")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the bench process's own CPU profile to this file")
	flag.StringVar(&o.out, "out", "", "also write the table to this file")
	flag.StringVar(&o.plans, "plans", "", "(d) write the full EXPLAIN (ANALYZE, BUFFERS) plans to this file")
	flag.StringVar(&o.telephony, "telephony", "twilio", "TELEPHONY_MODE of endcall: twilio (hang up through the fake, as specified) or simulated (no provider request: to see what the Twilio round trip costs)")
	flag.StringVar(&o.appLog, "applog", "", "run endcall with LOG_LEVEL=info and keep its log in this file (diagnosis: it costs CPU)")
	flag.Parse()
	if o.telephony != "twilio" && o.telephony != "simulated" {
		fatal(fmt.Errorf("-telephony %q: want twilio or simulated", o.telephony))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A hard bound on the whole run, whatever happens.
	ctx, cancel := context.WithTimeout(ctx, 12*time.Minute)
	defer cancel()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(ctx, o, os.Stdout); err != nil {
		pprof.StopCPUProfile()
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// logf reports progress on stderr; the table alone goes to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// localURL checks that a server URL names 127.0.0.1 or localhost.
func localURL(name, raw string) error {
	if raw == "" {
		return fmt.Errorf("%s is required (make bench starts throwaway servers and sets it)", name)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return fmt.Errorf("%s: host %q is not local; the bench only talks to 127.0.0.1", name, h)
	}
	return nil
}

// env is one run's shared state.
type env struct {
	o        options
	dbURL    string
	redisURL string
	bin      string
	tmp      string
	calls    *tracker
	twilio   *fakeTwilio
	livekit  *fakeLiveKit
	receiver *receiver
	proc     *process
	api      *apiClient
	ws       string
	key      string
	phoneID  string
	rows     []row
	notes    []string
}

const (
	twilioAccount = "AC0123456789abcdef0123456789abcdef"
	twilioToken   = "0123456789abcdef0123456789abcdef"
	lkKey         = "benchkey"
	lkSecret      = "bench-livekit-secret-0123456789abcdef"
)

func run(ctx context.Context, o options, stdout io.Writer) error {
	e := &env{o: o, dbURL: os.Getenv("DATABASE_URL"), redisURL: os.Getenv("REDIS_URL"), calls: newTracker()}
	if err := localURL("DATABASE_URL", e.dbURL); err != nil {
		return err
	}
	if err := localURL("REDIS_URL", e.redisURL); err != nil {
		return err
	}
	var err error
	if e.tmp, err = os.MkdirTemp("", "endcall-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(e.tmp)
	t0 := time.Now()
	logf("building endcall")
	if e.bin, err = buildEndcall(ctx, e.tmp, o.pprofDir != ""); err != nil {
		return err
	}
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			return err
		}
	}
	if _, err := command(ctx, e.bin, e.baseEnv(), "migrate"); err != nil {
		return err
	}
	created, err := createAPIKey(ctx, e.bin, e.baseEnv(), "bench")
	if err != nil {
		return err
	}
	e.ws, e.key = created.WorkspaceID, created.APIKey

	e.twilio = newFakeTwilio(twilioAccount, twilioToken, e.calls)
	defer e.twilio.srv.Close()
	e.livekit = newFakeLiveKit(lkKey, lkSecret, e.calls)
	defer e.livekit.srv.Close()
	e.receiver = newReceiver(e.calls)
	defer e.receiver.srv.Close()

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	procEnv := append(e.baseEnv(),
		"HTTP_ADDR="+addr, "PUBLIC_BASE_URL=http://"+addr,
		"TELEPHONY_MODE="+o.telephony, "TWILIO_API_BASE_URL="+e.twilio.srv.URL, "TWILIO_ACCOUNT_SID="+twilioAccount, "TWILIO_AUTH_TOKEN="+twilioToken,
		"LIVEKIT_URL="+e.livekit.srv.URL, "LIVEKIT_API_KEY="+lkKey, "LIVEKIT_API_SECRET="+lkSecret,
		"WEBHOOK_ALLOW_PRIVATE_NETWORKS=true", "LOG_LEVEL="+logLevel(o.appLog),
		fmt.Sprintf("WORKER_CONCURRENCY=%d", o.workerConc))
	var pprofAddr string
	if o.pprofDir != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
		procEnv = append(procEnv, "ENDCALL_PPROF_ADDR="+pprofAddr)
	}
	logf("starting endcall all on %s", addr)
	logPath := e.tmp + "/endcall.log"
	if o.appLog != "" {
		logPath = o.appLog
	}
	if e.proc, err = startProcess(ctx, e.bin, procEnv, addr, logPath); err != nil {
		return err
	}
	defer func() {
		if e.proc != nil {
			e.proc.stop()
		}
	}()
	e.api = newAPIClient(e.proc.url, e.key)
	var phone struct {
		ID string `json:"id"`
	}
	if err := e.call(ctx, http.MethodPost, "/v1/phone-numbers", map[string]any{"number": "+15550000000", "provider": "twilio"}, &phone); err != nil {
		// A rerun on the same servers: the number is there already.
		var phones []struct {
			ID     string `json:"id"`
			Number string `json:"number"`
		}
		if lerr := e.call(ctx, http.MethodGet, "/v1/phone-numbers", nil, &phones); lerr != nil || len(phones) == 0 {
			return err
		}
		phone.ID = phones[0].ID
	}
	e.phoneID = phone.ID

	pool, err := openPool(ctx, e.dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	b := &bench{env: e, pool: pool, pprofAddr: pprofAddr}
	if err := b.connectRedis(); err != nil {
		return err
	}
	defer b.closeRedis()
	b.cpu = b.cpuGroups(ctx)

	steps := []struct {
		key string
		fn  func(context.Context) error
	}{{"a", b.endCalls}, {"b", b.pipeline}, {"c", b.freshness}, {"d", b.queries}}
	for _, s := range steps {
		if !strings.Contains(o.only, s.key) {
			continue
		}
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("(%s): %w", s.key, err)
		}
	}
	b.correctness()
	if o.telephony == "simulated" {
		e.notes = append(e.notes, "endcall ran with TELEPHONY_MODE=simulated: it made no hangup requests, so every call counts as never hung up.")
	}
	logf("stopping endcall all")
	if err := e.proc.stop(); err != nil {
		var exit interface{ ExitCode() int }
		if !errors.As(err, &exit) || exit.ExitCode() != 0 {
			e.notes = append(e.notes, fmt.Sprintf("endcall all did not exit cleanly: %v", err))
		}
	}
	if log := strings.TrimSpace(tail(logPath, 5)); log != "" && o.appLog == "" {
		logf("last lines of the endcall log (LOG_LEVEL=warn):\n%s", log)
	}
	e.proc = nil

	var w strings.Builder
	fmt.Fprintf(&w, "%s\n", table(e.rows))
	for _, n := range e.notes {
		fmt.Fprintf(&w, "- %s\n", n)
	}
	fmt.Fprintf(&w, "\n%s; %s; bench wall time %s.\n", machine(), goVersion(), time.Since(t0).Round(time.Second))
	fmt.Fprint(stdout, "\n"+w.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(w.String()), 0o644)
	}
	return nil
}

func logLevel(appLog string) string {
	if appLog != "" {
		return "info"
	}
	return "warn"
}

// baseEnv is the environment of every endcall subprocess: the servers, and
// the few process variables worth passing on.
func (e *env) baseEnv() []string {
	env := []string{"DATABASE_URL=" + e.dbURL, "REDIS_URL=" + e.redisURL}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// call makes one JSON API request with the bench key and decodes data.
func (e *env) call(ctx context.Context, method, path string, body, data any) error {
	return apiCall(ctx, e.api.http, e.proc.url, e.key, method, path, body, data)
}

func apiCall(ctx context.Context, c *http.Client, base, key, method, path string, body, data any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(raw))
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: HTTP %d: %.300s", method, path, res.StatusCode, raw)
	}
	if data == nil {
		return nil
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s %s: %v", method, path, err)
	}
	return json.Unmarshal(env.Data, data)
}

// machine describes the CPU the run had.
func machine() string {
	model := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s)", numCPU(), model)
}

// Command bench measures endcall against floors of its own work and
// prints one table (`make bench` runs it; docs/benchmarks.md explains each
// measure and its target).
//
// It builds endcall, runs `endcall all` as a subprocess against the
// Postgres and Redis named by DATABASE_URL and REDIS_URL (throwaway
// servers: it migrates, seeds and writes freely), with Twilio (the
// repository's wire fakes: twiliotest, livekittest, webhooktest and llmtest)
// in this process on 127.0.0.1, and measures:
//
//	(a) POST /v1/calls/end by 32 keep-alive clients, alternating over 3
//	    rounds with a naive server floor (a bare net/http handler doing the
//	    same transaction, Twilio hangup and enqueues) and the raw I/O floor
//	    (the transaction and enqueues alone, no HTTP);
//	(f) a slow provider: hangups taking 3 s, 25 ends a second, while 4
//	    clients read other routes;
//	(b) the post-call pipeline per fully processed call: rate, Postgres
//	    commits, WAL flushes, Redis commands and CPU of every process,
//	    beside asynq's no-op task rate; one receiver rate-limited;
//	(c) call.ended freshness at half the capacity (b) measured, and in an
//	    overload at 1.5 times it;
//	(g) a bulk end of 5,000 calls of one campaign, Twilio answering in
//	    100 ms;
//	(h) call.ended freshness while a slow LLM (2 s) analyses the calls;
//	(d) GET /v1/calls/query and the overdue scan on 1M calls, with their
//	    plans checked;
//	(e) peak RSS of `endcall all` during (a) and (c).
//
// Every run is bounded in count and time; nothing but 127.0.0.1 is contacted.
//
//	DATABASE_URL=... REDIS_URL=... go run ./cmd/bench [-quick] [-only afbcghd] [-pprof DIR]
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

	"github.com/endcall/endcall/livekit/livekittest"
	"github.com/endcall/endcall/postgres"
)

// options are the bench's flags.
type options struct {
	ends         int
	warm         int
	rounds       int
	roundTime    time.Duration
	conc         int
	slowRate     int
	slowFor      time.Duration
	slowDelay    time.Duration
	readers      int
	pipeCalls    int
	noopTasks    int
	limitRate    int
	capacity     float64
	steadyFor    time.Duration
	overFor      time.Duration
	bulkCalls    int
	bulkDelay    time.Duration
	llmDelay     time.Duration
	llmRate      int
	llmFor       time.Duration
	history      int
	querySamples int
	queryTime    time.Duration
	workerConc   int
	only         string
	quick        bool
	pprofDir     string
	cpuProfile   string
	out          string
	appLog       string
	plans        string
	telephony    string
}

// measures are the measurement keys -only accepts, in the order they run.
const measures = "afbcghd"

func main() {
	var o options
	flag.IntVar(&o.ends, "ends", 12000, "(a) ends per contestant (endcall, naive server, raw floor) over all rounds; a round stops at its share or at -round-time")
	flag.IntVar(&o.warm, "warm", 500, "(a) ends each contestant makes before the rounds, to warm connections, statements and caches")
	flag.IntVar(&o.rounds, "rounds", 3, "(a) rounds; each contestant runs once a round")
	flag.DurationVar(&o.roundTime, "round-time", 4*time.Second, "(a) time each contestant runs in a round")
	flag.IntVar(&o.conc, "c", 32, "(a) concurrent keep-alive clients; (b) clients")
	flag.IntVar(&o.slowRate, "slow-rate", 25, "(f) ends per second")
	flag.DurationVar(&o.slowFor, "slow-for", 10*time.Second, "(f) duration of the ends")
	flag.DurationVar(&o.slowDelay, "slow-delay", 3*time.Second, "(f) time the Twilio fake takes to answer a hangup")
	flag.IntVar(&o.readers, "readers", 4, "(f) clients reading other routes")
	flag.IntVar(&o.pipeCalls, "pipeline-calls", 2000, "(b) calls ended in the burst")
	flag.IntVar(&o.noopTasks, "noop-tasks", 20000, "(b) no-op tasks of the floor")
	flag.IntVar(&o.limitRate, "limit-rate", 10, "(b) rate_limit (requests a second) of the second endpoint; 0: none")
	flag.Float64Var(&o.capacity, "capacity", 150, "(c) calls/s capacity to use when (b) did not run")
	flag.DurationVar(&o.steadyFor, "steady-for", 20*time.Second, "(c) duration of the steady run at half the capacity")
	flag.DurationVar(&o.overFor, "overload-for", 30*time.Second, "(c) duration of the overload at 1.5 times the capacity (0: none)")
	flag.IntVar(&o.bulkCalls, "bulk-calls", 5000, "(g) calls of the campaign ended in bulk")
	flag.DurationVar(&o.bulkDelay, "bulk-delay", 100*time.Millisecond, "(g) time the Twilio fake takes to answer a hangup")
	flag.DurationVar(&o.llmDelay, "llm-delay", 2*time.Second, "(h) time the LLM fake takes to answer")
	flag.IntVar(&o.llmRate, "llm-rate", 50, "(h) ends per second (50/s with a 2 s LLM offers 100 analyses in flight)")
	flag.DurationVar(&o.llmFor, "llm-for", 10*time.Second, "(h) duration of the ends")
	flag.IntVar(&o.history, "history", 1_000_000, "(d) calls in the queried workspace")
	flag.IntVar(&o.querySamples, "query-samples", 100, "(d) requests per query")
	flag.DurationVar(&o.queryTime, "query-time", 3*time.Second, "(d) time per query, after which it stops at 20 requests")
	flag.IntVar(&o.workerConc, "worker-concurrency", 20, "WORKER_CONCURRENCY of endcall all, and of the no-op floor")
	flag.StringVar(&o.only, "only", measures, "which measurements to run, by letter (e rides on a and c)")
	flag.BoolVar(&o.quick, "quick", false, "smaller counts and shorter runs (each measure in about a minute): for checking the harness, not for figures")
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
	for _, r := range o.only {
		if !strings.ContainsRune(measures, r) {
			fatal(fmt.Errorf("-only %q: %q is not one of %s", o.only, r, measures))
		}
	}
	if o.quick {
		quick(&o)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A hard bound on the whole run, whatever happens.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
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

// quick shrinks the counts and durations the command line did not set.
func quick(o *options) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	small := map[string]func(){
		"ends":           func() { o.ends = 4000 },
		"warm":           func() { o.warm = 200 },
		"round-time":     func() { o.roundTime = 2 * time.Second },
		"slow-for":       func() { o.slowFor = 4 * time.Second },
		"pipeline-calls": func() { o.pipeCalls = 500 },
		"noop-tasks":     func() { o.noopTasks = 5000 },
		"steady-for":     func() { o.steadyFor = 5 * time.Second },
		"overload-for":   func() { o.overFor = 10 * time.Second },
		"bulk-calls":     func() { o.bulkCalls = 1000 },
		"llm-for":        func() { o.llmFor = 4 * time.Second },
		"history":        func() { o.history = 100_000 },
		"query-samples":  func() { o.querySamples = 20 },
		"query-time":     func() { o.queryTime = time.Second },
	}
	for name, f := range small {
		if !set[name] {
			f()
		}
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
	fakes    *benchTB
	twilio   *fakeTwilio
	livekit  *livekittest.Server
	receiver *receiver
	proc     *process
	procEnv  []string
	addr     string
	logPath  string
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

	e.fakes = &benchTB{}
	defer e.fakes.close()
	e.twilio = newFakeTwilio(e.fakes, twilioAccount, twilioToken, e.calls)
	e.livekit = newFakeLiveKit(e.fakes, lkKey, lkSecret, e.calls)
	e.receiver = newReceiver(e.calls)
	defer e.receiver.close()

	addr, err := freeAddr()
	if err != nil {
		return err
	}
	procEnv := append(e.baseEnv(),
		"HTTP_ADDR="+addr, "PUBLIC_BASE_URL=http://"+addr,
		"TELEPHONY_MODE="+o.telephony, "TWILIO_API_BASE_URL="+e.twilio.URL(), "TWILIO_ACCOUNT_SID="+twilioAccount, "TWILIO_AUTH_TOKEN="+twilioToken,
		"LIVEKIT_URL="+e.livekit.URL, "LIVEKIT_API_KEY="+lkKey, "LIVEKIT_API_SECRET="+lkSecret,
		"WEBHOOK_ALLOW_PRIVATE_NETWORKS=true", "LOG_LEVEL="+logLevel(o.appLog),
		// One workspace makes every request of the bench.
		"RATE_LIMIT_PER_SECOND=0",
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
	e.procEnv, e.addr, e.logPath = procEnv, addr, logPath
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
	if err := e.call(ctx, http.MethodPost, "/v1/phone-numbers", map[string]any{"number": benchNumber, "provider": "twilio"}, &phone); err != nil {
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
	b := &bench{env: e, pool: pool, store: postgres.NewStore(pool, nil), pprofAddr: pprofAddr}
	if err := b.connectRedis(); err != nil {
		return err
	}
	defer b.closeRedis()
	b.cpu = b.cpuGroups(ctx)
	if err := b.unsubscribe(ctx); err != nil {
		return err
	}

	steps := []struct {
		key string
		fn  func(context.Context) error
	}{{"a", b.endCalls}, {"f", b.slowProvider}, {"b", b.pipeline}, {"c", b.freshness},
		{"g", b.bulkEnd}, {"h", b.analysisFreshness}, {"d", b.queries}}
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

package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis"
	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/calls"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/livekit"
	"github.com/endcall/endcall/livekit/livekittest"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/semaphore"
	"github.com/endcall/endcall/twilio"
	"github.com/endcall/endcall/twilio/twiliotest"
	"github.com/endcall/endcall/webhook"
	"github.com/endcall/endcall/webhook/webhooktest"
	"github.com/endcall/endcall/worker"
)

// pipelineOptions change what setupPipeline builds.
type pipelineOptions struct {
	schedule       []time.Duration
	webhookTimeout time.Duration
	redisURL       string
	databaseURL    string
	noWorker       bool
	analyzer       analysis.Analyzer // nil: the built-in one
	// analysesInFlight bounds the analyses the worker runs at once (0: none).
	analysesInFlight int
	disableAfter     time.Duration
	// shutdownTimeout is the worker's; 5 s when zero.
	shutdownTimeout time.Duration
}

// pipeline is the whole service in one test: API, end path, worker and
// reconciler on real Postgres and Redis, with LiveKit and Twilio faked on the
// wire.
type pipeline struct {
	t        *testing.T
	store    *postgres.Store
	pool     *pgxpool.Pool
	api      string
	key      string
	ws       string
	twilio   *twiliotest.Server
	account  string
	calls    *calls.Service
	rooms    *livekittest.Server
	redis    asynq.RedisConnOpt
	enq      *jobs.Enqueuer
	inspect  *asynq.Inspector
	opts     pipelineOptions
	log      *slog.Logger
	stopWork context.CancelFunc
	workDone chan error
}

func setupPipeline(t *testing.T, opts ...func(*pipelineOptions)) *pipeline {
	t.Helper()
	o := pipelineOptions{schedule: []time.Duration{time.Second, time.Second}, webhookTimeout: 5 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if o.databaseURL == "" {
		o.databaseURL = testenv.DatabaseURL(t)
	}
	pool, err := pgxpool.New(context.Background(), o.databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p := &pipeline{t: t, store: postgres.NewStore(pool, nil), pool: pool, twilio: twiliotest.New(t), rooms: livekittest.New(t, "lk-key", "lk-secret-0123456789"), opts: o,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	// The calls' rooms are never created in LiveKit: each exists until deleted.
	p.rooms.AllowUnknownRooms()
	if o.redisURL == "" {
		o.redisURL = testenv.Redis(t)
	}
	if p.redis, err = asynq.ParseRedisURI(o.redisURL); err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(p.redis)
	t.Cleanup(func() { client.Close() })
	inspector := asynq.NewInspector(p.redis)
	t.Cleanup(func() { inspector.Close() })
	p.enq = &jobs.Enqueuer{Client: client, Inspector: inspector, DeliverMaxRetry: len(o.schedule)}
	p.inspect = inspector
	var token string
	p.account, token = p.twilio.NewAccount()
	tel := twilio.New(twilio.Config{BaseURL: p.twilio.URL(), AccountSID: p.account, AuthToken: token, Timeout: time.Second})
	p.calls = &calls.Service{Store: p.store, Telephony: tel, Queue: p.enq, Log: p.log, ProviderTimeout: time.Second, EnqueueTimeout: 300 * time.Millisecond}
	srv := httptest.NewServer(api.NewServer(api.Deps{Store: p.store, Webhooks: p.store, Redeliver: p.enq, Plans: p.store, AllowPrivateWebhooks: true,
		Calls: p.calls, Log: p.log}))
	t.Cleanup(srv.Close)
	p.api = srv.URL
	if p.ws, p.key, err = p.store.CreateAPIKey(context.Background(), "pipeline"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.store.CreatePhoneNumber(context.Background(), p.ws, "+15553330000", "twilio", nil); err != nil {
		t.Fatal(err)
	}
	if !o.noWorker {
		p.startWorker()
	}
	return p
}

// startWorker runs the worker with every handler, as `endcall worker` does.
func (p *pipeline) startWorker() {
	p.t.Helper()
	w := p.newWorker()
	ctx, cancel := context.WithCancel(context.Background())
	p.stopWork, p.workDone = cancel, make(chan error, 1)
	go func() { p.workDone <- w.Run(ctx) }()
	p.t.Cleanup(p.stopWorker)
}

// newWorker builds a worker with the handler of every task type, as
// `endcall worker` does.
func (p *pipeline) newWorker() *worker.Worker { return p.workerOn(p.redis) }

// workerOn is newWorker reaching Redis through opt.
func (p *pipeline) workerOn(opt asynq.RedisConnOpt) *worker.Worker {
	shutdown := p.opts.shutdownTimeout
	if shutdown == 0 {
		shutdown = 5 * time.Second
	}
	w := worker.New(worker.Config{Redis: opt, Concurrency: 10, ShutdownTimeout: shutdown, Log: p.log})
	w.HandleAll(p.deps())
	return w
}

// deps are the handlers' dependencies as `endcall worker` builds them, with
// a Redis client of their own (rate limits, hangup slots), as each process
// has.
func (p *pipeline) deps() *jobs.Deps {
	var an analysis.Analyzer = analysis.Builtin{}
	if p.opts.analyzer != nil {
		an = p.opts.analyzer
	}
	rdb := p.redis.MakeRedisClient().(redis.UniversalClient)
	p.t.Cleanup(func() { rdb.Close() })
	bulk := *p.calls
	bulk.Telephony = &jobs.SlottedTelephony{Telephony: p.calls.Telephony, PlatformAccount: p.account,
		Slots: &semaphore.Semaphore{Redis: rdb, Prefix: "endcall:hangup-slots:", Limit: 20, Lease: 10 * time.Second,
			RedisTimeout: 500 * time.Millisecond, Backoff: time.Second, Log: p.log}}
	return &jobs.Deps{Store: p.store, Telephony: p.calls.Telephony, Queue: p.enq, Log: p.log,
		Rooms:    livekit.New(p.rooms.URL, "lk-key", "lk-secret-0123456789", 2*time.Second),
		Analyzer: an, AnalysesInFlight: p.opts.analysesInFlight, Calls: p.calls, BulkCalls: &bulk, ProviderTimeout: time.Second, MaxCallDuration: time.Hour,
		WebhookSchedule: p.opts.schedule, WebhookClient: webhook.NewHTTPClient(p.opts.webhookTimeout, true),
		WebhookDisableAfter: p.opts.disableAfter, WebhookRetention: 24 * time.Hour, Pacer: &jobs.Pacer{Redis: rdb}, Wake: p.enq}
}

func (p *pipeline) stopWorker() {
	if p.stopWork != nil {
		p.stopWork()
		<-p.workDone
		p.stopWork = nil
	}
}

// do calls the API with the pipeline's key and decodes the envelope's data.
func (p *pipeline) do(method, path string, body any, data any) int {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, p.api+path, rd)
	req.Header.Set("Authorization", "Bearer "+p.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	raw, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(raw, &env); err != nil {
		p.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	if data != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(env.Data, data); err != nil {
			p.t.Fatal(err)
		}
	}
	return res.StatusCode
}

// subscribe registers rc as an endpoint, gives rc its secret, and returns
// the endpoint's ID and secret.
func (p *pipeline) subscribe(rc *webhooktest.Server, events ...string) (id, secret string) {
	p.t.Helper()
	return p.subscribeAt(rc, rc.URL, events...)
}

// subscribeAt is subscribe with the endpoint at url, a URL of rc.
func (p *pipeline) subscribeAt(rc *webhooktest.Server, url string, events ...string) (id, secret string) {
	p.t.Helper()
	body := map[string]any{"url": url}
	if len(events) > 0 {
		body["events"] = events
	}
	var e struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if code := p.do("POST", "/v1/webhooks", body, &e); code != 201 {
		p.t.Fatalf("subscribe: %d", code)
	}
	if err := rc.SetSecret(e.Secret); err != nil {
		p.t.Fatal(err)
	}
	return e.ID, e.Secret
}

// endCall registers an active call with a room and a transcript and ends it
// through the API.
func (p *pipeline) endCall(transcript []map[string]any) endcall.Call {
	p.t.Helper()
	var c endcall.Call
	body := map[string]any{"call_from": "+15553330000", "call_to": "+15554440000", "call_direction": "outbound",
		"room_name": "room-" + time.Now().Format("150405.000000000"), "transcript_object": transcript}
	if code := p.do("POST", "/v1/calls", body, &c); code != 201 {
		p.t.Fatalf("create call: %d", code)
	}
	if code := p.do("POST", "/v1/calls/end", map[string]any{"call_id": c.ID}, &c); code != 200 {
		p.t.Fatalf("end call: %d", code)
	}
	return c
}

// waitFor polls cond until it holds, or fails the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// deliveries lists an endpoint's deliveries through the API.
func (p *pipeline) deliveries(endpointID string) []endcall.Delivery {
	p.t.Helper()
	var list []endcall.Delivery
	if code := p.do("GET", "/v1/webhooks/"+endpointID+"/deliveries", nil, &list); code != 200 {
		p.t.Fatalf("deliveries: %d", code)
	}
	return list
}

var happyTranscript = []map[string]any{
	{"role": "agent", "content": "Hello! How can I help you today?", "start_ms": 0, "end_ms": 2000},
	{"role": "user", "content": "This is wonderful, thank you so much, you solved my problem!", "start_ms": 2500, "end_ms": 6000},
	{"role": "agent", "content": "Glad to help. Have a great day!", "start_ms": 6400, "end_ms": 8000},
}

// reconciler returns a reconciler over the pipeline's store and queue with
// no grace, so that it acts at once.
func (p *pipeline) reconciler() *worker.Reconciler {
	return &worker.Reconciler{Store: p.store, Queue: p.enq, Inspector: p.inspect, Interval: 200 * time.Millisecond, Limit: 1000, Log: p.log}
}

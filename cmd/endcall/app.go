package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis"
	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/calls"
	"github.com/endcall/endcall/config"
	"github.com/endcall/endcall/dashboard"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/livekit"
	"github.com/endcall/endcall/metrics"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/semaphore"
	"github.com/endcall/endcall/twilio"
	"github.com/endcall/endcall/webhook"
	"github.com/endcall/endcall/worker"
)

// shutdownTimeout bounds draining HTTP requests and in-flight tasks.
const shutdownTimeout = 25 * time.Second

// runProcess runs serve, worker or all until ctx is cancelled.
func runProcess(ctx context.Context, mode string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if err := cfg.CheckTaskTimeouts(config.TaskTimeouts{Hangup: jobs.HangupTaskTimeout,
		Deliver: jobs.DeliverTaskTimeout, Margin: jobs.TaskMargin}); err != nil {
		return err
	}
	log := cfg.Logger(stderr)
	useLogger(log)
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := postgres.CheckMigrated(ctx, pool); err != nil {
		return err
	}
	var cipher *postgres.Cipher
	if cfg.EncryptionKey != nil {
		if cipher, err = postgres.NewCipher(cfg.EncryptionKey); err != nil {
			return err
		}
	}
	store := postgres.NewStore(pool, cipher)
	store.SetEndpointLimit(cfg.WebhookEndpointsPerWorkspace)
	redisOpt := redisConnOpt(cfg)
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	tel := telephony(cfg, log)
	inspector := asynq.NewInspector(redisOpt)
	defer inspector.Close()
	enq := &jobs.Enqueuer{Client: client, Inspector: inspector, DeliverMaxRetry: len(cfg.WebhookRetrySchedule)}
	m := metrics.New(inspector, jobs.QueueCritical, jobs.QueueDefault, jobs.QueueWebhooks)
	log.Info("starting", "mode", mode, "config", cfg)

	// The one end path, of the API and of the overdue scan.
	svc := &calls.Service{
		Store: store, Telephony: tel, Log: log,
		Queue: enq, Simulated: cfg.TelephonyMode == config.TelephonySimulated,
		ProviderTimeout: cfg.ProviderTimeout, EnqueueTimeout: 2 * time.Second,
		OnEnded: m.CallEnded,
	}
	// One Redis client for what is not asynq's own: the readiness probe, the
	// rate limits and the hangup slots.
	rdb := redisOpt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	g, ctx := errgroup.WithContext(ctx)
	if mode == "serve" || mode == "all" {
		dash := dashboard.New(dashboard.Config{Redis: redisOpt, Username: cfg.DashboardUsername,
			Password: cfg.DashboardPassword, ReadOnly: cfg.DashboardReadOnly, PublicBaseURL: cfg.PublicBaseURL})
		// Deferred, so closed only once the HTTP server has drained.
		defer dash.Close()
		jwtCfg, err := jwtConfig(ctx, cfg, log)
		if err != nil {
			return err
		}
		handler := newHTTPHandler(cfg, log, store, svc, enq, rdb, dash, m, jwtCfg, twilioConfig(cfg, tel))
		g.Go(func() error { return serveHTTP(ctx, cfg.HTTPAddr, handler, log) })
	}
	if mode == "worker" || mode == "all" {
		deps, err := workerDeps(cfg, log, store, tel, svc, enq, rdb, m)
		if err != nil {
			return err
		}
		w := worker.New(worker.Config{Redis: redisOpt, Concurrency: cfg.WorkerConcurrency, ShutdownTimeout: shutdownTimeout, Log: log})
		w.HandleAll(deps)
		reconciler := &worker.Reconciler{Store: store, Queue: enq, Inspector: inspector, Interval: cfg.RecoverySweepInterval,
			Grace: sweepGrace(cfg.RecoverySweepInterval), HangupGrace: hangupGrace(cfg.ProviderTimeout), Limit: 1000, Log: log, OnRequeued: m.Requeued}
		if mode == "worker" && cfg.MetricsAddr != "" {
			g.Go(func() error { return serveHTTP(ctx, cfg.MetricsAddr, metricsHandler(m), log) })
		}
		g.Go(func() error { return w.Run(ctx) })
		g.Go(func() error { return reconciler.Run(ctx) })
		for _, s := range worker.Schedulers(client, deps) {
			g.Go(func() error { return s.Run(ctx) })
		}
	}
	err = g.Wait()
	log.Info("stopped", "mode", mode)
	return err
}

// workerDeps builds what the handlers of the task types are made of.
func workerDeps(cfg config.Config, log *slog.Logger, store *postgres.Store, tel endcall.Telephony, svc *calls.Service, enq *jobs.Enqueuer, rdb redis.UniversalClient, m *metrics.Metrics) (*jobs.Deps, error) {
	analyzer, err := analysis.New(analysis.Config{LLMBaseURL: cfg.AnalysisLLMBaseURL, LLMAPIKey: cfg.AnalysisLLMAPIKey,
		LLMModel: cfg.AnalysisLLMModel, OnFallback: func(c *endcall.Call, err error) {
			log.Warn("LLM analysis failed; using the built-in analyzer", "call_id", c.ID, "error", err)
		}, Defer: jobs.RetriesLeft})
	if err != nil {
		return nil, fmt.Errorf("analysis: %w", err)
	}
	var rooms jobs.RoomDeleter
	if cfg.LiveKitURL != "" {
		rooms = livekit.New(cfg.LiveKitURL, cfg.LiveKitAPIKey, cfg.LiveKitAPISecret, 10*time.Second)
	}
	return &jobs.Deps{
		Store: store, Telephony: tel, Rooms: rooms, Queue: enq, Log: log,
		Analyzer: analyzer, AnalysesInFlight: analysesInFlight(cfg),
		Calls: svc, BulkCalls: bulkCalls(cfg, svc, rdb, log),
		ProviderTimeout: cfg.ProviderTimeout, MaxCallDuration: cfg.MaxCallDuration, OverdueScanInterval: cfg.OverdueScanInterval,
		WebhookSchedule: cfg.WebhookRetrySchedule, WebhookClient: webhook.NewHTTPClient(cfg.WebhookTimeout, cfg.WebhookAllowPrivateNetworks),
		WebhookDisableAfter: cfg.WebhookDisableAfter, WebhookRetention: cfg.WebhookDeliveryRetention, Pacer: &jobs.Pacer{Redis: rdb}, Wake: enq,
		OnHangup: m.Hangup, OnAnalysis: m.Analysis, OnAttempt: m.WebhookAttempt,
	}, nil
}

// hangupsPerAccount is the most hangups in flight per Twilio account that
// bulk ends make, across every worker: Twilio limits concurrent requests
// per account, and a bulk end must leave room for every other end.
const hangupsPerAccount = 20

// bulkCalls returns the end path of bulk ends: svc with its hangups bounded
// to hangupsPerAccount in flight per Twilio account across every worker.
func bulkCalls(cfg config.Config, svc *calls.Service, rdb redis.UniversalClient, log *slog.Logger) endcall.CallService {
	bulk := *svc
	// A lease outlives any hangup that holds it (bounded by
	// PROVIDER_TIMEOUT), so only a dead worker's slots expire.
	bulk.Telephony = &jobs.SlottedTelephony{Telephony: svc.Telephony, PlatformAccount: cfg.TwilioAccountSID,
		Slots: &semaphore.Semaphore{Redis: rdb, Prefix: "endcall:hangup-slots:", Limit: hangupsPerAccount,
			Lease: cfg.ProviderTimeout + 10*time.Second, RedisTimeout: 500 * time.Millisecond, Backoff: 5 * time.Second, Log: log}}
	return &bulk
}

// sweepGrace is how old owed work must be before the reconciler queues it:
// long enough for the fast path to have queued it, at most 30 s.
func sweepGrace(interval time.Duration) time.Duration {
	return min(30*time.Second, interval/2)
}

// analysesInFlight bounds the analyses a worker runs at once: with the LLM,
// which may take seconds each, half its slots, so that the webhooks and rooms
// behind them always have the other half; the built-in analyzer takes
// milliseconds and needs no bound.
func analysesInFlight(cfg config.Config) int {
	if cfg.AnalysisLLMBaseURL == "" {
		return 0
	}
	return max(1, cfg.WorkerConcurrency/2)
}

// hangupGrace is how old a pending hangup must be before the reconciler
// queues it: older than any end path still waiting on the provider, so that only a
// hangup whose end path died is made again.
func hangupGrace(providerTimeout time.Duration) time.Duration {
	return providerTimeout + 10*time.Second
}

func redisConnOpt(cfg config.Config) asynq.RedisConnOpt {
	if len(cfg.RedisClusterAddrs) > 0 {
		return asynq.RedisClusterClientOpt{Addrs: cfg.RedisClusterAddrs}
	}
	opt, err := asynq.ParseRedisURI(cfg.RedisURL)
	if err != nil {
		// config.Load has validated the URL; this cannot happen.
		panic(err)
	}
	return opt
}

func telephony(cfg config.Config, log *slog.Logger) endcall.Telephony {
	if cfg.TelephonyMode == config.TelephonySimulated {
		return twilio.Simulated{Log: log}
	}
	return twilio.New(twilio.Config{BaseURL: cfg.TwilioAPIBaseURL, AccountSID: cfg.TwilioAccountSID,
		AuthToken: cfg.TwilioAuthToken, Timeout: cfg.ProviderTimeout})
}

// newHTTPHandler mounts the API beside the operational endpoints.
func newHTTPHandler(cfg config.Config, log *slog.Logger, store *postgres.Store, svc endcall.CallService, enq *jobs.Enqueuer, rdb redis.UniversalClient, dash *dashboard.Handler, m *metrics.Metrics, jwtCfg api.JWTConfig, tw api.TwilioConfig) http.Handler {
	srv := api.NewServer(api.Deps{
		Observe: m.ObserveRequest,
		Store:   store, Webhooks: store, Redeliver: enq, Plans: store, AllowPrivateWebhooks: cfg.WebhookAllowPrivateNetworks,
		Calls: svc, Log: log, LegacyEmptyErrors: cfg.LegacyEmptyErrorResponses,
		JWT: jwtCfg, Twilio: tw,
		RateLimit: api.RateLimit{Redis: rdb, PerSecond: cfg.RateLimitPerSecond, Burst: cfg.RateLimitBurst},
	})
	r := srv.Router()
	r.HandleFunc("/healthz", healthz).Methods(http.MethodGet)
	r.Handle("/metrics", m.Handler()).Methods(http.MethodGet)
	r.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks := map[string]string{"postgres": "ok", "redis": "ok"}
		status := http.StatusOK
		if err := store.Pool().Ping(ctx); err != nil {
			checks["postgres"], status = "unreachable", http.StatusServiceUnavailable
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			checks["redis"], status = "unreachable", http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"postgres":%q,"redis":%q}`, checks["postgres"], checks["redis"])
	}).Methods(http.MethodGet)
	// Off (no credentials), the dashboard answers 404 itself.
	r.PathPrefix(dashboard.Path).Handler(dash)
	return srv
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"status":"ok"}`)
}

// metricsHandler serves /metrics and /healthz for a worker without an API
// (METRICS_ADDR).
func metricsHandler(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /metrics", m.Handler())
	return mux
}

func secretBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// serveHTTP listens on addr until ctx is done, then drains in-flight
// requests for up to shutdownTimeout.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	log.Info("http listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

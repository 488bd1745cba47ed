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
	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/calls"
	"github.com/endcall/endcall/config"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/twilio"
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
	log := cfg.Logger(stderr)
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
	redisOpt := redisConnOpt(cfg)
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	tel := telephony(cfg, log)
	log.Info("starting", "mode", mode, "config", cfg)

	g, ctx := errgroup.WithContext(ctx)
	if mode == "serve" || mode == "all" {
		svc := &calls.Service{
			Store: store, Telephony: tel, Log: log,
			Queue:           &jobs.Enqueuer{Client: client, DeliverMaxRetry: len(cfg.WebhookRetrySchedule)},
			ProviderTimeout: cfg.ProviderTimeout, EnqueueTimeout: 2 * time.Second,
		}
		rdb := redisOpt.MakeRedisClient().(redis.UniversalClient)
		defer rdb.Close()
		handler := newHTTPHandler(cfg, log, store, svc, rdb)
		g.Go(func() error { return serveHTTP(ctx, cfg.HTTPAddr, handler, log) })
	}
	if mode == "worker" || mode == "all" {
		w := worker.New(worker.Config{Redis: redisOpt, Concurrency: cfg.WorkerConcurrency, ShutdownTimeout: shutdownTimeout, Log: log})
		w.Handle(jobs.TypeHangup, &jobs.HangupHandler{Store: store, Telephony: tel, Timeout: cfg.ProviderTimeout, Log: log})
		g.Go(func() error { return w.Run(ctx) })
	}
	err = g.Wait()
	log.Info("stopped", "mode", mode)
	return err
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
func newHTTPHandler(cfg config.Config, log *slog.Logger, store *postgres.Store, svc endcall.CallService, rdb redis.UniversalClient) http.Handler {
	srv := api.NewServer(api.Deps{
		Store: store, Calls: svc, Log: log, LegacyEmptyErrors: cfg.LegacyEmptyErrorResponses,
		JWT: api.JWTConfig{Secret: secretBytes(cfg.JWTSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience},
	})
	r := srv.Router()
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	}).Methods(http.MethodGet)
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
	return srv
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

package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/endcall/endcall"
)

// Store is the persistence the API reads and writes besides ending calls.
type Store interface {
	WorkspaceForAPIKey(ctx context.Context, key string) (string, error)
	CreatePhoneNumber(ctx context.Context, workspaceID, number, provider string, creds *endcall.ProviderCredentials) (*endcall.PhoneNumber, error)
	ListPhoneNumbers(ctx context.Context, workspaceID string) ([]*endcall.PhoneNumber, error)
	DeletePhoneNumber(ctx context.Context, workspaceID, id string) error
	FindPhoneNumber(ctx context.Context, workspaceID, id, number string) (*endcall.PhoneNumber, error)
	CreateCall(ctx context.Context, c *endcall.Call) (*endcall.Call, error)
	GetCall(ctx context.Context, workspaceID, callID string) (*endcall.Call, error)
	PatchCall(ctx context.Context, workspaceID, callID string, p endcall.CallPatch) (*endcall.Call, error)
	// StreamCalls calls each with every call of the page as it is read,
	// then returns how many calls match in all.
	StreamCalls(ctx context.Context, q endcall.CallQuery, each func(*endcall.Call) error) (int, error)
	DialingNumber(ctx context.Context, workspaceID, id, number string) (*endcall.PhoneNumber, *endcall.ProviderCredentials, error)
	TwilioAuthTokens(ctx context.Context, accountSID string) ([]string, error)
	CallByProviderSID(ctx context.Context, provider, sid string) (*endcall.Call, *endcall.ProviderCredentials, error)
	AdvanceCallStatus(ctx context.Context, workspaceID, callID string, status endcall.CallStatus, at time.Time) (bool, error)
	endcall.BulkEndStore
}

// Deps are what the server is built from.
type Deps struct {
	Store    Store
	Webhooks WebhookStore
	// Redeliver queues re-analyses, test events, redeliveries and replays.
	Redeliver DeliveryQueue
	// Plans stores analysis plans and owes re-analyses.
	Plans PlanStore
	// AllowPrivateWebhooks is WEBHOOK_ALLOW_PRIVATE_NETWORKS.
	AllowPrivateWebhooks bool
	Calls                endcall.CallService
	Log                  *slog.Logger
	JWT                  JWTConfig
	// Twilio configures make-call and the Twilio status callback.
	Twilio TwilioConfig
	// LegacyEmptyErrors makes every error of POST /v1/calls/end answer 200
	// with an empty body (LEGACY_EMPTY_ERROR_RESPONSES).
	LegacyEmptyErrors bool
	Now               func() time.Time
	// Observe, when set, records each request (metrics).
	Observe func(route, method string, status int, d time.Duration)
	// RateLimit limits each workspace's authenticated requests.
	RateLimit RateLimit
}

// Server is the HTTP API.
type Server struct {
	store        Store
	webhooks     WebhookStore
	plans        PlanStore
	queue        DeliveryQueue
	allowPrivate bool
	calls        endcall.CallService
	log          *slog.Logger
	jwt          JWTConfig
	twilio       TwilioConfig
	keys         *keyCache
	limiter      *rateLimiter
	legacy       bool
	now          func() time.Time
	observe      func(route, method string, status int, d time.Duration)
	router       *mux.Router
}

// NewServer returns the API with every route mounted (see routes.go).
func NewServer(d Deps) *Server {
	s := &Server{store: d.Store, webhooks: d.Webhooks, plans: d.Plans, queue: d.Redeliver, allowPrivate: d.AllowPrivateWebhooks, calls: d.Calls, log: d.Log, jwt: d.JWT, twilio: d.Twilio, legacy: d.LegacyEmptyErrors, now: d.Now}
	if s.now == nil {
		s.now = time.Now
	}
	s.observe = d.Observe
	s.limiter = newRateLimiter(d.RateLimit, s.log)
	s.keys = &keyCache{resolve: func(ctx context.Context, key string) (string, error) {
		return s.store.WorkspaceForAPIKey(ctx, key)
	}, now: s.now, entries: map[string]cachedKey{}}
	s.router = mux.NewRouter()
	s.routes()
	return s
}

// Router exposes the router so that other packages (dashboard, metrics)
// can mount beside the API.
func (s *Server) Router() *mux.Router { return s.router }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// statusRecorder captures the status code for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// logRequests gives every request its X-Request-Id and writes one
// structured line per request with that id, its route, status, latency and
// the call it concerned.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// A request that matches no route is labelled unmatched, so that
		// arbitrary paths cannot grow the metrics without bound.
		info := &requestInfo{requestID: requestID(r.Header.Get("X-Request-Id")), route: unmatchedRoute}
		w.Header().Set("X-Request-Id", info.requestID)
		if route := mux.CurrentRoute(r); route != nil {
			if tpl, err := route.GetPathTemplate(); err == nil {
				info.route = tpl
			}
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
		attrs := append(logAttrs(info),
			slog.String("method", r.Method),
			slog.Int("status", rec.status),
			slog.Duration("latency", time.Since(start)))
		if info.route == unmatchedRoute {
			attrs = append(attrs, slog.String("path", r.URL.Path))
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request", attrs...)
		if s.observe != nil {
			s.observe(info.route, metricMethod(r.Method), rec.status, time.Since(start))
		}
	})
}

// maxRequestIDLen bounds a caller's X-Request-Id.
const maxRequestIDLen = 128

// requestID returns the caller's id when it is 1 to 128 visible ASCII
// characters, else a new random one.
func requestID(given string) string {
	if len(given) >= 1 && len(given) <= maxRequestIDLen && !strings.ContainsFunc(given, func(c rune) bool { return c < '!' || c > '~' }) {
		return given
	}
	return uuid.NewString()
}

// unmatchedRoute is the route label of requests that match no route.
const unmatchedRoute = "unmatched"

// metricMethod returns the method label of a request: the standard methods
// as they are, any other OTHER, so that clients cannot mint label values.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// legacyEmpty marks a route whose errors follow LEGACY_EMPTY_ERROR_RESPONSES.
func (s *Server) legacyEmpty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := requestInfoFrom(r.Context()); info != nil && s.legacy {
			info.legacyEmpty = true
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.fail(w, r, endcall.Errorf(endcall.ENOTFOUND, "No route %s %s.", r.Method, r.URL.Path))
}

// methodNotAllowed answers a known path asked with a method it does not
// serve; Allow lists the methods the router would accept for it.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if s.router.Match(probe, &match) && match.MatchErr == nil {
			allowed = append(allowed, m)
		}
	}
	s.notAllowed(w, r, allowed)
}

func (s *Server) notAllowed(w http.ResponseWriter, r *http.Request, allowed []string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, r, http.StatusMethodNotAllowed, "method_not_allowed",
		fmt.Sprintf("Method %s is not allowed on %s; use %s.", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
}

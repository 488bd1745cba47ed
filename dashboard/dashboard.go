package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
)

// Path is where the dashboard is mounted; every page and API call of
// Asynqmon lives under it.
const Path = "/monitoring/"

// Config is what the dashboard is built from.
type Config struct {
	// Redis is the same connection the queues use: a single server or a
	// cluster.
	Redis asynq.RedisConnOpt
	// Username and Password are DASHBOARD_USERNAME and DASHBOARD_PASSWORD.
	// When either is empty the dashboard is off and answers 404.
	Username string
	Password string
	// ReadOnly is DASHBOARD_READ_ONLY: Asynqmon refuses every change.
	ReadOnly bool
}

// Handler is Asynqmon behind HTTP Basic auth. Close it on shutdown to
// release its Redis connections.
type Handler struct {
	mon      *asynqmon.HTTPHandler // nil when the dashboard is off
	user     [sha256.Size]byte
	password [sha256.Size]byte
}

// New builds the dashboard. It connects to Redis only when enabled.
func New(cfg Config) *Handler {
	h := &Handler{}
	if cfg.Username == "" || cfg.Password == "" {
		return h
	}
	h.user, h.password = sha256.Sum256([]byte(cfg.Username)), sha256.Sum256([]byte(cfg.Password))
	h.mon = asynqmon.New(asynqmon.Options{
		RootPath:     Path[:len(Path)-1],
		RedisConnOpt: cfg.Redis,
		ReadOnly:     cfg.ReadOnly,
	})
	return h
}

// Enabled reports whether credentials were configured.
func (h *Handler) Enabled() bool { return h.mon != nil }

// ServeHTTP answers 404 when the dashboard is off, 401 without the right
// credentials, and otherwise hands the request to Asynqmon.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.mon == nil {
		http.NotFound(w, r)
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="endcall monitoring", charset="UTF-8"`)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	// Operators' data is live: never let a proxy or the browser cache it.
	w.Header().Set("Cache-Control", "no-store")
	h.mon.ServeHTTP(w, r)
}

// authorized compares fixed-size digests in constant time, so that neither
// the content nor the length of the credentials leaks through timing.
func (h *Handler) authorized(r *http.Request) bool {
	user, password, ok := r.BasicAuth()
	if !ok {
		return false
	}
	gotUser, gotPassword := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	userOK := subtle.ConstantTimeCompare(gotUser[:], h.user[:])
	passwordOK := subtle.ConstantTimeCompare(gotPassword[:], h.password[:])
	return userOK&passwordOK == 1
}

// Close releases Asynqmon's Redis connections.
func (h *Handler) Close() error {
	if h.mon == nil {
		return nil
	}
	return h.mon.Close()
}

package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

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
	// PublicBaseURL is PUBLIC_BASE_URL: an origin whose pages may change
	// things, and the scheme of requests for its host that arrive through
	// a proxy ending TLS. Optional.
	PublicBaseURL string
	// Now is the clock of the failed-login limiter; nil means time.Now.
	Now func() time.Time
}

// Handler is Asynqmon behind HTTP Basic auth. Close it on shutdown to
// release its Redis connections.
type Handler struct {
	mon      *asynqmon.HTTPHandler // nil when the dashboard is off
	user     [sha256.Size]byte
	password [sha256.Size]byte
	public   *url.URL
	logins   *loginLimiter
}

// New builds the dashboard. It connects to Redis only when enabled.
func New(cfg Config) *Handler {
	h := &Handler{}
	if cfg.Username == "" || cfg.Password == "" {
		return h
	}
	h.user, h.password = sha256.Sum256([]byte(cfg.Username)), sha256.Sum256([]byte(cfg.Password))
	if u, err := url.Parse(cfg.PublicBaseURL); err == nil && u.Host != "" {
		h.public = u
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	h.logins = newLoginLimiter(now)
	h.mon = asynqmon.New(asynqmon.Options{
		RootPath:     Path[:len(Path)-1],
		RedisConnOpt: cfg.Redis,
		ReadOnly:     cfg.ReadOnly,
	})
	return h
}

// Enabled reports whether credentials were configured.
func (h *Handler) Enabled() bool { return h.mon != nil }

// ServeHTTP answers 404 when the dashboard is off, 429 to an address that
// has failed to log in too often, 401 without the right credentials, 403 to
// a change that does not come from the dashboard's own origin, and
// otherwise hands the request to Asynqmon.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.mon == nil {
		http.NotFound(w, r)
		return
	}
	addr := clientAddress(r)
	if wait := h.logins.wait(addr); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		http.Error(w, "Too many failed logins; try again later.", http.StatusTooManyRequests)
		return
	}
	if !h.authorized(r) {
		// A browser's first visit carries no credentials: only wrong ones
		// count as a failed login.
		if _, _, given := r.BasicAuth(); given {
			h.logins.fail(addr)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="endcall monitoring", charset="UTF-8"`)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if !safeMethod(r.Method) && !sameOrigin(r, h.public) {
		http.Error(w, "Changes must come from the dashboard's own pages.", http.StatusForbidden)
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

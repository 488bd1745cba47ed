package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// JWKSOptions tune NewJWKS; zero values take the defaults.
type JWKSOptions struct {
	// RefreshInterval is how often the key set is fetched again (1 h).
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between the extra fetches that
	// tokens with unknown kids trigger (30 s): a flood of forged kids costs
	// the JWKS server two requests a minute at most, and a genuinely new
	// key is still picked up within a minute under such a flood.
	UnknownKIDInterval time.Duration
	// Timeout bounds one fetch (10 s).
	Timeout time.Duration
	// Client makes the fetches (http.DefaultClient).
	Client *http.Client
	// Log receives failed fetches (slog.Default()).
	Log *slog.Logger
}

// unknownKIDs bounds the negative cache of NewJWKS.
const unknownKIDs = 10_000

var errUnknownKID = errors.New("JWT kid is not in the JWKS")

// NewJWKS returns a jwt.Keyfunc (for JWTConfig.Keyfunc) that finds a
// token's key by kid in the JWK set at url. The set is cached and refreshed
// in the background until ctx ends. An unreachable JWKS is logged rather
// than fatal: JWTs fail with 401 until it answers, and API keys keep working.
//
// A kid not in the set makes it be fetched again, at most once every
// UnknownKIDInterval and without waiting: a request that finds the
// allowance spent is refused at once rather than queued, so that a flood
// cannot line up for every future fetch, nor run each out of time. A kid
// still unknown after that is remembered for UnknownKIDInterval and
// refused without a fetch; a key found in the set by any fetch is accepted
// at once, whether or not its kid was remembered.
//
// It is built on github.com/MicahParks/keyfunc/v3, the JWKS companion of
// golang-jwt: it adds two small modules (keyfunc and jwkset, about 2,400
// lines) and nothing else beyond golang.org/x/time, which was already here.
func NewJWKS(ctx context.Context, url string, o JWKSOptions) (jwt.Keyfunc, error) {
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = time.Hour
	}
	if o.UnknownKIDInterval <= 0 {
		o.UnknownKIDInterval = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	logFailure := func(ctx context.Context, err error) {
		o.Log.WarnContext(ctx, "fetching the JWKS failed", "url", url, "error", err)
	}
	fetch := func(refresh time.Duration) (jwkset.Storage, error) {
		return jwkset.NewStorageFromHTTP(url, jwkset.HTTPClientStorageOptions{Client: o.Client, Ctx: ctx,
			HTTPTimeout: o.Timeout, RefreshInterval: refresh, RefreshErrorHandler: logFailure,
			NoErrorReturnFirstHTTPReq: refresh > 0})
	}
	// The set, fetched now and every RefreshInterval in the background.
	storage, err := fetch(o.RefreshInterval)
	if err != nil {
		return nil, fmt.Errorf("JWT_JWKS_URL: %w", err)
	}
	k, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: storage})
	if err != nil {
		return nil, fmt.Errorf("JWT_JWKS_URL: %w", err)
	}
	u := &unknownKIDCache{interval: o.UnknownKIDInterval, seen: map[string]time.Time{},
		allow: rate.NewLimiter(rate.Every(o.UnknownKIDInterval), 1)}
	refresh := func() {
		fresh, err := fetch(0)
		if err == nil {
			var keys []jwkset.JWK
			if keys, err = fresh.KeyReadAll(ctx); err == nil {
				err = storage.KeyReplaceAll(ctx, keys)
			}
		}
		if err != nil {
			logFailure(ctx, err)
		}
	}
	return func(t *jwt.Token) (any, error) {
		kid, ok := t.Header["kid"].(string)
		if !ok {
			return k.Keyfunc(t)
		}
		if _, err := storage.KeyRead(ctx, kid); err == nil {
			return k.Keyfunc(t)
		}
		if !u.shouldFetch(kid, time.Now()) {
			return nil, errUnknownKID
		}
		refresh()
		if _, err := storage.KeyRead(ctx, kid); err == nil {
			return k.Keyfunc(t)
		}
		u.remember(kid, time.Now())
		return nil, errUnknownKID
	}, nil
}

// unknownKIDCache remembers kids that the JWKS did not hold, and rations
// the fetches that unknown kids trigger.
type unknownKIDCache struct {
	interval time.Duration
	allow    *rate.Limiter

	mu   sync.Mutex
	seen map[string]time.Time // kid → when it was found unknown
}

// shouldFetch says whether kid, not in the set, is worth a fetch now: it
// was not found unknown lately, and the allowance is not spent.
func (u *unknownKIDCache) shouldFetch(kid string, now time.Time) bool {
	u.mu.Lock()
	at, ok := u.seen[kid]
	u.mu.Unlock()
	if ok && now.Sub(at) < u.interval {
		return false
	}
	return u.allow.AllowN(now, 1)
}

func (u *unknownKIDCache) remember(kid string, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) >= unknownKIDs {
		for k, at := range u.seen {
			if now.Sub(at) >= u.interval {
				delete(u.seen, k)
			}
		}
		if len(u.seen) >= unknownKIDs {
			clear(u.seen)
		}
	}
	u.seen[kid] = now
}

package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// JWKSOptions tune NewJWKS; zero values take the defaults.
type JWKSOptions struct {
	// RefreshInterval is how often the key set is fetched again (1 h).
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between the extra fetches that a
	// token with an unknown kid triggers (1 min), so that a flood of forged
	// kids costs the JWKS server one request a minute at most.
	UnknownKIDInterval time.Duration
	// Timeout bounds one fetch, and how long a request may wait for the
	// next unknown-kid fetch to be allowed (10 s).
	Timeout time.Duration
	// Client makes the fetches (http.DefaultClient).
	Client *http.Client
	// Log receives failed fetches (slog.Default()).
	Log *slog.Logger
}

// NewJWKS returns a jwt.Keyfunc (for JWTConfig.Keyfunc) that finds a
// token's key by kid in the JWK set at url. The set is cached and refreshed
// in the background until ctx ends. An unreachable JWKS is logged rather
// than fatal: JWTs fail with 401 until it answers, and API keys keep working.
//
// It is built on github.com/MicahParks/keyfunc/v3, the JWKS companion of
// golang-jwt: it adds two small modules (keyfunc and jwkset, about 2,400
// lines) and nothing else beyond golang.org/x/time, which was already here.
func NewJWKS(ctx context.Context, url string, o JWKSOptions) (jwt.Keyfunc, error) {
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = time.Hour
	}
	if o.UnknownKIDInterval <= 0 {
		o.UnknownKIDInterval = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		Client:            o.Client,
		HTTPTimeout:       o.Timeout,
		RefreshInterval:   o.RefreshInterval,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(o.UnknownKIDInterval), 1),
		// Also bounds the unknown-kid fetch itself, which runs under it.
		RateLimitWaitMax: o.Timeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				o.Log.WarnContext(ctx, "fetching the JWKS failed", "url", u, "error", err)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("JWT_JWKS_URL: %w", err)
	}
	return k.Keyfunc, nil
}

package api

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall"
)

// RateLimit configures the per-workspace limit of the authenticated /v1
// routes: a GCRA bucket in Redis (github.com/go-redis/redis_rate), so that
// every replica draws on the same budget.
type RateLimit struct {
	// Redis holds the buckets; nil turns the limit off.
	Redis redis.UniversalClient
	// PerSecond and Burst are RATE_LIMIT_PER_SECOND and RATE_LIMIT_BURST;
	// either 0 turns the limit off.
	PerSecond, Burst int
}

// Redis outages cost the limit, never a request.
const (
	// rateLimitTimeout bounds one limiter round trip: well above a healthy
	// Redis's, small beside a request's.
	rateLimitTimeout = 100 * time.Millisecond
	// rateLimitBackoff is how long the limit stays off after Redis failed,
	// so that an outage does not add rateLimitTimeout to every request.
	rateLimitBackoff = time.Second
	// rateLimitLogEvery bounds the warnings of a long outage.
	rateLimitLogEvery = time.Minute
)

// rateLimiter applies a RateLimit; nil when the limit is off.
type rateLimiter struct {
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	log     *slog.Logger

	mu        sync.Mutex
	downUntil time.Time // the limit is off until then: Redis failed
	loggedAt  time.Time
}

func newRateLimiter(c RateLimit, log *slog.Logger) *rateLimiter {
	if c.Redis == nil || c.PerSecond <= 0 || c.Burst <= 0 {
		return nil
	}
	return &rateLimiter{limiter: redis_rate.NewLimiter(c.Redis), log: log,
		limit: redis_rate.Limit{Rate: c.PerSecond, Burst: c.Burst, Period: time.Second}}
}

// allow counts one request of workspaceID and sets the RateLimit headers.
// It returns an ERATELIMITED error when the workspace is over its limit,
// and nil when it is not or when Redis cannot say (the limit fails open).
func (l *rateLimiter) allow(ctx context.Context, h http.Header, workspaceID string) error {
	if l == nil {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	down := now.Before(l.downUntil)
	l.mu.Unlock()
	if down {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, rateLimitTimeout)
	defer cancel()
	res, err := l.limiter.Allow(ctx, "workspace:"+workspaceID, l.limit)
	if err != nil {
		l.failed(ctx, now, err)
		return nil
	}
	h.Set("RateLimit-Limit", strconv.Itoa(l.limit.Burst))
	h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(wholeSeconds(res.ResetAfter)))
	if res.Allowed > 0 {
		return nil
	}
	retry := max(1, wholeSeconds(res.RetryAfter))
	h.Set("Retry-After", strconv.Itoa(retry))
	return endcall.Errorf(endcall.ERATELIMITED,
		"Too many requests: this workspace may make %d a second (bursts of %d); retry in %d s.", l.limit.Rate, l.limit.Burst, retry)
}

// failed turns the limit off for a moment and logs, at most once a while.
func (l *rateLimiter) failed(ctx context.Context, now time.Time, err error) {
	l.mu.Lock()
	l.downUntil = now.Add(rateLimitBackoff)
	logIt := now.Sub(l.loggedAt) >= rateLimitLogEvery
	if logIt {
		l.loggedAt = now
	}
	l.mu.Unlock()
	if logIt {
		l.log.WarnContext(ctx, "rate limit not enforced: Redis did not answer", "error", err)
	}
}

// wholeSeconds rounds d up to whole seconds.
func wholeSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

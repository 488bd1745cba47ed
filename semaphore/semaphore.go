// Package semaphore bounds work in flight per key across every process: a
// counting semaphore in Redis whose slots are leases that expire, so that a
// dead process's slots free themselves. While Redis cannot be reached it
// falls back to the same limit per process rather than failing.
//
// Each key is a sorted set of lease tokens scored by their expiry in Redis's
// own clock (hosts' clocks never compare). Acquiring drops expired leases
// and adds one when fewer than the limit remain, in one script.
package semaphore

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Semaphore is safe for concurrent use. Fill in the fields before the first
// Acquire.
type Semaphore struct {
	Redis redis.UniversalClient
	// Prefix namespaces the keys, e.g. "endcall:hangups:".
	Prefix string
	// Limit is the most slots held at once per key, across processes.
	Limit int
	// Lease is how long a slot is held at most: longer than any holder
	// keeps it, so that only a dead holder's slot expires.
	Lease time.Duration
	// RedisTimeout bounds one Redis request; past it, or on any Redis
	// error, this process uses its local limit alone for Backoff.
	RedisTimeout time.Duration
	Backoff      time.Duration
	Log          *slog.Logger

	mu        sync.Mutex
	local     map[string]chan struct{}
	downUntil time.Time
}

// acquireScript takes a slot of KEYS[1] for token ARGV[3] with a lease of
// ARGV[2] ms when fewer than ARGV[1] unexpired leases are held; 1 when it
// did, else 0.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
	return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
`)

// Acquire waits for a slot of key and returns the function that gives it
// back. It fails only when ctx is done first.
func (s *Semaphore) Acquire(ctx context.Context, key string) (release func(), err error) {
	// The local slot comes first: a process never holds more than Limit of
	// a key, whatever Redis says, and its waiters queue here rather than
	// poll Redis.
	local := s.localSlots(key)
	select {
	case local <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	freeLocal := func() { <-local }
	token := newToken()
	wait := time.Millisecond
	for {
		if !s.redisUp() {
			return freeLocal, nil
		}
		ok, err := s.tryRedis(ctx, key, token)
		if err != nil {
			if ctx.Err() != nil {
				freeLocal()
				return nil, ctx.Err()
			}
			s.markDown(err)
			return freeLocal, nil
		}
		if ok {
			return sync.OnceFunc(func() {
				s.releaseRedis(ctx, key, token)
				freeLocal()
			}), nil
		}
		// Slots held elsewhere free themselves within a hangup; poll with
		// jitter so that waiters of several processes do not move in step.
		t := time.NewTimer(wait + rand.N(wait))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			freeLocal()
			return nil, ctx.Err()
		}
		wait = min(wait*2, 20*time.Millisecond)
	}
}

func (s *Semaphore) tryRedis(ctx context.Context, key, token string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.RedisTimeout)
	defer cancel()
	n, err := acquireScript.Run(ctx, s.Redis, []string{s.Prefix + key}, s.Limit, s.Lease.Milliseconds(), token).Int()
	return n == 1, err
}

// releaseRedis gives a slot back; when that fails its lease expires it.
func (s *Semaphore) releaseRedis(ctx context.Context, key, token string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.RedisTimeout)
	defer cancel()
	if err := s.Redis.ZRem(ctx, s.Prefix+key, token).Err(); err != nil {
		s.markDown(err)
	}
}

func (s *Semaphore) localSlots(key string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.local == nil {
		s.local = map[string]chan struct{}{}
	}
	ch, ok := s.local[key]
	if !ok {
		ch = make(chan struct{}, s.Limit)
		s.local[key] = ch
	}
	return ch
}

func (s *Semaphore) redisUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().After(s.downUntil)
}

// markDown makes this process rely on its local limit for Backoff.
func (s *Semaphore) markDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().Before(s.downUntil) {
		return
	}
	s.downUntil = time.Now().Add(s.Backoff)
	s.Log.Warn("Redis unreachable: limiting to the per-process slots", "prefix", s.Prefix, "limit", s.Limit, "for", s.Backoff, "error", err)
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

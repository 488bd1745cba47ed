package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The count cache of QueryCalls.
const (
	// CountCacheThreshold: a total above it had to visit that many rows
	// (tens of milliseconds from 100,000 on), so it is kept; one at or
	// below it is cheap, and always counted afresh.
	CountCacheThreshold = 10_000
	// CountCacheTTL bounds the staleness of a kept total: it is measured
	// from the moment its count started, not from when it finished.
	CountCacheTTL = 10 * time.Second
	// countCacheSize bounds the totals kept.
	countCacheSize = 1024
	// countTimeout bounds a shared count, which runs detached from the
	// request that started it (others may be waiting for it) until no
	// request waits; a million calls count in well under a second.
	countTimeout = 10 * time.Second
)

// countCache keeps the exact totals of GET /v1/calls/query that were
// expensive to count, for up to ttl, keyed by the count statement and its
// arguments: the workspace and every filter, but not the page, its size or
// the sort, so that paging through or re-sorting a large result counts it
// once. Concurrent identical counts run once (flights).
type countCache struct {
	threshold int
	ttl       time.Duration
	size      int

	mu      sync.Mutex
	entries map[string]countEntry
	flights map[string]*countFlight
}

type countEntry struct {
	total   int
	expires time.Time
}

func newCountCache() *countCache {
	return &countCache{threshold: CountCacheThreshold, ttl: CountCacheTTL, size: countCacheSize, entries: map[string]countEntry{}, flights: map[string]*countFlight{}}
}

// get returns the cached total of key, if it has not expired at now.
func (c *countCache) get(key string, now time.Time) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return 0, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return 0, false
	}
	return e.total, true
}

// put keeps total, counted from a snapshot taken at started, if it is
// large enough to be worth keeping. A full cache first drops its expired
// entries, then the one closest to expiry.
func (c *countCache) put(key string, total int, started, now time.Time) {
	if total <= c.threshold {
		return
	}
	expires := started.Add(c.ttl)
	if !now.Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.size {
		var oldest string
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			} else if oldest == "" || e.expires.Before(c.entries[oldest].expires) {
				oldest = k
			}
		}
		if len(c.entries) >= c.size {
			delete(c.entries, oldest)
		}
	}
	c.entries[key] = countEntry{total: total, expires: expires}
}

// count returns the total of key: cached, or counted by run. Callers with
// the same key while a count runs share it. A shared result that turns
// out small is counted again by each caller that did not start it, so that
// a small total is always counted after the request arrived; a large one
// is at most as old as the count, well within ttl. The shared count runs
// detached from any one caller's ctx, so that one caller going away does
// not fail the others, and it is cancelled once no caller waits for it,
// so that it holds no connection for nobody.
func (c *countCache) count(ctx context.Context, key string, now func() time.Time,
	run func(context.Context) (int, error)) (int, error) {
	if total, ok := c.get(key, now()); ok {
		return total, nil
	}
	c.mu.Lock()
	f, joined := c.flights[key]
	if !joined {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), countTimeout)
		f = &countFlight{done: make(chan struct{}), cancel: cancel}
		c.flights[key] = f
		go func() {
			defer cancel()
			started := now()
			f.total, f.err = run(fctx)
			if f.err == nil {
				c.put(key, f.total, started, now())
			}
			c.mu.Lock()
			if c.flights[key] == f {
				delete(c.flights, key)
			}
			c.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-ctx.Done():
		c.mu.Lock()
		if f.waiters--; f.waiters == 0 {
			f.cancel()
			if c.flights[key] == f {
				delete(c.flights, key)
			}
		}
		c.mu.Unlock()
		return 0, ctx.Err()
	case <-f.done:
		c.mu.Lock()
		f.waiters--
		c.mu.Unlock()
		if f.err != nil {
			return 0, f.err
		}
		if joined && f.total <= c.threshold {
			return run(ctx) // this caller's own count: bound to its request
		}
		return f.total, nil
	}
}

// countFlight is a count in progress and the callers waiting for it.
type countFlight struct {
	done    chan struct{} // closed once total and err are set
	total   int
	err     error
	cancel  context.CancelFunc
	waiters int // guarded by countCache.mu
}

// countKey is the cache key of a count statement: its text and its
// arguments, each tagged with its type. The workspace is the first
// argument of every count, so two workspaces never share a key.
func countKey(sql string, args []any) string {
	var b strings.Builder
	b.WriteString(sql)
	for _, a := range args {
		b.WriteByte(0)
		switch v := a.(type) {
		case string:
			b.WriteString("s" + strconv.Quote(v))
		case []string:
			b.WriteString("a")
			for _, s := range v {
				b.WriteString(strconv.Quote(s))
			}
		case time.Time:
			b.WriteString("t" + v.UTC().Format(time.RFC3339Nano))
		case int64:
			b.WriteString("i" + strconv.FormatInt(v, 10))
		case int:
			b.WriteString("i" + strconv.Itoa(v))
		case bool:
			b.WriteString("b" + strconv.FormatBool(v))
		default:
			fmt.Fprintf(&b, "%T:%#v", v, v)
		}
	}
	return b.String()
}

package semaphore_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/semaphore"
)

func newSemaphore(t *testing.T, url string, limit int, lease time.Duration) *semaphore.Semaphore {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return &semaphore.Semaphore{Redis: rdb, Prefix: "test:slots:", Limit: limit, Lease: lease,
		RedisTimeout: 200 * time.Millisecond, Backoff: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// Two processes sharing Redis never hold more than the limit of a key
// between them, and each key has its own slots.
func TestSemaphoreLimitIsShared(t *testing.T) {
	t.Parallel()
	url := testenv.Redis(t)
	sems := []*semaphore.Semaphore{newSemaphore(t, url, 5, 10*time.Second), newSemaphore(t, url, 5, 10*time.Second)}
	held := map[string]*atomic.Int64{"AC1": {}, "AC2": {}}
	most := map[string]*atomic.Int64{"AC1": {}, "AC2": {}}
	var wg sync.WaitGroup
	for i := range 80 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := "AC1"
			if i%4 == 0 {
				key = "AC2"
			}
			release, err := sems[i%2].Acquire(context.Background(), key)
			if err != nil {
				t.Error(err)
				return
			}
			n := held[key].Add(1)
			for {
				m := most[key].Load()
				if n <= m || most[key].CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
			held[key].Add(-1)
			release()
		}()
	}
	wg.Wait()
	for key, m := range most {
		if got := m.Load(); got > 5 || got < 2 {
			t.Errorf("%s: at most %d held at once, want 2 to 5", key, got)
		}
	}
}

// A slot whose holder died (never released) frees itself when its lease
// runs out, also while other holders keep the key in use.
func TestSemaphoreLeaseExpires(t *testing.T) {
	t.Parallel()
	url := testenv.Redis(t)
	const lease = 2 * time.Second
	dead := newSemaphore(t, url, 3, lease)
	for range 2 {
		if _, err := dead.Acquire(context.Background(), "AC1"); err != nil {
			t.Fatal(err)
		}
	}
	live := newSemaphore(t, url, 3, lease)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	first, err := live.Acquire(ctx, "AC1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := live.Acquire(ctx, "AC1"); err == nil {
		t.Fatal("acquired a slot while the dead holder's leases were live")
	}
	first()
	// Another holder takes and gives back a slot all along, past the dead
	// holder's leases.
	deadline := time.Now().Add(lease + 200*time.Millisecond)
	for time.Now().Before(deadline) {
		release, err := live.Acquire(context.Background(), "AC1")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		release()
	}
	// Well within a lease, so that only the dead leases' expiry can free
	// the slots.
	ctx, cancel = context.WithTimeout(context.Background(), lease/2)
	defer cancel()
	for range 3 {
		if _, err := live.Acquire(ctx, "AC1"); err != nil {
			t.Fatalf("the dead holder's slots never freed: %v", err)
		}
	}
}

// With Redis unreachable, Acquire does not fail: the process keeps the
// limit by itself.
func TestSemaphoreWithoutRedisLimitsPerProcess(t *testing.T) {
	t.Parallel()
	s := newSemaphore(t, "redis://127.0.0.1:1/0", 2, time.Second)
	var releases []func()
	for range 2 {
		release, err := s.Acquire(context.Background(), "AC1")
		if err != nil {
			t.Fatalf("Redis down failed the acquire: %v", err)
		}
		releases = append(releases, release)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Acquire(ctx, "AC1"); err == nil {
		t.Fatal("a third slot was given past the per-process limit")
	}
	releases[0]()
	if _, err := s.Acquire(context.Background(), "AC1"); err != nil {
		t.Fatalf("a released slot was not given again: %v", err)
	}
}

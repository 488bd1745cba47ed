package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestCountCacheBounded(t *testing.T) {
	c := newCountCache()
	c.threshold, c.size = 0, 3
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		c.put(fmt.Sprint("k", i), 10+i, t0.Add(time.Duration(i)*time.Second), t0.Add(time.Duration(i)*time.Second))
	}
	// Full: the entry closest to expiry (k0) makes room.
	c.put("k3", 13, t0.Add(3*time.Second), t0.Add(3*time.Second))
	if len(c.entries) != 3 {
		t.Fatalf("entries: got %d, want 3", len(c.entries))
	}
	now := t0.Add(3 * time.Second)
	if _, ok := c.get("k0", now); ok {
		t.Error("k0 kept; it expired first and should have been evicted")
	}
	for i := 1; i <= 3; i++ {
		if got, ok := c.get(fmt.Sprint("k", i), now); !ok || got != 10+i {
			t.Errorf("k%d: got %d, %v; want %d", i, got, ok, 10+i)
		}
	}
	// Expired entries go first: at t0+11.5 s, k1 (counted at t0+1 s) has expired.
	later := t0.Add(11500 * time.Millisecond)
	c.put("k4", 14, later, later)
	if _, ok := c.entries["k1"]; ok {
		t.Error("k1 kept after it expired")
	}
	if got, ok := c.get("k2", later); !ok || got != 12 {
		t.Errorf("k2: got %d, %v; want 12 (not expired)", got, ok)
	}
	// Expiry counts from the start of the count.
	if _, ok := c.get("k2", t0.Add(12*time.Second)); ok {
		t.Error("k2 served 10 s after its count started")
	}
	// A count that finished after its TTL is not kept.
	c.put("late", 99, t0, t0.Add(10*time.Second))
	if _, ok := c.entries["late"]; ok {
		t.Error("a count older than the TTL was kept")
	}
	// Small counts are never kept.
	c.threshold = 100
	c.put("small", 100, later, later)
	if _, ok := c.entries["small"]; ok {
		t.Error("a count at the threshold was kept")
	}
}

// TestCountCacheSharesFlight checks that callers that arrive while a count
// runs wait for it, that a large shared total is reused and a small one
// counted again, and that the count survives its starter going away while
// others wait for it.
func TestCountCacheSharesFlight(t *testing.T) {
	for _, tc := range []struct {
		name      string
		total     int
		wantCalls int32
	}{{"large", 500, 1}, {"small", 5, 4}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCountCache()
			c.threshold = 100
			var calls atomic.Int32
			release := make(chan struct{})
			run := func(ctx context.Context) (int, error) {
				if calls.Add(1) == 1 {
					select {
					case <-release:
					case <-ctx.Done():
					}
				}
				return tc.total, ctx.Err()
			}
			starter, cancel := context.WithCancel(context.Background())
			errs := make(chan error, 4)
			go func() {
				_, err := c.count(starter, "k", time.Now, run)
				errs <- err
			}()
			for calls.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			totals := make(chan int, 3)
			for range 3 {
				go func() {
					n, err := c.count(context.Background(), "k", time.Now, run)
					errs <- err
					totals <- n
				}()
			}
			waitWaiters(t, c, "k", 4)
			// The starter gives up; the others still wait, so the count goes on.
			cancel()
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Fatalf("starter: got %v, want context.Canceled", err)
			}
			close(release)
			for range 3 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
				if n := <-totals; n != tc.total {
					t.Errorf("total: got %d, want %d", n, tc.total)
				}
			}
			if got := calls.Load(); got != tc.wantCalls {
				t.Errorf("counts run: got %d, want %d", got, tc.wantCalls)
			}
		})
	}
}

// TestCountCacheCancelsAbandonedCount checks that a shared count stops as
// soon as the last caller waiting for it has gone.
func TestCountCacheCancelsAbandonedCount(t *testing.T) {
	c := newCountCache()
	stopped := make(chan struct{})
	run := func(ctx context.Context) (int, error) {
		<-ctx.Done()
		close(stopped)
		return 0, ctx.Err()
	}
	a, cancelA := context.WithCancel(context.Background())
	b, cancelB := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for _, ctx := range []context.Context{a, b} {
		go func() {
			_, err := c.count(ctx, "k", time.Now, run)
			errs <- err
		}()
	}
	waitWaiters(t, c, "k", 2)
	cancelA()
	<-errs
	select {
	case <-stopped:
		t.Fatal("the count stopped while a caller still waited for it")
	case <-time.After(50 * time.Millisecond):
	}
	cancelB()
	<-errs
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the count kept running after every caller had gone")
	}
}

// waitWaiters waits until n callers wait for the count of key.
func waitWaiters(t *testing.T, c *countCache, key string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		f := c.flights[key]
		got := 0
		if f != nil {
			got = f.waiters
		}
		c.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers wait for the count, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

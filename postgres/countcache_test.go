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
// counted again, and that the count survives its starter going away.
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
					<-release
				}
				return tc.total, ctx.Err()
			}
			// The starter gives up at once; the count goes on.
			starter, cancel := context.WithCancel(context.Background())
			errs := make(chan error, 4)
			go func() {
				_, err := c.count(starter, "k", time.Now, run)
				errs <- err
			}()
			for calls.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			cancel()
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Fatalf("starter: got %v, want context.Canceled", err)
			}
			totals := make(chan int, 3)
			for range 3 {
				go func() {
					n, err := c.count(context.Background(), "k", time.Now, run)
					errs <- err
					totals <- n
				}()
			}
			// Let the three join the flight, then finish it.
			time.Sleep(50 * time.Millisecond)
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

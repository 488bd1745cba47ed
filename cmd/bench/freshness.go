package main

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// openLoop ends ids at rate a second, each on schedule whether or not
// earlier ones have answered, and stamps each call with the time its
// response was read. It returns the end latencies and the rate achieved.
func (b *bench) openLoop(ctx context.Context, ids []string, rate int) ([]time.Duration, float64, error) {
	recs := b.recs(ids)
	interval := time.Second / time.Duration(rate)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	sent := 0
	for i, id := range ids {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			break
		}
		sent++
		wg.Add(1)
		go func(r *callRec) {
			defer wg.Done()
			t0 := time.Now()
			if err := b.api.end(ctx, id); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return
			}
			t1 := time.Now()
			r.responded.Store(t1.UnixNano())
			mu.Lock()
			lat = append(lat, t1.Sub(t0))
			mu.Unlock()
		}(recs[i])
	}
	achieved := float64(sent) / time.Since(start).Seconds()
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return lat, achieved, fmt.Errorf("%d ends failed: %v", f, firstErr.Load())
	}
	return lat, achieved, ctx.Err()
}

// endedFreshness waits up to within for every call.ended of ids at both
// endpoints and returns the time from each end's response to its arrival,
// and how many never arrived.
func (b *bench) endedFreshness(ctx context.Context, ids []string, within time.Duration) ([]time.Duration, int) {
	recs := b.recs(ids)
	deadline := time.Now().Add(within)
	var fresh []time.Duration
	for {
		fresh = fresh[:0]
		missing := 0
		for _, r := range recs {
			for e := range 2 {
				at := r.ended[e].Load()
				if at == 0 {
					missing++
					continue
				}
				fresh = append(fresh, time.Duration(max(0, at-r.responded.Load())))
			}
		}
		if missing == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return fresh, missing
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freshRun is what one freshness run measured.
type freshRun struct {
	rate           int
	dur            time.Duration
	sent           int
	achieved       float64
	endLat, fresh  []time.Duration
	missing        int
	peakKB         int64
	catchUp        time.Duration // until the worker had nothing left
	p50, p99, pmax time.Duration
}

// freshness is (c): ends at a steady rate of half the capacity (b)
// measured, then an overload at 1.5 times it, with the time from each
// end's response to its call.ended webhook at each endpoint; (e) during
// the overload.
func (b *bench) freshness(ctx context.Context) error {
	capacity, from := b.capacity, "(b) of this run"
	if capacity <= 0 {
		capacity, from = b.o.capacity, "-capacity (b did not run)"
	}
	if _, err := b.subscribe(ctx, 0); err != nil {
		return err
	}
	steady := max(1, int(math.Round(capacity/2)))
	r, err := b.freshnessAt(ctx, steady, b.o.steadyFor, false)
	if err != nil {
		return err
	}
	label := fmt.Sprintf("(c) freshness, steady %d ends/s (half of %s calls/s) for %s: end response → call.ended received", steady, num(capacity), b.o.steadyFor)
	b.rows = append(b.rows, row{label + ", p50 / p99", ms(r.p50) + " / " + ms(r.p99), "", "", "p99 ≤ 500 ms"})
	b.freshNote("steady", r)
	if b.o.overFor > 0 {
		over := max(1, int(math.Round(capacity*1.5)))
		r, err := b.freshnessAt(ctx, over, b.o.overFor, true)
		if err != nil {
			return err
		}
		label := fmt.Sprintf("(c) freshness, overload %d ends/s (1.5 × %s calls/s) for %s: end response → call.ended received", over, num(capacity), b.o.overFor)
		b.rows = append(b.rows,
			row{label + ", p50 / p99", ms(r.p50) + " / " + ms(r.p99), "", "", "p99 ≤ 500 ms"},
			row{"(c) overload: rooms, analyses and call.analyzed caught up, after the last end", ms(r.catchUp), "", "", "report"},
			row{"(e) peak RSS of `endcall all` during the (c) overload", mib(r.peakKB), "", "", "report"},
		)
		b.freshNote("overload", r)
	}
	b.notes = append(b.notes, fmt.Sprintf("(c) capacity from %s: %s calls fully processed a second.", from, num(capacity)))
	return nil
}

func (b *bench) freshNote(what string, r freshRun) {
	b.notes = append(b.notes, fmt.Sprintf("(c) %s: %d ends sent at %.0f/s (open loop), answered in p50 %s / p99 %s; %d call.ended deliveries measured (2 endpoints a call), max %s%s.",
		what, r.sent, r.achieved, ms(percentile(r.endLat, 50)), ms(percentile(r.endLat, 99)), len(r.fresh), ms(r.pmax), missingNote(r.missing)))
}

// freshnessAt measures call.ended freshness at rate ends/s for dur.
func (b *bench) freshnessAt(ctx context.Context, rate int, dur time.Duration, profile bool) (freshRun, error) {
	r := freshRun{rate: rate, dur: dur}
	ids, err := b.seed(ctx, max(1, int(float64(rate)*dur.Seconds())))
	if err != nil {
		return r, err
	}
	if err := b.drain(ctx, "(c) start"); err != nil {
		return r, err
	}
	mem := watchMemory(b.proc.pid())
	wait := func() {}
	if profile {
		wait = b.profile(ctx, "c-fresh", int(dur.Seconds()))
	}
	cpu0 := b.cpu.snap()
	r.endLat, r.achieved, err = b.openLoop(ctx, ids, rate)
	r.sent = len(r.endLat)
	if err != nil {
		mem.stop()
		return r, err
	}
	last := time.Now()
	r.fresh, r.missing = b.endedFreshness(ctx, ids, time.Minute)
	r.peakKB = mem.stop()
	logf("(c) %s", cpuUse(cpu0, b.cpu.snap()))
	wait()
	r.p50, r.p99, r.pmax = percentile(r.fresh, 50), percentile(r.fresh, 99), percentile(r.fresh, 100)
	logf("(c) %d ends at %.0f/s (end p50 %s, p99 %s); call.ended %d/%d delivered: p50 %s, p99 %s, max %s",
		r.sent, r.achieved, ms(percentile(r.endLat, 50)), ms(percentile(r.endLat, 99)), len(r.fresh), 2*r.sent, ms(r.p50), ms(r.p99), ms(r.pmax))
	if err := b.drain(ctx, "(c)"); err != nil {
		return r, err
	}
	r.catchUp = time.Since(last)
	return r, nil
}

func missingNote(missing int) string {
	if missing == 0 {
		return ""
	}
	return fmt.Sprintf(", %d NOT delivered within a minute", missing)
}

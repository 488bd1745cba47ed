package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall/jobs"
)

// tasksPerCall is the post-call work of one call with two endpoints
// subscribed to both events: room:delete, call:analyze and four
// webhook:deliver.
const tasksPerCall = 6

// subscribe registers the receiver's two endpoints for both events.
func (b *bench) subscribe(ctx context.Context) error {
	if b.subscribed {
		return nil
	}
	// A rerun on the same servers: endpoints of an earlier receiver are gone.
	var old []struct {
		ID string `json:"id"`
	}
	if err := b.call(ctx, "GET", "/v1/webhooks", nil, &old); err != nil {
		return err
	}
	for _, ep := range old {
		if err := b.call(ctx, "DELETE", "/v1/webhooks/"+ep.ID, nil, nil); err != nil {
			return err
		}
	}
	for i := range 2 {
		var ep struct {
			Secret string `json:"secret"`
		}
		if err := b.call(ctx, "POST", "/v1/webhooks", map[string]any{"url": fmt.Sprintf("%s/%d", b.receiver.srv.URL, i)}, &ep); err != nil {
			return err
		}
		if err := b.receiver.setSecret(i, ep.Secret); err != nil {
			return err
		}
	}
	b.subscribed = true
	return nil
}

// done reports whether everything a call owes reached the outside world,
// and when the last of it arrived.
func (r *callRec) done() (bool, int64) {
	last := r.room.Load()
	for _, t := range []int64{r.ended[0].Load(), r.ended[1].Load(), r.analyzed[0].Load(), r.analyzed[1].Load()} {
		if t == 0 || last == 0 {
			return false, 0
		}
		last = max(last, t)
	}
	return true, last
}

// waitDone waits until every call of ids is done, or within has passed; it
// returns how many are done and the last arrival.
func (b *bench) waitDone(ctx context.Context, ids []string, within time.Duration) (int, time.Time) {
	recs := b.recs(ids)
	deadline := time.Now().Add(within)
	for {
		n, last := 0, int64(0)
		for _, r := range recs {
			if ok, t := r.done(); ok {
				n++
				last = max(last, t)
			}
		}
		if n == len(recs) || time.Now().After(deadline) || ctx.Err() != nil {
			return n, time.Unix(0, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (b *bench) recs(ids []string) []*callRec {
	b.calls.mu.RLock()
	defer b.calls.mu.RUnlock()
	recs := make([]*callRec, len(ids))
	for i, id := range ids {
		recs[i] = b.calls.byID[id]
	}
	return recs
}

// pipeline is (b): a burst of ends, then the time until every call's room is
// deleted, its analysis stored and both events delivered to both endpoints,
// beside asynq's no-op task rate.
func (b *bench) pipeline(ctx context.Context) error {
	if err := b.subscribe(ctx); err != nil {
		return err
	}
	ids, err := b.seed(ctx, b.o.pipeCalls)
	if err != nil {
		return err
	}
	if err := b.drain(ctx, "(b) start"); err != nil {
		return err
	}
	wait := b.profile(ctx, "b-ends", 3)
	c0, err := b.counters(ctx)
	if err != nil {
		return err
	}
	conns0 := [3]int64{b.twilio.conns.Load(), b.livekit.conns.Load(), b.receiver.conns.Load()}
	cpu0 := b.cpu.snap()
	res := closedLoop(ctx, ids, b.o.conc, time.Minute, b.api.end)
	cpu1 := b.cpu.snap()
	wait()
	if res.failed > 0 {
		return fmt.Errorf("%d ends failed: %v", res.failed, res.firstErr)
	}
	// The worker alone, once the ends are over.
	wait = b.profile(ctx, "b-worker", 6)
	n, last := b.waitDone(ctx, ids, 2*time.Minute)
	cpu2 := b.cpu.snap()
	c1, err := b.counters(ctx)
	if err != nil {
		return err
	}
	logf("(b) per call: %s", perEnd(c0, c1, len(ids)))
	logf("(b) connections opened: Twilio %d, LiveKit %d, webhook receiver %d", b.twilio.conns.Load()-conns0[0],
		b.livekit.conns.Load()-conns0[1], b.receiver.conns.Load()-conns0[2])
	wait()
	logf("(b) during the ends: %s", cpuUse(cpu0, cpu1))
	logf("(b) after the ends: %s", cpuUse(cpu1, cpu2))
	elapsed := last.Sub(res.start)
	// The room and analysis are recorded in Postgres too.
	var stored int
	for range 100 {
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM calls WHERE id = ANY ($1::uuid[])
			AND room_status = 'deleted' AND analysis_status = 'completed'`, ids).Scan(&stored); err != nil {
			return err
		}
		if stored == len(ids) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	rate := float64(n) / elapsed.Seconds()
	logf("(b) %d calls ended in %s (%.0f/s), fully processed %d/%d in %s: %.0f calls/s; %d/%d recorded in Postgres",
		res.ok, res.elapsed.Round(time.Millisecond), res.rate(), n, len(ids), elapsed.Round(time.Millisecond), rate, stored, len(ids))
	if n < len(ids) || stored < len(ids) {
		b.notes = append(b.notes, fmt.Sprintf("(b) INCOMPLETE: %d of %d calls fully processed within 2 minutes, %d recorded in Postgres", n, len(ids), stored))
	}
	if err := b.drain(ctx, "(b)"); err != nil {
		return err
	}

	noop, err := b.noopFloor(ctx)
	if err != nil {
		return fmt.Errorf("no-op floor: %w", err)
	}
	logf("(b) floor: asynq no-op tasks: %.0f/s", noop)
	b.rows = append(b.rows, row{
		fmt.Sprintf("(b) post-call pipeline, %s calls: calls fully processed/s (room deleted, analysis stored, 2 events × 2 endpoints)", num(float64(len(ids)))),
		fmt.Sprintf("%s calls/s (%s tasks/s)", num(rate), num(rate*tasksPerCall)),
		fmt.Sprintf("%s no-op tasks/s (%s calls/s at %d tasks a call)", num(noop), num(noop/tasksPerCall), tasksPerCall),
		ratio(rate*tasksPerCall, noop), "≥ 400 calls/s",
	})
	b.notes = append(b.notes, fmt.Sprintf("(b) from the first end request to the last delivery or room deletion; "+
		"worker concurrency %d; the floor drains %s no-op tasks (same task ID options) with an asynq server of the same "+
		"concurrency and queues, in this process.", b.o.workerConc, num(float64(b.o.noopTasks))))
	return nil
}

// noopFloor enqueues no-op tasks into a Redis database of their own, then
// times an asynq server configured like endcall's worker draining them.
func (b *bench) noopFloor(ctx context.Context) (float64, error) {
	opt := b.redisOpt
	opt.DB = 15
	rdb := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return 0, err
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	n := b.o.noopTasks
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if int(i) >= n {
					return
				}
				t := asynq.NewTask("bench:noop", []byte(`{"call_id":"`+strconv.Itoa(int(i))+`"}`),
					asynq.TaskID("noop:"+strconv.Itoa(int(i))), asynq.Queue(jobs.QueueDefault))
				if _, err := client.EnqueueContext(ctx, t); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return 0, err
	default:
	}
	var done atomic.Int64
	finished := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency:              b.o.workerConc,
		Queues:                   map[string]int{jobs.QueueCritical: 6, jobs.QueueDefault: 3, jobs.QueueWebhooks: 3},
		TaskCheckInterval:        50 * time.Millisecond,
		DelayedTaskCheckInterval: 250 * time.Millisecond,
		LogLevel:                 asynq.ErrorLevel,
	})
	t0 := time.Now()
	err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	}))
	if err != nil {
		return 0, err
	}
	defer srv.Shutdown()
	select {
	case <-finished:
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("only %d of %d no-op tasks ran within 2 minutes", done.Load(), n)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// freshness is (c): ends at a steady rate (open loop: each starts on
// schedule whether or not earlier ones have answered), and the time from
// each end's response to its call.ended webhook at each endpoint; (e)
// during it.
func (b *bench) freshness(ctx context.Context) error {
	if b.o.lowRate > 0 {
		if err := b.freshnessAt(ctx, b.o.lowRate, b.o.lowFor, false); err != nil {
			return err
		}
	}
	return b.freshnessAt(ctx, b.o.rate, b.o.freshFor, true)
}

// freshnessAt measures freshness at rate ends/s for dur; main is the
// measurement of the issue (with its targets and the RSS of (e)), the other
// one a rate the worker keeps up with, for comparison.
func (b *bench) freshnessAt(ctx context.Context, rate int, dur time.Duration, main bool) error {
	if err := b.subscribe(ctx); err != nil {
		return err
	}
	n := int(float64(rate) * dur.Seconds())
	ids, err := b.seed(ctx, n)
	if err != nil {
		return err
	}
	if err := b.drain(ctx, "(c) start"); err != nil {
		return err
	}
	recs := b.recs(ids)
	mem := watchMemory(b.proc.pid())
	wait := func() {}
	if main {
		wait = b.profile(ctx, "c-fresh", int(dur.Seconds()))
	}
	cpu0 := b.cpu.snap()
	interval := time.Second / time.Duration(rate)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var endLat []time.Duration
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
			endLat = append(endLat, t1.Sub(t0))
			mu.Unlock()
		}(recs[i])
	}
	sendTime := time.Since(start)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		mem.stop()
		return fmt.Errorf("%d ends failed: %v", f, firstErr.Load())
	}
	// Every call.ended delivery, within a minute.
	deadline := time.Now().Add(time.Minute)
	var fresh []time.Duration
	missing := 0
	for {
		fresh, missing = fresh[:0], 0
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
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	peak := mem.stop()
	logf("(c) %s", cpuUse(cpu0, b.cpu.snap()))
	wait()
	achieved := float64(sent) / sendTime.Seconds()
	p50, p99 := percentile(fresh, 50), percentile(fresh, 99)
	logf("(c) %d ends at %.0f/s (end p50 %s, p99 %s); call.ended %d/%d delivered: p50 %s, p99 %s, max %s",
		sent, achieved, ms(percentile(endLat, 50)), ms(percentile(endLat, 99)), len(fresh), 2*sent, ms(p50), ms(p99), ms(percentile(fresh, 100)))
	if err := b.drain(ctx, "(c)"); err != nil {
		return err
	}
	label := fmt.Sprintf("(c) freshness at %d ends/s for %s: end response → call.ended received", rate, dur)
	if main {
		b.rows = append(b.rows,
			row{label + ", p50", ms(p50), "", "", "≤ 100 ms"},
			row{label + ", p99", ms(p99), "", "", "≤ 500 ms"},
			row{"(e) peak RSS of `endcall all` during (c)", mib(peak), "", "", "report"},
		)
	} else {
		b.rows = append(b.rows, row{label + ", p50 / p99 (for comparison: a rate the worker keeps up with)",
			ms(p50) + " / " + ms(p99), "", "", ""})
	}
	b.notes = append(b.notes, fmt.Sprintf("(c) %d ends sent at %.0f/s (open loop), answered in p50 %s / p99 %s; %d call.ended deliveries measured (2 endpoints a call)%s.",
		sent, achieved, ms(percentile(endLat, 50)), ms(percentile(endLat, 99)), len(fresh), missingNote(missing)))
	return nil
}

func missingNote(missing int) string {
	if missing == 0 {
		return ""
	}
	return fmt.Sprintf(", %d NOT delivered within a minute", missing)
}

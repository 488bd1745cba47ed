package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/worker"
)

// subscribe registers the receiver's two endpoints for both events, the
// second with rate_limit limit (0: none), replacing any endpoints of the
// workspace. It reports whether the limit was accepted: a server without
// per-endpoint rate limits refuses or ignores the field.
func (b *bench) subscribe(ctx context.Context, limit int) (bool, error) {
	if b.subscribed && b.subscribedLimit == limit {
		return b.limitAccepted, nil
	}
	if err := b.unsubscribe(ctx); err != nil {
		return false, err
	}
	accepted := false
	for i := range 2 {
		body := map[string]any{"url": b.receiver.url(i)}
		var ep struct {
			ID        string `json:"id"`
			Secret    string `json:"secret"`
			RateLimit *int   `json:"rate_limit"`
		}
		var err error
		if i == 1 && limit > 0 {
			body["rate_limit"] = limit
			if err = b.call(ctx, "POST", "/v1/webhooks", body, &ep); err == nil {
				accepted = ep.RateLimit != nil && *ep.RateLimit == limit
			} else {
				logf("POST /v1/webhooks with rate_limit: %v; registering without it", err)
				delete(body, "rate_limit")
				err = b.call(ctx, "POST", "/v1/webhooks", body, &ep)
			}
		} else {
			err = b.call(ctx, "POST", "/v1/webhooks", body, &ep)
		}
		if err != nil {
			return false, err
		}
		b.endpoints[i] = ep.ID
		if err := b.receiver.ep[i].SetSecret(ep.Secret); err != nil {
			return false, err
		}
	}
	b.subscribed, b.subscribedLimit, b.limitAccepted = true, limit, accepted
	return accepted, nil
}

// unsubscribe deletes every webhook endpoint of the workspace: those of
// an earlier run on the same servers point at receivers that are gone.
func (b *bench) unsubscribe(ctx context.Context) error {
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
	b.subscribed = false
	return nil
}

// done reports whether everything a call owes reached the outside world,
// and when the last of it arrived; skip1 leaves out the second endpoint.
func (r *callRec) done(skip1 bool) (bool, int64) {
	last := r.room.Load()
	events := []int64{r.ended[0].Load(), r.analyzed[0].Load()}
	if !skip1 {
		events = append(events, r.ended[1].Load(), r.analyzed[1].Load())
	}
	for _, t := range events {
		if t == 0 || last == 0 {
			return false, 0
		}
		last = max(last, t)
	}
	return true, last
}

// waitDone waits until every call of ids is done, or within has passed; it
// returns how many are done and the last arrival.
func (b *bench) waitDone(ctx context.Context, ids []string, skip1 bool, within time.Duration) (int, time.Time) {
	recs := b.recs(ids)
	deadline := time.Now().Add(within)
	for {
		n, last := 0, int64(0)
		for _, r := range recs {
			if ok, t := r.done(skip1); ok {
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
// deleted, its analysis stored and its events delivered, with the work it
// cost per call, beside asynq's no-op task rate. The second endpoint is
// limited to -limit-rate requests a second when the server accepts
// rate_limit; its deliveries then lag by design, so a call counts as fully
// processed once the first endpoint has both its events, and the second
// endpoint's pace is reported on its own.
func (b *bench) pipeline(ctx context.Context) error {
	limited, err := b.subscribe(ctx, b.o.limitRate)
	if err != nil {
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
	conns0 := [3]int64{int64(b.twilio.Connections()), int64(b.livekit.Connections()), b.receiver.conns.Load()}
	cpu0 := b.cpu.snap()
	res := closedLoop(ctx, ids, b.o.conc, time.Minute, b.api.end)
	cpu1 := b.cpu.snap()
	wait()
	if res.failed > 0 {
		return fmt.Errorf("%d ends failed: %v", res.failed, res.firstErr)
	}
	// The worker alone, once the ends are over.
	wait = b.profile(ctx, "b-worker", 6)
	n, last := b.waitDone(ctx, ids, limited, 2*time.Minute)
	cpu2 := b.cpu.snap()
	c1, err := b.counters(ctx)
	if err != nil {
		return err
	}
	logf("(b) per call: %s", perEnd(c0, c1, len(ids)))
	logf("(b) connections opened: Twilio %d, LiveKit %d, webhook receiver %d", int64(b.twilio.Connections())-conns0[0],
		int64(b.livekit.Connections())-conns0[1], b.receiver.conns.Load()-conns0[2])
	wait()
	logf("(b) during the ends: %s", cpuUse(cpu0, cpu1))
	logf("(b) after the ends: %s", cpuUse(cpu1, cpu2))
	elapsed := last.Sub(res.start)
	// The room and analysis are recorded in Postgres too.
	stored, err := b.stored(ctx, ids, 2*time.Second, func(c *endcall.Call) bool {
		return c.RoomStatus != nil && *c.RoomStatus == endcall.RoomDeleted &&
			c.AnalysisStatus != nil && *c.AnalysisStatus == endcall.AnalysisCompleted
	})
	if err != nil {
		return err
	}
	rate := float64(n) / elapsed.Seconds()
	b.capacity = rate
	logf("(b) %d calls ended in %s (%.0f/s), fully processed %d/%d in %s: %.0f calls/s; %d/%d recorded in Postgres",
		res.ok, res.elapsed.Round(time.Millisecond), res.rate(), n, len(ids), elapsed.Round(time.Millisecond), rate, stored, len(ids))
	if n < len(ids) || stored < len(ids) {
		b.notes = append(b.notes, fmt.Sprintf("(b) INCOMPLETE: %d of %d calls fully processed within 2 minutes, %d recorded in Postgres", n, len(ids), stored))
	}
	pace := "n/a (rate_limit not accepted by POST /v1/webhooks)"
	if b.o.limitRate == 0 {
		pace = "n/a (-limit-rate 0)"
	}
	if limited {
		pace = b.limitedPace(ctx, res.start)
		// Its backlog would take minutes at its pace: the endpoint goes, and
		// its pending deliveries with it.
		if err := b.call(ctx, "DELETE", "/v1/webhooks/"+b.endpoints[1], nil, nil); err != nil {
			return err
		}
		b.subscribed = false
	}
	if err := b.drain(ctx, "(b)"); err != nil {
		if !limited {
			return err
		}
		b.notes = append(b.notes, fmt.Sprintf("(b) after deleting the rate-limited endpoint: %v", err))
	}

	nc0, err := b.counters(ctx)
	if err != nil {
		return err
	}
	ncpu0 := b.cpu.snap()
	noop, err := b.noopFloor(ctx)
	if err != nil {
		return fmt.Errorf("no-op floor: %w", err)
	}
	ncpu1 := b.cpu.snap()
	nc1, err := b.counters(ctx)
	if err != nil {
		return err
	}
	logf("(b) floor: asynq no-op tasks: %.0f/s; per task: %s", noop, perEnd(nc0, nc1, b.o.noopTasks))

	// Tasks a fully processed call took: room:delete, call:analyze and its
	// deliveries to the endpoints counted.
	tasks := 6
	if limited {
		tasks = 4
	}
	per := func(d int64, k int) string { return fmt.Sprintf("%.2f", float64(d)/float64(k)) }
	cpuMS := func(ticks int64, k int) float64 { return float64(ticks) * 1000 / clockTick / float64(k) }
	calls := max(n, 1)
	redisCall := float64(c1.redisAll-c0.redisAll) / float64(calls)
	redisTask := float64(nc1.redisAll-nc0.redisAll) / float64(b.o.noopTasks)
	label := fmt.Sprintf("(b) post-call pipeline, %s calls", num(float64(len(ids))))
	b.rows = append(b.rows,
		row{label + fmt.Sprintf(": calls fully processed/s (room deleted, analysis stored, both events at the %s)", map[bool]string{true: "unlimited endpoint", false: "2 endpoints"}[limited]),
			fmt.Sprintf("%s calls/s (%s tasks/s)", num(rate), num(rate*float64(tasks))),
			fmt.Sprintf("%s no-op tasks/s", num(noop)),
			ratio(rate*float64(tasks), noop), "report (tasks/s ratio)"},
		row{label + ": Postgres commits per call", per(c1.commits-c0.commits, calls), "", "", "≤ 6.2 (half of 12.4)"},
		row{label + ": WAL flushes (wal_sync) / WAL writes per call", per(c1.walSyncs-c0.walSyncs, calls) + " / " + per(c1.walWrites-c0.walWrites, calls), "", "", "report"},
		row{label + ": Redis commands per call (floor: per no-op task × tasks a call)", fmt.Sprintf("%.1f", redisCall),
			fmt.Sprintf("%.1f", redisTask*float64(tasks)), ratio(redisCall, redisTask*float64(tasks)), "≤ 59 (half of 118)"},
		row{label + ": CPU ms per call: endcall / postgres / redis / bench (clients and fakes)",
			fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", cpuMS(cpu2.endcall-cpu0.endcall, calls), cpuMS(cpu2.postgres-cpu0.postgres, calls),
				cpuMS(cpu2.redis-cpu0.redis, calls), cpuMS(cpu2.self-cpu0.self, calls)),
			fmt.Sprintf("— / — / %.2f / %.2f (no-op × %d)", cpuMS(ncpu1.redis-ncpu0.redis, b.o.noopTasks)*float64(tasks),
				cpuMS(ncpu1.self-ncpu0.self, b.o.noopTasks)*float64(tasks), tasks), "", "report"},
		row{fmt.Sprintf("(b) endpoint limited to %d requests/s: pace received", b.o.limitRate), pace, "", "", fmt.Sprintf("≤ %d in any 1 s, 0 failed attempts", b.o.limitRate)},
	)
	b.notes = append(b.notes, fmt.Sprintf("(b) from the first end request to the last delivery or room deletion counted; "+
		"worker concurrency %d; per-call counters from pg_stat_database, pg_stat_wal and Redis INFO commandstats over the same window; "+
		"the floor drains %s no-op tasks with an asynq server of the same concurrency and queues, in this process.",
		b.o.workerConc, num(float64(b.o.noopTasks))))
	return nil
}

// limitedPace describes what the rate-limited endpoint received since
// start: the most requests in any one-second window, the mean rate, and the
// failed attempts endcall recorded for it.
func (b *bench) limitedPace(ctx context.Context, start time.Time) string {
	at := b.receiver.arrivalsSince(1, start)
	if len(at) == 0 {
		return "nothing received"
	}
	most := mostWithin(at, time.Second)
	mean := 0.0
	if span := time.Duration(at[len(at)-1] - at[0]); span > 0 {
		mean = float64(len(at)-1) / span.Seconds()
	}
	failed := "failed attempts n/a"
	var ep struct {
		Health *struct {
			Failures *int `json:"failures"`
		} `json:"health"`
	}
	if err := b.call(ctx, http.MethodGet, "/v1/webhooks/"+b.endpoints[1], nil, &ep); err == nil && ep.Health != nil && ep.Health.Failures != nil {
		failed = fmt.Sprintf("%d failed attempts", *ep.Health.Failures)
	}
	return fmt.Sprintf("%d requests, most %d in 1 s, mean %.1f/s, %s", len(at), most, mean, failed)
}

// mostWithin returns the most of the sorted times at (Unix nanoseconds)
// that fall in any window of length w.
func mostWithin(at []int64, w time.Duration) int {
	most, j := 0, 0
	for i := range at {
		for at[i]-at[j] >= int64(w) {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
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
				payload, _ := json.Marshal(map[string]string{"call_id": strconv.Itoa(int(i))})
				t := asynq.NewTask("bench:noop", payload, asynq.TaskID("noop:"+strconv.Itoa(int(i))), asynq.Queue(jobs.QueueDefault))
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
		Queues:                   worker.Queues,
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

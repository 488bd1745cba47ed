package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/endcall/endcall/jobs"
)

// contestant is one side of (a), with what it measured so far.
type contestant struct {
	name   string
	ids    []string
	next   int
	end    func(context.Context, string) error
	rounds []loadResult
	work   counters // summed over the rounds
	cpu    cpuSnap  // summed over the rounds
}

// medians returns the median over the rounds of the rate, p50 and p99.
func (c *contestant) medians() (rate float64, p50, p99 time.Duration) {
	var rates []float64
	var p50s, p99s []time.Duration
	for _, r := range c.rounds {
		rates = append(rates, r.rate())
		p50s = append(p50s, percentile(r.latencies, 50))
		p99s = append(p99s, percentile(r.latencies, 99))
	}
	return median(rates), median(p50s), median(p99s)
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// endCalls is (a): POST /v1/calls/end beside the naive server floor and
// the raw I/O floor, and (e) during it.
//
// `endcall all` runs throughout, worker included, as in production: the
// post-call work of every end is processed while the ends run, on the same
// cores. The floors' ends owe and enqueue the same tasks into the same
// queues, so the worker does the same work behind all three. Each round
// runs every contestant for its share of -ends or -round-time, whichever
// ends first, with the same 32 keep-alive clients (closed loop), in an
// order that rotates from round to round, so
// that the worker's backlog and whatever else runs on the machine weigh on
// all alike. No webhook endpoint is subscribed yet.
func (b *bench) endCalls(ctx context.Context) error {
	o := b.o
	var seeded [3][]string
	for i := range seeded {
		ids, err := b.seed(ctx, o.warm+o.ends)
		if err != nil {
			return err
		}
		seeded[i] = ids
	}
	fl := &naiveFloor{pool: b.pool, client: b.asynq, tasks: &jobs.Enqueuer{Client: b.asynq, DeliverMaxRetry: 8},
		workspaceID: b.ws, twilio: newTwilioClient(), twilioURL: b.twilio.URL(), account: twilioAccount, token: twilioToken}
	naiveSrv := startNaive(fl)
	defer naiveSrv.Close()
	naiveAPI := newAPIClient(naiveSrv.URL, "")

	svc := &contestant{name: "endcall", ids: seeded[0], end: b.api.end}
	naive := &contestant{name: "naive server", ids: seeded[1], end: naiveAPI.end}
	raw := &contestant{name: "raw I/O floor", ids: seeded[2], end: fl.raw}
	all := []*contestant{svc, naive, raw}

	for _, c := range all {
		logf("(a) warming up %s: %d ends", c.name, o.warm)
		if r := closedLoop(ctx, c.ids[:o.warm], o.conc, time.Minute, c.end); r.failed > 0 {
			return fmt.Errorf("%s warm-up: %d ends failed: %v", c.name, r.failed, r.firstErr)
		}
		c.next = o.warm
	}
	if err := b.drain(ctx, "(a) warm-up"); err != nil {
		return err
	}

	mem := watchMemory(b.proc.pid())
	wait := b.profile(ctx, "a-end", int(o.roundTime.Seconds())*o.rounds)
	for round := range o.rounds {
		for k := range all {
			c := all[(k+round)%len(all)]
			c0, err := b.counters(ctx)
			if err != nil {
				mem.stop()
				return err
			}
			cpu0 := b.cpu.snap()
			share := c.ids[c.next:min(len(c.ids), c.next+o.ends/o.rounds)]
			r := closedLoop(ctx, share, o.conc, o.roundTime, c.end)
			cpu1 := b.cpu.snap()
			c1, err := b.counters(ctx)
			if err != nil {
				mem.stop()
				return err
			}
			c.next += r.claimed
			c.rounds = append(c.rounds, r)
			c.work = addCounters(c.work, c0, c1)
			c.cpu = addCPU(c.cpu, cpu0, cpu1)
			if r.failed > 0 {
				mem.stop()
				return fmt.Errorf("%s: %d ends failed: %v", c.name, r.failed, r.firstErr)
			}
			logf("(a) round %d, %s: %d ends, %.0f/s, p99 %s", round+1, c.name, r.ok, r.rate(), ms(percentile(r.latencies, 99)))
		}
	}
	peak := mem.stop()
	wait()
	b.saveAllocs(ctx, "a-end")
	for _, c := range all {
		ok := 0
		for _, r := range c.rounds {
			ok += r.ok
		}
		logf("(a) %s, per end: %s", c.name, perEnd(counters{redis: map[string]int64{}}, c.work, ok))
		logf("(a) %s: %s", c.name, cpuUse(cpuSnap{}, c.cpu))
	}
	if err := b.drain(ctx, "(a)"); err != nil {
		return err
	}

	sr, s50, s99 := svc.medians()
	nr, n50, n99 := naive.medians()
	rr, _, r99 := raw.medians()
	label := fmt.Sprintf("(a) end-call, %d keep-alive clients, median of %d rounds", o.conc, o.rounds)
	b.rows = append(b.rows,
		row{label + ": ends/s vs naive server", num(sr), num(nr), ratio(sr, nr), "≥ 0.95× naive"},
		row{label + ": p50 vs naive server", ms(s50), ms(n50), ratio(float64(s50), float64(n50)), "report"},
		row{label + ": p99 vs naive server", ms(s99), ms(n99), ratio(float64(s99), float64(n99)), "≤ 1.25× naive"},
		row{label + ": ends/s vs raw I/O floor (no HTTP, no Twilio)", num(sr), num(rr), ratio(sr, rr), "report"},
		row{label + ": p99 vs raw I/O floor", ms(s99), ms(r99), ratio(float64(s99), float64(r99)), "report"},
		row{"(e) peak RSS of `endcall all` during (a)", mib(peak), "", "", "report"},
	)
	b.notes = append(b.notes, fmt.Sprintf("(a) %d rounds, each contestant %s ends or %s a round, after %d warm-up ends each, order rotating; "+
		"`endcall all` (worker concurrency %d) processes the post-call work of all three as it comes. The naive server is a bare "+
		"net/http handler in the bench process: decode {\"call_id\"}, one pgx transaction (UPDATE the call, INSERT its call.ended "+
		"deliveries), the Twilio hangup POST through net/http to the same fake, the asynq enqueues (room:delete, call:analyze), "+
		"a JSON answer; no auth, logging, metrics or batching. The raw I/O floor is the transaction and enqueues alone.",
		o.rounds, num(float64(o.ends/o.rounds)), o.roundTime, o.warm, o.workerConc))
	return nil
}

// addCounters adds the work between c0 and c1 to sum.
func addCounters(sum, c0, c1 counters) counters {
	if sum.redis == nil {
		sum.redis = map[string]int64{}
	}
	sum.commits += c1.commits - c0.commits
	sum.walSyncs += c1.walSyncs - c0.walSyncs
	sum.walWrites += c1.walWrites - c0.walWrites
	sum.redisAll += c1.redisAll - c0.redisAll
	for k, v := range c1.redis {
		sum.redis[k] += v - c0.redis[k]
	}
	return sum
}

// addCPU adds the CPU used between a and b to sum (whose at accumulates the
// elapsed time as an offset from the zero time).
func addCPU(sum, a, b cpuSnap) cpuSnap {
	sum.at = sum.at.Add(b.at.Sub(a.at))
	sum.endcall += b.endcall - a.endcall
	sum.postgres += b.postgres - a.postgres
	sum.redis += b.redis - a.redis
	sum.self += b.self - a.self
	sum.machineBusy += b.machineBusy - a.machineBusy
	sum.machineAll += b.machineAll - a.machineAll
	return sum
}

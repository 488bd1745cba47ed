package main

import (
	"context"
	"fmt"
	"time"

	"github.com/endcall/endcall/jobs"
)

const (
	// warmEnds run on each side before (a) is measured: connections,
	// prepared statements and caches are then warm on both.
	warmEnds = 500
	// slice is how long one side runs before the other takes over.
	slice = 2 * time.Second
)

// side is one of the two contestants of (a), with what it measured so far.
type side struct {
	name string
	ids  []string
	next int
	end  func(context.Context, string) error
	res  loadResult
	work counters // summed over the slices
	cpu  cpuSnap  // summed over the slices
}

// endCalls is (a): the end-call API beside its floor, and (e) during it.
//
// `endcall all` runs throughout, worker included, as in production: the
// post-call work of every end (room deletion, analysis) is processed while
// the ends run, on the same two cores. The floor's ends owe and enqueue the
// same tasks into the same queues, so the worker does the same work behind
// both sides. The sides take turns in slices of 2 s (floor, API, API,
// floor, ...) so that the worker's backlog, and whatever else runs on the
// machine, weigh on both alike. No webhook endpoint is subscribed yet, so
// each end owes two tasks.
func (b *bench) endCalls(ctx context.Context) error {
	o := b.o
	svcIDs, err := b.seed(ctx, warmEnds+o.ends)
	if err != nil {
		return err
	}
	floorIDs, err := b.seed(ctx, warmEnds+o.ends)
	if err != nil {
		return err
	}
	fl := &floor{pool: b.pool, client: b.asynq, tasks: &jobs.Enqueuer{Client: b.asynq, DeliverMaxRetry: 8}, workspaceID: b.ws}

	logf("(a) warming up: %d ends through the API, %d on the floor", warmEnds, warmEnds)
	if r := closedLoop(ctx, svcIDs[:warmEnds], o.conc, o.endsLimit, b.api.end); r.failed > 0 {
		return fmt.Errorf("warm-up: %d ends failed: %v", r.failed, r.firstErr)
	}
	if r := closedLoop(ctx, floorIDs[:warmEnds], o.conc, o.endsLimit, fl.end); r.failed > 0 {
		return fmt.Errorf("floor warm-up: %d ends failed: %v", r.failed, r.firstErr)
	}
	if err := b.drain(ctx, "(a) warm-up"); err != nil {
		return err
	}

	svc := &side{name: "endcall", ids: svcIDs[warmEnds:], end: b.api.end}
	flo := &side{name: "floor", ids: floorIDs[warmEnds:], end: fl.end}
	mem := watchMemory(b.proc.pid())
	wait := b.profile(ctx, "a-end", 10)
	for round := 0; ; round++ {
		order := []*side{flo, svc}
		if round%2 == 1 {
			order = []*side{svc, flo}
		}
		ran := false
		for _, s := range order {
			if s.res.ok >= o.ends || s.res.elapsed >= o.endsLimit || s.next >= len(s.ids) {
				continue
			}
			ran = true
			c0, err := b.counters(ctx)
			if err != nil {
				return err
			}
			cpu0 := b.cpu.snap()
			r := closedLoop(ctx, s.ids[s.next:], o.conc, min(slice, o.endsLimit-s.res.elapsed), s.end)
			cpu1 := b.cpu.snap()
			c1, err := b.counters(ctx)
			if err != nil {
				return err
			}
			s.next += r.claimed
			s.res.add(r)
			s.work = addCounters(s.work, c0, c1)
			s.cpu = addCPU(s.cpu, cpu0, cpu1)
			if r.failed > 0 {
				mem.stop()
				return fmt.Errorf("%s: %d ends failed: %v", s.name, r.failed, r.firstErr)
			}
		}
		if !ran || ctx.Err() != nil {
			break
		}
	}
	peak := mem.stop()
	wait()
	b.saveAllocs(ctx, "a-end")
	for _, s := range []*side{flo, svc} {
		logf("(a) %s: %d ends in %s: %.0f/s, p50 %s, p99 %s", s.name, s.res.ok, s.res.elapsed.Round(time.Millisecond), s.res.rate(),
			ms(percentile(s.res.latencies, 50)), ms(percentile(s.res.latencies, 99)))
		logf("(a) %s, per end: %s", s.name, perEnd(counters{redis: map[string]int64{}}, s.work, s.res.ok))
		logf("(a) %s: %s", s.name, cpuUse(cpuSnap{}, s.cpu))
	}
	if err := b.drain(ctx, "(a)"); err != nil {
		return err
	}

	sr, fr := svc.res, flo.res
	sp50, sp99 := percentile(sr.latencies, 50), percentile(sr.latencies, 99)
	fp50, fp99 := percentile(fr.latencies, 50), percentile(fr.latencies, 99)
	label := fmt.Sprintf("(a) end-call API, %d keep-alive clients", o.conc)
	b.rows = append(b.rows,
		row{label + ": ends/s", num(sr.rate()), num(fr.rate()), ratio(sr.rate(), fr.rate()), "≥ 1.0× floor"},
		row{label + ": p50", ms(sp50), ms(fp50), ratio(float64(sp50), float64(fp50)), ""},
		row{label + ": p99", ms(sp99), ms(fp99), ratio(float64(sp99), float64(fp99)), "≤ 1.25× floor"},
		row{"(e) peak RSS of `endcall all` during (a)", mib(peak), "", "", "report"},
	)
	b.notes = append(b.notes, fmt.Sprintf("(a) %s ends through the API and %s on the floor after %d warm-up ends each, in alternating 2 s slices; "+
		"`endcall all` (worker running, concurrency %d) processes the post-call work of both sides as it comes. The floor is %d goroutines in "+
		"the bench process running the service's UPDATE + delivery INSERT in a pgx transaction (begin, statement, commit), then one "+
		"asynq enqueue per task (room:delete, call:analyze) with its ID — no HTTP, no row lock, no Twilio request.",
		num(float64(sr.ok)), num(float64(fr.ok)), warmEnds, o.workerConc, o.conc))
	return nil
}

// addCounters adds the work between c0 and c1 to sum.
func addCounters(sum, c0, c1 counters) counters {
	if sum.redis == nil {
		sum.redis = map[string]int64{}
	}
	sum.commits += c1.commits - c0.commits
	sum.fsyncs += c1.fsyncs - c0.fsyncs
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

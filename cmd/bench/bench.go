package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/postgres"
)

// bench runs the measurements on an env.
type bench struct {
	*env
	pool      *pgxpool.Pool
	store     *postgres.Store
	redisOpt  asynq.RedisClientOpt
	rdb       *redis.Client
	asynq     *asynq.Client
	pprofAddr string
	cpu       cpuGroups
	// subscribed is set once the receiver's two endpoints are registered,
	// the second with rate_limit subscribedLimit (accepted or not).
	subscribed      bool
	subscribedLimit int
	limitAccepted   bool
	endpoints       [2]string
	// capacity is the rate of calls fully processed that (b) measured.
	capacity float64
}

// correctness notes what the fakes saw: one hangup per call ended through
// the API, no duplicate room deletion or delivery, valid signatures.
func (b *bench) correctness() {
	twice, never := 0, 0
	b.api.mu.Lock()
	ended := b.api.ended
	b.api.mu.Unlock()
	for _, r := range b.recs(ended) {
		switch n := r.hangups.Load(); {
		case n == 0:
			never++
		case n > 1:
			twice++
		}
	}
	received, rejected := b.receiver.received()
	b.notes = append(b.notes, fmt.Sprintf("Correctness: %s calls ended through the API, %d of them hung up more than once, %d never; "+
		"%d duplicate room deletions, %d duplicate webhook deliveries; signatures verified on every one of %s deliveries, %d rejected; "+
		"%d Twilio requests refused, %d LiveKit requests refused (every token verified).",
		num(float64(len(ended))), twice, never, b.calls.dupRooms.Load(), b.calls.dupDeliveries.Load(),
		num(float64(received)), rejected, b.twilio.refused(), b.livekit.Refused()))
}

// stored waits up to within for every call of ids to be stored as ok
// says, reading them through the store, and returns how many are.
func (b *bench) stored(ctx context.Context, ids []string, within time.Duration, ok func(*endcall.Call) bool) (int, error) {
	pending := ids
	deadline := time.Now().Add(within)
	for {
		var left []string
		for _, id := range pending {
			c, err := b.store.CallByID(ctx, id)
			if err != nil {
				return 0, err
			}
			if !ok(c) {
				left = append(left, id)
			}
		}
		pending = left
		if len(pending) == 0 || time.Now().After(deadline) {
			return len(ids) - len(pending), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func numCPU() int       { return runtime.NumCPU() }
func goVersion() string { return runtime.Version() }

// openPool opens a pool configured exactly as the service's.
func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	return postgres.Open(ctx, url)
}

func (b *bench) connectRedis() error {
	opt, err := asynq.ParseRedisURI(b.redisURL)
	if err != nil {
		return err
	}
	ro, ok := opt.(asynq.RedisClientOpt)
	if !ok {
		return fmt.Errorf("REDIS_URL: expected a single-server URL")
	}
	b.redisOpt = ro
	b.rdb = redis.NewClient(&redis.Options{Addr: ro.Addr, Password: ro.Password, DB: ro.DB})
	b.asynq = asynq.NewClient(ro)
	return nil
}

func (b *bench) closeRedis() {
	b.asynq.Close()
	b.rdb.Close()
}

// seed creates n active calls in the bench workspace.
func (b *bench) seed(ctx context.Context, n int) ([]string, error) {
	return seedCalls(ctx, b.pool, b.calls, b.ws, b.phoneID, n, "")
}

// drain waits until the worker has nothing pending, running or scheduled
// for retry in any queue, so that one measurement's backlog never weighs on
// the next.
func (b *bench) drain(ctx context.Context, what string) error {
	t0 := time.Now()
	deadline := t0.Add(3 * time.Minute)
	for {
		left := int64(0)
		for _, q := range []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueWebhooks} {
			p := "asynq:{" + q + "}:"
			pipe := b.rdb.Pipeline()
			l1 := pipe.LLen(ctx, p+"pending")
			l2 := pipe.LLen(ctx, p+"active")
			l3 := pipe.ZCard(ctx, p+"scheduled")
			l4 := pipe.ZCard(ctx, p+"retry")
			if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
				return err
			}
			left += l1.Val() + l2.Val() + l3.Val() + l4.Val()
		}
		if left == 0 {
			if d := time.Since(t0); d > time.Second {
				logf("%s: worker drained in %s", what, d.Round(100*time.Millisecond))
			}
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: %d tasks still queued after %s", what, left, time.Since(t0).Round(time.Second))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counters are the server-side work counters read around a measurement.
type counters struct {
	commits   int64
	walSyncs  int64 // pg_stat_wal.wal_sync: WAL flushes to disk
	walWrites int64 // pg_stat_wal.wal_write: WAL buffer writes
	redis     map[string]int64
	redisAll  int64
}

func (b *bench) counters(ctx context.Context) (counters, error) {
	var c counters
	if err := b.pool.QueryRow(ctx, `SELECT xact_commit, (SELECT wal_sync FROM pg_stat_wal), (SELECT wal_write FROM pg_stat_wal)
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&c.commits, &c.walSyncs, &c.walWrites); err != nil {
		return c, err
	}
	info, err := b.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return c, err
	}
	c.redis = map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest+",", ',')], 10, 64)
		name = strings.TrimPrefix(name, "cmdstat_")
		c.redis[name] = n
		c.redisAll += n
	}
	return c, nil
}

// perEnd describes the work between two counter readings per end.
func perEnd(before, after counters, ends int) string {
	if ends == 0 {
		return ""
	}
	n := float64(ends)
	type kv struct {
		k string
		v int64
	}
	var top []kv
	for k, v := range after.redis {
		if d := v - before.redis[k]; d > 0 {
			top = append(top, kv{k, d})
		}
	}
	sort.Slice(top, func(i, j int) bool { return top[i].v > top[j].v })
	var parts []string
	for _, t := range top[:min(len(top), 6)] {
		parts = append(parts, fmt.Sprintf("%s %.2f", t.k, float64(t.v)/n))
	}
	return fmt.Sprintf("Postgres commits %.2f, WAL flushes %.2f (writes %.2f), Redis commands %.2f (%s)",
		float64(after.commits-before.commits)/n, float64(after.walSyncs-before.walSyncs)/n, float64(after.walWrites-before.walWrites)/n,
		float64(after.redisAll-before.redisAll)/n, strings.Join(parts, ", "))
}

// profile fetches a CPU profile of the endcall process over the next
// seconds into the pprof directory; wait blocks until it is saved. A no-op
// without -pprof.
func (b *bench) profile(ctx context.Context, name string, seconds int) (wait func()) {
	if b.pprofAddr == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.savePprof(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), name+".cpu.pprof"); err != nil {
			logf("pprof %s: %v", name, err)
		}
	}()
	return wg.Wait
}

// saveAllocs saves the endcall process's allocation profile (cumulative).
func (b *bench) saveAllocs(ctx context.Context, name string) {
	if b.pprofAddr == "" {
		return
	}
	if err := b.savePprof(ctx, "/debug/pprof/allocs", name+".allocs.pprof"); err != nil {
		logf("pprof %s: %v", name, err)
	}
}

func (b *bench) savePprof(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.pprofAddr+path, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(filepath.Join(b.o.pprofDir, file))
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return err
}

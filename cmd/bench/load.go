package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what a closed-loop run of ends measured.
type loadResult struct {
	ok, failed int
	elapsed    time.Duration // first start to last finish
	latencies  []time.Duration
	firstErr   error
	start      time.Time
	claimed    int // ids taken, attempted or not (the next run starts after them)
}

// add accumulates another run of the same side.
func (r *loadResult) add(o loadResult) {
	r.ok += o.ok
	r.failed += o.failed
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
	if r.firstErr == nil {
		r.firstErr = o.firstErr
	}
}

func (r loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// closedLoop runs end(id) over ids with conc workers, each starting its
// next end as soon as the previous one finished, until every id is done or
// limit has passed (ends under way then finish).
func closedLoop(ctx context.Context, ids []string, conc int, limit time.Duration, end func(ctx context.Context, id string) error) loadResult {
	var next atomic.Int64
	var mu sync.Mutex
	res := loadResult{latencies: make([]time.Duration, 0, len(ids))}
	start := time.Now()
	stopAt := start.Add(limit)
	var last atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, len(ids)/conc+1)
			ok, failed := 0, 0
			var firstErr error
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if int(i) >= len(ids) || time.Now().After(stopAt) {
					break
				}
				t0 := time.Now()
				err := end(ctx, ids[i])
				t1 := time.Now()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				ok++
				lat = append(lat, t1.Sub(t0))
				for {
					cur := last.Load()
					if t1.UnixNano() <= cur || last.CompareAndSwap(cur, t1.UnixNano()) {
						break
					}
				}
			}
			mu.Lock()
			res.ok += ok
			res.failed += failed
			res.latencies = append(res.latencies, lat...)
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.start = start
	res.claimed = min(int(next.Load()), len(ids))
	if l := last.Load(); l > 0 {
		res.elapsed = time.Unix(0, l).Sub(start)
	}
	return res
}

// apiClient ends calls through POST /v1/calls/end over keep-alive
// connections.
type apiClient struct {
	base, key string
	http      *http.Client
	mu        sync.Mutex
	ended     []string // calls this client ended
}

func newAPIClient(base, key string) *apiClient {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 512, 512
	return &apiClient{base: base, key: key, http: &http.Client{Transport: t, Timeout: 30 * time.Second}}
}

var msgEnded = []byte(`"message":"Call ended"`)

// end ends one call and checks that this request is the one that ended it.
func (c *apiClient) end(ctx context.Context, id string) error {
	body := `{"call_id":"` + id + `"}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/calls/end", bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || !bytes.Contains(raw, msgEnded) {
		return fmt.Errorf("end %s: HTTP %d: %.200s", id, res.StatusCode, raw)
	}
	c.mu.Lock()
	c.ended = append(c.ended, id)
	c.mu.Unlock()
	return nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// readBudget is the client timeout of each read of (f): a read that takes
// longer counts as an error.
const readBudget = time.Second

// slowProvider is (f): the Twilio fake answers every hangup after
// -slow-delay while ends arrive at -slow-rate a second, and -readers
// clients read other routes (GET /v1/calls/{id}, GET /v1/calls/query,
// /readyz) in a closed loop until every end has answered. A slow provider
// must delay only the ends that wait on it.
func (b *bench) slowProvider(ctx context.Context) error {
	o := b.o
	ids, err := b.seed(ctx, max(1, int(float64(o.slowRate)*o.slowFor.Seconds())))
	if err != nil {
		return err
	}
	if err := b.drain(ctx, "(f) start"); err != nil {
		return err
	}
	b.twilio.setDelay(o.slowDelay)
	defer b.twilio.setDelay(0)

	routes := []struct{ name, path string }{
		{"GET /v1/calls/{id}", "/v1/calls/" + ids[0]},
		{"GET /v1/calls/query", "/v1/calls/query?per_page=10"},
		{"GET /readyz", "/readyz"},
	}
	client := &http.Client{Transport: b.api.http.Transport, Timeout: readBudget}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	lat := map[string][]time.Duration{}
	var all []time.Duration
	errs := 0
	var firstErr error
	for i := range o.readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				rt := routes[k%len(routes)]
				t0 := time.Now()
				err := b.read(ctx, client, rt.path)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: %w", rt.name, err)
					}
				} else {
					lat[rt.name] = append(lat[rt.name], d)
					all = append(all, d)
				}
				mu.Unlock()
			}
		}()
	}
	endLat, achieved, endErr := b.openLoop(ctx, ids, o.slowRate)
	close(stop)
	wg.Wait()
	if endErr != nil {
		return endErr
	}
	reads := len(all) + errs
	for _, rt := range routes {
		l := lat[rt.name]
		logf("(f) %s: %d reads, p50 %s, p99 %s, max %s", rt.name, len(l), ms(percentile(l, 50)), ms(percentile(l, 99)), ms(percentile(l, 100)))
	}
	if firstErr != nil {
		logf("(f) first read error: %v", firstErr)
	}
	hungUp := map[int]int{}
	for _, r := range b.recs(ids) {
		hungUp[int(r.hangups.Load())]++
	}
	logf("(f) %d ends at %.1f/s: p50 %s, p99 %s, max %s; calls by hangup requests received: %v",
		len(endLat), achieved, ms(percentile(endLat, 50)), ms(percentile(endLat, 99)), ms(percentile(endLat, 100)), hungUp)
	b.twilio.setDelay(0)
	if err := b.drain(ctx, "(f)"); err != nil {
		return err
	}
	label := fmt.Sprintf("(f) slow provider (hangups take %s), %d ends/s for %s", o.slowDelay, o.slowRate, o.slowFor)
	b.rows = append(b.rows,
		row{fmt.Sprintf("%s: other routes read by %d clients, p50 / p99", label, o.readers), ms(percentile(all, 50)) + " / " + ms(percentile(all, 99)), "", "", "p99 ≤ 100 ms"},
		row{label + ": reads failed or over " + readBudget.String(), fmt.Sprintf("%d of %d", errs, reads), "", "", "0"},
		row{label + ": ends p50 / p99", ms(percentile(endLat, 50)) + " / " + ms(percentile(endLat, 99)), "", "", "p99 ≤ 3.5 s"},
	)
	if n := len(ids) - hungUp[1]; n > 0 {
		b.notes = append(b.notes, fmt.Sprintf("(f) %d of %d calls did not receive exactly one hangup request (by count: %v).", n, len(ids), hungUp))
	}
	return nil
}

// read makes one authenticated GET and checks for a 200.
func (b *bench) read(ctx context.Context, c *http.Client, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.proc.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.key)
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", res.StatusCode, raw)
	}
	return nil
}

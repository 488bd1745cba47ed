package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// bulkJob is the part of the end-bulk job the bench reads.
type bulkJob struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	Matched      int    `json:"matched"`
	Ended        int    `json:"ended"`
	AlreadyEnded int    `json:"already_ended"`
	Failed       int    `json:"failed"`
}

// bulkEnd is (g): POST /v1/calls/end-bulk of one campaign's calls with the
// Twilio fake answering each hangup in -bulk-delay; the time until the job
// is completed, beside the bound 20 concurrent hangups per account set
// (calls × delay / 20), and call.ended delivered for every call.
func (b *bench) bulkEnd(ctx context.Context) error {
	o := b.o
	if _, err := b.subscribe(ctx, 0); err != nil {
		return err
	}
	_, salt := uuid()
	campaign := "bench-bulk-" + salt[:8]
	ids, err := seedCalls(ctx, b.pool, b.calls, b.ws, b.phoneID, o.bulkCalls, campaign)
	if err != nil {
		return err
	}
	if err := b.drain(ctx, "(g) start"); err != nil {
		return err
	}
	b.twilio.setDelay(o.bulkDelay)
	defer b.twilio.setDelay(0)
	bound := time.Duration(o.bulkCalls) * o.bulkDelay / 20
	label := fmt.Sprintf("(g) bulk end of %s calls of one campaign, Twilio answering in %s", num(float64(o.bulkCalls)), o.bulkDelay)

	t0 := time.Now()
	var job bulkJob
	status, err := b.apiJSON(ctx, http.MethodPost, "/v1/calls/end-bulk", map[string]any{"filter": map[string]any{"campaign_id": campaign}}, &job)
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		logf("(g) POST /v1/calls/end-bulk: HTTP %d: route missing", status)
		b.rows = append(b.rows, row{label + ": time to completed", "n/a (route missing)", ms(bound), "", "≤ 1.2× bound"})
		// The seeded calls stay active; no later measure reads them.
		return nil
	}
	if err != nil {
		return err
	}
	deadline := t0.Add(max(10*bound, 2*time.Minute))
	for job.Status != "completed" {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("bulk job %s not completed after %s: %+v", job.ID, time.Since(t0).Round(time.Second), job)
		}
		time.Sleep(100 * time.Millisecond)
		if _, err := b.apiJSON(ctx, http.MethodGet, "/v1/calls/end-bulk/"+job.ID, nil, &job); err != nil {
			return err
		}
	}
	took := time.Since(t0)
	logf("(g) job %s completed in %s: %+v", job.ID, took.Round(time.Millisecond), job)
	b.twilio.setDelay(0)

	// The responded time of each call is the job's start: freshness here is
	// from the request that asked for the ends.
	for _, r := range b.recs(ids) {
		r.responded.Store(t0.UnixNano())
	}
	fresh, missing := b.endedFreshness(ctx, ids, 2*time.Minute)
	hungUp := map[int]int{}
	for _, r := range b.recs(ids) {
		hungUp[int(r.hangups.Load())]++
	}
	inFlight := b.hangupsInFlight(t0, o.bulkDelay)
	logf("(g) call.ended %d/%d delivered (last %s after the request); calls by hangup requests received: %v; most hangups in flight ≈ %d",
		len(fresh), 2*len(ids), ms(percentile(fresh, 100)), hungUp, inFlight)
	if err := b.drain(ctx, "(g)"); err != nil {
		return err
	}
	b.rows = append(b.rows,
		row{label + ": time to completed (floor: calls × delay / 20)", ms(took), ms(bound), ratio(float64(took), float64(bound)), "≤ 1.2× bound"},
		row{label + ": call.ended delivered (2 endpoints a call)", fmt.Sprintf("%d of %d", len(fresh), len(fresh)+missing), "", "", "all"},
		row{label + ": most hangups in flight (from the fake's arrivals)", fmt.Sprint(inFlight), "", "", "≤ 20"},
	)
	b.notes = append(b.notes, fmt.Sprintf("(g) job counts: matched %d, ended %d, already ended %d, failed %d; calls by hangup requests received: %v.",
		job.Matched, job.Ended, job.AlreadyEnded, job.Failed, hungUp))
	return nil
}

// hangupsInFlight estimates the most hangups the Twilio fake was answering
// at once since t0: each takes delay, so those in flight at an arrival are
// the arrivals within delay before it.
func (b *bench) hangupsInFlight(t0 time.Time, delay time.Duration) int {
	var at []int64
	for _, r := range b.twilio.Requests() {
		if r.IsHangup() && !r.Time.Before(t0) {
			at = append(at, r.Time.UnixNano())
		}
	}
	slices.Sort(at)
	return mostWithin(at, delay)
}

// apiJSON makes one API request with the bench key and decodes the
// envelope's data into data; it returns the HTTP status as well.
func (b *bench) apiJSON(ctx context.Context, method, path string, body, data any) (int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.proc.url+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := b.api.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode >= 300 {
		return res.StatusCode, fmt.Errorf("%s %s: HTTP %d: %.300s", method, path, res.StatusCode, raw)
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return res.StatusCode, fmt.Errorf("%s %s: %v", method, path, err)
	}
	return res.StatusCode, json.Unmarshal(env.Data, data)
}

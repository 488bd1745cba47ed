package api_test

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// A page of a hundred calls with 1 MiB transcripts each is written as it is
// read: the heap grows by far less than the page's 100 MiB.
func TestQueryPageIsStreamed(t *testing.T) {
	b := setup(t)
	const calls, size = 100, 1 << 20
	// Compressible text, as the transcript's turns: it costs the database
	// little (no trigrams), and each call is still 1 MiB once read.
	_, err := b.pool.Exec(context.Background(), `INSERT INTO calls (workspace_id, call_from, call_to, call_direction, call_status, transcript_object)
		SELECT $1, '+15550009999', '+15550001234', 'outbound', 'completed',
			jsonb_build_array(jsonb_build_object('role', 'user', 'content', repeat('hello there ', $2 / 12)))
		FROM generate_series(1, $3) i`, b.workspace, size, calls)
	if err != nil {
		t.Fatal(err)
	}
	b.do("GET", "/v1/calls/query?per_page=100&page=100", "", nil).want(t, 200, "") // as deep as a page may start

	defer debug.SetGCPercent(debug.SetGCPercent(50))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	req, _ := http.NewRequest("GET", b.url+"/v1/calls/query?per_page=100", nil)
	req.Header.Set("Authorization", "Bearer "+b.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	close(stop)
	<-sampled
	if err != nil || res.StatusCode != 200 || n < calls*size {
		t.Fatalf("status %d, %d bytes, %v", res.StatusCode, n, err)
	}
	growth := int64(peak.Load()) - int64(before.HeapAlloc)
	t.Logf("a %d MiB page grew the heap by %d MiB at most", n>>20, growth>>20)
	if growth > 40<<20 {
		t.Errorf("a %d MiB page grew the heap by %d MiB", n>>20, growth>>20)
	}
}

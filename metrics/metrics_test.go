package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/metrics"
)

// TestQueueSeries checks that every queue has a size series in every
// state, zeros included, for a queue asynq has never seen as for one with
// an archived task.
func TestQueueSeries(t *testing.T) {
	t.Parallel()
	opt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	inspector := asynq.NewInspector(opt)
	defer inspector.Close()
	info, err := client.Enqueue(asynq.NewTask("t", nil), asynq.Queue("default"))
	if err != nil {
		t.Fatal(err)
	}
	if err := inspector.ArchiveTask("default", info.ID); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(inspector, "critical", "default", "webhooks")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`asynq_queue_size{queue="default",state="archived"} 1`,
		`asynq_queue_size{queue="default",state="pending"} 0`,
		`asynq_queue_size{queue="critical",state="archived"} 0`,
		`asynq_queue_size{queue="webhooks",state="retry"} 0`,
		`asynq_queue_size{queue="webhooks",state="active"} 0`,
		`asynq_queue_latency_seconds{queue="webhooks"} 0`,
		`asynq_tasks_failed_total{queue="critical"} 0`,
		`asynq_queue_paused{queue="default"} 0`,
		`endcall_webhook_attempts_total{outcome="rejected"} 0`,
		`endcall_calls_ended_total{trigger="overdue"} 0`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestQueueSeriesWithoutRedis checks that an unreachable Redis gives no
// queue series rather than false zeros, and that /metrics still answers.
func TestQueueSeriesWithoutRedis(t *testing.T) {
	t.Parallel()
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	defer inspector.Close()
	rec := httptest.NewRecorder()
	metrics.New(inspector, "default").Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || strings.Contains(rec.Body.String(), "asynq_queue_size{") || !strings.Contains(rec.Body.String(), "endcall_sweeper_requeued_total") {
		t.Errorf("without Redis: %d %s", rec.Code, rec.Body)
	}
}

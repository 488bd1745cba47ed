// Package metrics holds endcall's Prometheus series: HTTP
// requests, calls ended, provider hangups, webhook attempts, analyses, and
// asynq's queue sizes.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/endcall/endcall"
)

// Metrics is one process's registry and its series.
type Metrics struct {
	registry      *prometheus.Registry
	httpRequests  *prometheus.CounterVec
	httpLatency   *prometheus.HistogramVec
	callsEnded    *prometheus.CounterVec
	hangups       *prometheus.CounterVec
	webhookTries  *prometheus.CounterVec
	analyses      *prometheus.CounterVec
	sweepRequeued prometheus.Counter
}

// New registers the series. inspector, when not nil, adds the queue
// collector: for each of queues, sizes by state, latency, processed and
// failed counts.
func New(inspector *asynq.Inspector, queues ...string) *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry()}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "endcall_http_requests_total", Help: "HTTP requests by route, method and status.",
	}, []string{"route", "method", "status"})
	m.httpLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "endcall_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	m.callsEnded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "endcall_calls_ended_total", Help: "Calls ended, by what ended them (api, provider, overdue, bulk).",
	}, []string{"trigger"})
	m.hangups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "endcall_provider_hangups_total", Help: "Provider hangups by outcome (succeeded, already_ended, failed, retrying, skipped).",
	}, []string{"outcome"})
	m.webhookTries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "endcall_webhook_attempts_total", Help: "Webhook delivery attempts by outcome (succeeded, rejected, error, gone).",
	}, []string{"outcome"})
	m.analyses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "endcall_analyses_total", Help: "Call analyses by outcome (completed, failed).",
	}, []string{"outcome"})
	m.sweepRequeued = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "endcall_sweeper_requeued_total", Help: "Owed post-call work the reconciler found missing from the queue, or whose worker died on its last attempt, and queued again.",
	})
	// Every known outcome starts at zero, so that a rate or an alert has a
	// series before the first event.
	for _, v := range []struct {
		vec    *prometheus.CounterVec
		labels []string
	}{
		{m.callsEnded, labels(endcall.TriggerAPI, endcall.TriggerProvider, endcall.TriggerOverdue, endcall.TriggerBulk)},
		{m.hangups, labels(endcall.HangupPending, endcall.HangupSucceeded, endcall.HangupAlreadyEnded, endcall.HangupRetrying, endcall.HangupFailed, endcall.HangupSkipped)},
		{m.webhookTries, []string{"succeeded", "rejected", "error", "gone"}},
		{m.analyses, labels(endcall.AnalysisCompleted, endcall.AnalysisFailed)},
	} {
		for _, l := range v.labels {
			v.vec.WithLabelValues(l)
		}
	}
	m.registry.MustRegister(m.httpRequests, m.httpLatency, m.callsEnded, m.hangups, m.webhookTries, m.analyses, m.sweepRequeued,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if inspector != nil {
		m.registry.MustRegister(&queueCollector{inspector: inspector, queues: queues})
	}
	return m
}

// labels returns the values of a typed label as the strings Prometheus takes.
func labels[T ~string](values ...T) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// ObserveRequest records one HTTP request.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpLatency.WithLabelValues(route, method).Observe(d.Seconds())
}

// CallEnded records a transition and the outcome of its hangup.
func (m *Metrics) CallEnded(trigger endcall.Trigger, hangupStatus endcall.HangupStatus) {
	m.callsEnded.WithLabelValues(string(trigger)).Inc()
	m.Hangup(hangupStatus)
}

// Hangup records the outcome of a provider hangup (also background retries).
func (m *Metrics) Hangup(outcome endcall.HangupStatus) {
	m.hangups.WithLabelValues(string(outcome)).Inc()
}

// WebhookAttempt records one delivery attempt.
func (m *Metrics) WebhookAttempt(outcome string) { m.webhookTries.WithLabelValues(outcome).Inc() }

// Analysis records an analysis outcome.
func (m *Metrics) Analysis(outcome endcall.AnalysisStatus) {
	m.analyses.WithLabelValues(string(outcome)).Inc()
}

// Requeued records work the reconciler queued again.
func (m *Metrics) Requeued(n int) { m.sweepRequeued.Add(float64(n)) }

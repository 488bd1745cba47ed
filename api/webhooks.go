package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/webhook"
)

// WebhookStore is the persistence of the webhook routes.
type WebhookStore interface {
	CreateEndpoint(ctx context.Context, workspaceID, url string, events []string, description *string, rateLimit *int, secret string) (*endcall.WebhookEndpoint, error)
	ListEndpoints(ctx context.Context, workspaceID string) ([]*endcall.WebhookEndpoint, error)
	GetEndpoint(ctx context.Context, workspaceID, id string) (*endcall.WebhookEndpoint, error)
	PatchEndpoint(ctx context.Context, workspaceID, id string, p endcall.EndpointPatch) (*endcall.WebhookEndpoint, error)
	DeleteEndpoint(ctx context.Context, workspaceID, id string) error
	RotateSecret(ctx context.Context, workspaceID, id, secret string) (*endcall.WebhookEndpoint, error)
	ListDeliveries(ctx context.Context, f endcall.DeliveryFilter) ([]*endcall.Delivery, error)
	GetDelivery(ctx context.Context, workspaceID, id string) (*endcall.Delivery, error)
	ReplayDeliveries(ctx context.Context, f endcall.ReplayFilter, limit int) ([]*endcall.Delivery, error)
	CreateTestDelivery(ctx context.Context, workspaceID, endpointID, event string, body []byte, at time.Time) (*endcall.Delivery, error)
}

// DeliveryQueue queues deliveries: owed ones on their own schedule, and
// one-off resends.
type DeliveryQueue interface {
	Enqueue(ctx context.Context, work []endcall.Work) error
	Redeliver(ctx context.Context, work []endcall.Work) (int, error)
}

// Paging of delivery logs.
const (
	defaultDeliveries = 50
	maxDeliveries     = 100
	// maxCallDeliveries bounds a call's deliveries, which are few: one per
	// endpoint and event, and one more per re-analysis.
	maxCallDeliveries = 1000
	// maxReplay is the most deliveries one replay resends.
	maxReplay = 10000
)

var deliveryID = regexp.MustCompile(`^msg_[0-9a-f]{32}$`)

var allEvents = []string{endcall.EventCallEnded, endcall.EventCallAnalyzed}

// endpointWithSecret is an endpoint as shown once, on creation or rotation.
type endpointWithSecret struct {
	*endcall.WebhookEndpoint
	Secret string `json:"secret"`
}

func (s *Server) handleCreateWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	url, events, description, rateLimit, err := decodeWebhook(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := webhook.ValidateURL(r.Context(), url, s.allowPrivate, nil); err != nil {
		s.fail(w, r, err)
		return
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.webhooks.CreateEndpoint(r.Context(), workspaceFrom(r.Context()), url, events, description, rateLimit, secret)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusCreated, "Webhook endpoint created", endpointWithSecret{e, e.Secret})
}

func decodeWebhook(body []byte) (url string, events []string, description *string, rateLimit *int, err error) {
	o, err := parseObject(body)
	if err != nil {
		return "", nil, nil, nil, err
	}
	u, err := decodeURL(o)
	if err != nil {
		return "", nil, nil, nil, err
	} else if u == nil {
		return "", nil, nil, nil, invalid("url is required.")
	}
	events = allEvents
	if given, err := decodeEvents(o); err != nil {
		return "", nil, nil, nil, err
	} else if given != nil {
		events = given
	}
	if description, err = decodeDescription(o); err != nil {
		return "", nil, nil, nil, err
	}
	if rateLimit, err = decodeRateLimit(o); err != nil {
		return "", nil, nil, nil, err
	}
	return *u, events, description, rateLimit, nil
}

// decodeURL reads url; nil when absent or null.
func decodeURL(o object) (*string, error) {
	u, err := o.str("url")
	if err != nil {
		return nil, err
	} else if u != nil && *u == "" {
		return nil, invalid("url is required.")
	} else if u != nil && len(*u) > webhook.MaxURLLength {
		return nil, invalid("url must be at most %d characters.", webhook.MaxURLLength)
	}
	return u, nil
}

// decodeEvents reads events; nil when absent or null.
func decodeEvents(o object) ([]string, error) {
	var given []string
	if ok, err := o.field("events", "an array of event names", &given); err != nil || !ok {
		return nil, err
	}
	if len(given) == 0 {
		return nil, invalid(`events must name at least one of "call.ended" and "call.analyzed".`)
	}
	var events []string
	for _, e := range given {
		if !slices.Contains(allEvents, e) {
			return nil, invalid(`events: unknown event %q; use "call.ended" and/or "call.analyzed".`, e)
		}
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	return events, nil
}

func decodeDescription(o object) (*string, error) {
	description, err := o.str("description")
	if err != nil {
		return nil, err
	} else if description != nil && len([]rune(*description)) > 500 {
		return nil, invalid("description must be at most 500 characters.")
	}
	return description, nil
}

// decodeRateLimit reads rate_limit; nil when absent or null (no limit).
func decodeRateLimit(o object) (*int, error) {
	n, err := o.integer("rate_limit")
	if err != nil || n == nil {
		return nil, err
	}
	if *n < endcall.MinRateLimit || *n > endcall.MaxRateLimit {
		return nil, invalid("rate_limit must be from %d to %d requests a second, or null for no limit.", endcall.MinRateLimit, endcall.MaxRateLimit)
	}
	return n, nil
}

// decodeEndpointPatch reads the body of PATCH /v1/webhooks/{id}.
func decodeEndpointPatch(body []byte) (endcall.EndpointPatch, error) {
	var p endcall.EndpointPatch
	o, err := parseObject(body)
	if err != nil {
		return p, err
	}
	if o.has("url") && string(o["url"]) == "null" {
		return p, invalid("url cannot be null.")
	}
	if p.URL, err = decodeURL(o); err != nil {
		return p, err
	}
	if o.has("events") && string(o["events"]) == "null" {
		return p, invalid("events cannot be null.")
	}
	if p.Events, err = decodeEvents(o); err != nil {
		return p, err
	}
	if p.Description.Value, err = decodeDescription(o); err != nil {
		return p, err
	}
	p.Description.Set = o.has("description")
	if p.RateLimit.Value, err = decodeRateLimit(o); err != nil {
		return p, err
	}
	p.RateLimit.Set = o.has("rate_limit")
	var enabled bool
	if ok, err := o.field("enabled", "true or false", &enabled); err != nil {
		return p, err
	} else if ok {
		p.Enabled = &enabled
	} else if o.has("enabled") {
		return p, invalid("enabled cannot be null.")
	}
	return p, nil
}

// endpointID reads the {id} path variable; a malformed ID is not found.
func endpointID(r *http.Request) (string, error) {
	id, ok := parseUUID(mux.Vars(r)["id"])
	if !ok {
		return "", endcall.Errorf(endcall.ENOTFOUND, "webhook endpoint not found")
	}
	return id, nil
}

func (s *Server) handleListWebhooks(w http.ResponseWriter, r *http.Request) {
	list, err := s.webhooks.ListEndpoints(r.Context(), workspaceFrom(r.Context()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Webhook endpoints retrieved", list)
}

func (s *Server) handleGetWebhook(w http.ResponseWriter, r *http.Request) {
	id, err := endpointID(r)
	if err == nil {
		var e *endcall.WebhookEndpoint
		if e, err = s.webhooks.GetEndpoint(r.Context(), workspaceFrom(r.Context()), id); err == nil {
			s.success(w, http.StatusOK, "Webhook endpoint retrieved", e)
			return
		}
	}
	s.fail(w, r, err)
}

func (s *Server) handleDeleteWebhook(w http.ResponseWriter, r *http.Request) {
	id, err := endpointID(r)
	if err == nil {
		if err = s.webhooks.DeleteEndpoint(r.Context(), workspaceFrom(r.Context()), id); err == nil {
			s.success(w, http.StatusOK, "Webhook endpoint deleted", map[string]string{"id": id})
			return
		}
	}
	s.fail(w, r, err)
}

// readEmptyBody accepts what the body-less actions take: nothing, or {}.
func readEmptyBody(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, maxBody)
	if err != nil {
		return err
	}
	if b := bytes.TrimSpace(body); len(b) > 0 {
		if o, err := parseObject(b); err != nil || len(o) > 0 {
			return invalid("This action takes no body: send nothing or {}.")
		}
	}
	return nil
}

func (s *Server) handleRotateSecret(w http.ResponseWriter, r *http.Request) {
	id, err := endpointID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := readEmptyBody(w, r); err != nil {
		s.fail(w, r, err)
		return
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	e, err := s.webhooks.RotateSecret(r.Context(), workspaceFrom(r.Context()), id, secret)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Webhook secret rotated; the previous secret also signs for 24 hours", endpointWithSecret{e, e.Secret})
}

func (s *Server) handlePatchWebhook(w http.ResponseWriter, r *http.Request) {
	id, err := endpointID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := decodeEndpointPatch(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if p.URL != nil {
		if err := webhook.ValidateURL(r.Context(), *p.URL, s.allowPrivate, nil); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	e, err := s.webhooks.PatchEndpoint(r.Context(), workspaceFrom(r.Context()), id, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Webhook endpoint updated", e)
}

// pageQuery reads limit and cursor into f.
func pageQuery(r *http.Request, f *endcall.DeliveryFilter) error {
	q := r.URL.Query()
	f.Limit = defaultDeliveries
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeliveries {
			return invalid("limit must be an integer from 1 to %d.", maxDeliveries)
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, err := decodeCursor(v)
		if err != nil {
			return err
		}
		f.After = c
	}
	return nil
}

// statusQuery reads the status filter into f.
func statusQuery(r *http.Request, f *endcall.DeliveryFilter) error {
	f.Status = endcall.DeliveryStatus(r.URL.Query().Get("status"))
	if f.Status != "" && !f.Status.Valid() {
		return invalid(`status must be "pending", "succeeded" or "failed".`)
	}
	return nil
}

// encodeCursor names the position after d in the newest-first order.
func encodeCursor(d *endcall.Delivery) string {
	return base64.RawURLEncoding.EncodeToString([]byte(d.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + d.ID))
}

// decodeCursor reads a cursor that encodeCursor made.
func decodeCursor(v string) (*endcall.DeliveryCursor, error) {
	bad := invalid("cursor is not one this API gave; use the next_cursor of a previous page.")
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, bad
	}
	at, id, ok := strings.Cut(string(raw), "|")
	if !ok || !deliveryID.MatchString(id) {
		return nil, bad
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil || t.Year() < 2000 || t.Year() > 9999 {
		return nil, bad
	}
	return &endcall.DeliveryCursor{CreatedAt: t, ID: id}, nil
}

// listDeliveries answers one page of the deliveries f selects, with
// next_cursor naming the next page, null on the last.
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request, f endcall.DeliveryFilter) {
	limit := f.Limit
	f.Limit++
	list, err := s.webhooks.ListDeliveries(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var next *string
	if len(list) > limit {
		list = list[:limit]
		c := encodeCursor(list[limit-1])
		next = &c
	}
	writeJSON(w, http.StatusOK, pageEnvelope{Status: "success", Message: "Webhook deliveries retrieved", Data: list, NextCursor: next})
}

// pageEnvelope is the success envelope of a cursor-paged list.
type pageEnvelope struct {
	Status     string  `json:"status"`
	Message    string  `json:"message"`
	Data       any     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func (s *Server) handleListDeliveries(w http.ResponseWriter, r *http.Request) {
	id, err := endpointID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := endcall.DeliveryFilter{WorkspaceID: workspaceFrom(r.Context()), EndpointID: id}
	if err := errors.Join(statusQuery(r, &f), pageQuery(r, &f)); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.webhooks.GetEndpoint(r.Context(), f.WorkspaceID, id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.listDeliveries(w, r, f)
}

func (s *Server) handleListWorkspaceDeliveries(w http.ResponseWriter, r *http.Request) {
	f := endcall.DeliveryFilter{WorkspaceID: workspaceFrom(r.Context())}
	if err := errors.Join(statusQuery(r, &f), pageQuery(r, &f)); err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	if f.Event = q.Get("event"); f.Event != "" && !slices.Contains(allEvents, f.Event) {
		s.fail(w, r, invalid(`event must be "call.ended" or "call.analyzed".`))
		return
	}
	var ok bool
	if v := q.Get("endpoint_id"); v != "" {
		if f.EndpointID, ok = parseUUID(v); !ok {
			s.fail(w, r, invalid("endpoint_id must be a webhook endpoint ID (a UUID)."))
			return
		}
	}
	if v := q.Get("call_id"); v != "" {
		if f.CallID, ok = parseUUID(v); !ok {
			s.fail(w, r, invalid("call_id must be a call ID (a UUID)."))
			return
		}
	}
	s.listDeliveries(w, r, f)
}

func (s *Server) handleCallDeliveries(w http.ResponseWriter, r *http.Request) {
	id, ok := parseUUID(mux.Vars(r)["id"])
	if !ok {
		s.fail(w, r, endcall.Errorf(endcall.ENOTFOUND, "call not found"))
		return
	}
	setCallID(r, id)
	ws := workspaceFrom(r.Context())
	if _, err := s.store.GetCall(r.Context(), ws, id); err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := s.webhooks.ListDeliveries(r.Context(), endcall.DeliveryFilter{WorkspaceID: ws, CallID: id, Limit: maxCallDeliveries})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Webhook deliveries retrieved", list)
}

// liveEndpoint returns the workspace's endpoint, or ECONFLICT when it is
// disabled: a disabled endpoint gets nothing new.
func (s *Server) liveEndpoint(ctx context.Context, ws, id string) (*endcall.WebhookEndpoint, error) {
	e, err := s.webhooks.GetEndpoint(ctx, ws, id)
	if err == nil && !e.Enabled {
		err = endcall.Errorf(endcall.ECONFLICT, "The webhook endpoint is disabled; enable it with PATCH /v1/webhooks/{id} first.")
	}
	return e, err
}

// deliveryWork is the work of resending d to e.
func deliveryWork(ws string, e *endcall.WebhookEndpoint, d *endcall.Delivery) endcall.Work {
	w := endcall.Work{Kind: endcall.WorkDeliver, DeliveryID: d.ID, WorkspaceID: ws, EndpointID: e.ID, Host: webhook.Host(e.URL), Event: d.Event}
	if d.CallID != nil {
		w.CallID = *d.CallID
	}
	return w
}

func (s *Server) handleRedeliver(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !deliveryID.MatchString(id) {
		s.fail(w, r, endcall.Errorf(endcall.ENOTFOUND, "webhook delivery not found"))
		return
	}
	if err := readEmptyBody(w, r); err != nil {
		s.fail(w, r, err)
		return
	}
	ws := workspaceFrom(r.Context())
	d, err := s.webhooks.GetDelivery(r.Context(), ws, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if d.CallID != nil {
		setCallID(r, *d.CallID)
	}
	e, err := s.webhooks.GetEndpoint(r.Context(), ws, d.EndpointID)
	if endcall.ErrorCode(err) == endcall.ENOTFOUND || (err == nil && !e.Enabled) {
		err = endcall.Errorf(endcall.ECONFLICT, "The delivery's endpoint is deleted or disabled.")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.queue.Redeliver(r.Context(), []endcall.Work{deliveryWork(ws, e, d)}); err != nil {
		s.log.Warn("queueing a redelivery failed", "delivery_id", d.ID, "error", err)
		s.fail(w, r, endcall.Errorf(endcall.EUNAVAILABLE, "The queue is unavailable; try again shortly."))
		return
	}
	s.success(w, http.StatusAccepted, "Redelivery queued", d)
}

// exampleCall is the call of a test event: plausible values, is_test true,
// and nothing stored.
func exampleCall(ws, event string, now time.Time) *endcall.Call {
	started, ended := now.Add(-95*time.Second).UTC(), now.UTC()
	c := &endcall.Call{ID: "00000000-0000-4000-8000-000000000000", WorkspaceID: ws, CallProvider: "twilio",
		CallFrom: "+15550100000", CallTo: "+15550100001", CallDirection: "outbound", CallStatus: endcall.StatusCompleted,
		CallDuration: new(95), IsTest: true, DisconnectReason: new(endcall.ReasonAPIDefault),
		ProviderHangupStatus: new(endcall.HangupSkipped), RoomStatus: new(endcall.RoomSkipped),
		TranscriptObject: []endcall.Turn{{Role: "agent", Content: "Hello, this is a test call."}, {Role: "user", Content: "Thanks, goodbye."}},
		CreatedAt:        started, UpdatedAt: ended, StartedAt: &started, EndedAt: &ended}
	if event == endcall.EventCallAnalyzed {
		c.AnalysisStatus = new(endcall.AnalysisCompleted)
		c.AnalysisSentiment = new("positive")
		c.Analysis = &endcall.Analysis{Analyzer: "builtin", Sentiment: "positive", SentimentScore: 0.8,
			Summary: "A test call.", AnalyzedAt: ended}
	} else {
		c.AnalysisStatus = new(endcall.AnalysisPending)
	}
	return c
}

func (s *Server) handleTestWebhook(w http.ResponseWriter, r *http.Request) {
	id, err := endpointID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o, err := parseObject(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	typ, err := o.str("type")
	if err == nil && (typ == nil || !slices.Contains(allEvents, *typ)) {
		err = invalid(`type must be "call.ended" or "call.analyzed".`)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ws := workspaceFrom(r.Context())
	e, err := s.liveEndpoint(r.Context(), ws, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	event, err := endcall.EventBody(*typ, now, exampleCall(ws, *typ, now))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.webhooks.CreateTestDelivery(r.Context(), ws, id, *typ, event, now)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Owed in Postgres now: if this enqueue fails, the reconciler queues it.
	if err := s.queue.Enqueue(r.Context(), []endcall.Work{deliveryWork(ws, e, d)}); err != nil {
		s.log.Warn("queueing a test delivery failed; the reconciler queues it", "delivery_id", d.ID, "error", err)
	}
	s.success(w, http.StatusAccepted, "Test event queued", d)
}

// decodeReplay reads the body of POST /v1/webhooks/{id}/replay.
func decodeReplay(body []byte, now time.Time) (endcall.ReplayFilter, error) {
	var f endcall.ReplayFilter
	o, err := parseObject(body)
	if err != nil {
		return f, err
	}
	since, err := o.str("since")
	if err != nil {
		return f, err
	} else if since == nil {
		return f, invalid("since is required (an RFC 3339 time).")
	}
	if f.Since, err = time.Parse(time.RFC3339Nano, *since); err != nil {
		return f, invalid("since must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z.")
	}
	if until, err := o.str("until"); err != nil {
		return f, err
	} else if until != nil {
		if f.Until, err = time.Parse(time.RFC3339Nano, *until); err != nil {
			return f, invalid("until must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z.")
		}
		if !f.Until.After(f.Since) {
			return f, invalid("until must be after since.")
		}
	}
	if f.Since.After(now) {
		return f, invalid("since must not be in the future.")
	}
	f.Status = endcall.DeliveryFailed
	if st, err := o.str("status"); err != nil {
		return f, err
	} else if st != nil {
		status := endcall.DeliveryStatus(*st)
		if status != endcall.DeliveryFailed && status != endcall.DeliverySucceeded && status != "all" {
			return f, invalid(`status must be "failed", "succeeded" or "all".`)
		}
		f.Status = status
	}
	return f, nil
}

func (s *Server) handleReplay(w http.ResponseWriter, r *http.Request) {
	id, err := endpointID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f, err := decodeReplay(body, s.now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f.WorkspaceID, f.EndpointID = workspaceFrom(r.Context()), id
	e, err := s.liveEndpoint(r.Context(), f.WorkspaceID, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := s.webhooks.ReplayDeliveries(r.Context(), f, maxReplay+1)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(list) > maxReplay {
		s.fail(w, r, invalid("More than %d deliveries match; replay a shorter window (since and until).", maxReplay))
		return
	}
	work := make([]endcall.Work, len(list))
	for i, d := range list {
		work[i] = deliveryWork(f.WorkspaceID, e, d)
	}
	n, err := s.queue.Redeliver(r.Context(), work)
	if err != nil {
		s.log.Warn("queueing a replay failed", "endpoint_id", id, "queued", n, "of", len(work), "error", err)
		s.fail(w, r, endcall.Errorf(endcall.EUNAVAILABLE, "The queue is unavailable (%d of %d deliveries queued); try again shortly.", n, len(work)))
		return
	}
	s.success(w, http.StatusAccepted, "Replay queued", map[string]int{"count": n})
}

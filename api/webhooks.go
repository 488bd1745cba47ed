package api

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"slices"

	"github.com/gorilla/mux"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/webhook"
)

// WebhookStore is the persistence of the webhook routes.
type WebhookStore interface {
	CreateEndpoint(ctx context.Context, workspaceID, url string, events []string, description *string, secret string) (*endcall.WebhookEndpoint, error)
	ListEndpoints(ctx context.Context, workspaceID string) ([]*endcall.WebhookEndpoint, error)
	GetEndpoint(ctx context.Context, workspaceID, id string) (*endcall.WebhookEndpoint, error)
	DeleteEndpoint(ctx context.Context, workspaceID, id string) error
	RotateSecret(ctx context.Context, workspaceID, id, secret string) (*endcall.WebhookEndpoint, error)
	ListDeliveries(ctx context.Context, workspaceID, endpointID, status string, limit int) ([]*endcall.Delivery, error)
	GetDelivery(ctx context.Context, workspaceID, id string) (*endcall.Delivery, error)
}

// Redeliverer queues a one-off resend of a delivery.
type Redeliverer interface {
	Redeliver(ctx context.Context, d *endcall.Delivery) error
}

// maxDeliveries is how many deliveries one listing returns, newest first.
const maxDeliveries = 100

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
	url, events, description, err := decodeWebhook(body)
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
	e, err := s.webhooks.CreateEndpoint(r.Context(), workspaceFrom(r.Context()), url, events, description, secret)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusCreated, "Webhook endpoint created", endpointWithSecret{e, e.Secret})
}

func decodeWebhook(body []byte) (url string, events []string, description *string, err error) {
	o, err := parseObject(body)
	if err != nil {
		return "", nil, nil, err
	}
	u, err := o.str("url")
	if err != nil {
		return "", nil, nil, err
	} else if u == nil || *u == "" {
		return "", nil, nil, invalid("url is required.")
	} else if len(*u) > webhook.MaxURLLength {
		return "", nil, nil, invalid("url must be at most %d characters.", webhook.MaxURLLength)
	}
	events = allEvents
	var given []string
	if ok, err := o.field("events", "an array of event names", &given); err != nil {
		return "", nil, nil, err
	} else if ok {
		if len(given) == 0 {
			return "", nil, nil, invalid(`events must name at least one of "call.ended" and "call.analyzed".`)
		}
		events = nil
		for _, e := range given {
			if !slices.Contains(allEvents, e) {
				return "", nil, nil, invalid(`events: unknown event %q; use "call.ended" and/or "call.analyzed".`, e)
			}
			if !slices.Contains(events, e) {
				events = append(events, e)
			}
		}
	}
	if description, err = o.str("description"); err != nil {
		return "", nil, nil, err
	} else if description != nil && len([]rune(*description)) > 500 {
		return "", nil, nil, invalid("description must be at most 500 characters.")
	}
	return *u, events, description, nil
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

func (s *Server) handleListDeliveries(w http.ResponseWriter, r *http.Request) {
	id, err := endpointID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := r.URL.Query().Get("status")
	if status != "" && status != endcall.DeliveryPending && status != endcall.DeliverySucceeded && status != endcall.DeliveryFailed {
		s.fail(w, r, invalid(`status must be "pending", "succeeded" or "failed".`))
		return
	}
	list, err := s.webhooks.ListDeliveries(r.Context(), workspaceFrom(r.Context()), id, status, maxDeliveries)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Webhook deliveries retrieved", list)
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
	setCallID(r, d.CallID)
	e, err := s.webhooks.GetEndpoint(r.Context(), ws, d.EndpointID)
	if endcall.ErrorCode(err) == endcall.ENOTFOUND || (err == nil && !e.Enabled) {
		err = endcall.Errorf(endcall.ECONFLICT, "The delivery's endpoint is deleted or disabled.")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.redeliver.Redeliver(r.Context(), d); err != nil {
		s.log.Warn("queueing a redelivery failed", "delivery_id", d.ID, "error", err)
		s.fail(w, r, endcall.Errorf(endcall.EUNAVAILABLE, "The queue is unavailable; try again shortly."))
		return
	}
	s.success(w, http.StatusAccepted, "Redelivery queued", d)
}

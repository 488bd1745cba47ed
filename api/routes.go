package api

import (
	"maps"
	"net/http"
	"slices"

	"github.com/gorilla/mux"
)

// routes mounts every route of the API. Fixed paths come before {id}
// patterns so that /v1/calls/end is never read as a call ID.
func (s *Server) routes() {
	r := s.router
	r.Use(s.logRequests)
	r.NotFoundHandler = s.logRequests(http.HandlerFunc(s.notFound))
	r.MethodNotAllowedHandler = s.logRequests(http.HandlerFunc(s.methodNotAllowed))

	s.mount(r, "/openapi.json", methods{http.MethodGet: http.HandlerFunc(s.handleOpenAPI)})
	v1 := r.PathPrefix("/v1").Subrouter()
	auth := func(h http.HandlerFunc) http.Handler { return s.authenticate(h) }
	s.mount(v1, "/calls/end", methods{http.MethodPost: s.legacyEmpty(auth(s.handleEndCall))})
	s.mount(v1, "/calls", methods{http.MethodPost: auth(s.handleCreateCall)})
	s.mount(v1, "/calls/query", methods{http.MethodGet: auth(s.handleQueryCalls)})
	s.mount(v1, "/calls/make-call", methods{http.MethodPost: auth(s.handleMakeCall)})
	s.mount(v1, "/calls/end-bulk", methods{http.MethodPost: auth(s.handleEndBulk)})
	s.mount(v1, "/calls/end-bulk/{id}", methods{http.MethodGet: auth(s.handleGetBulkEnd)})
	// Twilio authenticates by request signature, not bearer token. Its
	// callback URL may carry the platform's own (signed) query parameters.
	s.mount(v1, "/providers/twilio/status", methods{http.MethodPost: http.HandlerFunc(s.handleTwilioStatus)})
	s.mount(v1, "/calls/{id}", methods{http.MethodGet: auth(s.handleGetCall), http.MethodPatch: auth(s.handlePatchCall)})
	s.mount(v1, "/calls/{id}/analyze", methods{http.MethodPost: auth(s.handleReanalyze)})
	s.mount(v1, "/calls/{id}/deliveries", methods{http.MethodGet: auth(s.handleCallDeliveries)})

	s.mount(v1, "/analysis-plans", methods{http.MethodPost: auth(s.handleCreatePlan), http.MethodGet: auth(s.handleListPlans)})
	s.mount(v1, "/analysis-plans/{id}", methods{http.MethodGet: auth(s.handleGetPlan),
		http.MethodPut: auth(s.handleReplacePlan), http.MethodDelete: auth(s.handleDeletePlan)})

	s.mount(v1, "/phone-numbers", methods{http.MethodPost: auth(s.handleCreatePhoneNumber), http.MethodGet: auth(s.handleListPhoneNumbers)})
	s.mount(v1, "/phone-numbers/{id}", methods{http.MethodDelete: auth(s.handleDeletePhoneNumber)})

	s.mount(v1, "/webhooks", methods{http.MethodPost: auth(s.handleCreateWebhook), http.MethodGet: auth(s.handleListWebhooks)})
	s.mount(v1, "/webhooks/{id}", methods{http.MethodGet: auth(s.handleGetWebhook), http.MethodPatch: auth(s.handlePatchWebhook),
		http.MethodDelete: auth(s.handleDeleteWebhook)})
	s.mount(v1, "/webhooks/{id}/test", methods{http.MethodPost: auth(s.handleTestWebhook)})
	s.mount(v1, "/webhooks/{id}/replay", methods{http.MethodPost: auth(s.handleReplay)})
	s.mount(v1, "/webhooks/{id}/rotate-secret", methods{http.MethodPost: auth(s.handleRotateSecret)})
	s.mount(v1, "/webhooks/{id}/deliveries", methods{http.MethodGet: auth(s.handleListDeliveries)})
	s.mount(v1, "/webhook-deliveries", methods{http.MethodGet: auth(s.handleListWorkspaceDeliveries)})
	s.mount(v1, "/webhook-deliveries/{id}/redeliver", methods{http.MethodPost: auth(s.handleRedeliver)})
}

// methods are a path's handlers by HTTP method.
type methods map[string]http.Handler

// mount routes each method of path to its handler and every other method to
// 405 with Allow. The catch-all route is mux's own way to stop a wrong
// method on a fixed path (GET /v1/calls/end) falling through to an {id}
// pattern; mux's MethodNotAllowedHandler cannot do it for a subrouter,
// whose every route also matches the /v1 prefix and so clears the method
// mismatch an earlier route recorded.
func (s *Server) mount(r *mux.Router, path string, m methods) {
	allowed := slices.Sorted(maps.Keys(m))
	for _, method := range allowed {
		r.Handle(path, m[method]).Methods(method)
	}
	r.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.notAllowed(w, r, allowed) }))
}

package api

import "net/http"

// routes mounts every route of the API. Fixed paths come before {id}
// patterns so that /v1/calls/end is never read as a call ID.
func (s *Server) routes() {
	r := s.router
	r.Use(s.logRequests)
	r.NotFoundHandler = s.logRequests(http.HandlerFunc(s.notFound))
	r.MethodNotAllowedHandler = s.logRequests(http.HandlerFunc(s.methodNotAllowed))

	r.HandleFunc("/openapi.json", s.handleOpenAPI).Methods(http.MethodGet)
	v1 := r.PathPrefix("/v1").Subrouter()
	v1.Handle("/calls/end", s.legacyEmpty(s.authenticate(http.HandlerFunc(s.handleEndCall)))).Methods(http.MethodPost)
	v1.Handle("/calls", s.authenticate(http.HandlerFunc(s.handleCreateCall))).Methods(http.MethodPost)
	v1.Handle("/calls/query", s.authenticate(http.HandlerFunc(s.handleQueryCalls))).Methods(http.MethodGet)
	v1.Handle("/calls/make-call", s.authenticate(http.HandlerFunc(s.handleMakeCall))).Methods(http.MethodPost)
	v1.Handle("/calls/end-bulk", s.authenticate(http.HandlerFunc(s.handleEndBulk))).Methods(http.MethodPost)
	v1.Handle("/calls/end-bulk/{id}", s.authenticate(http.HandlerFunc(s.handleGetBulkEnd))).Methods(http.MethodGet)
	// Twilio authenticates by request signature, not bearer token.
	v1.HandleFunc("/providers/twilio/status", s.handleTwilioStatus).Methods(http.MethodPost)
	v1.Handle("/calls/{id}", s.authenticate(http.HandlerFunc(s.handleGetCall))).Methods(http.MethodGet)
	v1.Handle("/calls/{id}", s.authenticate(http.HandlerFunc(s.handlePatchCall))).Methods(http.MethodPatch)
	v1.Handle("/calls/{id}/analyze", s.authenticate(http.HandlerFunc(s.handleReanalyze))).Methods(http.MethodPost)

	v1.Handle("/analysis-plans", s.authenticate(http.HandlerFunc(s.handleCreatePlan))).Methods(http.MethodPost)
	v1.Handle("/analysis-plans", s.authenticate(http.HandlerFunc(s.handleListPlans))).Methods(http.MethodGet)
	v1.Handle("/analysis-plans/{id}", s.authenticate(http.HandlerFunc(s.handleGetPlan))).Methods(http.MethodGet)
	v1.Handle("/analysis-plans/{id}", s.authenticate(http.HandlerFunc(s.handleReplacePlan))).Methods(http.MethodPut)
	v1.Handle("/analysis-plans/{id}", s.authenticate(http.HandlerFunc(s.handleDeletePlan))).Methods(http.MethodDelete)

	v1.Handle("/phone-numbers", s.authenticate(http.HandlerFunc(s.handleCreatePhoneNumber))).Methods(http.MethodPost)
	v1.Handle("/phone-numbers", s.authenticate(http.HandlerFunc(s.handleListPhoneNumbers))).Methods(http.MethodGet)
	v1.Handle("/phone-numbers/{id}", s.authenticate(http.HandlerFunc(s.handleDeletePhoneNumber))).Methods(http.MethodDelete)

	v1.Handle("/webhooks", s.authenticate(http.HandlerFunc(s.handleCreateWebhook))).Methods(http.MethodPost)
	v1.Handle("/webhooks", s.authenticate(http.HandlerFunc(s.handleListWebhooks))).Methods(http.MethodGet)
	v1.Handle("/webhooks/{id}", s.authenticate(http.HandlerFunc(s.handleGetWebhook))).Methods(http.MethodGet)
	v1.Handle("/webhooks/{id}", s.authenticate(http.HandlerFunc(s.handleDeleteWebhook))).Methods(http.MethodDelete)
	v1.Handle("/webhooks/{id}/rotate-secret", s.authenticate(http.HandlerFunc(s.handleRotateSecret))).Methods(http.MethodPost)
	v1.Handle("/webhooks/{id}/deliveries", s.authenticate(http.HandlerFunc(s.handleListDeliveries))).Methods(http.MethodGet)
	v1.Handle("/webhook-deliveries/{id}/redeliver", s.authenticate(http.HandlerFunc(s.handleRedeliver))).Methods(http.MethodPost)
}

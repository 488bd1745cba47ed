package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/endcall/endcall"
)

// statusOf maps each domain error code to its HTTP status: the one table.
var statusOf = map[string]int{
	endcall.EINVALID:      http.StatusBadRequest,
	endcall.EUNAUTHORIZED: http.StatusUnauthorized,
	endcall.EFORBIDDEN:    http.StatusForbidden,
	endcall.ENOTFOUND:     http.StatusNotFound,
	endcall.ECONFLICT:     http.StatusConflict,
	endcall.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	endcall.EMEDIATYPE:    http.StatusUnsupportedMediaType,
	endcall.ERATELIMITED:  http.StatusTooManyRequests,
	endcall.EUNAVAILABLE:  http.StatusServiceUnavailable,
	endcall.EINTERNAL:     http.StatusInternalServerError,
}

type successEnvelope struct {
	Status     string      `json:"status"`
	Message    string      `json:"message"`
	Data       any         `json:"data"`
	Pagination *Pagination `json:"pagination,omitempty"`
}

// Pagination is the paging block of list responses.
type Pagination struct {
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
	Total   int `json:"total"`
}

type errorEnvelope struct {
	Status  string    `json:"status"`
	Message string    `json:"message"`
	Error   errorCode `json:"error"`
}

type errorCode struct {
	Code string `json:"code"`
	// RequestID is the request's X-Request-Id, by which its log lines are found.
	RequestID string `json:"request_id"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"status":"error","message":"Internal error.","error":{"code":"internal"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

func (s *Server) success(w http.ResponseWriter, status int, message string, data any) {
	writeJSON(w, status, successEnvelope{Status: "success", Message: message, Data: data})
}

// fail writes err as the error envelope. Internal errors are logged with
// their cause and shown only as a generic message. Under legacy mode the
// route answers 200 with an empty body instead.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := endcall.ErrorCode(err)
	info := requestInfoFrom(r.Context())
	if code == endcall.EINTERNAL || code == endcall.EUNAVAILABLE {
		attrs := []any{"method", r.Method, "path", r.URL.Path, "error", err}
		if info != nil {
			attrs = append(attrs, "request_id", info.requestID)
		}
		s.log.ErrorContext(r.Context(), "request failed", attrs...)
	}
	if info != nil && info.legacyEmpty {
		info.errCode = code
		w.WriteHeader(http.StatusOK)
		return
	}
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	writeError(w, r, status, code, endcall.ErrorMessage(err))
}

// writeError writes the error envelope with the request's id; a 401 says
// which scheme would be accepted.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	var id string
	if info := requestInfoFrom(r.Context()); info != nil {
		info.errCode = code
		id = info.requestID
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	writeJSON(w, status, errorEnvelope{Status: "error", Message: message, Error: errorCode{Code: code, RequestID: id}})
}

// requestInfo is filled in by handlers for the access log and read by fail.
type requestInfo struct {
	requestID   string
	route       string
	callID      string
	errCode     string
	legacyEmpty bool
}

type requestInfoKey struct{}

func requestInfoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// setCallID records the call a request is about, for the access log.
func setCallID(r *http.Request, id string) {
	if info := requestInfoFrom(r.Context()); info != nil {
		info.callID = id
	}
}

func logAttrs(info *requestInfo) []slog.Attr {
	attrs := []slog.Attr{slog.String("request_id", info.requestID), slog.String("route", info.route)}
	if info.callID != "" {
		attrs = append(attrs, slog.String("call_id", info.callID))
	}
	if info.errCode != "" {
		attrs = append(attrs, slog.String("error_code", info.errCode))
	}
	return attrs
}

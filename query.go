package endcall

import (
	"strings"
	"time"
)

// CallQuery is a validated GET /v1/calls/query. Empty strings
// and nil pointers are filters that were not given.
type CallQuery struct {
	WorkspaceID string
	CampaignID  string
	AIAgentID   string
	// Statuses are the call statuses the status parameter matched; nil
	// means no status filter, empty means nothing can match.
	Statuses         []CallStatus
	Search           string
	DisconnectReason string
	// StartedFrom and StartedBefore bound started_at: from inclusive,
	// before exclusive (end_date plus one day).
	StartedFrom, StartedBefore *time.Time
	Page, PerPage              int
	SortColumn                 string
	Descending                 bool
	Filters                    []CallFilter
}

// CallFilter is one advanced filter: Value is nil for is_null and
// not_null, else a string, int64, bool, time.Time or UUID string according
// to the column's type.
type CallFilter struct {
	Column   string
	Operator string
	Value    any
}

// Column types of the query whitelist; they decide which operators apply
// and how filter values parse.
const (
	ColumnText = iota + 1
	ColumnInt
	ColumnBool
	ColumnTime
	ColumnUUID
)

// FilterColumns maps every column an advanced filter may name to its type.
var FilterColumns = map[string]int{
	"id": ColumnUUID, "phone_number_id": ColumnUUID,
	"call_sid": ColumnText, "call_provider": ColumnText, "call_from": ColumnText, "call_to": ColumnText,
	"call_direction": ColumnText, "call_status": ColumnText, "ai_agent_id": ColumnText,
	"campaign_id": ColumnText, "contact_id": ColumnText, "room_name": ColumnText, "record_url": ColumnText,
	"transcript": ColumnText, "notes": ColumnText, "call_feedback": ColumnText,
	"disconnect_reason": ColumnText, "provider_hangup_status": ColumnText, "room_status": ColumnText,
	"analysis_status": ColumnText, "analysis_sentiment": ColumnText,
	"call_duration": ColumnInt, "call_rating": ColumnInt, "max_duration_seconds": ColumnInt,
	"is_test":    ColumnBool,
	"created_at": ColumnTime, "updated_at": ColumnTime, "started_at": ColumnTime, "ended_at": ColumnTime,
}

// SortColumns are the columns a query may sort by.
var SortColumns = []string{"created_at", "started_at", "ended_at", "call_duration", "call_status",
	"call_to", "call_from", "disconnect_reason", "analysis_sentiment", "updated_at"}

// Filter operators.
const (
	OpEq       = "eq"
	OpNe       = "ne"
	OpContains = "contains"
	OpGt       = "gt"
	OpGte      = "gte"
	OpLt       = "lt"
	OpLte      = "lte"
	OpIsNull   = "is_null"
	OpNotNull  = "not_null"
)

// OperatorApplies reports whether op is a known operator that makes sense
// for a column of type typ: contains is for text, ordering is not for
// booleans and UUIDs.
func OperatorApplies(op string, typ int) bool {
	switch op {
	case OpEq, OpNe, OpIsNull, OpNotNull:
		return true
	case OpContains:
		return typ == ColumnText
	case OpGt, OpGte, OpLt, OpLte:
		return typ != ColumnBool && typ != ColumnUUID
	}
	return false
}

// Statuses lists every call status, active and final.
var Statuses = []CallStatus{StatusQueued, StatusRinging, StatusInProgress, StatusCompleted,
	StatusCanceled, StatusBusy, StatusNoAnswer, StatusFailed}

// StatusesMatching returns the statuses that contain s, ignoring case: the
// status filter's partial match, resolved against the closed set of values
// call_status can hold so that the database can use an index for it.
func StatusesMatching(s string) []CallStatus {
	s = strings.ToLower(s)
	out := []CallStatus{}
	for _, st := range Statuses {
		if strings.Contains(string(st), s) {
			out = append(out, st)
		}
	}
	return out
}

package endcall

import (
	"encoding/json"
	"time"
)

// CallStatus is the state of a call with its provider, Twilio's names.
type CallStatus string

// Call statuses. The first three are active; the rest are final.
const (
	StatusQueued     CallStatus = "queued"
	StatusRinging    CallStatus = "ringing"
	StatusInProgress CallStatus = "in-progress"
	StatusCompleted  CallStatus = "completed"
	StatusCanceled   CallStatus = "canceled"
	StatusBusy       CallStatus = "busy"
	StatusNoAnswer   CallStatus = "no-answer"
	StatusFailed     CallStatus = "failed"
)

// IsActive reports whether a call in this status can still be ended.
func IsActive(status CallStatus) bool {
	return status == StatusQueued || status == StatusRinging || status == StatusInProgress
}

// StatusRank orders the active statuses so that updates only move forward.
func StatusRank(status CallStatus) int {
	switch status {
	case StatusQueued:
		return 1
	case StatusRinging:
		return 2
	case StatusInProgress:
		return 3
	}
	return 4
}

// HangupStatus is where the provider hangup an ended call owes stands, as
// stored in provider_hangup_status.
type HangupStatus string

// Provider hangup outcomes.
const (
	HangupPending      HangupStatus = "pending"
	HangupSucceeded    HangupStatus = "succeeded"
	HangupAlreadyEnded HangupStatus = "already_ended"
	HangupFailed       HangupStatus = "failed"
	HangupRetrying     HangupStatus = "retrying"
	HangupSkipped      HangupStatus = "skipped"
)

// RoomStatus is where the deletion of an ended call's media room stands.
type RoomStatus string

// Room statuses.
const (
	RoomPending RoomStatus = "pending"
	RoomDeleted RoomStatus = "deleted"
	RoomSkipped RoomStatus = "skipped"
	RoomFailed  RoomStatus = "failed"
)

// AnalysisStatus is where the analysis of an ended call stands.
type AnalysisStatus string

// Analysis statuses.
const (
	AnalysisPending   AnalysisStatus = "pending"
	AnalysisCompleted AnalysisStatus = "completed"
	AnalysisFailed    AnalysisStatus = "failed"
)

// Trigger is what ended a call; the label of the calls-ended metric.
type Trigger string

// Triggers.
const (
	TriggerAPI      Trigger = "api"
	TriggerProvider Trigger = "provider"
	TriggerOverdue  Trigger = "overdue"
	TriggerBulk     Trigger = "bulk"
)

// Disconnect reasons the service writes itself.
const (
	ReasonAPIDefault = "Ended Via API call"
	ReasonOverdue    = "Exceeded maximum call duration"
	ReasonBulk       = "Ended in bulk"
)

// Turn is one utterance of a transcript.
type Turn struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	StartMS *int64 `json:"start_ms"`
	EndMS   *int64 `json:"end_ms"`
}

// Call is the call object the API answers with and webhooks carry. Absent
// values are nil and marshal as null.
type Call struct {
	ID                    string          `json:"id"`
	WorkspaceID           string          `json:"workspace_id"`
	PhoneNumberID         *string         `json:"phone_number_id"`
	CallSID               *string         `json:"call_sid"`
	CallProvider          string          `json:"call_provider"`
	CallFrom              string          `json:"call_from"`
	CallTo                string          `json:"call_to"`
	CallDirection         string          `json:"call_direction"`
	CallStatus            CallStatus      `json:"call_status"`
	CallDuration          *int            `json:"call_duration"`
	IsTest                bool            `json:"is_test"`
	AIAgentID             *string         `json:"ai_agent_id"`
	CampaignID            *string         `json:"campaign_id"`
	ContactID             *string         `json:"contact_id"`
	RoomName              *string         `json:"room_name"`
	RecordURL             *string         `json:"record_url"`
	Transcript            *string         `json:"transcript"`
	TranscriptObject      []Turn          `json:"transcript_object"`
	Metadata              json.RawMessage `json:"metadata"`
	AgentDynamicVariables json.RawMessage `json:"agent_dynamic_variables"`
	Notes                 *string         `json:"notes"`
	CallRating            *int            `json:"call_rating"`
	CallFeedback          *string         `json:"call_feedback"`
	MaxDurationSeconds    *int            `json:"max_duration_seconds"`
	DisconnectReason      *string         `json:"disconnect_reason"`
	FinalMessage          *string         `json:"final_message"`
	ProviderHangupStatus  *HangupStatus   `json:"provider_hangup_status"`
	RoomStatus            *RoomStatus     `json:"room_status"`
	AnalysisStatus        *AnalysisStatus `json:"analysis_status"`
	AnalysisSentiment     *string         `json:"analysis_sentiment"`
	Analysis              *Analysis       `json:"analysis"`
	AgentPostCallOutcomes json.RawMessage `json:"agent_post_call_outcomes"`
	CreatedAt             time.Time       `json:"created_at"`
	UpdatedAt             time.Time       `json:"updated_at"`
	StartedAt             *time.Time      `json:"started_at"`
	EndedAt               *time.Time      `json:"ended_at"`
}

// Analysis is the stored result of call:analyze.
type Analysis struct {
	Analyzer       string    `json:"analyzer"`
	Sentiment      string    `json:"sentiment"`
	SentimentScore float64   `json:"sentiment_score"`
	Summary        string    `json:"summary"`
	Metrics        Metrics   `json:"metrics"`
	AnalyzedAt     time.Time `json:"analyzed_at"`
	// PlanID and PlanVersion name the analysis plan applied; nil without one.
	PlanID      *string `json:"plan_id"`
	PlanVersion *int    `json:"plan_version"`
	// Fields holds every field of the plan by name, JSON null where it
	// could not be filled; nil without a plan.
	Fields map[string]json.RawMessage `json:"fields"`
	// Success is the verdict of the plan's rubric; nil without one.
	Success *Success `json:"success"`
	// Usage is what the LLM spent; nil with the built-in analyzer.
	Usage *Usage `json:"usage"`
	// Version counts the analysis runs of the call, from 1.
	Version int `json:"version"`
	// Error says why the LLM's answer was not used, when it was not.
	Error *string `json:"error"`
}

// Success is a rubric's verdict: Passed for a pass_fail rubric, Score (1 to
// 10) for a score_1_10 one.
type Success struct {
	Passed *bool  `json:"passed,omitempty"`
	Score  *int   `json:"score,omitempty"`
	Reason string `json:"reason"`
}

// Usage is the model and tokens an LLM analysis spent, over all its requests.
type Usage struct {
	Model            string `json:"model"`
	PromptTokens     int    `json:"prompt_tokens"`
	CompletionTokens int    `json:"completion_tokens"`
}

// Metrics are the conversation figures computed from transcript_object.
type Metrics struct {
	DurationSeconds    int      `json:"duration_seconds"`
	Turns              int      `json:"turns"`
	AgentTurns         int      `json:"agent_turns"`
	UserTurns          int      `json:"user_turns"`
	AgentWords         int      `json:"agent_words"`
	UserWords          int      `json:"user_words"`
	AgentTalkRatio     float64  `json:"agent_talk_ratio"`
	WordsPerMinute     float64  `json:"words_per_minute"`
	AvgAgentResponseMS *float64 `json:"avg_agent_response_ms"`
}

// TranscriptText renders turns as the plain transcript: one "role: content"
// line a turn.
func TranscriptText(turns []Turn) string {
	var b []byte
	for i, t := range turns {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, t.Role...)
		b = append(b, ": "...)
		b = append(b, t.Content...)
	}
	return string(b)
}

// Optional is a field of a partial update: Set says whether the request
// named it, Value is nil when it was set to null.
type Optional[T any] struct {
	Set   bool
	Value *T
}

// CallPatch is a PATCH of a call. Only CallRating and CallFeedback may
// change once a call has ended.
type CallPatch struct {
	CallStatus       Optional[CallStatus]
	TranscriptObject Optional[[]Turn]
	RecordURL        Optional[string]
	Notes            Optional[string]
	Metadata         Optional[json.RawMessage]
	RoomName         Optional[string]
	CallRating       Optional[int]
	CallFeedback     Optional[string]
}

// TouchesActiveFields reports whether the patch changes anything besides the
// rating and feedback, which is refused on an ended call.
func (p CallPatch) TouchesActiveFields() bool {
	return p.CallStatus.Set || p.TranscriptObject.Set || p.RecordURL.Set || p.Notes.Set || p.Metadata.Set || p.RoomName.Set
}

// Deref returns *p, or the zero value when p is nil: an absent field of a
// Call reads as empty.
func Deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

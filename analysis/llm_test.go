package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis/llmtest"
)

const testAPIKey = "sk-test"

// goodAnswer is what a well-behaved model returns for negativeCall without
// a plan.
const goodAnswer = `{"summary":"The caller complained about a late order and asked for a refund.","sentiment":"negative","sentiment_score":-0.8,` +
	`"agent_post_call_outcomes":{"call_successful":false,"outcome":"refund requested","customer_intent":"get a refund",` +
	`"follow_up_required":true,"action_items":["process refund"]}}`

// testPlan has a field of each type, required and optional, and a score
// rubric.
var testPlan = &endcall.AnalysisPlan{
	ID: "5b1f6a3e-0000-4000-8000-000000000001", Name: "support", Version: 3,
	SummaryInstructions: "Mention the order number.",
	Fields: []endcall.PlanField{
		{Name: "order_number", Type: endcall.FieldString, Description: "The order the caller asks about.", Required: true},
		{Name: "reason", Type: endcall.FieldEnum, Choices: []string{"late", "damaged", "other"}},
		{Name: "items", Type: endcall.FieldInteger},
		{Name: "refund_amount", Type: endcall.FieldNumber},
		{Name: "escalated", Type: endcall.FieldBoolean, Required: true},
	},
	SuccessRubric: &endcall.SuccessRubric{Type: endcall.RubricScore, Criteria: "The caller's problem is solved."},
}

// planAnswer answers testPlan; with replaces one piece of it.
func planAnswer(with ...string) string {
	s := `{"summary":"Order 42 was late; a refund was promised.","sentiment":"negative","sentiment_score":-0.6,` +
		`"agent_post_call_outcomes":{"call_successful":true,"outcome":"refund","customer_intent":"refund","follow_up_required":false,"action_items":[]},` +
		`"fields":{"order_number":"42","reason":"late","items":2,"refund_amount":null,"escalated":false},` +
		`"success":{"score":7,"reason":"A refund was promised."}}`
	for i := 0; i+1 < len(with); i += 2 {
		s = strings.Replace(s, with[i], with[i+1], 1)
	}
	return s
}

func newLLM(f *llmtest.Server) *LLM {
	return &LLM{
		BaseURL: f.URL, APIKey: testAPIKey, Model: "test-model",
		Timeout: 2 * time.Second, MaxAttempts: 3,
		Backoff: func(int) time.Duration { return time.Millisecond },
		Builtin: Builtin{Now: clock},
	}
}

func TestLLMAnalyzeWithPlan(t *testing.T) {
	t.Parallel()
	f := llmtest.New(t, llmtest.OK(planAnswer()))
	a, out, err := newLLM(f).Analyze(context.Background(), negativeCall, testPlan)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	id, version, score := testPlan.ID, 3, 7
	want := &endcall.Analysis{
		Analyzer: NameLLM, Sentiment: Negative, SentimentScore: -0.6,
		Summary: "Order 42 was late; a refund was promised.",
		Metrics: ComputeMetrics(negativeCall), AnalyzedAt: fixedNow,
		PlanID: &id, PlanVersion: &version,
		Fields: map[string]json.RawMessage{"order_number": json.RawMessage(`"42"`), "reason": json.RawMessage(`"late"`),
			"items": json.RawMessage(`2`), "refund_amount": json.RawMessage(`null`), "escalated": json.RawMessage(`false`)},
		Success: &endcall.Success{Score: &score, Reason: "A refund was promised."},
		Usage:   &endcall.Usage{Model: "fake-model", PromptTokens: 100, CompletionTokens: 20},
	}
	if jsonOf(a) != jsonOf(want) {
		t.Errorf("Analysis:\n got %s\nwant %s", jsonOf(a), jsonOf(want))
	}
	if !strings.Contains(string(out), `"outcome":"refund"`) {
		t.Errorf("agent_post_call_outcomes: got %s", out)
	}

	reqs := f.Requests()
	if len(reqs) != 1 {
		t.Fatalf("requests: got %d, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method+" "+r.Path != "POST /v1/chat/completions" || r.Authorization != "Bearer "+testAPIKey || r.ContentType != "application/json" || r.Model != "test-model" {
		t.Errorf("request: got %s %s auth %q type %q model %q", r.Method, r.Path, r.Authorization, r.ContentType, r.Model)
	}
	rf := r.ResponseFormat
	if rf.Type != "json_schema" || rf.JSONSchema.Name != "call_analysis" || !rf.JSONSchema.Strict {
		t.Errorf("response_format: got %+v, want a strict json_schema", rf)
	}
	var schema struct {
		Properties struct {
			Fields struct {
				Properties map[string]map[string]any `json:"properties"`
				Required   []string                  `json:"required"`
			} `json:"fields"`
			Success struct {
				Required []string `json:"required"`
			} `json:"success"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if err := json.Unmarshal(rf.JSONSchema.Schema, &schema); err != nil {
		t.Fatal(err)
	}
	fp := schema.Properties.Fields.Properties
	if got := fp["order_number"]["type"]; got != "string" {
		t.Errorf("order_number (required) type: got %v, want string", got)
	}
	if got := jsonOf(fp["reason"]["type"]) + jsonOf(fp["reason"]["enum"]); got != `["string","null"]["late","damaged","other",null]` {
		t.Errorf("reason (optional enum): got %s", got)
	}
	if got := jsonOf(fp["items"]["type"]); got != `["integer","null"]` {
		t.Errorf("items (optional integer) type: got %s", got)
	}
	if !slices.Equal(schema.Required, []string{"summary", "sentiment", "sentiment_score", "agent_post_call_outcomes", "fields", "success"}) ||
		!slices.Equal(schema.Properties.Success.Required, []string{"score", "reason"}) {
		t.Errorf("required: got %v and success %v", schema.Required, schema.Properties.Success.Required)
	}
	if len(r.Messages) != 2 || !strings.Contains(r.Messages[0].Content, "Mention the order number.") ||
		!strings.Contains(r.Messages[0].Content, "The caller's problem is solved.") ||
		!strings.Contains(r.Messages[1].Content, "user: I'm angry and frustrated.") {
		t.Errorf("messages: got %+v, want the instructions, the criteria and the transcript", r.Messages)
	}
}

func TestLLMAnalyzeWithoutPlan(t *testing.T) {
	t.Parallel()
	f := llmtest.New(t, llmtest.OK(goodAnswer))
	a, _, err := newLLM(f).Analyze(context.Background(), negativeCall, nil)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	if a.PlanID != nil || a.Fields != nil || a.Success != nil || a.Usage == nil || a.Sentiment != Negative {
		t.Errorf("got %s, want no plan parts and usage", jsonOf(a))
	}
}

func TestLLMRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		replies      []llmtest.Reply
		wantErr      bool
		wantRequests int
	}{
		{"500 then success", []llmtest.Reply{{Status: 500, Raw: `{"error":{"message":"overloaded"}}`}, llmtest.OK(goodAnswer)}, false, 2},
		{"429 then success", []llmtest.Reply{{Status: 429, RetryAfter: "0"}, llmtest.OK(goodAnswer)}, false, 2},
		{"502, 503 then success", []llmtest.Reply{{Status: 502}, {Status: 503}, llmtest.OK(goodAnswer)}, false, 3},
		{"always 500", []llmtest.Reply{{Status: 500}}, true, 3},
		{"slow answers past the timeout", []llmtest.Reply{{Content: goodAnswer, Delay: 3 * time.Second}}, true, 3},
		{"429 asking to wait beyond the backoff cap", []llmtest.Reply{{Status: 429, RetryAfter: "120"}, llmtest.OK(goodAnswer)}, true, 1},
		{"401 is not retried", []llmtest.Reply{{Status: 401, Raw: `{"error":{"message":"bad key"}}`}}, true, 1},
		{"400 is not retried", []llmtest.Reply{{Status: 400}}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := llmtest.New(t, tt.replies...)
			l := newLLM(f)
			l.Timeout = 200 * time.Millisecond
			a, _, err := l.Analyze(context.Background(), negativeCall, nil)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Analyze: got %v, want error %v", err, tt.wantErr)
			}
			if err == nil && a.Analyzer != NameLLM {
				t.Errorf("Analyzer: got %q, want %q", a.Analyzer, NameLLM)
			}
			if got := len(f.Requests()); got != tt.wantRequests {
				t.Errorf("requests: got %d, want %d", got, tt.wantRequests)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{"-3", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.header, now); got != tt.want {
			t.Errorf("retryAfter(%q): got %v, want %v", tt.header, got, tt.want)
		}
	}
}

func TestLLMAsksAgainWithTheValidationErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		bad     string
		wantErr string // in the message sent back to the model
	}{
		{"text that is not JSON", `Sure! The caller was angry.`, "not JSON"},
		{"trailing data", planAnswer() + ` {}`, "not JSON"},
		{"missing required field", planAnswer(`"order_number":"42",`, ``), "order_number"},
		{"value outside the enum", planAnswer(`"reason":"late"`, `"reason":"weather"`), "/fields/reason"},
		{"wrong type", planAnswer(`"items":2`, `"items":"two"`), "/fields/items"},
		{"null for a required field", planAnswer(`"escalated":false`, `"escalated":null`), "/fields/escalated"},
		{"score out of range", planAnswer(`"score":7`, `"score":11`), "/success/score"},
		{"sentiment outside the enum", planAnswer(`"negative"`, `"angry"`), "/sentiment"},
		{"extra property", planAnswer(`"items":2`, `"items":2,"mood":"bad"`), "mood"},
		{"empty summary", planAnswer(`"Order 42 was late; a refund was promised."`, `" "`), "summary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := llmtest.New(t, llmtest.OK(tt.bad), llmtest.OK(planAnswer()))
			a, _, err := newLLM(f).Analyze(context.Background(), negativeCall, testPlan)
			if err != nil {
				t.Fatalf("Analyze: %v", err)
			}
			if a.Analyzer != NameLLM || string(a.Fields["order_number"]) != `"42"` {
				t.Errorf("got %s, want the second answer", jsonOf(a))
			}
			if a.Usage.PromptTokens != 200 || a.Usage.CompletionTokens != 40 {
				t.Errorf("usage: got %+v, want both requests counted", a.Usage)
			}
			reqs := f.Requests()
			if len(reqs) != 2 {
				t.Fatalf("requests: got %d, want 2", len(reqs))
			}
			m := reqs[1].Messages
			if len(m) != 4 || m[2].Role != "assistant" || m[2].Content != tt.bad || m[3].Role != "user" || !strings.Contains(m[3].Content, tt.wantErr) {
				t.Errorf("second request's messages: got %+v, want the bad answer and errors naming %q", m, tt.wantErr)
			}
		})
	}
}

func TestLLMInvalidTwice(t *testing.T) {
	t.Parallel()
	bad := planAnswer(`"reason":"late"`, `"reason":"weather"`)
	f := llmtest.New(t, llmtest.OK(bad))
	_, _, err := newLLM(f).Analyze(context.Background(), negativeCall, testPlan)
	var invalid *InvalidAnswerError
	if !errors.As(err, &invalid) || IsTemporary(err) {
		t.Fatalf("Analyze: got %v, want an *InvalidAnswerError", err)
	}
	if got := len(f.Requests()); got != 2 {
		t.Errorf("requests: got %d, want 2", got)
	}

	// Behind Fallback: the built-in result, with no fields or verdict and
	// the reason.
	f = llmtest.New(t, llmtest.OK(bad))
	a, out, err := Fallback{Primary: newLLM(f), Secondary: Builtin{Now: clock}}.Analyze(context.Background(), negativeCall, testPlan)
	if err != nil {
		t.Fatalf("Fallback: %v", err)
	}
	if a.Analyzer != NameBuiltin || a.Fields != nil || a.Success != nil || a.Usage != nil || out != nil ||
		a.Error == nil || !strings.Contains(*a.Error, "/fields/reason") || a.PlanID == nil || *a.PlanID != testPlan.ID {
		t.Errorf("Fallback: got %s, want the builtin result naming the plan, with the error", jsonOf(a))
	}
}

func TestLLMRefusalAndCutOffAreAskedAgain(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`{"choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}`,
		`{"choices":[{"message":{"content":"{\"summary\":\"s"},"finish_reason":"length"}]}`,
	} {
		f := llmtest.New(t, llmtest.Reply{Raw: raw}, llmtest.OK(goodAnswer))
		if _, _, err := newLLM(f).Analyze(context.Background(), negativeCall, nil); err != nil {
			t.Errorf("Analyze after %s: %v", raw, err)
		}
		if got := len(f.Requests()); got != 2 {
			t.Errorf("requests after %s: got %d, want 2", raw, got)
		}
	}
}

func TestLLMNotACompletion(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{`<html>`, `{"choices":[]}`} {
		f := llmtest.New(t, llmtest.Reply{Raw: raw})
		if _, _, err := newLLM(f).Analyze(context.Background(), negativeCall, nil); err == nil {
			t.Errorf("Analyze with %s: got nil error", raw)
		}
	}
}

func TestLLMEmptyTranscriptSkipsModel(t *testing.T) {
	t.Parallel()
	f := llmtest.New(t, llmtest.OK(goodAnswer))
	a, out, err := newLLM(f).Analyze(context.Background(), callWith(), testPlan)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	if a.Analyzer != NameBuiltin || a.Summary != EmptySummary || out != nil || len(a.Fields) != len(testPlan.Fields) {
		t.Errorf("got %s, want the builtin empty result listing the plan's fields", jsonOf(a))
	}
	if got := len(f.Requests()); got != 0 {
		t.Errorf("requests: got %d, want 0", got)
	}
}

func TestLLMHonoursContext(t *testing.T) {
	t.Parallel()
	f := llmtest.New(t, llmtest.Reply{Status: 503})
	l := newLLM(f)
	l.Backoff = func(int) time.Duration { return time.Hour }
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, _, err := l.Analyze(ctx, negativeCall, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Analyze: got %v, want context.DeadlineExceeded", err)
	}
}

func TestFallback(t *testing.T) {
	t.Parallel()
	t.Run("LLM always failing falls back to builtin", func(t *testing.T) {
		t.Parallel()
		f := llmtest.New(t, llmtest.Reply{Status: 500})
		var fellBack []error
		an := Fallback{Primary: newLLM(f), Secondary: Builtin{Now: clock}, OnFallback: func(_ *endcall.Call, err error) {
			fellBack = append(fellBack, err)
		}}
		a, out, err := an.Analyze(context.Background(), negativeCall, nil)
		if err != nil {
			t.Fatalf("Analyze: %v", err)
		}
		want := analyze(t, negativeCall)
		want.Error = a.Error
		if !reflect.DeepEqual(a, want) || a.Error == nil || !strings.Contains(*a.Error, "HTTP 500") {
			t.Errorf("Analysis:\n got %s\nwant the builtin %s with the error", jsonOf(a), jsonOf(want))
		}
		if out != nil || len(fellBack) != 1 {
			t.Errorf("got outcomes %s and %d fallbacks, want none and 1", out, len(fellBack))
		}
	})
	t.Run("temporary failure deferred while the task has retries", func(t *testing.T) {
		t.Parallel()
		f := llmtest.New(t, llmtest.Reply{Status: 429, RetryAfter: "600"})
		an := Fallback{Primary: newLLM(f), Secondary: Builtin{Now: clock}, Defer: func(context.Context) bool { return true }}
		if a, _, err := an.Analyze(context.Background(), negativeCall, nil); err == nil || !IsTemporary(err) {
			t.Errorf("got %s, %v; want the temporary error", jsonOf(a), err)
		}
		an.Defer = func(context.Context) bool { return false }
		if a, _, err := an.Analyze(context.Background(), negativeCall, nil); err != nil || a.Analyzer != NameBuiltin {
			t.Errorf("last attempt: got %s, %v; want the builtin result", jsonOf(a), err)
		}
	})
	t.Run("context ended: no fallback", func(t *testing.T) {
		t.Parallel()
		f := llmtest.New(t, llmtest.Reply{Status: 500})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		a, _, err := Fallback{Primary: newLLM(f), Secondary: Builtin{Now: clock}}.Analyze(ctx, negativeCall, nil)
		if err == nil {
			t.Errorf("got %s, want an error so that the task runs again", jsonOf(a))
		}
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	an, err := New(Config{Now: clock})
	if err != nil {
		t.Fatalf("New without LLM: %v", err)
	}
	if _, isBuiltin := an.(Builtin); !isBuiltin {
		t.Errorf("New without LLM: got %T, want Builtin", an)
	}
	an, err = New(Config{LLMBaseURL: "https://api.example.com/v1", LLMModel: "m", Now: clock})
	if err != nil {
		t.Fatalf("New with LLM: %v", err)
	}
	fb, isFallback := an.(Fallback)
	if !isFallback {
		t.Fatalf("New with LLM: got %T, want Fallback", an)
	}
	if l, isLLM := fb.Primary.(*LLM); !isLLM || l.Model != "m" {
		t.Errorf("New with LLM: primary %#v, want *LLM with model m", fb.Primary)
	}
	bad := []Config{
		{LLMBaseURL: "https://api.example.com/v1"},     // no model
		{LLMBaseURL: "api.example.com", LLMModel: "m"}, // no scheme
		{LLMModel: "m"}, // no base URL
		{LLMBaseURL: "ftp://api.example.com", LLMModel: "m"}, // not http
		{LLMAPIKey: "k"}, // key without base URL
	}
	for _, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): got nil error, want one", cfg)
		}
	}
}

func TestAnswerSchemaIsStrict(t *testing.T) {
	t.Parallel()
	// Strict structured output: every object lists all its properties as
	// required and forbids others.
	var walk func(path string, s map[string]any)
	walk = func(path string, s map[string]any) {
		if s["type"] == "object" {
			props, _ := s["properties"].(map[string]any)
			var names, req []string
			for k := range props {
				names = append(names, k)
			}
			for _, r := range s["required"].([]any) {
				req = append(req, r.(string))
			}
			slices.Sort(names)
			slices.Sort(req)
			if !slices.Equal(names, req) {
				t.Errorf("%s: properties %v, required %v; want equal", path, names, req)
			}
			if s["additionalProperties"] != false {
				t.Errorf("%s: additionalProperties %v, want false", path, s["additionalProperties"])
			}
			for k, v := range props {
				walk(path+"."+k, v.(map[string]any))
			}
		}
		if items, isMap := s["items"].(map[string]any); isMap {
			walk(path+"[]", items)
		}
	}
	for _, plan := range []*endcall.AnalysisPlan{nil, testPlan} {
		sch, err := CompileSchema(plan)
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		if err := json.Unmarshal(sch.JSON, &s); err != nil {
			t.Fatalf("schema: %v", err)
		}
		walk("$", s)
	}
}

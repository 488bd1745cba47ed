package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/endcall/endcall"
)

const (
	testModel  = "test-model"
	testAPIKey = "sk-test"
)

// goodAnswer is what a well-behaved model returns for negativeCall.
const goodAnswer = `{"summary":"The caller complained about a late order and asked for a refund.","sentiment":"negative","sentiment_score":-0.8,` +
	`"agent_post_call_outcomes":{"call_successful":false,"outcome":"refund requested","customer_intent":"get a refund",` +
	`"follow_up_required":true,"action_items":["process refund"]}}`

// fakeLLM is an OpenAI-compatible chat-completions endpoint. It checks
// each request's shape, then answers with the next entry of replies (the
// last one repeats).
type fakeLLM struct {
	t        *testing.T
	replies  []reply
	requests atomic.Int32
}

type reply struct {
	status     int
	content    string // the model's message content, wrapped in a chat completion
	raw        string // when set, sent as the body instead
	retryAfter string
	delay      time.Duration
}

func newFakeLLM(t *testing.T, replies ...reply) (*fakeLLM, *LLM) {
	t.Helper()
	f := &fakeLLM{t: t, replies: replies}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, &LLM{
		BaseURL:     srv.URL + "/v1/",
		APIKey:      testAPIKey,
		Model:       testModel,
		Timeout:     2 * time.Second,
		MaxAttempts: 3,
		Backoff:     func(int) time.Duration { return time.Millisecond },
		Builtin:     Builtin{Now: clock},
	}
}

func (f *fakeLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := f.t
	n := int(f.requests.Add(1))
	raw, _ := io.ReadAll(r.Body)
	if got, want := r.Method+" "+r.URL.Path, "POST /v1/chat/completions"; got != want {
		t.Errorf("request: got %q, want %q", got, want)
	}
	if got, want := r.Header.Get("Authorization"), "Bearer "+testAPIKey; got != want {
		t.Errorf("Authorization: got %q, want %q", got, want)
	}
	if got, want := r.Header.Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type: got %q, want %q", got, want)
	}
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		ResponseFormat struct {
			Type       string `json:"type"`
			JSONSchema struct {
				Name   string `json:"name"`
				Strict bool   `json:"strict"`
				Schema struct {
					Type                 string                     `json:"type"`
					Required             []string                   `json:"required"`
					Properties           map[string]json.RawMessage `json:"properties"`
					AdditionalProperties *bool                      `json:"additionalProperties"`
				} `json:"schema"`
			} `json:"json_schema"`
		} `json:"response_format"`
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		t.Errorf("request body %q: %v", raw, err)
	}
	if req.Model != testModel {
		t.Errorf("model: got %q, want %q", req.Model, testModel)
	}
	rf := req.ResponseFormat
	if rf.Type != "json_schema" || rf.JSONSchema.Name == "" || !rf.JSONSchema.Strict {
		t.Errorf("response_format: got type %q name %q strict %v, want json_schema, a name, strict", rf.Type, rf.JSONSchema.Name, rf.JSONSchema.Strict)
	}
	sch := rf.JSONSchema.Schema
	wantReq := []string{"summary", "sentiment", "sentiment_score", "agent_post_call_outcomes"}
	if sch.Type != "object" || !reflect.DeepEqual(sch.Required, wantReq) || sch.AdditionalProperties == nil || *sch.AdditionalProperties {
		t.Errorf("schema: got type %q required %v additionalProperties %v, want object, %v, false", sch.Type, sch.Required, sch.AdditionalProperties, wantReq)
	}
	if !strings.Contains(string(sch.Properties["sentiment"]), `"enum":["positive","neutral","negative"]`) {
		t.Errorf("schema sentiment: got %s, want the three labels as an enum", sch.Properties["sentiment"])
	}
	if len(req.Messages) != 2 || req.Messages[0].Role != "system" || req.Messages[1].Role != "user" ||
		!strings.Contains(req.Messages[1].Content, "user: I'm angry and frustrated.") {
		t.Errorf("messages: got %+v, want a system prompt and the transcript", req.Messages)
	}

	rp := f.replies[min(n, len(f.replies))-1]
	if rp.delay > 0 {
		select {
		case <-time.After(rp.delay):
		case <-r.Context().Done():
			return
		}
	}
	if rp.retryAfter != "" {
		w.Header().Set("Retry-After", rp.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rp.status)
	if rp.raw != "" || rp.status != http.StatusOK {
		io.WriteString(w, rp.raw)
		return
	}
	completion := map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "model": testModel,
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": rp.content, "refusal": nil},
		}},
	}
	json.NewEncoder(w).Encode(completion)
}

func ok(content string) reply { return reply{status: 200, content: content} }

func TestLLMAnalyze(t *testing.T) {
	t.Parallel()
	f, l := newFakeLLM(t, ok(goodAnswer))
	a, out, err := l.Analyze(context.Background(), negativeCall)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	want := &endcall.Analysis{
		Analyzer:       NameLLM,
		Sentiment:      Negative,
		SentimentScore: -0.8,
		Summary:        "The caller complained about a late order and asked for a refund.",
		Metrics:        ComputeMetrics(negativeCall),
		AnalyzedAt:     fixedNow,
	}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("Analysis:\n got %s\nwant %s", jsonOf(a), jsonOf(want))
	}
	wantOut := `{"call_successful":false,"outcome":"refund requested","customer_intent":"get a refund","follow_up_required":true,"action_items":["process refund"]}`
	if string(out) != wantOut {
		t.Errorf("agent_post_call_outcomes: got %s, want %s", out, wantOut)
	}
	if got := f.requests.Load(); got != 1 {
		t.Errorf("requests: got %d, want 1", got)
	}
}

func TestLLMRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		replies      []reply
		wantErr      bool
		wantRequests int32
	}{
		{"500 then success", []reply{{status: 500, raw: `{"error":{"message":"overloaded"}}`}, ok(goodAnswer)}, false, 2},
		{"429 then success", []reply{{status: 429, retryAfter: "0"}, ok(goodAnswer)}, false, 2},
		{"502, 503 then success", []reply{{status: 502}, {status: 503}, ok(goodAnswer)}, false, 3},
		{"always 500", []reply{{status: 500}}, true, 3},
		{"timeouts", []reply{{status: 200, content: goodAnswer, delay: 3 * time.Second}}, true, 3},
		{"401 is not retried", []reply{{status: 401, raw: `{"error":{"message":"bad key"}}`}}, true, 1},
		{"400 is not retried", []reply{{status: 400}}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, l := newFakeLLM(t, tt.replies...)
			l.Timeout = 200 * time.Millisecond
			a, _, err := l.Analyze(context.Background(), negativeCall)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("Analyze: got %v, want error %v", err, tt.wantErr)
			}
			if err == nil && a.Analyzer != NameLLM {
				t.Errorf("Analyzer: got %q, want %q", a.Analyzer, NameLLM)
			}
			if got := f.requests.Load(); got != tt.wantRequests {
				t.Errorf("requests: got %d, want %d", got, tt.wantRequests)
			}
		})
	}
}

func TestLLMInvalidAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply reply
		want  string
	}{
		{"not JSON", ok(`Sure! Here is the analysis: positive`), "not the requested JSON"},
		{"bad enum", ok(strings.Replace(goodAnswer, `"negative"`, `"angry"`, 1)), `sentiment "angry"`},
		{"score out of range", ok(strings.Replace(goodAnswer, `-0.8`, `-3`, 1)), "sentiment_score -3"},
		{"score as string", ok(strings.Replace(goodAnswer, `-0.8`, `"-0.8"`, 1)), "not the requested JSON"},
		{"missing summary", ok(`{"sentiment":"neutral","sentiment_score":0,"agent_post_call_outcomes":{}}`), "no summary"},
		{"missing score", ok(`{"summary":"s","sentiment":"neutral","agent_post_call_outcomes":{}}`), "no sentiment_score"},
		{"outcomes not an object", ok(`{"summary":"s","sentiment":"neutral","sentiment_score":0,"agent_post_call_outcomes":["x"]}`), "not a JSON object"},
		{"trailing data", ok(goodAnswer + ` {}`), "data after"},
		{"refusal", reply{status: 200, raw: `{"choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}`}, "refused"},
		{"cut off", reply{status: 200, raw: `{"choices":[{"message":{"content":"{\"summary\":\"s"},"finish_reason":"length"}]}`}, "cut off"},
		{"no choices", reply{status: 200, raw: `{"choices":[]}`}, "no choices"},
		{"not a completion", reply{status: 200, raw: `<html>`}, "not a chat completion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, l := newFakeLLM(t, tt.reply)
			_, _, err := l.Analyze(context.Background(), negativeCall)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Analyze: got %v, want an error containing %q", err, tt.want)
			}
			if got := f.requests.Load(); got != 1 {
				t.Errorf("requests: got %d, want 1 (an invalid answer is not retried)", got)
			}
		})
	}
}

func TestLLMEmptyTranscriptSkipsModel(t *testing.T) {
	t.Parallel()
	f, l := newFakeLLM(t, ok(goodAnswer))
	a, out, err := l.Analyze(context.Background(), callWith())
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	if a.Analyzer != NameBuiltin || a.Summary != EmptySummary || out != nil {
		t.Errorf("got analyzer %q summary %q outcomes %s, want the builtin empty result", a.Analyzer, a.Summary, out)
	}
	if got := f.requests.Load(); got != 0 {
		t.Errorf("requests: got %d, want 0", got)
	}
}

func TestLLMHonoursContext(t *testing.T) {
	t.Parallel()
	_, l := newFakeLLM(t, reply{status: 503})
	l.Backoff = func(int) time.Duration { return time.Hour }
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := l.Analyze(ctx, negativeCall)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Analyze: got %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Analyze took %v after its context ended, want it to stop waiting", el)
	}
}

func TestFallback(t *testing.T) {
	t.Parallel()
	t.Run("LLM always failing falls back to builtin", func(t *testing.T) {
		t.Parallel()
		f, l := newFakeLLM(t, reply{status: 500})
		var fellBack []error
		an := Fallback{Primary: l, Secondary: Builtin{Now: clock}, OnFallback: func(_ *endcall.Call, err error) {
			fellBack = append(fellBack, err)
		}}
		a, out, err := an.Analyze(context.Background(), negativeCall)
		if err != nil {
			t.Fatalf("Analyze: %v", err)
		}
		want := analyze(t, negativeCall)
		if !reflect.DeepEqual(a, want) {
			t.Errorf("Analysis:\n got %s\nwant the builtin %s", jsonOf(a), jsonOf(want))
		}
		if a.Analyzer != NameBuiltin || out != nil {
			t.Errorf("got analyzer %q outcomes %s, want builtin and none", a.Analyzer, out)
		}
		if len(fellBack) != 1 || !strings.Contains(fellBack[0].Error(), "HTTP 500") {
			t.Errorf("OnFallback: got %v, want one call with the HTTP 500 error", fellBack)
		}
		if got := f.requests.Load(); got != 3 {
			t.Errorf("requests: got %d, want 3", got)
		}
	})
	t.Run("LLM succeeding", func(t *testing.T) {
		t.Parallel()
		_, l := newFakeLLM(t, ok(goodAnswer))
		a, out, err := Fallback{Primary: l, Secondary: Builtin{Now: clock}}.Analyze(context.Background(), negativeCall)
		if err != nil || a.Analyzer != NameLLM || out == nil {
			t.Errorf("got %v, %s, %v; want the llm result", a, out, err)
		}
	})
	t.Run("context ended: no fallback", func(t *testing.T) {
		t.Parallel()
		_, l := newFakeLLM(t, reply{status: 500})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		a, _, err := Fallback{Primary: l, Secondary: Builtin{Now: clock}}.Analyze(ctx, negativeCall)
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
	if _, isBuiltin := fb.Secondary.(Builtin); !isBuiltin {
		t.Errorf("New with LLM: secondary %T, want Builtin", fb.Secondary)
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
			var names []string
			for k := range props {
				names = append(names, k)
			}
			var req []string
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
	var s map[string]any
	if err := json.Unmarshal([]byte(answerSchema), &s); err != nil {
		t.Fatalf("schema: %v", err)
	}
	walk("$", s)
}

package analysis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/endcall/endcall"
)

// LLM defaults, used when the corresponding field is zero.
const (
	DefaultLLMTimeout     = 60 * time.Second
	DefaultLLMMaxAttempts = 3
)

const (
	maxLLMResponse     = 1 << 20 // bytes of a chat completion read
	maxTranscriptBytes = 120_000 // bytes of transcript sent to the model
	maxSummaryRunes    = 4000    // a longer model summary is cut
	maxBackoff         = 30 * time.Second
	maxEchoRunes       = 4000 // of an invalid answer and its errors, sent back to the model
)

// LLM analyzes calls with an OpenAI-compatible chat-completions API, asking
// for a JSON answer that follows a strict JSON schema built from the
// analysis plan (see CompileSchema). Metrics and analyzed_at come from
// Builtin. Requests that fail with 408, 429, 5xx, a timeout or a
// connection error are retried with exponential backoff; an answer that
// does not validate is asked for once more with the validation errors,
// then is an *InvalidAnswerError. Wrap it in Fallback (New does) to store
// the built-in result when the model keeps failing.
type LLM struct {
	BaseURL string // e.g. https://api.openai.com/v1; "/chat/completions" is appended
	APIKey  string // sent as a bearer token when set
	Model   string
	// HTTPClient sends the requests; nil means a client whose timeout is
	// Timeout.
	HTTPClient *http.Client
	// Timeout bounds one request when HTTPClient is nil; 0 means
	// DefaultLLMTimeout.
	Timeout time.Duration
	// MaxAttempts bounds the requests per call; 0 means
	// DefaultLLMMaxAttempts.
	MaxAttempts int
	// Backoff is the wait before retry n (1, 2, ...); nil means 1 s, 2 s,
	// 4 s, ... up to 30 s, with ±20% jitter. A 429's or 5xx's Retry-After
	// (seconds or an HTTP date) lengthens it; one beyond 30 s ends the
	// attempts with a temporary error, for the task to run again later.
	Backoff func(n int) time.Duration
	// Builtin computes the metrics and supplies the clock.
	Builtin Builtin
}

var _ Analyzer = (*LLM)(nil)

// InvalidAnswerError is a model answer that did not follow the schema, even
// when asked once more with the validation errors.
type InvalidAnswerError struct{ Err error }

func (e *InvalidAnswerError) Error() string {
	return "the model's answer did not follow the schema: " + e.Err.Error()
}
func (e *InvalidAnswerError) Unwrap() error { return e.Err }

// Analyze asks the model about c's transcript, with the fields and rubric
// of plan (nil: none). An answer that fails the schema is asked for once
// more with the validation errors; a second failure is an
// *InvalidAnswerError. An empty transcript is not sent: there is nothing
// for a model to say about it, so the built-in result (analyzer "builtin")
// is returned.
func (l *LLM) Analyze(ctx context.Context, c *endcall.Call, plan *endcall.AnalysisPlan) (*endcall.Analysis, json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if c == nil {
		return nil, nil, errors.New("analysis: nil call")
	}
	if wordCountTurns(c.TranscriptObject) == 0 {
		return l.Builtin.Analyze(ctx, c, plan)
	}
	schema, err := CompileSchema(plan)
	if err != nil {
		return nil, nil, fmt.Errorf("analysis: llm: %w", err)
	}
	req := l.request(c, plan, schema)
	usage := &endcall.Usage{Model: l.Model}
	for try := 1; ; try++ {
		content, u, err := l.complete(ctx, req)
		var bad *InvalidAnswerError
		if err != nil && !errors.As(err, &bad) {
			return nil, nil, fmt.Errorf("analysis: llm: %w", err)
		}
		usage.PromptTokens += u.PromptTokens
		usage.CompletionTokens += u.CompletionTokens
		if u.Model != "" {
			usage.Model = u.Model
		}
		var ans *modelAnswer
		var verr error
		if bad != nil {
			verr = bad.Err
		} else {
			ans, verr = schema.parse(content)
		}
		if verr == nil {
			return l.result(c, plan, ans, usage), ans.Outcomes, nil
		}
		if try == 2 {
			return nil, nil, &InvalidAnswerError{verr}
		}
		req.Messages = append(req.Messages,
			chatMessage{Role: "assistant", Content: clipRunes(content, maxEchoRunes)},
			chatMessage{Role: "user", Content: "That answer does not follow the JSON schema:\n" +
				clipRunes(verr.Error(), maxEchoRunes) + "\nAnswer again with only JSON that follows the schema."})
	}
}

// result builds the stored analysis from a valid answer.
func (l *LLM) result(c *endcall.Call, plan *endcall.AnalysisPlan, ans *modelAnswer, usage *endcall.Usage) *endcall.Analysis {
	a := &endcall.Analysis{
		Analyzer:       NameLLM,
		Sentiment:      ans.Sentiment,
		SentimentScore: round(ans.SentimentScore, 4),
		Summary:        clipRunes(strings.TrimSpace(ans.Summary), maxSummaryRunes),
		Metrics:        ComputeMetrics(c),
		AnalyzedAt:     l.Builtin.Now.Now().UTC(),
		Usage:          usage,
	}
	applyPlan(a, plan)
	for name, v := range ans.Fields {
		if _, inPlan := a.Fields[name]; inPlan {
			a.Fields[name] = v
		}
	}
	if plan != nil && plan.SuccessRubric != nil {
		a.Success = ans.Success
	}
	return a
}

// complete sends req, retrying requests that fail with 408, 429, 5xx, a
// timeout or a connection error, and returns the answer's content. A wait
// the server asks for (Retry-After) beyond maxBackoff is not waited for
// here: the error is returned, temporary, for the task to run again later.
func (l *LLM) complete(ctx context.Context, req chatRequest) (string, endcall.Usage, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", endcall.Usage{}, fmt.Errorf("encoding request: %w", err)
	}
	attempts := l.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultLLMMaxAttempts
	}
	for n := 1; ; n++ {
		content, usage, retryAfter, err := l.once(ctx, body)
		if err == nil {
			return content, usage, nil
		}
		var te *temporaryError
		if !errors.As(err, &te) || n >= attempts || ctx.Err() != nil || retryAfter > maxBackoff {
			return "", usage, fmt.Errorf("attempt %d of %d: %w", n, attempts, err)
		}
		t := time.NewTimer(max(l.backoff(n), retryAfter))
		select {
		case <-ctx.Done():
			t.Stop()
			return "", endcall.Usage{}, fmt.Errorf("waiting to retry: %w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (l *LLM) backoff(n int) time.Duration {
	if l.Backoff != nil {
		return l.Backoff(n)
	}
	d := min(time.Second<<(n-1), maxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (l *LLM) client() *http.Client {
	if l.HTTPClient != nil {
		return l.HTTPClient
	}
	t := l.Timeout
	if t <= 0 {
		t = DefaultLLMTimeout
	}
	// A redirect could carry the API key's requests to another host; the
	// configured base URL is the only one spoken to.
	return &http.Client{Timeout: t, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// temporaryError marks a failure worth another request.
type temporaryError struct{ err error }

func (e *temporaryError) Error() string { return e.err.Error() }
func (e *temporaryError) Unwrap() error { return e.err }

// IsTemporary reports whether err is a failure of the LLM that a later try
// may not meet: a timeout, a connection error, 408, 429 or a 5xx.
func IsTemporary(err error) bool {
	var te *temporaryError
	return errors.As(err, &te)
}

// once makes one request and returns the answer's content; the duration is
// the Retry-After of a 429 or 5xx.
func (l *LLM) once(ctx context.Context, body []byte) (string, endcall.Usage, time.Duration, error) {
	url := strings.TrimRight(l.BaseURL, "/") + "/chat/completions"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", endcall.Usage{}, 0, fmt.Errorf("invalid base URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if l.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+l.APIKey)
	}
	resp, err := l.client().Do(req)
	if err != nil {
		return "", endcall.Usage{}, 0, &temporaryError{err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxLLMResponse+1))
	if err != nil {
		return "", endcall.Usage{}, 0, &temporaryError{fmt.Errorf("reading response: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(raw))
		switch {
		case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
			return "", endcall.Usage{}, retryAfter(resp.Header.Get("Retry-After"), time.Now()), &temporaryError{err}
		case resp.StatusCode == http.StatusRequestTimeout:
			return "", endcall.Usage{}, 0, &temporaryError{err}
		}
		return "", endcall.Usage{}, 0, err
	}
	if len(raw) > maxLLMResponse {
		return "", endcall.Usage{}, 0, fmt.Errorf("response larger than %d bytes", maxLLMResponse)
	}
	return parseCompletion(raw)
}

// retryAfter reads a Retry-After header: seconds or an HTTP date; 0 when
// absent or unreadable.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if secs, err := strconv.Atoi(h); err == nil {
		return time.Duration(max(0, secs)) * time.Second
	}
	if at, err := http.ParseTime(h); err == nil {
		return max(0, at.Sub(now))
	}
	return 0
}

// parseCompletion extracts the content and usage of a chat completion. A
// refusal, a cut-off or empty answer is returned as content "" with an
// answer error, so that the model is asked once more.
func parseCompletion(raw []byte) (string, endcall.Usage, time.Duration, error) {
	var cr struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
				Refusal *string `json:"refusal"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(raw, &cr); err != nil {
		return "", endcall.Usage{}, 0, fmt.Errorf("response is not a chat completion: %w", err)
	}
	usage := endcall.Usage{Model: cr.Model, PromptTokens: cr.Usage.PromptTokens, CompletionTokens: cr.Usage.CompletionTokens}
	if len(cr.Choices) == 0 {
		return "", usage, 0, errors.New("response has no choices")
	}
	ch := cr.Choices[0]
	switch {
	case ch.Message.Refusal != nil && *ch.Message.Refusal != "":
		return "", usage, 0, &InvalidAnswerError{fmt.Errorf("model refused: %s", snippet([]byte(*ch.Message.Refusal)))}
	case ch.FinishReason == "length":
		return "", usage, 0, &InvalidAnswerError{errors.New("model answer was cut off (finish_reason length)")}
	case ch.Message.Content == nil || *ch.Message.Content == "":
		return "", usage, 0, &InvalidAnswerError{errors.New("model answer is empty")}
	}
	return *ch.Message.Content, usage, 0, nil
}

// The request: a system prompt, the transcript, and the schema.

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model          string         `json:"model"`
	Messages       []chatMessage  `json:"messages"`
	ResponseFormat responseFormat `json:"response_format"`
}

type responseFormat struct {
	Type       string     `json:"type"`
	JSONSchema jsonSchema `json:"json_schema"`
}

type jsonSchema struct {
	Name   string          `json:"name"`
	Strict bool            `json:"strict"`
	Schema json.RawMessage `json:"schema"`
}

const systemPrompt = `You analyze phone calls between an AI voice agent ("agent") and a caller ("user").
Answer only with JSON that follows the given schema.
The sentiment and sentiment_score describe the caller (the "user" lines), never the agent.
Base every statement on the transcript; do not invent details. Where the transcript does not
tell a value that may be null, answer null.`

func (l *LLM) request(c *endcall.Call, plan *endcall.AnalysisPlan, schema *Schema) chatRequest {
	system := systemPrompt
	if plan != nil {
		if s := strings.TrimSpace(plan.SummaryInstructions); s != "" {
			system += "\n\nInstructions for the summary:\n" + s
		}
		if r := plan.SuccessRubric; r != nil {
			system += "\n\nJudge the call's success (the \"success\" property) by these criteria:\n" + r.Criteria
		}
	}
	var b strings.Builder
	if c.CallDirection != "" {
		fmt.Fprintf(&b, "Call direction: %s\n", c.CallDirection)
	}
	if c.CallDuration != nil {
		fmt.Fprintf(&b, "Duration: %d seconds\n", *c.CallDuration)
	}
	if c.DisconnectReason != nil && *c.DisconnectReason != "" {
		fmt.Fprintf(&b, "Disconnect reason: %s\n", *c.DisconnectReason)
	}
	b.WriteString("Transcript:\n")
	t := endcall.TranscriptText(c.TranscriptObject)
	if len(t) > maxTranscriptBytes {
		cut := maxTranscriptBytes
		for cut > 0 && !utf8.RuneStart(t[cut]) {
			cut--
		}
		t = t[:cut] + "\n[transcript truncated]"
	}
	b.WriteString(t)
	return chatRequest{
		Model: l.Model,
		Messages: []chatMessage{
			{Role: "system", Content: system},
			{Role: "user", Content: b.String()},
		},
		ResponseFormat: responseFormat{
			Type: "json_schema",
			JSONSchema: jsonSchema{
				Name:   "call_analysis",
				Strict: true,
				Schema: schema.JSON,
			},
		},
	}
}

func wordCountTurns(turns []endcall.Turn) int {
	n := 0
	for _, t := range turns {
		n += wordCount(t.Content)
	}
	return n
}

// snippet shortens a provider's error body for an error message.
func snippet(b []byte) string {
	return clipRunes(strings.Join(strings.Fields(string(b)), " "), 200)
}

func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, runes := 0, 0
	for i = range s {
		if runes == n {
			break
		}
		runes++
	}
	return s[:i] + "…"
}

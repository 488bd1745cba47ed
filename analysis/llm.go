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
)

// LLM analyzes calls with an OpenAI-compatible chat-completions API, asking
// for a JSON answer that follows a strict JSON schema (summary, sentiment,
// sentiment_score, agent_post_call_outcomes). Metrics and analyzed_at come
// from Builtin. Requests that fail with 408, 429, 5xx, a timeout or a
// connection error are retried with exponential backoff; an answer that
// does not match the schema is an error. Wrap it in Fallback (New does) to
// store the built-in result when the model keeps failing.
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
	// 4 s, ... up to 30 s, with ±20% jitter. A 429's Retry-After (seconds)
	// lengthens it, up to 30 s.
	Backoff func(n int) time.Duration
	// Builtin computes the metrics and supplies the clock.
	Builtin Builtin
}

var _ Analyzer = (*LLM)(nil)

// Analyze asks the model about c's transcript. An empty transcript is not
// sent: there is nothing for a model to say about it, so the built-in
// result (analyzer "builtin") is returned.
func (l *LLM) Analyze(ctx context.Context, c *endcall.Call) (*endcall.Analysis, json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if c == nil {
		return nil, nil, errors.New("analysis: nil call")
	}
	if wordCountTurns(c.TranscriptObject) == 0 {
		return l.Builtin.Analyze(ctx, c)
	}
	body, err := json.Marshal(l.request(c))
	if err != nil {
		return nil, nil, fmt.Errorf("analysis: llm: encoding request: %w", err)
	}
	attempts := l.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultLLMMaxAttempts
	}
	var ans *modelAnswer
	for n := 1; ; n++ {
		var retryAfter time.Duration
		ans, retryAfter, err = l.once(ctx, body)
		if err == nil {
			break
		}
		var te *temporaryError
		if !errors.As(err, &te) || n >= attempts || ctx.Err() != nil {
			return nil, nil, fmt.Errorf("analysis: llm: attempt %d of %d: %w", n, attempts, err)
		}
		wait := max(l.backoff(n), min(retryAfter, maxBackoff))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, fmt.Errorf("analysis: llm: waiting to retry: %w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
	return &endcall.Analysis{
		Analyzer:       NameLLM,
		Sentiment:      *ans.Sentiment,
		SentimentScore: round(*ans.SentimentScore, 4),
		Summary:        clipRunes(strings.TrimSpace(*ans.Summary), maxSummaryRunes),
		Metrics:        ComputeMetrics(c),
		AnalyzedAt:     l.Builtin.now(),
	}, ans.Outcomes, nil
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
	return &http.Client{Timeout: t}
}

// temporaryError marks a failure worth another request.
type temporaryError struct{ err error }

func (e *temporaryError) Error() string { return e.err.Error() }
func (e *temporaryError) Unwrap() error { return e.err }

// once makes one request; the duration is a 429's Retry-After.
func (l *LLM) once(ctx context.Context, body []byte) (*modelAnswer, time.Duration, error) {
	url := strings.TrimRight(l.BaseURL, "/") + "/chat/completions"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("invalid base URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if l.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+l.APIKey)
	}
	resp, err := l.client().Do(req)
	if err != nil {
		return nil, 0, &temporaryError{err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxLLMResponse+1))
	if err != nil {
		return nil, 0, &temporaryError{fmt.Errorf("reading response: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(raw))
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			return nil, time.Duration(max(0, secs)) * time.Second, &temporaryError{err}
		case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode >= 500:
			return nil, 0, &temporaryError{err}
		}
		return nil, 0, err
	}
	if len(raw) > maxLLMResponse {
		return nil, 0, fmt.Errorf("response larger than %d bytes", maxLLMResponse)
	}
	ans, err := parseCompletion(raw)
	return ans, 0, err
}

// modelAnswer is the JSON the schema asks the model for. Pointers tell a
// missing field from a zero one.
type modelAnswer struct {
	Summary        *string         `json:"summary"`
	Sentiment      *string         `json:"sentiment"`
	SentimentScore *float64        `json:"sentiment_score"`
	Outcomes       json.RawMessage `json:"agent_post_call_outcomes"`
}

// parseCompletion extracts and validates the model's answer.
func parseCompletion(raw []byte) (*modelAnswer, error) {
	var cr struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
				Refusal *string `json:"refusal"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &cr); err != nil {
		return nil, fmt.Errorf("response is not a chat completion: %w", err)
	}
	if len(cr.Choices) == 0 {
		return nil, errors.New("response has no choices")
	}
	ch := cr.Choices[0]
	if ch.Message.Refusal != nil && *ch.Message.Refusal != "" {
		return nil, fmt.Errorf("model refused: %s", snippet([]byte(*ch.Message.Refusal)))
	}
	if ch.FinishReason == "length" {
		return nil, errors.New("model answer was cut off (finish_reason length)")
	}
	if ch.Message.Content == nil || *ch.Message.Content == "" {
		return nil, errors.New("model answer is empty")
	}
	var ans modelAnswer
	dec := json.NewDecoder(strings.NewReader(*ch.Message.Content))
	if err := dec.Decode(&ans); err != nil {
		return nil, fmt.Errorf("model answer is not the requested JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("model answer has data after the JSON object")
	}
	switch {
	case ans.Summary == nil:
		return nil, errors.New("model answer has no summary")
	case strings.TrimSpace(*ans.Summary) == "":
		return nil, errors.New("model answer has an empty summary")
	case ans.Sentiment == nil:
		return nil, errors.New("model answer has no sentiment")
	case *ans.Sentiment != Positive && *ans.Sentiment != Neutral && *ans.Sentiment != Negative:
		return nil, fmt.Errorf("model answer has sentiment %q, want positive, neutral or negative", *ans.Sentiment)
	case ans.SentimentScore == nil:
		return nil, errors.New("model answer has no sentiment_score")
	case *ans.SentimentScore < -1 || *ans.SentimentScore > 1:
		return nil, fmt.Errorf("model answer has sentiment_score %v, want -1 to 1", *ans.SentimentScore)
	}
	out := bytes.TrimSpace(ans.Outcomes)
	if len(out) == 0 || out[0] != '{' {
		return nil, errors.New("model answer's agent_post_call_outcomes is not a JSON object")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, out); err != nil {
		return nil, fmt.Errorf("model answer's agent_post_call_outcomes: %w", err)
	}
	ans.Outcomes = compact.Bytes()
	return &ans, nil
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

// answerSchema is the strict JSON schema of the model's answer. Strict
// structured output requires every object to list all its properties as
// required and to forbid others, so agent_post_call_outcomes has a fixed
// shape.
const answerSchema = `{
  "type": "object",
  "properties": {
    "summary": {"type": "string", "description": "Two to four factual sentences on what the call was about and how it ended, in the language of the call."},
    "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"], "description": "The caller's (user's) overall sentiment, not the agent's."},
    "sentiment_score": {"type": "number", "description": "The caller's sentiment from -1 (very negative) to 1 (very positive); 0 is neutral."},
    "agent_post_call_outcomes": {
      "type": "object",
      "properties": {
        "call_successful": {"type": "boolean", "description": "Whether the agent achieved the purpose of the call."},
        "outcome": {"type": "string", "description": "The result of the call in a few words, e.g. appointment booked, callback requested, not interested."},
        "customer_intent": {"type": "string", "description": "What the caller wanted, in a few words."},
        "follow_up_required": {"type": "boolean", "description": "Whether someone must act after the call."},
        "action_items": {"type": "array", "items": {"type": "string"}, "description": "Concrete follow-up actions; empty when none."}
      },
      "required": ["call_successful", "outcome", "customer_intent", "follow_up_required", "action_items"],
      "additionalProperties": false
    }
  },
  "required": ["summary", "sentiment", "sentiment_score", "agent_post_call_outcomes"],
  "additionalProperties": false
}`

const systemPrompt = `You analyze phone calls between an AI voice agent ("agent") and a caller ("user").
Answer only with JSON that follows the given schema.
The sentiment and sentiment_score describe the caller (the "user" lines), never the agent.
Base every statement on the transcript; do not invent details.`

func (l *LLM) request(c *endcall.Call) chatRequest {
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
			{Role: "system", Content: systemPrompt},
			{Role: "user", Content: b.String()},
		},
		ResponseFormat: responseFormat{
			Type: "json_schema",
			JSONSchema: jsonSchema{
				Name:   "call_analysis",
				Strict: true,
				Schema: json.RawMessage(answerSchema),
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

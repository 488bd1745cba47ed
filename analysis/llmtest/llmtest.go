// Package llmtest is a fake OpenAI-compatible chat-completions server for
// tests: it records each request and answers with scripted replies, on the
// wire, so that the real client code is exercised.
package llmtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Reply is one scripted answer. The zero Status means 200: a chat
// completion whose message content is Content, with Usage. Raw, when set,
// is sent as the body instead.
type Reply struct {
	Status     int
	Content    string
	Raw        string
	RetryAfter string
	// Delay holds the answer back; the request's end cuts it short.
	Delay            time.Duration
	PromptTokens     int
	CompletionTokens int
}

// OK is a 200 answer whose message content is content, with 100 prompt
// and 20 completion tokens.
func OK(content string) Reply {
	return Reply{Content: content, PromptTokens: 100, CompletionTokens: 20}
}

// Message is one chat message of a request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is a chat-completions request as received.
type Request struct {
	Method, Path, Authorization, ContentType string
	Model                                    string    `json:"model"`
	Messages                                 []Message `json:"messages"`
	ResponseFormat                           struct {
		Type       string `json:"type"`
		JSONSchema struct {
			Name   string          `json:"name"`
			Strict bool            `json:"strict"`
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
}

// Server is the fake. Its replies are used in order, the last one for
// every request after it.
type Server struct {
	// URL is the base URL to configure, ending in /v1.
	URL string
	// Model is the model named in each completion.
	Model string

	mu       sync.Mutex
	replies  []Reply
	keep     bool
	requests []Request
	count    int
	inFlight int
	most     int
}

// New starts a fake answering with replies (at least one) until the test
// ends.
func New(t testing.TB, replies ...Reply) *Server {
	t.Helper()
	if len(replies) == 0 {
		t.Fatal("llmtest.New: no replies")
	}
	s := &Server{replies: replies, Model: "fake-model", keep: true}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/v1"
	return s
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// CountOnly stops the fake from keeping requests, so that its memory stays
// bounded over a long run: Requests returns nothing, Count and MaxInFlight
// still work.
func (s *Server) CountOnly() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keep = false
	s.requests = nil
}

// Count returns how many requests the fake received.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// MaxInFlight returns the most requests that were being answered at once,
// delays included.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.most
}

// ServeHTTP answers POST /v1/chat/completions; anything else is a 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	req := Request{Method: r.Method, Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")}
	json.Unmarshal(raw, &req) // a malformed body shows as empty fields
	s.mu.Lock()
	if s.keep {
		s.requests = append(s.requests, req)
	}
	s.count++
	rp := s.replies[min(s.count, len(s.replies))-1]
	s.inFlight++
	s.most = max(s.most, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	if rp.Delay > 0 {
		select {
		case <-time.After(rp.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if rp.RetryAfter != "" {
		w.Header().Set("Retry-After", rp.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	status := rp.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	if rp.Raw != "" || status != http.StatusOK {
		io.WriteString(w, rp.Raw)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": s.Model,
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": rp.Content, "refusal": nil},
		}},
		"usage": map[string]any{"prompt_tokens": rp.PromptTokens, "completion_tokens": rp.CompletionTokens,
			"total_tokens": rp.PromptTokens + rp.CompletionTokens},
	})
}

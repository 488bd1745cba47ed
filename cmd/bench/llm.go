package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"
)

// fakeLLM is an OpenAI-compatible chat-completions server that answers
// every request after delay with JSON made from the request's own
// response_format schema, so that it stays valid whatever fields the
// analyzer asks for. It counts the requests it is answering at once.
type fakeLLM struct {
	srv      *httptest.Server
	delay    time.Duration
	requests atomic.Int64
	inFlight atomic.Int64
	most     atomic.Int64
	bad      atomic.Int64
}

func newFakeLLM(delay time.Duration) *fakeLLM {
	f := &fakeLLM{delay: delay}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", f.serve)
	f.srv = httptest.NewServer(mux)
	return f
}

func (f *fakeLLM) serve(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.most.Load()
		if n <= m || f.most.CompareAndSwap(m, n) {
			break
		}
	}
	var req struct {
		Model          string `json:"model"`
		ResponseFormat struct {
			JSONSchema struct {
				Schema map[string]any `json:"schema"`
			} `json:"json_schema"`
		} `json:"response_format"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ResponseFormat.JSONSchema.Schema == nil {
		f.bad.Add(1)
		http.Error(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	select {
	case <-time.After(f.delay):
	case <-r.Context().Done():
		return
	}
	content, _ := json.Marshal(example(req.ResponseFormat.JSONSchema.Schema, ""))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-bench", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": string(content)}}},
		"usage": map[string]int{"prompt_tokens": 400, "completion_tokens": 80, "total_tokens": 480},
	})
}

// example returns a value valid against a strict structured-output schema:
// every property of an object, the first choice of an enum, a neutral
// number, a non-empty string.
func example(schema map[string]any, name string) any {
	if enum, ok := schema["enum"].([]any); ok && len(enum) > 0 {
		return enum[0]
	}
	typ := schema["type"]
	if list, ok := typ.([]any); ok {
		// A nullable field: the first type that is not null.
		typ = "null"
		for _, t := range list {
			if t != "null" {
				typ = t
				break
			}
		}
	}
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := schema["properties"].(map[string]any)
		for k, v := range props {
			if sub, ok := v.(map[string]any); ok {
				out[k] = example(sub, k)
			}
		}
		return out
	case "array":
		return []any{}
	case "string":
		if name == "summary" {
			return "The caller and the agent settled the matter; the call ended politely."
		}
		return "bench"
	case "number", "integer":
		if lo, ok := schema["minimum"].(float64); ok {
			return lo
		}
		return 0
	case "boolean":
		return true
	}
	return nil
}

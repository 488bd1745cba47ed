package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestMostWithin(t *testing.T) {
	s := int64(time.Second)
	cases := []struct {
		name string
		at   []int64
		want int
	}{
		{"none", nil, 0},
		{"one", []int64{5}, 1},
		{"ten a second", func() []int64 {
			var at []int64
			for i := range 50 {
				at = append(at, int64(i)*s/10)
			}
			return at
		}(), 10},
		{"a burst", []int64{0, 1, 2, 3, s + 4, 2 * s}, 4},
		{"window is half open", []int64{0, s}, 1},
	}
	for _, c := range cases {
		if got := mostWithin(c.at, time.Second); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}

// The LLM fake answers with JSON made from the request's strict schema:
// every property present, enums, nullable types and bounds respected.
func TestExampleFollowsSchema(t *testing.T) {
	const schema = `{
	  "type": "object",
	  "properties": {
	    "summary": {"type": "string"},
	    "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
	    "sentiment_score": {"type": "number", "minimum": -1, "maximum": 1},
	    "fields": {
	      "type": "object",
	      "properties": {
	        "budget": {"type": ["integer", "null"]},
	        "plan": {"type": ["string", "null"], "enum": ["basic", "pro", null]},
	        "items": {"type": "array", "items": {"type": "string"}},
	        "agreed": {"type": "boolean"}
	      },
	      "required": ["budget", "plan", "items", "agreed"],
	      "additionalProperties": false
	    }
	  },
	  "required": ["summary", "sentiment", "sentiment_score", "fields"],
	  "additionalProperties": false
	}`
	var s map[string]any
	if err := json.Unmarshal([]byte(schema), &s); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(example(s, ""))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"fields":{"agreed":true,"budget":0,"items":[],"plan":"basic"},"sentiment":"positive","sentiment_score":-1,` +
		`"summary":"The caller and the agent settled the matter; the call ended politely."}`
	if string(raw) != want {
		t.Errorf("got  %s\nwant %s", raw, want)
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("odd: got %v", got)
	}
	if got := median([]time.Duration{4, 1, 3, 2}); got != 2 {
		t.Errorf("even: got %v", got)
	}
	if got := median([]float64(nil)); got != 0 {
		t.Errorf("empty: got %v", got)
	}
}

package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/analysis"
	"github.com/endcall/endcall/analysis/llmtest"
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

// The LLM fake's answer follows the schema the analyzer asks for on the
// bench's calls (no analysis plan): the analyzer stores it as the model's,
// without asking again.
func TestLLMAnswerFollowsSchema(t *testing.T) {
	fake := llmtest.New(t, llmtest.Reply{Content: llmAnswer})
	llm := &analysis.LLM{BaseURL: fake.URL, Model: "bench-model", MaxAttempts: 1}
	c := &endcall.Call{}
	if err := json.Unmarshal(transcripts[0].object, &c.TranscriptObject); err != nil {
		t.Fatal(err)
	}
	a, _, err := llm.Analyze(context.Background(), c, nil)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	if a.Analyzer != analysis.NameLLM || a.Summary == "" || fake.Count() != 1 {
		t.Errorf("got %+v after %d requests, want the model's analysis after one", a, fake.Count())
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

package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/endcall/endcall"
)

var fixedNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return fixedNow }

// turn builds a turn; times are optional (pass -1 for none).
func turn(role, content string, start, end int64) endcall.Turn {
	t := endcall.Turn{Role: role, Content: content}
	if start >= 0 {
		t.StartMS = new(start)
	}
	if end >= 0 {
		t.EndMS = new(end)
	}
	return t
}

func callWith(turns ...endcall.Turn) *endcall.Call {
	return &endcall.Call{ID: "c1", CallDirection: "outbound", CallStatus: endcall.StatusCompleted, TranscriptObject: turns}
}

var (
	positiveCall = callWith(
		turn("agent", "Hi, this is Ava from Bright Dental. How can I help you today?", -1, -1),
		turn("user", "Hi! I just wanted to say thank you, the cleaning yesterday was wonderful and the staff were so friendly.", -1, -1),
		turn("agent", "Thank you for letting us know. Is there anything else?", -1, -1),
		turn("user", "No, that's all. I'm really happy with the service, great job!", -1, -1),
	)
	negativeCall = callWith(
		turn("agent", "Hello, thank you for calling Acme support. I'm happy to help!", -1, -1),
		turn("user", "This is terrible. I have been waiting two weeks and nobody ever called me back.", -1, -1),
		turn("agent", "I'm sorry to hear that. Let me check your order.", -1, -1),
		turn("user", "I'm angry and frustrated. Your service is awful and I want a refund.", -1, -1),
	)
	neutralCall = callWith(
		turn("agent", "Thanks for calling Acme, this is Sam. What is your order number?", -1, -1),
		turn("user", "It is order 4417.", -1, -1),
		turn("agent", "Got it. Where should it be shipped?", -1, -1),
		turn("user", "Deliver it to 12 Main Street, apartment 4.", -1, -1),
	)
)

func analyze(t *testing.T, c *endcall.Call) *endcall.Analysis {
	t.Helper()
	a, out, err := Builtin{Now: clock}.Analyze(context.Background(), c, nil)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	if out != nil {
		t.Errorf("agent_post_call_outcomes: got %s, want nil from the builtin analyzer", out)
	}
	if a.Analyzer != NameBuiltin {
		t.Errorf("Analyzer: got %q, want %q", a.Analyzer, NameBuiltin)
	}
	if !a.AnalyzedAt.Equal(fixedNow) {
		t.Errorf("AnalyzedAt: got %v, want %v", a.AnalyzedAt, fixedNow)
	}
	if a.SentimentScore < -1 || a.SentimentScore > 1 {
		t.Errorf("SentimentScore: got %v, want within [-1, 1]", a.SentimentScore)
	}
	return a
}

func TestBuiltinSentiment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		call      *endcall.Call
		wantLabel string
		wantSign  int
	}{
		{"positive", positiveCall, Positive, 1},
		{"negative", negativeCall, Negative, -1},
		{"neutral", neutralCall, Neutral, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := analyze(t, tt.call)
			if a.Sentiment != tt.wantLabel {
				t.Errorf("Sentiment: got %q (score %v), want %q", a.Sentiment, a.SentimentScore, tt.wantLabel)
			}
			switch {
			case tt.wantSign > 0 && a.SentimentScore < 0.05,
				tt.wantSign < 0 && a.SentimentScore > -0.05,
				tt.wantSign == 0 && (a.SentimentScore <= -0.05 || a.SentimentScore >= 0.05):
				t.Errorf("SentimentScore: got %v, want sign %d", a.SentimentScore, tt.wantSign)
			}
		})
	}
}

// TestBuiltinSentimentIsTheCallers shows that a cheerful agent does not
// make an angry caller's call positive.
func TestBuiltinSentimentIsTheCallers(t *testing.T) {
	t.Parallel()
	c := callWith(
		turn("agent", "Wonderful! Great! I love helping, this is amazing, thank you so much!", -1, -1),
		turn("user", "I hate this. It is broken and useless.", -1, -1),
	)
	if a := analyze(t, c); a.Sentiment != Negative {
		t.Errorf("Sentiment: got %q (score %v), want %q", a.Sentiment, a.SentimentScore, Negative)
	}
}

func TestBuiltinMetricsWithTurnTimes(t *testing.T) {
	t.Parallel()
	c := callWith(
		turn("agent", "Hello, thanks for calling Acme.", 0, 2000),             // 5 words
		turn("user", "Hi, I need to change my delivery address.", 2500, 5000), // 8 words
		turn("agent", "Sure, what is the new address?", 5600, 7000),           // 6 words
		turn("user", "It is 12 Main Street.", 7400, 9000),                     // 5 words
		turn("agent", "Done. Anything else?", 9300, 12000),                    // 3 words
	)
	a := analyze(t, c)
	avg := 450.0 // (5600-5000 + 9300-9000) / 2
	want := endcall.Metrics{
		DurationSeconds:    12, // 0 ms to 12,000 ms
		Turns:              5,
		AgentTurns:         3,
		UserTurns:          2,
		AgentWords:         14,
		UserWords:          13,
		AgentTalkRatio:     0.5185, // 14/27
		WordsPerMinute:     135,    // 27 words / 0.2 min
		AvgAgentResponseMS: &avg,
	}
	if !reflect.DeepEqual(a.Metrics, want) {
		t.Errorf("Metrics:\n got %s\nwant %s", jsonOf(a.Metrics), jsonOf(want))
	}

	// call_duration wins over the turn times.
	d := 30
	c.CallDuration = &d
	m := ComputeMetrics(c)
	if m.DurationSeconds != 30 || m.WordsPerMinute != 54 {
		t.Errorf("with call_duration 30: got duration %d, wpm %v; want 30, 54", m.DurationSeconds, m.WordsPerMinute)
	}
}

func TestBuiltinMetricsEdgeCases(t *testing.T) {
	t.Parallel()
	zero := 0
	tests := []struct {
		name string
		call *endcall.Call
		want endcall.Metrics
	}{
		{
			name: "no turn times",
			call: callWith(turn("agent", "one two", -1, -1), turn("user", "three", -1, -1)),
			want: endcall.Metrics{Turns: 2, AgentTurns: 1, UserTurns: 1, AgentWords: 2, UserWords: 1, AgentTalkRatio: 0.6667},
		},
		{
			name: "zero call_duration falls back to turn times",
			call: func() *endcall.Call {
				c := callWith(turn("user", "a b c", 1000, 31000), turn("agent", "d", 31500, 61000))
				c.CallDuration = &zero
				return c
			}(),
			want: endcall.Metrics{DurationSeconds: 60, Turns: 2, AgentTurns: 1, UserTurns: 1, AgentWords: 1, UserWords: 3,
				AgentTalkRatio: 0.25, WordsPerMinute: 4, AvgAgentResponseMS: new(500.0)},
		},
		{
			name: "agent barging in counts as 0 ms; other roles count as turns only",
			call: callWith(turn("user", "wait", 0, 2000), turn("agent", "yes", 1500, 2500), turn("system", "note words here", -1, -1)),
			want: endcall.Metrics{DurationSeconds: 3, Turns: 3, AgentTurns: 1, UserTurns: 1, AgentWords: 1, UserWords: 1,
				AgentTalkRatio: 0.5, WordsPerMinute: 40, AvgAgentResponseMS: new(0.0)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ComputeMetrics(tt.call); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Metrics:\n got %s\nwant %s", jsonOf(got), jsonOf(tt.want))
			}
		})
	}
}

func TestBuiltinEmptyTranscript(t *testing.T) {
	t.Parallel()
	for _, c := range []*endcall.Call{
		callWith(),
		{ID: "nil transcript"},
		callWith(turn("user", "   ", -1, -1)),
	} {
		a := analyze(t, c)
		if a.Sentiment != Neutral || a.SentimentScore != 0 {
			t.Errorf("%d turns: got %q %v, want neutral 0", len(c.TranscriptObject), a.Sentiment, a.SentimentScore)
		}
		if a.Summary != EmptySummary {
			t.Errorf("%d turns: Summary: got %q, want %q", len(c.TranscriptObject), a.Summary, EmptySummary)
		}
		want := endcall.Metrics{Turns: len(c.TranscriptObject), UserTurns: len(c.TranscriptObject)}
		if !reflect.DeepEqual(a.Metrics, want) {
			t.Errorf("%d turns: Metrics: got %s, want %s", len(c.TranscriptObject), jsonOf(a.Metrics), jsonOf(want))
		}
	}
	// The stored JSON has avg_agent_response_ms null, not omitted.
	a := analyze(t, callWith())
	if got := jsonOf(a.Metrics); !strings.Contains(got, `"avg_agent_response_ms":null`) {
		t.Errorf("Metrics JSON: got %s, want avg_agent_response_ms null", got)
	}
}

func TestBuiltinOnlyAgentTurns(t *testing.T) {
	t.Parallel()
	c := callWith(
		turn("agent", "Hello? Is anyone there?", 0, 1500),
		turn("agent", "I can't hear you, I'll call back later. Goodbye!", 4000, 6000),
	)
	a := analyze(t, c)
	if a.Sentiment != Neutral || a.SentimentScore != 0 {
		t.Errorf("sentiment: got %q %v, want neutral 0 (the agent's words do not count)", a.Sentiment, a.SentimentScore)
	}
	want := `Agent: Is anyone there? I can't hear you, I'll call back later. Goodbye! The caller did not speak.`
	if a.Summary != want {
		t.Errorf("Summary: got %q, want %q", a.Summary, want)
	}
	wantM := endcall.Metrics{DurationSeconds: 6, Turns: 2, AgentTurns: 2, AgentWords: 13, AgentTalkRatio: 1, WordsPerMinute: 130}
	if !reflect.DeepEqual(a.Metrics, wantM) {
		t.Errorf("Metrics: got %s, want %s", jsonOf(a.Metrics), jsonOf(wantM))
	}
}

func TestBuiltinSummary(t *testing.T) {
	t.Parallel()
	// Without shared words, the sentences with the most content words, in
	// the order spoken.
	a := analyze(t, negativeCall)
	want := `Agent: Hello, thank you for calling Acme support. I'm happy to help! Caller: I have been waiting two weeks and nobody ever called me back. ` +
		`Agent: I'm sorry to hear that. Caller: I'm angry and frustrated. Your service is awful and I want a refund.`
	if a.Summary != want {
		t.Errorf("Summary:\n got %q\nwant %q", a.Summary, want)
	}

	// A long one keeps the sentences that share the call's subject and
	// drops the small talk.
	c := callWith(
		turn("agent", "Good morning. Lovely weather today, isn't it? You are calling about order 4417 and its late refund, I see.", -1, -1),
		turn("user", "My cat knocked the phone over earlier. Order 4417 never arrived and the refund for order 4417 is late.", -1, -1),
		turn("agent", "Our office moved to a new building last spring. The refund for order 4417 is approved and goes out today.", -1, -1),
		turn("user", "I had pancakes for breakfast. Will the refund for order 4417 reach my card this week?", -1, -1),
		turn("agent", "The parking lot is being repainted. Yes, the order 4417 refund reaches your card within three days.", -1, -1),
		turn("user", "My neighbour plays the trumpet at night. Good, thanks for sorting out the order refund.", -1, -1),
	)
	a = analyze(t, c)
	for _, small := range []string{"weather", "cat", "office", "pancakes", "parking", "trumpet"} {
		if strings.Contains(a.Summary, small) {
			t.Errorf("Summary keeps small talk (%s): %q", small, a.Summary)
		}
	}
	if !strings.HasPrefix(a.Summary, "Agent: You are calling about order 4417") || !strings.Contains(a.Summary, "Caller: Order 4417 never arrived") {
		t.Errorf("Summary lacks the sentences about the order, in order: %q", a.Summary)
	}
	if n := utf8.RuneCountInString(a.Summary); n > 2*summaryRoleBudget+40 {
		t.Errorf("Summary: %d runes, want at most about %d", n, 2*summaryRoleBudget)
	}

	long := strings.Repeat("word ", 200)
	a = analyze(t, callWith(turn("agent", long, -1, -1), turn("user", "I love it. "+long, -1, -1)))
	if n := utf8.RuneCountInString(a.Summary); n > 2*summaryRoleBudget+40 {
		t.Errorf("Summary of long turns: got %d runes: %q", n, a.Summary)
	}
	if !strings.Contains(a.Summary, "…") {
		t.Errorf("Summary %q: want an ellipsis where a sentence was cut", a.Summary)
	}
}

func TestBuiltinDeterministicAndConcurrent(t *testing.T) {
	t.Parallel()
	want := jsonOf(analyze(t, negativeCall))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			a, _, err := Builtin{Now: clock}.Analyze(context.Background(), negativeCall, nil)
			if err != nil {
				t.Errorf("Analyze: %v", err)
				return
			}
			if got := jsonOf(a); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
	wg.Wait()
}

func TestBuiltinErrors(t *testing.T) {
	t.Parallel()
	if _, _, err := (Builtin{}).Analyze(context.Background(), nil, nil); err == nil {
		t.Errorf("nil call: got nil error, want one")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := (Builtin{}).Analyze(ctx, positiveCall, nil); err == nil {
		t.Errorf("canceled context: got nil error, want one")
	}
}

func TestLabel(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		score float64
		want  string
	}{{1, Positive}, {0.05, Positive}, {0.0499, Neutral}, {0, Neutral}, {-0.0499, Neutral}, {-0.05, Negative}, {-1, Negative}} {
		if got := Label(tt.score); got != tt.want {
			t.Errorf("Label(%v): got %q, want %q", tt.score, got, tt.want)
		}
	}
}

func BenchmarkBuiltinAnalyze(b *testing.B) {
	var turns []endcall.Turn
	for i := range 10 { // 20 turns, a typical few-minute call
		turns = append(turns,
			turn("agent", fmt.Sprintf("Thanks for holding. I checked order %d and it ships on Tuesday; is there anything else I can help you with today?", i), int64(i*20000), int64(i*20000+8000)),
			turn("user", "Okay, that's a bit disappointing, I really needed it sooner, but thank you for checking.", int64(i*20000+9000), int64(i*20000+15000)),
		)
	}
	c := callWith(turns...)
	an := Builtin{Now: clock}
	if _, _, err := an.Analyze(context.Background(), c, nil); err != nil { // load the lexicon outside the timing
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := an.Analyze(context.Background(), c, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestSummaryIsDeterministic(t *testing.T) {
	t.Parallel()
	var turns []endcall.Turn
	for i := range 60 {
		turns = append(turns, turn([]string{"agent", "user"}[i%2], fmt.Sprintf("Sentence %d about order %d. The refund for order %d is %d days late!", i, i%7, i%5, i%3), -1, -1))
	}
	want := summarize(turns)
	for range 20 {
		if got := summarize(turns); got != want {
			t.Fatalf("summarize: got %q, then %q", want, got)
		}
	}
}

package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/endcall/endcall"
	"github.com/jonreiter/govader"
)

// Sentiment thresholds on the compound score, as VADER's authors recommend.
const (
	positiveThreshold = 0.05
	negativeThreshold = -0.05
)

// EmptySummary is the summary of a call without any spoken words.
const EmptySummary = "Empty transcript."

// vader is loaded once, on first use: building the lexicon (about 7,500
// entries, compiled into the binary) takes some tens of milliseconds. Its
// PolarityScores only reads the lexicon, so one instance serves all
// goroutines.
var vader = sync.OnceValue(govader.NewSentimentIntensityAnalyzer)

// Builtin is the deterministic analyzer: VADER sentiment of the user's
// turns, an extractive summary and the transcript metrics. It needs no
// network and never fails on a valid call.
type Builtin struct {
	// Now is the clock of analyzed_at; nil means time.Now.
	Now endcall.Clock
}

var _ Analyzer = Builtin{}

// Analyze analyzes c. The sentiment is the caller's: the mean VADER compound
// score of the user's turns, each weighted by its word count, labelled
// positive at 0.05 or more and negative at -0.05 or less. It returns no
// agent_post_call_outcomes, and fills none of the plan's fields.
func (b Builtin) Analyze(ctx context.Context, c *endcall.Call, plan *endcall.AnalysisPlan) (*endcall.Analysis, json.RawMessage, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if c == nil {
		return nil, nil, errors.New("analysis: nil call")
	}
	turns := c.TranscriptObject
	scores := userScores(turns)
	score, label := aggregate(turns, scores)
	a := &endcall.Analysis{
		Analyzer:       NameBuiltin,
		Sentiment:      label,
		SentimentScore: score,
		Summary:        summarize(turns),
		Metrics:        ComputeMetrics(c),
		AnalyzedAt:     b.Now.Now().UTC(),
	}
	applyPlan(a, plan)
	return a, nil, nil
}

// applyPlan names plan on a and lists each of its fields, unfilled (null).
func applyPlan(a *endcall.Analysis, plan *endcall.AnalysisPlan) {
	if plan == nil {
		return
	}
	id, version := plan.ID, plan.Version
	a.PlanID, a.PlanVersion = &id, &version
	a.Fields = make(map[string]json.RawMessage, len(plan.Fields))
	for _, f := range plan.Fields {
		a.Fields[f.Name] = json.RawMessage("null")
	}
}

func isAgent(t endcall.Turn) bool { return strings.EqualFold(t.Role, "agent") }
func isUser(t endcall.Turn) bool  { return strings.EqualFold(t.Role, "user") }

// userScores returns the VADER compound score of each user turn (0 for
// other turns and for empty ones).
func userScores(turns []endcall.Turn) []float64 {
	scores := make([]float64, len(turns))
	for i, t := range turns {
		if isUser(t) && strings.TrimSpace(t.Content) != "" {
			scores[i] = vader().PolarityScores(t.Content).Compound
		}
	}
	return scores
}

// aggregate weighs each user turn's score by its word count, so that a long
// complaint outweighs a short "ok".
func aggregate(turns []endcall.Turn, scores []float64) (float64, string) {
	var sum, words float64
	for i, t := range turns {
		if !isUser(t) {
			continue
		}
		n := float64(wordCount(t.Content))
		sum += scores[i] * n
		words += n
	}
	if words == 0 {
		return 0, Neutral
	}
	score := max(-1, min(1, round(sum/words, 4)))
	return score, Label(score)
}

// Label maps a sentiment score in [-1, 1] to positive, neutral or negative.
func Label(score float64) string {
	switch {
	case score >= positiveThreshold:
		return Positive
	case score <= negativeThreshold:
		return Negative
	}
	return Neutral
}

// ComputeMetrics derives the conversation metrics from c's transcript_object
// and call_duration. The LLM analyzer uses them too, so that metrics never
// depend on a model.
//
// The duration is call_duration when positive, else the span of the turn
// times, else 0. words_per_minute counts agent and user words over that
// duration. avg_agent_response_ms is the mean gap between a user turn's end
// and the start of the agent turn right after it (an agent that starts
// before the user ends counts as 0 ms); it is nil when no such pair has
// times.
func ComputeMetrics(c *endcall.Call) endcall.Metrics {
	turns := c.TranscriptObject
	m := endcall.Metrics{Turns: len(turns)}
	var first, last int64
	haveSpan := false
	var gapSum float64
	gaps := 0
	for i, t := range turns {
		n := wordCount(t.Content)
		switch {
		case isAgent(t):
			m.AgentTurns++
			m.AgentWords += n
		case isUser(t):
			m.UserTurns++
			m.UserWords += n
		}
		if start, end, ok := turnSpan(t); ok {
			if !haveSpan || start < first {
				first = start
			}
			if !haveSpan || end > last {
				last = end
			}
			haveSpan = true
		}
		if i > 0 && isAgent(t) && isUser(turns[i-1]) && t.StartMS != nil && turns[i-1].EndMS != nil {
			gapSum += float64(max(0, *t.StartMS-*turns[i-1].EndMS))
			gaps++
		}
	}
	words := m.AgentWords + m.UserWords
	if words > 0 {
		m.AgentTalkRatio = round(float64(m.AgentWords)/float64(words), 4)
	}
	switch {
	case c.CallDuration != nil && *c.CallDuration > 0:
		m.DurationSeconds = *c.CallDuration
	case haveSpan && last > first:
		m.DurationSeconds = int(math.Round(float64(last-first) / 1000))
	}
	if m.DurationSeconds > 0 {
		m.WordsPerMinute = round(float64(words)/(float64(m.DurationSeconds)/60), 2)
	}
	if gaps > 0 {
		avg := round(gapSum/float64(gaps), 1)
		m.AvgAgentResponseMS = &avg
	}
	return m
}

// turnSpan returns the times a turn covers, using whichever of start and
// end it has.
func turnSpan(t endcall.Turn) (start, end int64, ok bool) {
	switch {
	case t.StartMS != nil && t.EndMS != nil:
		return *t.StartMS, max(*t.StartMS, *t.EndMS), true
	case t.StartMS != nil:
		return *t.StartMS, *t.StartMS, true
	case t.EndMS != nil:
		return *t.EndMS, *t.EndMS, true
	}
	return 0, 0, false
}

// clip collapses whitespace and shortens s to at most n runes, at a word
// boundary when there is one, marking the cut with an ellipsis.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	cut, runes := 0, 0
	for i := range s {
		if runes == n-1 {
			cut = i
			break
		}
		runes++
	}
	if sp := strings.LastIndexByte(s[:cut], ' '); sp > cut/2 {
		cut = sp
	}
	return strings.TrimRight(s[:cut], " ,.;:") + "…"
}

func wordCount(s string) int { return len(strings.Fields(s)) }

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

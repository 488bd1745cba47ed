package analysis

import (
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/endcall/endcall"
)

// Bounds of the built-in summary, in runes: each side's sentences share
// their budget, so the whole stays near 420 characters.
const (
	summaryRoleBudget = 200
	summaryRoleSents  = 3
	maxSummarySents   = 1000 // sentences ranked; the rest of a long call is not
	textRankDamping   = 0.85
	textRankRounds    = 50
)

// sentence is one sentence of a transcript with its speaker and its content
// words, sorted and unique.
type sentence struct {
	agent bool
	text  string
	words []string
	score float64
}

// summarize is an extractive summary: the transcript's sentences ranked by
// TextRank (PageRank over a graph whose edges weigh the content words two
// sentences share, normalised by their lengths), then the best of the
// agent's and the best of the caller's within a budget each, in the order
// spoken. Fixed rounds and index-ordered sums make it deterministic.
func summarize(turns []endcall.Turn) string {
	var sents []sentence
	callerSpoke := false
	for _, t := range turns {
		if !isAgent(t) && !isUser(t) {
			continue
		}
		for _, s := range splitSentences(t.Content) {
			if len(sents) == maxSummarySents {
				break
			}
			sents = append(sents, sentence{agent: isAgent(t), text: s, words: contentWords(s)})
			callerSpoke = callerSpoke || isUser(t)
		}
	}
	if len(sents) == 0 {
		return EmptySummary
	}
	textRank(sents)
	chosen := append(pick(sents, true), pick(sents, false)...)
	slices.Sort(chosen)
	var b strings.Builder
	for k, i := range chosen {
		s := sents[i]
		if k == 0 || sents[chosen[k-1]].agent != s.agent {
			if k > 0 {
				b.WriteString(" ")
			}
			if s.agent {
				b.WriteString("Agent: ")
			} else {
				b.WriteString("Caller: ")
			}
		} else {
			b.WriteString(" ")
		}
		b.WriteString(clip(s.text, summaryRoleBudget))
	}
	if !callerSpoke {
		b.WriteString(" The caller did not speak.")
	}
	return b.String()
}

// pick returns the indexes of one side's best sentences, at most
// summaryRoleSents that fit its budget, best first: the best one always
// (clipped if it must be), the others only when they rank at least as high
// as the average sentence, so that small talk is left out. Equal ranks go
// to the sentence with more content words, then to the earlier one.
func pick(sents []sentence, agent bool) []int {
	mean := 0.0
	for _, s := range sents {
		mean += s.score
	}
	mean /= float64(len(sents))
	var idx []int
	for i, s := range sents {
		if s.agent == agent {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case sents[a].score > sents[b].score:
			return -1
		case sents[a].score < sents[b].score:
			return 1
		case len(sents[a].words) != len(sents[b].words):
			return len(sents[b].words) - len(sents[a].words)
		}
		return a - b
	})
	var out []int
	used := 0
	for _, i := range idx {
		n := utf8.RuneCountInString(sents[i].text) + 1
		if len(out) > 0 && (used+n > summaryRoleBudget || sents[i].score < mean-1e-9) {
			continue
		}
		if len(out) == summaryRoleSents {
			break
		}
		out = append(out, i)
		used += n
	}
	return out
}

// textRank sets each sentence's score.
func textRank(sents []sentence) {
	n := len(sents)
	w := make([][]float64, n)
	out := make([]float64, n) // each sentence's total edge weight
	for i := range sents {
		w[i] = make([]float64, n)
	}
	for i := range sents {
		for j := i + 1; j < n; j++ {
			shared := overlap(sents[i].words, sents[j].words)
			if shared == 0 {
				continue
			}
			sim := float64(shared) / (math.Log(float64(len(sents[i].words)+1)) + math.Log(float64(len(sents[j].words)+1)))
			w[i][j], w[j][i] = sim, sim
			out[i] += sim
			out[j] += sim
		}
	}
	score := make([]float64, n)
	for i := range score {
		score[i] = 1
	}
	next := make([]float64, n)
	for range textRankRounds {
		for i := range sents {
			sum := 0.0
			for j := range sents {
				if w[j][i] > 0 {
					sum += w[j][i] / out[j] * score[j]
				}
			}
			next[i] = 1 - textRankDamping + textRankDamping*sum
		}
		score, next = next, score
	}
	for i := range sents {
		sents[i].score = score[i]
	}
}

// overlap counts the words two sorted unique lists share.
func overlap(a, b []string) int {
	n := 0
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] == b[j]:
			n++
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return n
}

// splitSentences cuts text after ., !, ? or … followed by a space, and at
// line breaks; whitespace inside a sentence is collapsed.
func splitSentences(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		start := 0
		for i, f := range fields {
			if strings.ContainsAny(f[len(f)-1:], ".!?") || strings.HasSuffix(f, "…") || i == len(fields)-1 {
				out = append(out, strings.Join(fields[start:i+1], " "))
				start = i + 1
			}
		}
	}
	return out
}

// contentWords returns the lower-cased words of s that carry meaning:
// neither stop words nor single letters; sorted and unique.
func contentWords(s string) []string {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	var out []string
	for _, w := range words {
		if utf8.RuneCountInString(w) > 1 && !stopWords[w] {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// stopWords are English function words, which link sentences without
// saying anything about them.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`about above after again all am an and any are as at be because been before being
		below between both but by can could did do does doing don down during each few for from further had has have
		having he her here hers him his how if in into is it its just ll me more most my no nor not now of off on
		once only or other our ours out over own re same she should so some such than that the their them then there
		these they this those through to too under until up ve very was we were what when where which while who whom
		why will with would you your yours yes ok okay oh um uh hi hello thank thanks please sure yeah well also get
		got let like know go going one`) {
		m[w] = true
	}
	return m
}()

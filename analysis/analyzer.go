package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/endcall/endcall"
)

// Analyzer names stored in analysis.analyzer.
const (
	NameBuiltin = "builtin"
	NameLLM     = "llm"
)

// Sentiment labels stored in analysis_sentiment.
const (
	Positive = "positive"
	Neutral  = "neutral"
	Negative = "negative"
)

// Analyzer analyzes one ended call with the analysis plan that applies to
// it (nil: none). The raw message is the call's agent_post_call_outcomes (a
// JSON object), nil when the analyzer does not produce any.
type Analyzer interface {
	Analyze(ctx context.Context, c *endcall.Call, plan *endcall.AnalysisPlan) (*endcall.Analysis, json.RawMessage, error)
}

// Fallback uses Primary and, when it fails for any reason other than ctx
// ending, returns Secondary's result instead, with analysis.error saying
// why, so that a call is still analyzed while the LLM is down; the stored
// analysis.analyzer then names the analyzer that actually produced it.
// When ctx is done, Primary's error is returned so that the task runs
// again later.
type Fallback struct {
	Primary   Analyzer
	Secondary Analyzer
	// OnFallback, if set, is told why Primary failed (for logs and metrics).
	OnFallback func(c *endcall.Call, err error)
	// Defer, if set, is asked on a temporary failure (see IsTemporary)
	// whether to return the error, so that the task runs again later,
	// instead of falling back now: true while the task has retries left.
	Defer func(ctx context.Context) bool
}

var _ Analyzer = Fallback{}

// Analyze runs Primary, then Secondary if Primary failed.
func (f Fallback) Analyze(ctx context.Context, c *endcall.Call, plan *endcall.AnalysisPlan) (*endcall.Analysis, json.RawMessage, error) {
	a, out, err := f.Primary.Analyze(ctx, c, plan)
	if err == nil {
		return a, out, nil
	}
	if ctx.Err() != nil || (f.Defer != nil && IsTemporary(err) && f.Defer(ctx)) {
		return nil, nil, err
	}
	if f.OnFallback != nil {
		f.OnFallback(c, err)
	}
	a, out, serr := f.Secondary.Analyze(ctx, c, plan)
	if serr != nil {
		return nil, nil, serr
	}
	why := clipRunes(err.Error(), maxErrorRunes)
	a.Fields, a.Success, a.Error = nil, nil, &why
	return a, out, nil
}

// maxErrorRunes bounds analysis.error.
const maxErrorRunes = 1000

// Config selects and configures the analyzer from the ANALYSIS_LLM_*
// variables.
type Config struct {
	LLMBaseURL string // ANALYSIS_LLM_BASE_URL; empty selects the built-in analyzer
	LLMAPIKey  string // ANALYSIS_LLM_API_KEY; may be empty for local servers
	LLMModel   string // ANALYSIS_LLM_MODEL; required with a base URL
	// Timeout bounds one LLM request; 0 means DefaultLLMTimeout.
	Timeout time.Duration
	// Now is the clock of analyzed_at; nil means time.Now.
	Now func() time.Time
	// OnFallback and Defer are passed to the Fallback wrapping the LLM
	// analyzer.
	OnFallback func(c *endcall.Call, err error)
	Defer      func(ctx context.Context) bool
}

// New returns the analyzer cfg asks for: Builtin when no LLM is configured,
// else LLM falling back to Builtin when the LLM keeps failing. It rejects an
// LLM configuration that cannot work, so that misconfiguration shows at
// start-up rather than on every call.
func New(cfg Config) (Analyzer, error) {
	b := Builtin{Now: cfg.Now}
	if cfg.LLMBaseURL == "" {
		if cfg.LLMModel != "" || cfg.LLMAPIKey != "" {
			return nil, errors.New("ANALYSIS_LLM_BASE_URL is required when ANALYSIS_LLM_MODEL or ANALYSIS_LLM_API_KEY is set")
		}
		return b, nil
	}
	u, err := url.Parse(cfg.LLMBaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ANALYSIS_LLM_BASE_URL %q is not an http(s) URL", cfg.LLMBaseURL)
	}
	if cfg.LLMModel == "" {
		return nil, errors.New("ANALYSIS_LLM_MODEL is required when ANALYSIS_LLM_BASE_URL is set")
	}
	llm := &LLM{
		BaseURL: cfg.LLMBaseURL,
		APIKey:  cfg.LLMAPIKey,
		Model:   cfg.LLMModel,
		Timeout: cfg.Timeout,
		Builtin: b,
	}
	return Fallback{Primary: llm, Secondary: b, OnFallback: cfg.OnFallback, Defer: cfg.Defer}, nil
}

// Package analysis turns an ended call's transcript into the stored
// analysis of CONTRACT section 5: the caller's sentiment, a summary and
// conversation metrics, plus agent_post_call_outcomes when a language model
// is used.
//
// Builtin is deterministic and needs no network: it scores the user's turns
// with VADER (github.com/jonreiter/govader, whose lexicon is compiled into
// the binary) and writes an extractive summary. LLM asks an
// OpenAI-compatible chat-completions API for a structured JSON answer; its
// metrics still come from the built-in computation. Fallback runs one
// analyzer and, when it finally fails, another: New wires LLM with a
// Builtin fallback when ANALYSIS_LLM_* is configured, and Builtin alone
// otherwise. The call:analyze task in package jobs stores what Analyze
// returns.
package analysis

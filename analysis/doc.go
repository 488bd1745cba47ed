// Package analysis turns an ended call's transcript into its stored
// analysis: the caller's sentiment, a summary and conversation metrics,
// plus agent_post_call_outcomes, the analysis plan's fields and its
// success verdict when a language model is used.
//
// Builtin is deterministic and needs no network: it scores the user's turns
// with VADER (github.com/jonreiter/govader, whose lexicon is compiled into
// the binary) and writes an extractive summary (TextRank over the
// transcript's sentences). It fills no plan fields. LLM asks an
// OpenAI-compatible chat-completions API for JSON through a strict
// json_schema response format compiled from the plan (CompileSchema), and
// validates the answer against the same schema with
// github.com/santhosh-tekuri/jsonschema/v6; its metrics still come from the
// built-in computation. Fallback runs one analyzer and, when it finally
// fails, another, recording why in analysis.error: New wires LLM with a
// Builtin fallback when ANALYSIS_LLM_* is configured, and Builtin alone
// otherwise. The call:analyze task in package jobs stores what Analyze
// returns. Package llmtest fakes the chat-completions API for tests.
package analysis

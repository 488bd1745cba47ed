package analysis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/endcall/endcall"
)

// Schema is the JSON Schema of the model's answer for one plan, as sent in
// response_format and as compiled to validate the answer: the same
// document both ways.
type Schema struct {
	JSON      json.RawMessage
	validator *jsonschema.Schema
}

// modelAnswer is an answer that the schema has validated.
type modelAnswer struct {
	Summary        string                     `json:"summary"`
	Sentiment      string                     `json:"sentiment"`
	SentimentScore float64                    `json:"sentiment_score"`
	Outcomes       json.RawMessage            `json:"agent_post_call_outcomes"`
	Fields         map[string]json.RawMessage `json:"fields"`
	Success        *endcall.Success           `json:"success"`
}

type obj = map[string]any

// strictObject is an object schema fit for strict structured output: every
// property required, no others allowed.
func strictObject(props obj, order []string) obj {
	return obj{"type": "object", "properties": props, "required": order, "additionalProperties": false}
}

// CompileSchema builds the answer schema for plan (nil: the fixed part
// alone) and compiles it for validation. The fixed part asks for the
// summary, the caller's sentiment and the post-call outcomes; a plan adds
// "fields" (one property per field, optional ones nullable) and, with a
// rubric, "success".
func CompileSchema(plan *endcall.AnalysisPlan) (*Schema, error) {
	props := obj{
		"summary":         obj{"type": "string", "description": "Two to four factual sentences on what the call was about and how it ended, in the language of the call."},
		"sentiment":       obj{"type": "string", "enum": []string{Positive, Neutral, Negative}, "description": "The caller's (user's) overall sentiment, not the agent's."},
		"sentiment_score": obj{"type": "number", "minimum": -1, "maximum": 1, "description": "The caller's sentiment from -1 (very negative) to 1 (very positive); 0 is neutral."},
		"agent_post_call_outcomes": strictObject(obj{
			"call_successful":    obj{"type": "boolean", "description": "Whether the agent achieved the purpose of the call."},
			"outcome":            obj{"type": "string", "description": "The result of the call in a few words, e.g. appointment booked, callback requested, not interested."},
			"customer_intent":    obj{"type": "string", "description": "What the caller wanted, in a few words."},
			"follow_up_required": obj{"type": "boolean", "description": "Whether someone must act after the call."},
			"action_items":       obj{"type": "array", "items": obj{"type": "string"}, "description": "Concrete follow-up actions; empty when none."},
		}, []string{"call_successful", "outcome", "customer_intent", "follow_up_required", "action_items"}),
	}
	order := []string{"summary", "sentiment", "sentiment_score", "agent_post_call_outcomes"}
	if plan != nil && len(plan.Fields) > 0 {
		fields := obj{}
		names := make([]string, len(plan.Fields))
		for i, f := range plan.Fields {
			fields[f.Name] = fieldSchema(f)
			names[i] = f.Name
		}
		props["fields"] = strictObject(fields, names)
		order = append(order, "fields")
	}
	if plan != nil && plan.SuccessRubric != nil {
		r := plan.SuccessRubric
		verdict := obj{"type": "boolean", "description": "Whether the call meets the success criteria."}
		name := "passed"
		if r.Type == endcall.RubricScore {
			verdict = obj{"type": "integer", "minimum": 1, "maximum": 10, "description": "How well the call meets the success criteria, from 1 (not at all) to 10 (fully)."}
			name = "score"
		}
		props["success"] = strictObject(obj{
			name:     verdict,
			"reason": obj{"type": "string", "description": "One or two sentences on why, citing the call."},
		}, []string{name, "reason"})
		order = append(order, "success")
	}
	raw, err := json.Marshal(strictObject(props, order))
	if err != nil {
		return nil, err
	}
	// The validator compiles the very bytes the model is sent.
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("call_analysis.json", doc); err != nil {
		return nil, fmt.Errorf("answer schema: %w", err)
	}
	v, err := c.Compile("call_analysis.json")
	if err != nil {
		return nil, fmt.Errorf("answer schema: %w", err)
	}
	return &Schema{JSON: raw, validator: v}, nil
}

// jsonTypes maps plan field types to JSON Schema types.
var jsonTypes = map[string]string{
	endcall.FieldString:  "string",
	endcall.FieldNumber:  "number",
	endcall.FieldInteger: "integer",
	endcall.FieldBoolean: "boolean",
	endcall.FieldEnum:    "string",
}

func fieldSchema(f endcall.PlanField) obj {
	s := obj{"type": jsonTypes[f.Type]}
	if f.Description != "" {
		s["description"] = f.Description
	}
	var enum []any
	for _, c := range f.Choices {
		enum = append(enum, c)
	}
	if !f.Required {
		s["type"] = []string{jsonTypes[f.Type], "null"}
		if enum != nil {
			enum = append(enum, nil)
		}
	}
	if enum != nil {
		s["enum"] = enum
	}
	return s
}

// parse decodes content and validates it against the schema. The error
// lists what fails, to be shown to the model.
func (s *Schema) parse(content string) (*modelAnswer, error) {
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(content))
	if err != nil {
		return nil, fmt.Errorf("the answer is not JSON: %v", err)
	}
	if err := s.validator.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return nil, errors.New(strings.TrimSpace(ve.Error()))
		}
		return nil, err
	}
	var ans modelAnswer
	if err := json.Unmarshal([]byte(content), &ans); err != nil {
		return nil, fmt.Errorf("the answer is not the requested JSON: %v", err)
	}
	if strings.TrimSpace(ans.Summary) == "" {
		return nil, errors.New("at '/summary': the summary is empty")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, ans.Outcomes); err != nil {
		return nil, err
	}
	ans.Outcomes = compact.Bytes()
	return &ans, nil
}

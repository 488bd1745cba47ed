package endcall

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Plan field types.
const (
	FieldString  = "string"
	FieldNumber  = "number"
	FieldInteger = "integer"
	FieldBoolean = "boolean"
	FieldEnum    = "enum"
)

// Success rubric types.
const (
	RubricPassFail = "pass_fail"
	RubricScore    = "score_1_10"
)

// Limits of an analysis plan.
const (
	MaxPlanNameRunes         = 200
	MaxSummaryInstructions   = 4000
	MaxPlanFields            = 50
	MaxFieldDescriptionRunes = 1000
	MinEnumChoices           = 2
	MaxEnumChoices           = 50
	MaxChoiceRunes           = 200
	MaxRubricCriteriaRunes   = 4000
	MaxAgentIDRunes          = 200
)

// AnalysisPlan says what an analysis extracts from a call besides the
// built-in result: typed fields and a success verdict. The plan with an
// AIAgentID applies to that agent's calls; the one without is the
// workspace's default.
type AnalysisPlan struct {
	ID                  string         `json:"id"`
	WorkspaceID         string         `json:"-"`
	Name                string         `json:"name"`
	AIAgentID           *string        `json:"ai_agent_id"`
	SummaryInstructions string         `json:"summary_instructions"`
	Fields              []PlanField    `json:"fields"`
	SuccessRubric       *SuccessRubric `json:"success_rubric"`
	Version             int            `json:"version"`
	CreatedAt           time.Time      `json:"created_at"`
	UpdatedAt           time.Time      `json:"updated_at"`
}

// PlanField is one value to extract from a call.
type PlanField struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Description string   `json:"description"`
	Choices     []string `json:"choices"`
	Required    bool     `json:"required"`
}

// SuccessRubric says how to judge whether a call succeeded.
type SuccessRubric struct {
	Type     string `json:"type"`
	Criteria string `json:"criteria"`
}

var fieldName = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// maxFieldNameLen keeps a field name within what structured-output APIs
// accept as a property name.
const maxFieldNameLen = 64

// Validate checks the plan's user-given parts and returns an EINVALID
// error naming the first offending field.
func (p *AnalysisPlan) Validate() error {
	switch n := utf8.RuneCountInString(p.Name); {
	case strings.TrimSpace(p.Name) == "":
		return Errorf(EINVALID, "name is required.")
	case n > MaxPlanNameRunes:
		return Errorf(EINVALID, "name must be at most %d characters.", MaxPlanNameRunes)
	}
	if p.AIAgentID != nil && (strings.TrimSpace(*p.AIAgentID) == "" || utf8.RuneCountInString(*p.AIAgentID) > MaxAgentIDRunes) {
		return Errorf(EINVALID, "ai_agent_id must be a non-blank string of at most %d characters, or null.", MaxAgentIDRunes)
	}
	if utf8.RuneCountInString(p.SummaryInstructions) > MaxSummaryInstructions {
		return Errorf(EINVALID, "summary_instructions must be at most %d characters.", MaxSummaryInstructions)
	}
	if len(p.Fields) > MaxPlanFields {
		return Errorf(EINVALID, "fields must hold at most %d fields.", MaxPlanFields)
	}
	seen := make(map[string]bool, len(p.Fields))
	for i, f := range p.Fields {
		if err := f.validate(i, seen); err != nil {
			return err
		}
	}
	if r := p.SuccessRubric; r != nil {
		if r.Type != RubricPassFail && r.Type != RubricScore {
			return Errorf(EINVALID, `success_rubric.type must be "pass_fail" or "score_1_10".`)
		}
		switch n := utf8.RuneCountInString(r.Criteria); {
		case strings.TrimSpace(r.Criteria) == "":
			return Errorf(EINVALID, "success_rubric.criteria is required.")
		case n > MaxRubricCriteriaRunes:
			return Errorf(EINVALID, "success_rubric.criteria must be at most %d characters.", MaxRubricCriteriaRunes)
		}
	}
	return nil
}

func (f PlanField) validate(i int, seen map[string]bool) error {
	switch {
	case !fieldName.MatchString(f.Name) || len(f.Name) > maxFieldNameLen:
		return Errorf(EINVALID, "fields[%d].name must be snake_case (lower-case letters, digits and single underscores, starting with a letter), at most %d characters.", i, maxFieldNameLen)
	case seen[f.Name]:
		return Errorf(EINVALID, "fields[%d].name %q is used twice.", i, f.Name)
	}
	seen[f.Name] = true
	switch f.Type {
	case FieldString, FieldNumber, FieldInteger, FieldBoolean:
		if len(f.Choices) > 0 {
			return Errorf(EINVALID, "fields[%d].choices is only for type enum.", i)
		}
	case FieldEnum:
		if len(f.Choices) < MinEnumChoices || len(f.Choices) > MaxEnumChoices {
			return Errorf(EINVALID, "fields[%d].choices must hold %d to %d choices.", i, MinEnumChoices, MaxEnumChoices)
		}
		dup := make(map[string]bool, len(f.Choices))
		for j, c := range f.Choices {
			switch {
			case strings.TrimSpace(c) == "" || utf8.RuneCountInString(c) > MaxChoiceRunes:
				return Errorf(EINVALID, "fields[%d].choices[%d] must be a non-blank string of at most %d characters.", i, j, MaxChoiceRunes)
			case dup[c]:
				return Errorf(EINVALID, "fields[%d].choices[%d] %q is listed twice.", i, j, c)
			}
			dup[c] = true
		}
	default:
		return Errorf(EINVALID, `fields[%d].type must be one of "string", "number", "integer", "boolean", "enum".`, i)
	}
	if utf8.RuneCountInString(f.Description) > MaxFieldDescriptionRunes {
		return Errorf(EINVALID, "fields[%d].description must be at most %d characters.", i, MaxFieldDescriptionRunes)
	}
	return nil
}

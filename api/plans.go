package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"

	"github.com/gorilla/mux"

	"github.com/endcall/endcall"
)

// PlanStore is the persistence of the analysis-plan routes and of
// re-analysis.
type PlanStore interface {
	CreatePlan(ctx context.Context, workspaceID string, p *endcall.AnalysisPlan) (*endcall.AnalysisPlan, error)
	ListPlans(ctx context.Context, workspaceID string) ([]*endcall.AnalysisPlan, error)
	GetPlan(ctx context.Context, workspaceID, id string) (*endcall.AnalysisPlan, error)
	ReplacePlan(ctx context.Context, workspaceID, id string, p *endcall.AnalysisPlan) (*endcall.AnalysisPlan, error)
	DeletePlan(ctx context.Context, workspaceID, id string) error
	// Reanalyze owes a new analysis run of an ended call, with the named
	// plan (nil: the plan that applies), and returns the work to queue. A
	// run already pending absorbs the request. ENOTFOUND for a missing
	// call or plan, ECONFLICT for an active call.
	Reanalyze(ctx context.Context, workspaceID, callID string, planID *string) (endcall.Work, error)
}

// planInput is the body of POST and PUT /v1/analysis-plans.
type planInput struct {
	Name                *string                `json:"name"`
	AIAgentID           *string                `json:"ai_agent_id"`
	SummaryInstructions *string                `json:"summary_instructions"`
	Fields              []endcall.PlanField    `json:"fields"`
	SuccessRubric       *endcall.SuccessRubric `json:"success_rubric"`
}

// decodePlan reads and validates a plan; every error names its field.
func decodePlan(body []byte) (*endcall.AnalysisPlan, error) {
	if _, err := parseObject(body); err != nil {
		return nil, err
	}
	if hasNUL(body) {
		return nil, invalid("The plan must not contain NUL characters (\\u0000).")
	}
	var in planInput
	if err := json.Unmarshal(body, &in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, invalid("%s must be %s.", te.Field, jsonKind(te.Type))
		}
		return nil, invalid("Malformed JSON.")
	}
	p := &endcall.AnalysisPlan{AIAgentID: in.AIAgentID, Fields: in.Fields, SuccessRubric: in.SuccessRubric}
	if in.Name != nil {
		p.Name = *in.Name
	}
	if in.SummaryInstructions != nil {
		p.SummaryInstructions = *in.SummaryInstructions
	}
	if p.Fields == nil {
		p.Fields = []endcall.PlanField{}
	}
	for i, f := range p.Fields {
		if f.Type != endcall.FieldEnum && len(f.Choices) == 0 {
			p.Fields[i].Choices = nil
		}
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	}
	return "a " + t.Kind().String()
}

func planID(r *http.Request) (string, error) {
	id, ok := parseUUID(mux.Vars(r)["id"])
	if !ok {
		return "", endcall.Errorf(endcall.ENOTFOUND, "analysis plan not found")
	}
	return id, nil
}

func (s *Server) handleCreatePlan(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := decodePlan(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	created, err := s.plans.CreatePlan(r.Context(), workspaceFrom(r.Context()), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusCreated, "Analysis plan created", created)
}

func (s *Server) handleListPlans(w http.ResponseWriter, r *http.Request) {
	list, err := s.plans.ListPlans(r.Context(), workspaceFrom(r.Context()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Analysis plans retrieved", list)
}

func (s *Server) handleGetPlan(w http.ResponseWriter, r *http.Request) {
	id, err := planID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.plans.GetPlan(r.Context(), workspaceFrom(r.Context()), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Analysis plan retrieved", p)
}

func (s *Server) handleReplacePlan(w http.ResponseWriter, r *http.Request) {
	id, err := planID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := decodePlan(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	updated, err := s.plans.ReplacePlan(r.Context(), workspaceFrom(r.Context()), id, p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Analysis plan updated", updated)
}

func (s *Server) handleDeletePlan(w http.ResponseWriter, r *http.Request) {
	id, err := planID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.plans.DeletePlan(r.Context(), workspaceFrom(r.Context()), id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.success(w, http.StatusOK, "Analysis plan deleted", map[string]string{"id": id})
}

// handleReanalyze owes a new analysis run and queues it. When the queue is
// down the run stays owed in Postgres and the reconciler queues it.
func (s *Server) handleReanalyze(w http.ResponseWriter, r *http.Request) {
	callID, ok := parseUUID(mux.Vars(r)["id"])
	if !ok {
		s.fail(w, r, endcall.Errorf(endcall.ENOTFOUND, "call not found"))
		return
	}
	setCallID(r, callID)
	body, err := readBody(w, r, maxBody)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var plan *string
	if len(bytes.TrimSpace(body)) > 0 {
		o, err := parseObject(body)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if plan, err = o.str("plan_id"); err != nil {
			s.fail(w, r, err)
			return
		}
		if plan != nil {
			id, ok := parseUUID(*plan)
			if !ok {
				s.fail(w, r, invalid("plan_id must be a UUID."))
				return
			}
			plan = &id
		}
	}
	work, err := s.plans.Reanalyze(r.Context(), workspaceFrom(r.Context()), callID, plan)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.queue.Enqueue(r.Context(), []endcall.Work{work}); err != nil {
		s.log.Warn("queueing a re-analysis failed; the reconciler queues it", "call_id", callID, "error", err)
	}
	s.success(w, http.StatusAccepted, "Analysis queued", map[string]any{"call_id": callID, "version": work.Run})
}

package postgres

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
)

const planColumns = `p.id, p.workspace_id, p.name, p.ai_agent_id, p.summary_instructions, p.fields,
	p.success_rubric, p.version, p.created_at, p.updated_at`

func scanPlan(row pgx.Row) (*endcall.AnalysisPlan, error) {
	var p endcall.AnalysisPlan
	var fields, rubric []byte
	if err := row.Scan(&p.ID, &p.WorkspaceID, &p.Name, &p.AIAgentID, &p.SummaryInstructions, &fields,
		&rubric, &p.Version, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(fields, &p.Fields); err != nil {
		return nil, err
	}
	if p.Fields == nil {
		p.Fields = []endcall.PlanField{}
	}
	if len(rubric) > 0 {
		if err := json.Unmarshal(rubric, &p.SuccessRubric); err != nil {
			return nil, err
		}
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return &p, nil
}

// planConflict explains a second plan for the same agent, or a second default.
func planConflict(err error, p *endcall.AnalysisPlan) error {
	if !isUniqueViolation(err) {
		return dbError(err)
	}
	if p.AIAgentID == nil {
		return endcall.Errorf(endcall.ECONFLICT, "The workspace already has a default analysis plan (one without ai_agent_id).")
	}
	return endcall.Errorf(endcall.ECONFLICT, "The workspace already has an analysis plan for ai_agent_id %q.", *p.AIAgentID)
}

func planJSON(p *endcall.AnalysisPlan) (fields, rubric []byte, err error) {
	f := p.Fields
	if f == nil {
		f = []endcall.PlanField{}
	}
	if fields, err = json.Marshal(f); err != nil {
		return nil, nil, err
	}
	if p.SuccessRubric != nil {
		if rubric, err = json.Marshal(p.SuccessRubric); err != nil {
			return nil, nil, err
		}
	}
	return fields, rubric, nil
}

// CreatePlan stores a new analysis plan at version 1. A second plan for the
// same agent, or a second default, is ECONFLICT.
func (s *Store) CreatePlan(ctx context.Context, workspaceID string, p *endcall.AnalysisPlan) (*endcall.AnalysisPlan, error) {
	fields, rubric, err := planJSON(p)
	if err != nil {
		return nil, err
	}
	row := s.pool.QueryRow(ctx, `INSERT INTO analysis_plans AS p (workspace_id, name, ai_agent_id, summary_instructions, fields, success_rubric)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+planColumns,
		workspaceID, p.Name, p.AIAgentID, p.SummaryInstructions, fields, rubric)
	created, err := scanPlan(row)
	if err != nil {
		return nil, planConflict(err, p)
	}
	return created, nil
}

// ListPlans returns the workspace's plans, oldest first.
func (s *Store) ListPlans(ctx context.Context, workspaceID string) ([]*endcall.AnalysisPlan, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+planColumns+` FROM analysis_plans p
		WHERE p.workspace_id = $1 ORDER BY p.created_at, p.id`, workspaceID)
	if err != nil {
		return nil, dbError(err)
	}
	defer rows.Close()
	list := []*endcall.AnalysisPlan{}
	for rows.Next() {
		p, err := scanPlan(rows)
		if err != nil {
			return nil, dbError(err)
		}
		list = append(list, p)
	}
	return list, dbError(rows.Err())
}

// GetPlan returns one plan of the workspace, or ENOTFOUND.
func (s *Store) GetPlan(ctx context.Context, workspaceID, id string) (*endcall.AnalysisPlan, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+planColumns+` FROM analysis_plans p
		WHERE p.id = $1 AND p.workspace_id = $2`, id, workspaceID)
	p, err := scanPlan(row)
	return p, notFound(dbError(err), "analysis plan")
}

// ReplacePlan replaces a plan's user-given parts and increments its
// version, or returns ENOTFOUND.
func (s *Store) ReplacePlan(ctx context.Context, workspaceID, id string, p *endcall.AnalysisPlan) (*endcall.AnalysisPlan, error) {
	fields, rubric, err := planJSON(p)
	if err != nil {
		return nil, err
	}
	row := s.pool.QueryRow(ctx, `UPDATE analysis_plans p SET name = $3, ai_agent_id = $4, summary_instructions = $5,
		fields = $6, success_rubric = $7, version = p.version + 1, updated_at = now()
		WHERE p.id = $1 AND p.workspace_id = $2 RETURNING `+planColumns,
		id, workspaceID, p.Name, p.AIAgentID, p.SummaryInstructions, fields, rubric)
	updated, err := scanPlan(row)
	if err != nil {
		return nil, notFound(planConflict(err, p), "analysis plan")
	}
	return updated, nil
}

// DeletePlan deletes a plan, or returns ENOTFOUND. Analyses already stored
// keep naming it.
func (s *Store) DeletePlan(ctx context.Context, workspaceID, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM analysis_plans WHERE id = $1 AND workspace_id = $2`, id, workspaceID)
	if err != nil {
		return dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return endcall.Errorf(endcall.ENOTFOUND, "analysis plan not found")
	}
	return nil
}

// Reanalyze owes a new analysis run of an ended call of the workspace: the
// call's analysis becomes pending again on the next run, with planID (nil:
// the plan that applies when it runs). A run already pending absorbs the
// request, so concurrent requests make one run. ENOTFOUND for a missing
// call or plan, ECONFLICT for an active call.
func (s *Store) Reanalyze(ctx context.Context, workspaceID, callID string, planID *string) (endcall.Work, error) {
	work := endcall.Work{Kind: endcall.WorkAnalyze, CallID: callID}
	for range 3 {
		again, err := s.reanalyze(ctx, workspaceID, callID, planID, &work)
		if !again {
			return work, err
		}
	}
	return work, endcall.Errorf(endcall.ECONFLICT, "The call's analysis is changing; try again.")
}

// reanalyze makes one try; again reports a run that completed between its
// two statements.
func (s *Store) reanalyze(ctx context.Context, workspaceID, callID string, planID *string, work *endcall.Work) (again bool, err error) {
	// The row lock the UPDATE takes serializes concurrent requests; the
	// loser re-evaluates the WHERE on the winner's row and finds it pending.
	err = s.pool.QueryRow(ctx, `UPDATE calls c SET analysis_status = 'pending', analysis_run = c.analysis_run + 1,
			analysis_plan_id = $3, updated_at = now()
		WHERE c.id = $1 AND c.workspace_id = $2 AND c.ended_at IS NOT NULL
			AND coalesce(c.analysis_status, '') <> 'pending'
			AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM analysis_plans p WHERE p.id = $3 AND p.workspace_id = $2))
		RETURNING c.analysis_run`, callID, workspaceID, planID).Scan(&work.Run)
	if err == nil {
		return false, nil
	} else if err != pgx.ErrNoRows {
		return false, dbError(err)
	}
	var ended, pending, planFound bool
	err = s.pool.QueryRow(ctx, `SELECT c.ended_at IS NOT NULL, coalesce(c.analysis_status, '') = 'pending', c.analysis_run,
			$3::uuid IS NULL OR EXISTS (SELECT 1 FROM analysis_plans p WHERE p.id = $3 AND p.workspace_id = $2)
		FROM calls c WHERE c.id = $1 AND c.workspace_id = $2`, callID, workspaceID, planID).Scan(&ended, &pending, &work.Run, &planFound)
	switch {
	case err != nil:
		return false, notFound(dbError(err), "call")
	case !ended:
		return false, endcall.Errorf(endcall.ECONFLICT, "The call is still active; it is analysed once it ends.")
	case !planFound:
		return false, endcall.Errorf(endcall.ENOTFOUND, "analysis plan not found")
	}
	return !pending, nil
}

// AnalysisTarget returns a call with the run its analysis is on and the
// plan that run applies: the plan a re-analysis named, else the plan of
// the call's agent, else the workspace's default; nil when none.
func (s *Store) AnalysisTarget(ctx context.Context, callID string) (*endcall.Call, int, *endcall.AnalysisPlan, error) {
	var run int
	var planID *string
	row := s.pool.QueryRow(ctx, `SELECT `+callColumns+`, c.analysis_run,
			(SELECT p.id::text FROM analysis_plans p WHERE p.workspace_id = c.workspace_id
				AND (p.id = c.analysis_plan_id OR p.ai_agent_id = c.ai_agent_id OR p.ai_agent_id IS NULL)
				ORDER BY p.id = c.analysis_plan_id DESC NULLS LAST, p.ai_agent_id IS NOT NULL DESC LIMIT 1)
		FROM calls c WHERE c.id = $1`, callID)
	c, err := scanCall(row, &run, &planID)
	if err != nil {
		return nil, 0, nil, notFound(dbError(err), "call")
	}
	if planID == nil {
		return c, run, nil, nil
	}
	p, err := s.GetPlan(ctx, c.WorkspaceID, *planID)
	if endcall.ErrorCode(err) == endcall.ENOTFOUND {
		// Deleted in between: none applies.
		return c, run, nil, nil
	}
	return c, run, p, err
}

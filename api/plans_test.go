package api_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/endcall/endcall"
)

const validPlan = `{"name":"support","ai_agent_id":"agent-1","summary_instructions":"Name the order.",` +
	`"fields":[{"name":"order_number","type":"string","description":"The order.","required":true},` +
	`{"name":"reason","type":"enum","choices":["late","damaged"],"required":false}],` +
	`"success_rubric":{"type":"pass_fail","criteria":"The problem is solved."}}`

func (r response) plan(t *testing.T) endcall.AnalysisPlan {
	t.Helper()
	var p endcall.AnalysisPlan
	if err := json.Unmarshal(r.Data, &p); err != nil {
		t.Fatalf("data is not a plan: %v: %s", err, r.Body)
	}
	return p
}

func TestAnalysisPlanLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do("POST", "/v1/analysis-plans", "", validPlan)
	r.want(t, 201, "")
	p := r.plan(t)
	if p.ID == "" || p.Version != 1 || p.Name != "support" || *p.AIAgentID != "agent-1" || len(p.Fields) != 2 ||
		p.Fields[1].Choices[1] != "damaged" || p.SuccessRubric.Type != "pass_fail" || p.CreatedAt.IsZero() {
		t.Errorf("created: %s", r.Data)
	}
	if !strings.Contains(string(r.Data), `"choices":null`) {
		t.Errorf("a non-enum field's choices should read null: %s", r.Data)
	}
	path := "/v1/analysis-plans/" + p.ID

	got := b.do("GET", path, "", nil)
	got.want(t, 200, "")
	if string(got.Data) != string(r.Data) {
		t.Errorf("GET: got %s, want %s", got.Data, r.Data)
	}

	// A second plan for the agent is a conflict; a default is not.
	b.do("POST", "/v1/analysis-plans", "", validPlan).want(t, 409, "conflict")
	b.do("POST", "/v1/analysis-plans", "", `{"name":"default"}`).want(t, 201, "")
	b.do("POST", "/v1/analysis-plans", "", `{"name":"second default","ai_agent_id":null}`).want(t, 409, "conflict")

	r = b.do("PUT", path, "", `{"name":"renamed","ai_agent_id":"agent-1","success_rubric":{"type":"score_1_10","criteria":"c"}}`)
	r.want(t, 200, "")
	if up := r.plan(t); up.Version != 2 || up.Name != "renamed" || len(up.Fields) != 0 || up.SuccessRubric.Type != "score_1_10" || !up.CreatedAt.Equal(p.CreatedAt) {
		t.Errorf("PUT: %s", r.Data)
	}
	b.do("PUT", path, "", `{"name":""}`).want(t, 400, "invalid_request")
	if v := b.do("GET", path, "", nil).plan(t).Version; v != 2 {
		t.Errorf("version after a refused PUT: got %d, want 2", v)
	}

	var list []endcall.AnalysisPlan
	json.Unmarshal(b.do("GET", "/v1/analysis-plans", "", nil).Data, &list)
	if len(list) != 2 {
		t.Errorf("list: got %d plans, want 2", len(list))
	}

	// Another workspace sees none of it.
	_, otherKey, _ := b.store.CreateAPIKey(context.Background(), "other")
	b.do("GET", path, otherKey, nil).want(t, 404, "not_found")
	b.do("PUT", path, otherKey, validPlan).want(t, 404, "not_found")
	b.do("DELETE", path, otherKey, nil).want(t, 404, "not_found")
	var others []endcall.AnalysisPlan
	json.Unmarshal(b.do("GET", "/v1/analysis-plans", otherKey, nil).Data, &others)
	if len(others) != 0 {
		t.Errorf("other workspace's list: got %d plans", len(others))
	}
	b.do("POST", "/v1/analysis-plans", otherKey, validPlan).want(t, 201, "") // its own agent-1 plan

	b.do("DELETE", path, "", nil).want(t, 200, "")
	b.do("GET", path, "", nil).want(t, 404, "not_found")
	b.do("DELETE", path, "", nil).want(t, 404, "not_found")
	b.do("GET", "/v1/analysis-plans/not-a-uuid", "", nil).want(t, 404, "not_found")
}

func TestAnalysisPlanValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	field := func(f string) string { return `{"name":"p","fields":[` + f + `]}` }
	many := func(n int, item func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = item(i)
		}
		return strings.Join(parts, ",")
	}
	tests := []struct {
		name, body, wantField string
	}{
		{"not an object", `[]`, "JSON object"},
		{"malformed", `{"name":`, "Malformed JSON"},
		{"no name", `{}`, "name"},
		{"blank name", `{"name":"  "}`, "name"},
		{"name not a string", `{"name":1}`, "name"},
		{"long name", `{"name":"` + strings.Repeat("n", 201) + `"}`, "name"},
		{"blank agent", `{"name":"p","ai_agent_id":" "}`, "ai_agent_id"},
		{"long instructions", `{"name":"p","summary_instructions":"` + strings.Repeat("x", 4001) + `"}`, "summary_instructions"},
		{"fields not an array", `{"name":"p","fields":{}}`, "fields"},
		{"too many fields", `{"name":"p","fields":[` + many(51, func(i int) string { return `{"name":"f` + strings.Repeat("x", i) + `","type":"string"}` }) + `]}`, "fields"},
		{"name not snake_case", field(`{"name":"OrderNumber","type":"string"}`), "fields[0].name"},
		{"name with double underscore", field(`{"name":"a__b","type":"string"}`), "fields[0].name"},
		{"name starting with a digit", field(`{"name":"1a","type":"string"}`), "fields[0].name"},
		{"duplicate names", field(`{"name":"a","type":"string"},{"name":"a","type":"number"}`), "fields[1].name"},
		{"unknown type", field(`{"name":"a","type":"date"}`), "fields[0].type"},
		{"required not a boolean", field(`{"name":"a","type":"string","required":"yes"}`), "fields.required"},
		{"enum without choices", field(`{"name":"a","type":"enum"}`), "fields[0].choices"},
		{"enum with one choice", field(`{"name":"a","type":"enum","choices":["x"]}`), "fields[0].choices"},
		{"enum with 51 choices", field(`{"name":"a","type":"enum","choices":[` + many(51, func(i int) string { return `"c` + strings.Repeat("x", i) + `"` }) + `]}`), "fields[0].choices"},
		{"duplicate choices", field(`{"name":"a","type":"enum","choices":["x","x"]}`), "fields[0].choices[1]"},
		{"blank choice", field(`{"name":"a","type":"enum","choices":["x",""]}`), "fields[0].choices[1]"},
		{"choice not a string", field(`{"name":"a","type":"enum","choices":["x",1]}`), "fields.choices"},
		{"choices on a string", field(`{"name":"a","type":"string","choices":["x","y"]}`), "fields[0].choices"},
		{"long description", field(`{"name":"a","type":"string","description":"` + strings.Repeat("d", 1001) + `"}`), "fields[0].description"},
		{"rubric type", `{"name":"p","success_rubric":{"type":"stars","criteria":"c"}}`, "success_rubric.type"},
		{"rubric without criteria", `{"name":"p","success_rubric":{"type":"pass_fail"}}`, "success_rubric.criteria"},
		{"rubric not an object", `{"name":"p","success_rubric":"pass_fail"}`, "success_rubric"},
		{"NUL", `{"name":"p\u0000"}`, "NUL"},
	}
	before := b.snapshot()
	for _, tt := range tests {
		r := b.do("POST", "/v1/analysis-plans", "", tt.body)
		if r.Status != 400 || r.Code != "invalid_request" || !strings.Contains(r.Message, tt.wantField) {
			t.Errorf("%s: got %d %q %q, want 400 naming %q", tt.name, r.Status, r.Code, r.Message, tt.wantField)
		}
	}
	var n int
	b.pool.QueryRow(context.Background(), `SELECT count(*) FROM analysis_plans`).Scan(&n)
	if n != 0 || b.snapshot() != before {
		t.Errorf("refused plans changed something: %d plans stored", n)
	}
	// The limits themselves are accepted.
	edge := `{"name":"` + strings.Repeat("n", 200) + `","summary_instructions":"` + strings.Repeat("x", 4000) + `","fields":[` +
		many(49, func(i int) string { return `{"name":"f` + strings.Repeat("x", i) + `","type":"boolean"}` }) +
		`,{"name":"last","type":"enum","choices":[` + many(50, func(j int) string { return `"c` + strings.Repeat("y", j) + `"` }) + `]}]}`
	b.do("POST", "/v1/analysis-plans", "", edge).want(t, 201, "")
}

func TestReanalyze(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, sid := b.phone("+15550001111", false)
	active := b.activeCall("+15550001111", sid, "in-progress", nil)
	ended := b.activeCall("+15550001111", sid, "in-progress", nil)
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": ended.ID}).want(t, 200, "")
	plan := b.do("POST", "/v1/analysis-plans", "", validPlan).plan(t)
	_, otherKey, _ := b.store.CreateAPIKey(context.Background(), "other")
	otherPlan := b.do("POST", "/v1/analysis-plans", otherKey, validPlan).plan(t)
	path := "/v1/calls/" + ended.ID + "/analyze"

	before := b.snapshot()
	b.do("POST", "/v1/calls/"+active.ID+"/analyze", "", nil).want(t, 409, "conflict")
	b.do("POST", path, otherKey, nil).want(t, 404, "not_found")
	b.do("POST", path, "", map[string]any{"plan_id": otherPlan.ID}).want(t, 404, "not_found")
	b.do("POST", path, "", map[string]any{"plan_id": "nope"}).want(t, 400, "invalid_request")
	b.do("POST", path, "", `[1]`).want(t, 400, "invalid_request")
	b.do("POST", "/v1/calls/not-a-uuid/analyze", "", nil).want(t, 404, "not_found")
	if b.snapshot() != before {
		t.Errorf("refused re-analyses changed something")
	}

	// The first analysis is still pending: the request joins it.
	r := b.do("POST", path, "", nil)
	r.want(t, 202, "")
	if !strings.Contains(string(r.Data), `"version":1`) {
		t.Errorf("while pending: got %s, want run 1", r.Data)
	}
	if _, err := b.pool.Exec(context.Background(), `UPDATE calls SET analysis_status = 'completed' WHERE id = $1`, ended.ID); err != nil {
		t.Fatal(err)
	}
	r = b.do("POST", path, "", map[string]any{"plan_id": plan.ID})
	r.want(t, 202, "")
	if !strings.Contains(string(r.Data), `"version":2`) {
		t.Errorf("after completion: got %s, want run 2", r.Data)
	}
	var status, planID string
	b.pool.QueryRow(context.Background(), `SELECT analysis_status, analysis_plan_id::text FROM calls WHERE id = $1`, ended.ID).Scan(&status, &planID)
	if status != "pending" || planID != plan.ID {
		t.Errorf("stored: status %q plan %q, want pending with the named plan", status, planID)
	}
	if tasks := b.tasks("default"); !slices.Contains(tasks, "analyze:"+ended.ID+":2") {
		t.Errorf("queued tasks: %v, want analyze:%s:2", tasks, ended.ID)
	}
}

package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// seedCall is a call inserted straight into the database, so that query
// tests control every column. Label is stored as contact_id and names the
// call in expectations; calls are created a minute apart in seed order.
type seedCall struct {
	label, status, campaign, agent, started, to, notes, feedback, transcript, reason, sentiment string
	duration, rating                                                                            int // 0: NULL, -1: 0
	isTest                                                                                      bool
}

var querySeeds = []seedCall{
	{label: "c01", status: "completed", campaign: "campA", agent: "agent1", started: "2026-03-01T10:00:00Z", duration: 60, to: "+15550000001",
		notes: "VIP customer", transcript: "agent: hello\nuser: I want a refund", reason: "Ended Via API call", sentiment: "positive", rating: 5},
	{label: "c02", status: "completed", campaign: "campA", agent: "agent2", started: "2026-03-01T23:59:59Z", duration: 300, to: "+15550000002",
		feedback: "Great_call 100%", transcript: "agent: hi", reason: "Call completed (provider)", sentiment: "neutral"},
	{label: "c03", status: "busy", campaign: "campB", agent: "agent1", duration: -1, to: "+15550000003", reason: "busy"},
	{label: "c04", status: "no-answer", duration: 2, to: "+15550000004", notes: "call back tomorrow", reason: "no-answer"},
	{label: "c05", status: "in-progress", campaign: "campA", agent: "agent1", started: "2026-03-02T00:00:00Z", to: "+15550000005"},
	{label: "c06", status: "ringing", campaign: "campB", to: "+15550000006"},
	{label: "c07", status: "queued", to: "+15550000007"},
	{label: "c08", status: "completed", campaign: "campB", agent: "agent2", started: "2026-03-03T12:00:00Z", duration: 45, to: "+15559990000",
		transcript: "user: REFUND please", reason: "Exceeded maximum call duration", sentiment: "negative", isTest: true},
	{label: "c09", status: "canceled", duration: 3, to: "+15550000009", reason: "canceled"},
	{label: "c10", status: "failed", duration: 4, to: "+15550000010", reason: "failed"},
	{label: "c11", status: "completed", started: "2026-02-28T23:59:00Z", duration: 10, to: "+15550000011", reason: "Ended Via API call"},
	{label: "c12", status: "completed", started: "2026-03-04T00:00:00Z", duration: 1000, to: "+15550000012", reason: "Ended Via API call"},
}

// seedQueryCalls inserts querySeeds into workspace and returns label → id
// and id → label.
func (b *bundle) seedQueryCalls(workspace string, seeds []seedCall) (map[string]string, map[string]string) {
	b.t.Helper()
	ids, labels := map[string]string{}, map[string]string{}
	base := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	null := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	nullInt := func(n int) any {
		switch n {
		case 0:
			return nil
		case -1:
			return 0
		}
		return n
	}
	for i, s := range seeds {
		var started, ended any
		if s.started != "" {
			started = s.started
		}
		if s.status != "queued" && s.status != "ringing" && s.status != "in-progress" {
			ended = base.Add(time.Duration(i) * time.Minute).Add(30 * time.Second)
		}
		var id string
		err := b.pool.QueryRow(context.Background(), `INSERT INTO calls (workspace_id, call_from, call_to, call_direction,
			call_status, campaign_id, ai_agent_id, contact_id, started_at, ended_at, call_duration, notes, call_feedback,
			transcript, disconnect_reason, analysis_sentiment, is_test, call_rating, created_at, updated_at)
			VALUES ($1, '+15550009999', $2, 'outbound', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)
			RETURNING id`, workspace, s.to, s.status, null(s.campaign), null(s.agent), s.label, started, ended,
			nullInt(s.duration), null(s.notes), null(s.feedback), null(s.transcript), null(s.reason), null(s.sentiment),
			s.isTest, nullInt(s.rating), base.Add(time.Duration(i)*time.Minute)).Scan(&id)
		if err != nil {
			b.t.Fatal(err)
		}
		ids[s.label], labels[id] = id, s.label
	}
	return ids, labels
}

// queryPage is the decoded answer of GET /v1/calls/query.
type queryPage struct {
	Data []struct {
		ID string `json:"id"`
	} `json:"data"`
	Pagination struct {
		Page    int `json:"page"`
		PerPage int `json:"per_page"`
		Total   int `json:"total"`
	} `json:"pagination"`
}

func TestQueryCalls(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids, labels := b.seedQueryCalls(b.workspace, querySeeds)
	// Another workspace's calls match many of the filters below, and must
	// never appear.
	other, _, err := b.store.CreateAPIKey(context.Background(), "other-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	b.seedQueryCalls(other, []seedCall{
		{label: "x01", status: "completed", campaign: "campA", agent: "agent1", started: "2026-03-01T10:00:00Z", duration: 60,
			to: "+15550000001", notes: "VIP refund", transcript: "user: refund", reason: "busy", sentiment: "positive", rating: 5},
		{label: "x02", status: "in-progress", campaign: "campA", started: "2026-03-02T10:00:00Z", to: "+15559990001"},
	})
	filter := func(triples ...string) string {
		v := url.Values{}
		for i := 0; i < len(triples); i += 3 {
			v.Add("filter_columns[]", triples[i])
			v.Add("filter_operator[]", triples[i+1])
			v.Add("filter_values[]", triples[i+2])
		}
		return v.Encode()
	}

	for _, tc := range []struct {
		name      string
		query     string
		want      string // labels in order
		wantTotal int    // 0: len(want)
		wantPage  int
	}{
		{name: "default: newest first, 10 a page", query: "", want: "c12 c11 c10 c09 c08 c07 c06 c05 c04 c03", wantTotal: 12},
		{name: "second page", query: "page=1", want: "c02 c01", wantTotal: 12, wantPage: 1},
		{name: "past the end", query: "page=2", want: "", wantTotal: 12, wantPage: 2},
		{name: "per_page", query: "per_page=5&page=2", want: "c02 c01", wantTotal: 12, wantPage: 2},
		{name: "empty values are absent", query: "campaign_id=&status=&page=&per_page=&sort_column=&order=", want: "c12 c11 c10 c09 c08 c07 c06 c05 c04 c03", wantTotal: 12},
		{name: "campaign", query: "campaign_id=campA", want: "c05 c02 c01"},
		{name: "agent", query: "ai_agent_id=agent1", want: "c05 c03 c01"},
		{name: "status partial, any case", query: "status=COMPLETE", want: "c12 c11 c08 c02 c01"},
		{name: "status partial matches several", query: "status=in", want: "c06 c05"},
		{name: "status matching nothing", query: "status=archived", want: ""},
		{name: "search transcript, any case", query: "search=refund", want: "c08 c01"},
		{name: "search notes", query: "search=TOMORROW", want: "c04"},
		{name: "search call_to", query: "search=5559990", want: "c08"},
		{name: "search feedback, % is literal", query: "search=" + url.QueryEscape("100%"), want: "c02"},
		{name: "search _ is literal", query: "search=_", want: "c02"},
		{name: "search matching nothing", query: "search=zebra", want: ""},
		{name: "disconnect_reason exact", query: "disconnect_reason=busy", want: "c03"},
		{name: "disconnect_reason is not partial", query: "disconnect_reason=bus", want: ""},
		{name: "date range inclusive", query: "start_date=2026-03-01&end_date=2026-03-03", want: "c08 c05 c02 c01"},
		{name: "start_date only", query: "start_date=2026-03-03", want: "c12 c08"},
		{name: "end_date only", query: "end_date=2026-02-28", want: "c11"},
		{name: "one day", query: "start_date=2026-03-01&end_date=2026-03-01", want: "c02 c01"},
		{name: "duration descending, NULLs last", query: "sort_column=call_duration&order=desc&per_page=9", want: "c12 c02 c01 c08 c11 c10 c09 c04 c03", wantTotal: 12},
		{name: "duration ascending, NULLs last", query: "sort_column=call_duration&order=ASC&per_page=9", want: "c03 c04 c09 c10 c11 c08 c01 c02 c12", wantTotal: 12},
		{name: "started_at ascending", query: "sort_column=started_at&order=asc&per_page=6", want: "c11 c01 c02 c05 c08 c12", wantTotal: 12},
		{name: "call_to ascending", query: "sort_column=call_to&order=asc&per_page=12", want: "c01 c02 c03 c04 c05 c06 c07 c09 c10 c11 c12 c08"},
		{name: "created_at ascending", query: "order=asc&per_page=3", want: "c01 c02 c03", wantTotal: 12},
		{name: "combined filters", query: "campaign_id=campA&start_date=2026-03-02", want: "c05"},
		{name: "filter gte", query: filter("call_duration", "gte", "45"), want: "c12 c08 c02 c01"},
		{name: "filter lt", query: filter("call_duration", "lt", "5"), want: "c10 c09 c04 c03"},
		{name: "filter is_null", query: filter("ended_at", "is_null", ""), want: "c07 c06 c05"},
		{name: "filter not_null ignores its value", query: filter("campaign_id", "not_null", "whatever"), want: "c08 c06 c05 c03 c02 c01"},
		{name: "filter boolean", query: filter("is_test", "eq", "true"), want: "c08"},
		{name: "filter ne counts NULL as different", query: filter("analysis_sentiment", "ne", "positive") + "&per_page=100",
			want: "c12 c11 c10 c09 c08 c07 c06 c05 c04 c03 c02"},
		{name: "filter contains, any case", query: filter("notes", "contains", "vip"), want: "c01"},
		{name: "filter timestamp", query: filter("started_at", "gte", "2026-03-02"), want: "c12 c08 c05"},
		{name: "filter RFC 3339", query: filter("started_at", "lt", "2026-03-01T10:00:01Z"), want: "c11 c01"},
		{name: "two filters", query: filter("call_status", "eq", "completed", "call_duration", "gt", "50"), want: "c12 c02 c01"},
		{name: "filter uuid", query: filter("id", "eq", ids["c04"]), want: "c04"},
		{name: "filter rating", query: filter("call_rating", "eq", "5"), want: "c01"},
		{name: "filter with search and sort", query: filter("call_status", "ne", "failed") + "&search=refund&sort_column=call_duration&order=asc", want: "c08 c01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.do("GET", "/v1/calls/query?"+tc.query, "", nil)
			r.want(t, 200, "")
			var page queryPage
			if err := json.Unmarshal(r.Body, &page); err != nil {
				t.Fatal(err)
			}
			got := make([]string, 0, len(page.Data))
			for _, c := range page.Data {
				l, ok := labels[c.ID]
				if !ok {
					t.Fatalf("call %s is not this workspace's", c.ID)
				}
				got = append(got, l)
			}
			want := strings.Fields(tc.want)
			if !slices.Equal(got, want) {
				t.Errorf("calls: got %v, want %v", got, want)
			}
			wantTotal := tc.wantTotal
			if wantTotal == 0 {
				wantTotal = len(want)
			}
			if page.Pagination.Total != wantTotal || page.Pagination.Page != tc.wantPage {
				t.Errorf("pagination: got %+v, want total %d page %d", page.Pagination, wantTotal, tc.wantPage)
			}
		})
	}
	r := b.do("GET", "/v1/calls/query?per_page=100", "", nil)
	var page queryPage
	json.Unmarshal(r.Body, &page)
	if page.Pagination.PerPage != 100 || len(page.Data) != 12 {
		t.Errorf("per_page=100: got %d calls, pagination %+v", len(page.Data), page.Pagination)
	}
	if !strings.Contains(string(r.Body), `"message":"Calls retrieved"`) {
		t.Errorf("envelope: got %s", r.Body)
	}
	b.do("GET", "/v1/calls/query", "-", nil).want(t, 401, "unauthorized")
}

func TestQueryCallsBadParameters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	many := url.Values{}
	for range 21 {
		many.Add("filter_columns[]", "call_status")
		many.Add("filter_operator[]", "eq")
		many.Add("filter_values[]", "busy")
	}
	for _, tc := range []struct {
		query, wantIn string
	}{
		{"per_page=0", "per_page"},
		{"per_page=101", "per_page"},
		{"per_page=ten", "per_page"},
		{"page=-1", "page"},
		{"page=101&per_page=100", "narrow the filters"},
		{"page=1001", "narrow the filters"},
		{"page=2147483647&per_page=100", "narrow the filters"},
		{"page=1.5", "page"},
		{"page=99999999999999999999", "page"},
		{"sort_column=transcript", "sort_column"},
		{"sort_column=created_at%3BDROP%20TABLE%20calls", "sort_column"},
		{"order=up", "order"},
		{"start_date=2026-13-01", "start_date"},
		{"start_date=03/01/2026", "start_date"},
		{"end_date=2026-03-01T00:00:00Z", "end_date"},
		{"start_date=2026-03-02&end_date=2026-03-01", "end_date"},
		{"status=a&status=b", "status"},
		{"search=" + strings.Repeat("x", 201), "search"},
		{"filter_columns[]=nope&filter_operator[]=eq&filter_values[]=x", "filter_columns[0]"},
		{"filter_columns[]=metadata&filter_operator[]=eq&filter_values[]=x", "filter_columns[0]"},
		{"filter_columns[]=call_status&filter_columns[]=c.id&filter_operator[]=eq&filter_operator[]=eq&filter_values[]=x&filter_values[]=y", "filter_columns[1]"},
		{"filter_columns[]=call_status&filter_operator[]=like&filter_values[]=x", "filter_operator[0]"},
		{"filter_columns[]=call_duration&filter_operator[]=contains&filter_values[]=1", "filter_operator[0]"},
		{"filter_columns[]=is_test&filter_operator[]=gt&filter_values[]=true", "filter_operator[0]"},
		{"filter_columns[]=call_duration&filter_operator[]=gt&filter_values[]=long", "filter_values[0]"},
		{"filter_columns[]=call_duration&filter_operator[]=gt&filter_values[]=99999999999", "filter_values[0]"},
		{"filter_columns[]=is_test&filter_operator[]=eq&filter_values[]=maybe", "filter_values[0]"},
		{"filter_columns[]=started_at&filter_operator[]=gt&filter_values[]=yesterday", "filter_values[0]"},
		{"filter_columns[]=id&filter_operator[]=eq&filter_values[]=42", "filter_values[0]"},
		{"filter_columns[]=call_status&filter_operator[]=eq", "filter_values[]"},
		{"filter_columns[]=call_status&filter_operator[]=eq&filter_values[]=x&filter_values[]=y", "filter_columns[]"},
		{"filter_columns[]=call_status&filter_columns=call_to&filter_operator[]=eq&filter_values[]=x", `"filter_columns"`},
		{"filter_columns=call_status&filter_operator=eq&filter_values=busy", `"filter_columns"`},
		{many.Encode(), "filter_columns[]"},
		{"search=a%00b", "search"},
		{"search=%FF", "search"},
		{"campaign_id=x%C3", "campaign_id"},
		{"filter_columns[]=disconnect_reason&filter_operator[]=contains&filter_values[]=%C3%28", "filter_values[0]"},
		{"filter_columns[]=call_to&filter_operator[]=eq&filter_values[]=%2B1%00", "filter_values[0]"},
		{"filter_columns[]=call_status&filter_operator[]=contains&filter_values[]=%00", "filter_values[0]"},
	} {
		t.Run(tc.query[:min(len(tc.query), 60)], func(t *testing.T) {
			r := b.do("GET", "/v1/calls/query?"+tc.query, "", nil)
			r.want(t, 400, "invalid_request")
			if !strings.Contains(r.Message, tc.wantIn) {
				t.Errorf("message: got %q, want it to name %q", r.Message, tc.wantIn)
			}
		})
	}
}

// TestQueryCallsLargeWorkspacePaging checks that paging through a workspace
// visits every call exactly once, ties on the sort column included.
func TestQueryCallsLargeWorkspacePaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.pool.Exec(context.Background(), `INSERT INTO calls (workspace_id, call_from, call_to, call_direction, call_status, created_at)
		SELECT $1, '+15550009999', '+1555000' || lpad(i::text, 4, '0'), 'outbound', 'completed', '2026-03-01'::timestamptz + (i / 10) * interval '1 minute'
		FROM generate_series(1, 250) i`, b.workspace)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for page := 0; ; page++ {
		r := b.do("GET", fmt.Sprintf("/v1/calls/query?per_page=100&page=%d", page), "", nil)
		r.want(t, 200, "")
		var p queryPage
		json.Unmarshal(r.Body, &p)
		if p.Pagination.Total != 250 {
			t.Fatalf("page %d: total %d, want 250", page, p.Pagination.Total)
		}
		if len(p.Data) == 0 {
			break
		}
		for _, c := range p.Data {
			if seen[c.ID] {
				t.Fatalf("call %s on two pages", c.ID)
			}
			seen[c.ID] = true
		}
	}
	if len(seen) != 250 {
		t.Errorf("calls seen: got %d, want 250", len(seen))
	}
}

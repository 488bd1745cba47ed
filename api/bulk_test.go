package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/jobs"
)

// bulk posts a bulk end with an optional Idempotency-Key and token ("" for
// the bundle's key).
func (b *bundle) bulk(token, key string, body any) (response, endcall.BulkEnd) {
	b.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", b.url+"/v1/calls/end-bulk", bytes.NewReader(raw))
	if token == "" {
		token = b.key
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out := response{Status: res.StatusCode}
	out.Body, _ = io.ReadAll(res.Body)
	var env struct {
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
		Error   struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(out.Body, &env); err != nil {
		b.t.Fatalf("body is not JSON: %s", out.Body)
	}
	out.Message, out.Data, out.Code = env.Message, env.Data, env.Error.Code
	var j endcall.BulkEnd
	if res.StatusCode == 202 {
		if err := json.Unmarshal(env.Data, &j); err != nil {
			b.t.Fatal(err)
		}
	}
	return out, j
}

// bulkCalls lists the calls a job's snapshot holds.
func (b *bundle) bulkCalls(jobID string) []string {
	b.t.Helper()
	var ids []string
	rows, err := b.pool.Query(context.Background(), `SELECT call_id::text FROM bulk_end_calls WHERE job_id = $1 ORDER BY call_id`, jobID)
	if err != nil {
		b.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	return ids
}

func (b *bundle) jobCount() int {
	b.t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM bulk_end_jobs`).Scan(&n); err != nil {
		b.t.Fatal(err)
	}
	return n
}

func TestBulkEndBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550001111", false)
	c := b.activeCall("+15550001111", account, "in-progress", map[string]any{"campaign_id": "c1"})
	before := b.snapshot()
	ids := make([]string, 1001)
	for i := range ids {
		ids[i] = c.ID
	}
	for _, tc := range []struct {
		name string
		body any
	}{
		{"no filter", map[string]any{}},
		{"null filter", map[string]any{"filter": nil}},
		{"empty filter", map[string]any{"filter": map[string]any{}}},
		{"only nulls", map[string]any{"filter": map[string]any{"campaign_id": nil}}},
		{"all false", map[string]any{"filter": map[string]any{"all": false}}},
		{"all with another", map[string]any{"filter": map[string]any{"all": true, "campaign_id": "c1"}}},
		{"unknown criterion", map[string]any{"filter": map[string]any{"campaign": "c1"}}},
		{"unknown beside known", map[string]any{"filter": map[string]any{"campaign_id": "c1", "status": "x"}}},
		{"filter not object", map[string]any{"filter": []string{"c1"}}},
		{"all not boolean", map[string]any{"filter": map[string]any{"all": "yes"}}},
		{"is_test not boolean", map[string]any{"filter": map[string]any{"is_test": "true"}}},
		{"empty campaign", map[string]any{"filter": map[string]any{"campaign_id": ""}}},
		{"campaign not string", map[string]any{"filter": map[string]any{"campaign_id": 7}}},
		{"empty call_ids", map[string]any{"filter": map[string]any{"call_ids": []string{}}}},
		{"too many call_ids", map[string]any{"filter": map[string]any{"call_ids": ids}}},
		{"bad call id", map[string]any{"filter": map[string]any{"call_ids": []string{"nope"}}}},
		{"bad started_before", map[string]any{"filter": map[string]any{"started_before": "yesterday"}}},
		{"long reason", map[string]any{"filter": map[string]any{"all": true}, "disconnect_reason": strings.Repeat("x", 501)}},
		{"long final message", map[string]any{"filter": map[string]any{"all": true}, "final_message": strings.Repeat("x", 1001)}},
		{"reason not string", map[string]any{"filter": map[string]any{"all": true}, "disconnect_reason": 5}},
		{"not an object", []int{1}},
	} {
		r, _ := b.bulk("", "", tc.body)
		if r.Status != 400 || r.Code != "invalid_request" {
			t.Errorf("%s: got %d %q, want 400 invalid_request; body %s", tc.name, r.Status, r.Code, r.Body)
		}
	}
	r, _ := b.bulk("", strings.Repeat("k", 256), map[string]any{"filter": map[string]any{"all": true}})
	r.want(t, 400, "invalid_request")
	r, _ = b.bulk("", "key with spaces", map[string]any{"filter": map[string]any{"all": true}})
	r.want(t, 400, "invalid_request")
	if b.snapshot() != before || b.jobCount() != 0 || b.twilio.HangupCount(*c.CallSID) != 0 {
		t.Error("a refused bulk end changed something")
	}
	b.do("GET", "/v1/calls/end-bulk/7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11", "", nil).want(t, 404, "not_found")
	b.do("GET", "/v1/calls/end-bulk/nope", "", nil).want(t, 404, "not_found")
}

// The snapshot holds exactly the workspace's active calls that match every
// criterion when the job is accepted.
func TestBulkEndSnapshot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550002222", false)
	early := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	a := b.activeCall("+15550002222", account, "in-progress", map[string]any{"campaign_id": "c1", "ai_agent_id": "agent-1", "started_at": early})
	a2 := b.activeCall("+15550002222", account, "in-progress", map[string]any{"campaign_id": "c1", "is_test": true})
	other := b.activeCall("+15550002222", account, "ringing", map[string]any{"campaign_id": "c2"})
	ended := b.activeCall("+15550002222", account, "in-progress", map[string]any{"campaign_id": "c1"})
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": ended.ID}).want(t, 200, "")

	cutoff := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	for _, tc := range []struct {
		filter map[string]any
		want   []string
	}{
		{map[string]any{"campaign_id": "c1"}, []string{a.ID, a2.ID}},
		{map[string]any{"campaign_id": "c1", "is_test": false}, []string{a.ID}},
		{map[string]any{"is_test": true}, []string{a2.ID}},
		{map[string]any{"ai_agent_id": "agent-1"}, []string{a.ID}},
		{map[string]any{"started_before": cutoff}, []string{a.ID}},
		{map[string]any{"call_ids": []string{a2.ID, other.ID, ended.ID}}, []string{a2.ID, other.ID}},
		{map[string]any{"all": true}, []string{a.ID, a2.ID, other.ID}},
	} {
		r, j := b.bulk("", "", map[string]any{"filter": tc.filter})
		r.want(t, 202, "")
		got := b.bulkCalls(j.ID)
		if fmt.Sprint(got) != fmt.Sprint(sorted(tc.want)) || j.Matched != len(tc.want) {
			t.Errorf("filter %v: matched %d %v, want %v", tc.filter, j.Matched, got, sorted(tc.want))
		}
		if j.Status != endcall.BulkRunning || j.FinishedAt != nil || j.Ended != 0 || j.CreatedAt.IsZero() {
			t.Errorf("filter %v: job %+v, want running", tc.filter, j)
		}
		if tasks := b.tasks(jobs.QueueDefault); !contains(tasks, "endbulk:"+j.ID) {
			t.Errorf("filter %v: task endbulk:%s not queued (%v)", tc.filter, j.ID, tasks)
		}
	}
	// A call that starts after the job was accepted is not among its calls.
	_, j := b.bulk("", "", map[string]any{"filter": map[string]any{"campaign_id": "c2"}})
	b.activeCall("+15550002222", account, "in-progress", map[string]any{"campaign_id": "c2"})
	if got := b.bulkCalls(j.ID); len(got) != 1 || got[0] != other.ID {
		t.Errorf("snapshot %v, want only %s", got, other.ID)
	}
	if b.twilio.HangupCount(*a.CallSID) != 0 {
		t.Error("accepting a bulk end hung a call up; the worker does that")
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// A filter that matches nothing, or only another workspace's calls, is a
// job completed at once with nothing matched; another workspace's job is
// not found.
func TestBulkEndMatchingNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550003333", false)
	c := b.activeCall("+15550003333", account, "in-progress", nil)
	_, otherKey, err := b.store.CreateAPIKey(context.Background(), "intruder")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		token  string
		filter map[string]any
	}{
		{"", map[string]any{"campaign_id": "none"}},
		{otherKey, map[string]any{"call_ids": []string{c.ID}}},
		{otherKey, map[string]any{"all": true}},
	} {
		r, j := b.bulk(tc.token, "", map[string]any{"filter": tc.filter})
		r.want(t, 202, "")
		if j.Status != endcall.BulkCompleted || j.Matched != 0 || j.FinishedAt == nil || j.Ended+j.AlreadyEnded+j.Failed != 0 {
			t.Errorf("filter %v: job %+v, want completed with nothing matched", tc.filter, j)
		}
		if tasks := b.tasks(jobs.QueueDefault); contains(tasks, "endbulk:"+j.ID) {
			t.Errorf("a job with nothing to do was queued")
		}
	}
	_, mine := b.bulk("", "", map[string]any{"filter": map[string]any{"all": true}})
	b.do("GET", "/v1/calls/end-bulk/"+mine.ID, otherKey, nil).want(t, 404, "not_found")
	r := b.do("GET", "/v1/calls/end-bulk/"+mine.ID, "", nil)
	r.want(t, 200, "")
	var got endcall.BulkEnd
	json.Unmarshal(r.Data, &got)
	if got.ID != mine.ID || got.Matched != 1 || got.Status != endcall.BulkRunning {
		t.Errorf("GET: %+v, want the job", got)
	}
	var shape map[string]any
	json.Unmarshal(r.Data, &shape)
	for _, k := range []string{"id", "status", "matched", "ended", "already_ended", "failed", "created_at", "finished_at"} {
		if _, ok := shape[k]; !ok {
			t.Errorf("job has no %s: %s", k, r.Data)
		}
	}
	if b.twilio.HangupCount(*c.CallSID) != 0 {
		t.Error("another workspace's bulk end touched the call")
	}
}

// The same Idempotency-Key answers the same job, also when the requests
// race; another workspace's key is its own; the key with another request
// is a conflict.
func TestBulkEndIdempotencyKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, account := b.phone("+15550004444", false)
	b.activeCall("+15550004444", account, "in-progress", map[string]any{"campaign_id": "c1"})
	body := map[string]any{"filter": map[string]any{"campaign_id": "c1"}, "disconnect_reason": "stop"}

	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, j := b.bulk("", "key-1", body)
			if r.Status != 202 {
				t.Errorf("POST: %d %s", r.Status, r.Body)
			}
			ids[i] = j.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("the same key answered jobs %v", ids)
		}
	}
	// The same request, formatted otherwise, is the same request.
	r, j := b.bulk("", "key-1", map[string]any{"disconnect_reason": " stop ", "filter": map[string]any{"campaign_id": "c1", "is_test": nil}})
	r.want(t, 202, "")
	if j.ID != ids[0] || r.Message != "Bulk end already accepted" {
		t.Errorf("repeat: job %s %q, want %s", j.ID, r.Message, ids[0])
	}
	if n := b.jobCount(); n != 1 {
		t.Errorf("%d jobs, want 1", n)
	}
	r, _ = b.bulk("", "key-1", map[string]any{"filter": map[string]any{"all": true}})
	r.want(t, 409, "conflict")
	_, otherKey, err := b.store.CreateAPIKey(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, j := b.bulk(otherKey, "key-1", body); j.ID == "" || j.ID == ids[0] {
		t.Errorf("another workspace's key answered job %q", j.ID)
	}
	if _, j := b.bulk("", "key-2", body); j.ID == ids[0] {
		t.Error("another key answered the same job")
	}
	// Past 24 hours the key starts a new job.
	if _, err := b.pool.Exec(context.Background(), `UPDATE bulk_end_jobs SET created_at = now() - interval '25 hours' WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, j := b.bulk("", "key-1", body); j.ID == "" || j.ID == ids[0] {
		t.Errorf("a day-old key answered job %q", j.ID)
	}
}

package api

import (
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/endcall/endcall"
)

// queryParams are the parameters of GET /v1/calls/query; every refusal must
// name one of them.
var queryParams = []string{"campaign_id", "ai_agent_id", "status", "search", "disconnect_reason", "start_date",
	"end_date", "page", "per_page", "sort_column", "order", "filter_columns", "filter_operator", "filter_values"}

// FuzzParseCallQuery checks that no query string makes the parser panic,
// that every refusal is an invalid_request naming a parameter, and that
// whatever it accepts is within the contract: paging bounds, whitelisted
// columns, operators that fit the column, values of the column's type.
func FuzzParseCallQuery(f *testing.F) {
	for _, seed := range []string{
		"", "page=2&per_page=100&sort_column=call_duration&order=asc",
		"status=PROG&search=refund&campaign_id=c1&ai_agent_id=a1&disconnect_reason=busy",
		"start_date=2026-03-01&end_date=2026-03-01", "start_date=2026-03-02&end_date=2026-03-01",
		"filter_columns[]=call_duration&filter_operator[]=gte&filter_values[]=45",
		"filter_columns[]=ended_at&filter_operator[]=is_null&filter_values[]=",
		"filter_columns[]=id&filter_operator[]=eq&filter_values[]=7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11",
		"filter_columns=is_test&filter_operator=EQ&filter_values=TRUE",
		"filter_columns[]=started_at&filter_operator[]=lt&filter_values[]=2026-03-01T10:00:00%2B02:00",
		"filter_columns[]=x&filter_operator[]=eq", "per_page=0", "page=-1", "sort_column=id", "order=sideways",
		"search=%25_%5C", "page=2147483648",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, _ := url.ParseQuery(raw)
		q, err := parseCallQuery(v)
		if err != nil {
			msg := endcall.ErrorMessage(err)
			if endcall.ErrorCode(err) != endcall.EINVALID || !slices.ContainsFunc(queryParams, func(p string) bool { return strings.Contains(msg, p) }) {
				t.Fatalf("error %v is not an invalid_request naming a parameter", err)
			}
			return
		}
		if q.PerPage < 1 || q.PerPage > maxPerPage || q.Page < 0 || !slices.Contains(endcall.SortColumns, q.SortColumn) {
			t.Fatalf("accepted paging or sort out of bounds: %+v", q)
		}
		if q.StartedFrom != nil && q.StartedBefore != nil && !q.StartedBefore.After(*q.StartedFrom) {
			t.Fatalf("accepted an empty date range: %v to %v", q.StartedFrom, q.StartedBefore)
		}
		for _, s := range q.Statuses {
			if !slices.Contains(endcall.Statuses, s) {
				t.Fatalf("status %q is not a call status", s)
			}
		}
		if len(q.Filters) > maxFilters {
			t.Fatalf("accepted %d filters", len(q.Filters))
		}
		wantType := map[int]reflect.Type{endcall.ColumnText: reflect.TypeFor[string](), endcall.ColumnInt: reflect.TypeFor[int64](),
			endcall.ColumnBool: reflect.TypeFor[bool](), endcall.ColumnTime: reflect.TypeFor[time.Time](), endcall.ColumnUUID: reflect.TypeFor[string]()}
		for _, fl := range q.Filters {
			typ, ok := endcall.FilterColumns[fl.Column]
			if !ok || !endcall.OperatorApplies(fl.Operator, typ) {
				t.Fatalf("accepted filter %+v", fl)
			}
			null := fl.Operator == endcall.OpIsNull || fl.Operator == endcall.OpNotNull
			if null != (fl.Value == nil) || (!null && reflect.TypeOf(fl.Value) != wantType[typ]) {
				t.Fatalf("filter %+v: value of type %T", fl, fl.Value)
			}
		}
	})
}

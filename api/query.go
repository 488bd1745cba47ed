package api

import (
	"bufio"
	"encoding/json"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/endcall/endcall"
)

// Limits of GET /v1/calls/query.
const (
	defaultPerPage = 10
	maxPerPage     = 100
	// maxOffset bounds how deep a page may start: each row before it is
	// read and dropped, so deep pages of a large result cost like a full
	// scan. Narrower filters reach the same calls cheaply.
	maxOffset       = 10_000
	maxFilters      = 20
	maxSearchLen    = 200
	maxStatusLen    = 50
	maxFilterValLen = 1000
	dateLayout      = "2006-01-02"
)

func (s *Server) handleQueryCalls(w http.ResponseWriter, r *http.Request) {
	q, err := parseCallQuery(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q.WorkspaceID = workspaceFrom(r.Context())
	// The page is written as it is read, and the total after it: a page
	// of a hundred 1 MiB transcripts is never held whole, neither as calls
	// nor as JSON.
	var out *bufio.Writer
	begin := func() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		out = bufio.NewWriterSize(w, 32<<10)
		out.WriteString(`{"status":"success","message":"Calls retrieved","data":[`)
	}
	total, err := s.store.StreamCalls(r.Context(), q, func(c *endcall.Call) error {
		raw, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if out == nil {
			begin()
		} else {
			out.WriteByte(',')
		}
		_, err = out.Write(raw)
		return err
	})
	if err != nil && out == nil {
		s.fail(w, r, err)
		return
	}
	if err == nil {
		if out == nil {
			begin()
		}
		var tail []byte
		if tail, err = json.Marshal(Pagination{Page: q.Page, PerPage: q.PerPage, Total: total}); err == nil {
			out.WriteString(`],"pagination":`)
			out.Write(tail)
			out.WriteString("}\n")
			err = out.Flush()
		}
	}
	if err != nil {
		// The status is sent: the response can only be cut off, so that
		// the client sees it incomplete rather than a valid short page.
		s.log.WarnContext(r.Context(), "query response cut off", "error", err)
		panic(http.ErrAbortHandler)
	}
}

// filterColumns lists the filterable columns for error messages.
var filterColumns = strings.Join(slices.Sorted(maps.Keys(endcall.FilterColumns)), ", ")

// parseCallQuery validates the query string of GET /v1/calls/query. Every
// error is EINVALID and names the parameter at fault. Empty values count as
// absent, since clients commonly send unset filters as "name=". Unknown
// parameters are refused by the route (knownQuery).
func parseCallQuery(v url.Values) (endcall.CallQuery, error) {
	q := endcall.CallQuery{PerPage: defaultPerPage, SortColumn: "created_at", Descending: true}
	one := func(name string, max int) (string, error) {
		vals := v[name]
		if len(vals) > 1 {
			return "", invalid("%s is given %d times; give it at most once.", name, len(vals))
		}
		if len(vals) == 0 {
			return "", nil
		}
		if len([]rune(vals[0])) > max {
			return "", invalid("%s must be at most %d characters.", name, max)
		}
		if !storable(vals[0]) {
			return "", invalid("%s must be UTF-8 text without NUL characters.", name)
		}
		return strings.TrimSpace(vals[0]), nil
	}
	var err error
	if q.CampaignID, err = one("campaign_id", maxIDLen); err != nil {
		return q, err
	}
	if q.AIAgentID, err = one("ai_agent_id", maxIDLen); err != nil {
		return q, err
	}
	if q.DisconnectReason, err = one("disconnect_reason", maxReasonLen); err != nil {
		return q, err
	}
	if q.Search, err = one("search", maxSearchLen); err != nil {
		return q, err
	}
	status, err := one("status", maxStatusLen)
	if err != nil {
		return q, err
	} else if status != "" {
		q.Statuses = endcall.StatusesMatching(status)
	}

	for _, d := range []struct {
		name string
		dst  **time.Time
		days int
	}{{"start_date", &q.StartedFrom, 0}, {"end_date", &q.StartedBefore, 1}} {
		s, err := one(d.name, len(dateLayout))
		if err != nil {
			return q, err
		} else if s == "" {
			continue
		}
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return q, invalid("%s must be a date in the form YYYY-MM-DD.", d.name)
		}
		// end_date is inclusive: the range runs to the start of the next day.
		t = t.AddDate(0, 0, d.days)
		*d.dst = &t
	}
	if q.StartedFrom != nil && q.StartedBefore != nil && !q.StartedBefore.After(*q.StartedFrom) {
		return q, invalid("end_date must not be before start_date.")
	}

	if s, err := one("page", 20); err != nil {
		return q, err
	} else if s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > math.MaxInt32 {
			return q, invalid("page must be an integer of 0 or more (pages are numbered from 0).")
		}
		q.Page = n
	}
	if s, err := one("per_page", 20); err != nil {
		return q, err
	} else if s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPerPage {
			return q, invalid("per_page must be an integer from 1 to %d.", maxPerPage)
		}
		q.PerPage = n
	}
	if q.Page*q.PerPage > maxOffset {
		return q, invalid("page %d with per_page %d starts beyond the first %d calls; narrow the filters (for example start_date and end_date) instead of paging this deep.",
			q.Page, q.PerPage, maxOffset)
	}
	if s, err := one("sort_column", 64); err != nil {
		return q, err
	} else if s != "" {
		if !slices.Contains(endcall.SortColumns, s) {
			return q, invalid("sort_column %q is not sortable; use one of %s.", s, strings.Join(endcall.SortColumns, ", "))
		}
		q.SortColumn = s
	}
	if s, err := one("order", 8); err != nil {
		return q, err
	} else if s != "" {
		switch strings.ToLower(s) {
		case "asc":
			q.Descending = false
		case "desc":
		default:
			return q, invalid(`order must be "asc" or "desc".`)
		}
	}
	q.Filters, err = parseFilters(v)
	return q, err
}

// parseFilters reads the advanced filters: three parallel arrays whose
// entries at one index make one filter. Values are parsed by column type so
// that a bad value is refused here rather than by the database.
func parseFilters(v url.Values) ([]endcall.CallFilter, error) {
	// Only the bracketed names are accepted, so that a plain filter_columns
	// is refused as unknown rather than read one way or the other.
	cols, ops, vals := v["filter_columns[]"], v["filter_operator[]"], v["filter_values[]"]
	if len(cols) != len(ops) || len(cols) != len(vals) {
		return nil, invalid("filter_columns[], filter_operator[] and filter_values[] must have the same number of entries (got %d, %d and %d); give an empty value for is_null and not_null.",
			len(cols), len(ops), len(vals))
	}
	if len(cols) > maxFilters {
		return nil, invalid("filter_columns[] may name at most %d filters.", maxFilters)
	}
	filters := make([]endcall.CallFilter, 0, len(cols))
	for i, col := range cols {
		typ, ok := endcall.FilterColumns[col]
		if !ok {
			return nil, invalid("filter_columns[%d]: %q is not a filterable column; use one of %s.", i, col, filterColumns)
		}
		op := strings.ToLower(ops[i])
		if !endcall.OperatorApplies(op, typ) {
			return nil, invalid("filter_operator[%d]: operator %q does not apply to %s; use %s.", i, ops[i], col, operatorsFor(typ))
		}
		f := endcall.CallFilter{Column: col, Operator: op}
		if op != endcall.OpIsNull && op != endcall.OpNotNull {
			if !storable(vals[i]) {
				return nil, invalid("filter_values[%d]: %s must be UTF-8 text without NUL characters.", i, col)
			}
			var err error
			if f.Value, err = filterValue(typ, vals[i]); err != nil {
				return nil, invalid("filter_values[%d]: %s must be %s.", i, col, err.Error())
			}
		}
		filters = append(filters, f)
	}
	return filters, nil
}

// typeError says what a filter value of some type must look like.
type typeError string

func (e typeError) Error() string { return string(e) }

// filterValue parses a filter value for a column of type typ.
func filterValue(typ int, s string) (any, error) {
	switch typ {
	case endcall.ColumnInt:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
		if err != nil {
			return nil, typeError("an integer")
		}
		return n, nil
	case endcall.ColumnBool:
		b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(s)))
		if err != nil {
			return nil, typeError("true or false")
		}
		return b, nil
	case endcall.ColumnTime:
		s = strings.TrimSpace(s)
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t.UTC(), nil
		}
		if t, err := time.Parse(dateLayout, s); err == nil {
			return t, nil
		}
		return nil, typeError("an RFC 3339 timestamp or a YYYY-MM-DD date")
	case endcall.ColumnUUID:
		id, ok := parseUUID(strings.TrimSpace(s))
		if !ok {
			return nil, typeError("a UUID")
		}
		return id, nil
	}
	if len([]rune(s)) > maxFilterValLen {
		return nil, typeError("at most " + strconv.Itoa(maxFilterValLen) + " characters")
	}
	return s, nil
}

// operatorsFor lists the operators that apply to a column type, for error messages.
func operatorsFor(typ int) string {
	var ops []string
	for _, op := range []string{endcall.OpEq, endcall.OpNe, endcall.OpContains, endcall.OpGt, endcall.OpGte,
		endcall.OpLt, endcall.OpLte, endcall.OpIsNull, endcall.OpNotNull} {
		if endcall.OperatorApplies(op, typ) {
			ops = append(ops, op)
		}
	}
	return strings.Join(ops, ", ")
}

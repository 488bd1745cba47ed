package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"
)

// acceptedQuery lists the query parameters of each route ("GET
// /v1/calls/query"), read from openapi.json so that the document and the
// check cannot disagree.
var acceptedQuery = func() map[string][]string {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		panic("openapi.json: " + err.Error())
	}
	type params []struct{ Name, In string }
	out := map[string][]string{}
	for path, item := range doc.Paths {
		var shared params
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				panic("openapi.json: " + path + ": " + err.Error())
			}
		}
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op struct{ Parameters params }
			if err := json.Unmarshal(raw, &op); err != nil {
				panic("openapi.json: " + path + ": " + err.Error())
			}
			names := []string{}
			for _, p := range append(shared, op.Parameters...) {
				if p.In == "query" {
					names = append(names, p.Name)
				}
			}
			out[strings.ToUpper(method)+" "+path] = names
		}
	}
	return out
}()

// knownQuery refuses a query parameter the route does not know, so that a
// misspelt filter is a 400 rather than silently ignored.
func (s *Server) knownQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			next.ServeHTTP(w, r)
			return
		}
		var tpl string
		if route := mux.CurrentRoute(r); route != nil {
			tpl, _ = route.GetPathTemplate()
		}
		accepted := acceptedQuery[r.Method+" "+tpl]
		var unknown []string
		for name := range r.URL.Query() {
			if !slices.Contains(accepted, name) {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			if len(accepted) == 0 {
				s.fail(w, r, invalid("Unknown query parameter %q: %s %s accepts no query parameters.", unknown[0], r.Method, tpl))
			} else {
				s.fail(w, r, invalid("Unknown query parameter %q: %s %s accepts %s.", unknown[0], r.Method, tpl, strings.Join(accepted, ", ")))
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

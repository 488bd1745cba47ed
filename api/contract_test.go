package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// contract is the served OpenAPI document, loaded once for every test and
// made strict: an object schema that lists its properties allows no other,
// so that a field the code sends and the document omits fails a test. (The
// served document stays open, so that clients tolerate additions.)
var contract struct {
	once   sync.Once
	router routers.Router
	err    error
}

func loadContract(raw []byte) (routers.Router, error) {
	contract.once.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(raw)
		if err != nil {
			contract.err = err
			return
		}
		if err = doc.Validate(context.Background()); err != nil {
			contract.err = err
			return
		}
		seen := map[*openapi3.Schema]bool{}
		for _, s := range doc.Components.Schemas {
			closeSchema(s, seen)
		}
		for _, item := range doc.Paths.Map() {
			for _, op := range item.Operations() {
				for _, res := range op.Responses.Map() {
					if res.Value == nil {
						continue
					}
					for _, mt := range res.Value.Content {
						closeSchema(mt.Schema, seen)
					}
				}
			}
		}
		// Servers "/" is relative to wherever the API runs.
		doc.Servers = nil
		contract.router, contract.err = gorillamux.NewRouter(doc)
	})
	return contract.router, contract.err
}

// closeSchema forbids properties a schema does not list, throughout.
func closeSchema(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil && len(s.AllOf) == 0 {
		no := false
		s.AdditionalProperties.Has = &no
	}
	for _, p := range s.Properties {
		closeSchema(p, seen)
	}
	closeSchema(s.Items, seen)
	for _, list := range [][]*openapi3.SchemaRef{s.OneOf, s.AnyOf, s.AllOf} {
		for _, x := range list {
			closeSchema(x, seen)
		}
	}
}

// checkContract fails the test when a response of a documented route does
// not match the served document: its status must be listed and its body
// must match that status's schema.
func (b *bundle) checkContract(req *http.Request, res *http.Response, body []byte) {
	b.t.Helper()
	if b.legacy {
		return
	}
	b.contractOnce.Do(func() {
		r, err := http.Get(b.url + "/openapi.json")
		if err != nil {
			b.t.Fatal(err)
		}
		defer r.Body.Close()
		raw, _ := io.ReadAll(r.Body)
		if b.contract, err = loadContract(raw); err != nil {
			b.t.Fatalf("the served openapi.json does not load: %v", err)
		}
	})
	route, params, err := b.contract.FindRoute(req)
	if err != nil {
		return // not a documented route and method (a 404 or 405 test)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		b.t.Errorf("%s %s answered %d, which openapi.json does not describe: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
}

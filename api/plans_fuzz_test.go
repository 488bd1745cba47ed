package api

import (
	"encoding/json"
	"testing"

	"github.com/endcall/endcall"
)

// FuzzDecodePlan checks that no body makes the plan decoder panic, that it
// refuses with a clear invalid_request, and that whatever it accepts is a
// valid plan that survives a round trip through JSON.
func FuzzDecodePlan(f *testing.F) {
	for _, seed := range []string{
		`{"name":"p"}`,
		`{"name":"p","ai_agent_id":"agent-1","summary_instructions":"short","fields":[{"name":"a_b","type":"enum","choices":["x","y"],"required":true}],"success_rubric":{"type":"pass_fail","criteria":"c"}}`,
		`{"name":"p","fields":[{"name":"n","type":"integer","choices":[]}],"success_rubric":null}`,
		`{"name":"p","fields":[{"name":"n","type":"enum","choices":["x","x"]}]}`,
		`{"name":"p","fields":{"name":"n"}}`, `{"name":1}`, `[]`, `{`, ``, `null`, `{"name":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodePlan(body)
		if err != nil {
			if endcall.ErrorCode(err) != endcall.EINVALID || endcall.ErrorMessage(err) == "" {
				t.Fatalf("error %v is not a clear invalid_request", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted an invalid plan: %v", err)
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodePlan(raw)
		if err != nil {
			t.Fatalf("the accepted plan %s does not decode again: %v", raw, err)
		}
		if raw2, _ := json.Marshal(again); string(raw2) != string(raw) {
			t.Fatalf("round trip changed the plan:\n%s\n%s", raw, raw2)
		}
	})
}

package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/endcall/endcall"
)

// FuzzDecodeEndRequest checks that no body makes the end-call decoder panic,
// and that whatever it accepts satisfies the contract's rules.
func FuzzDecodeEndRequest(f *testing.F) {
	for _, seed := range []string{
		`{"call_id":"7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11"}`,
		`{"call_id":"7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11","disconnect_reason":"bye"}`,
		`{"call_id":"7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11","disconnect_reason":null}`,
		`{"call_id":42}`, `[]`, `{`, ``, `null`, `{"call_id":"{7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11}"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeEndRequest(body)
		if err != nil {
			if endcall.ErrorCode(err) != endcall.EINVALID || endcall.ErrorMessage(err) == "" {
				t.Fatalf("error %v is not a clear invalid_request", err)
			}
			return
		}
		if _, ok := parseUUID(req.CallID); !ok || len(req.CallID) != 36 {
			t.Fatalf("accepted call_id %q", req.CallID)
		}
		if strings.TrimSpace(req.Reason) == "" || utf8.RuneCountInString(req.Reason) > maxReasonLen {
			t.Fatalf("accepted reason %q", req.Reason)
		}
	})
}

// FuzzForJSONB checks that what forJSONB accepts from any valid JSON is
// JSON that Postgres jsonb takes as it is: valid UTF-8, numbers in range,
// stable when re-encoded, and holding a NUL only if the input did (field
// refuses those before).
func FuzzForJSONB(f *testing.F) {
	for _, seed := range []string{
		`{"a":"\ud800","b":"\udc00x","\ud83d\ude00":1}`, `{"n":1e1000000}`, `[-0.0e-999, 1e-400, 12.5]`,
		`{"a":"\\u0000"}`, `"x\u2028y<&>"`, "\"\xff\xfe\"", `{"a":{"b":[1,"c",null,true]}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		out, ok := forJSONB(raw)
		if !ok {
			return
		}
		if !json.Valid(out) || !utf8.Valid(out) || hasNUL(out) != hasNUL(raw) {
			t.Fatalf("forJSONB(%q) = %q: not valid, not UTF-8, or a NUL gained or lost", raw, out)
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(out))
		d.UseNumber()
		if err := d.Decode(&v); err != nil || !numbersFit(v) {
			t.Fatalf("forJSONB(%q) = %q: %v", raw, out, err)
		}
		if again, ok := forJSONB(out); !ok || !bytes.Equal(again, out) {
			t.Fatalf("forJSONB is not stable: %q, then %q", out, again)
		}
	})
}

// FuzzRequestID checks that a caller's X-Request-Id is kept exactly when it
// is 1 to 128 visible ASCII characters, and that any id given back is one
// such (safe in a header, a log line and a JSON body).
func FuzzRequestID(f *testing.F) {
	for _, seed := range []string{"", "abc", "trace-42/abc", "has space", "tab\tid", "é", strings.Repeat("x", 129), "\x7f"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, given string) {
		id := requestID(given)
		if len(id) < 1 || len(id) > maxRequestIDLen || strings.ContainsFunc(id, func(c rune) bool { return c < '!' || c > '~' }) {
			t.Fatalf("requestID(%q) = %q", given, id)
		}
		valid := len(given) >= 1 && len(given) <= maxRequestIDLen && !strings.ContainsFunc(given, func(c rune) bool { return c < '!' || c > '~' })
		if (id == given) != valid {
			t.Fatalf("requestID(%q) = %q; kept %v, valid %v", given, id, id == given, valid)
		}
	})
}

// FuzzDecodeBulkRequest checks that no body makes the bulk end decoder
// panic, and that whatever it accepts is a filter that names something.
func FuzzDecodeBulkRequest(f *testing.F) {
	for _, seed := range []string{
		`{"filter":{"all":true}}`,
		`{"filter":{"campaign_id":"c1","is_test":false},"disconnect_reason":"stop","final_message":"Goodbye"}`,
		`{"filter":{"call_ids":["7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11"],"started_before":"2026-01-02T15:04:05Z"}}`,
		`{"filter":{}}`, `{"filter":{"all":true,"is_test":true}}`, `{"filter":{"all":false}}`, `{"filter":null}`,
		`{"filter":{"call_ids":[]}}`, `{"filter":{"x":1}}`, `[]`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeBulkRequest(body)
		if err != nil {
			if endcall.ErrorCode(err) != endcall.EINVALID || endcall.ErrorMessage(err) == "" {
				t.Fatalf("error %v is not a clear invalid_request", err)
			}
			return
		}
		fl := req.Filter
		named := fl.CampaignID != nil || fl.AIAgentID != nil || fl.IsTest != nil || fl.CallIDs != nil || fl.StartedBefore != nil
		if fl.All == named {
			t.Fatalf("accepted filter %+v: all must be alone, and something must be named", fl)
		}
		if len(fl.CallIDs) > maxBulkCallIDs || (fl.CallIDs != nil && len(fl.CallIDs) == 0) {
			t.Fatalf("accepted %d call_ids", len(fl.CallIDs))
		}
		for _, id := range fl.CallIDs {
			if _, ok := parseUUID(id); !ok {
				t.Fatalf("accepted call id %q", id)
			}
		}
		if strings.TrimSpace(req.Reason) == "" || utf8.RuneCountInString(req.Reason) > maxReasonLen ||
			utf8.RuneCountInString(req.FinalMessage) > maxFinalMessageLen {
			t.Fatalf("accepted reason %q, message %q", req.Reason, req.FinalMessage)
		}
	})
}

package api

import (
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

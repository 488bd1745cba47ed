package api

import (
	"testing"
	"time"

	"github.com/endcall/endcall"
)

// FuzzDecodeCursor checks that no cursor makes the decoder panic, that
// it refuses with a clear invalid_request, and that every cursor it
// accepts encodes back to itself.
func FuzzDecodeCursor(f *testing.F) {
	good := encodeCursor(&endcall.Delivery{ID: "msg_0123456789abcdef0123456789abcdef", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)})
	for _, seed := range []string{good, "", "x", "MjAyNnw", "fG1zZ18", good + "="} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := decodeCursor(v)
		if err != nil {
			if endcall.ErrorCode(err) != endcall.EINVALID || endcall.ErrorMessage(err) == "" {
				t.Fatalf("error %v is not a clear invalid_request", err)
			}
			return
		}
		if !deliveryID.MatchString(c.ID) {
			t.Fatalf("accepted id %q", c.ID)
		}
	})
}

// FuzzDecodeWebhookBodies checks the endpoint, PATCH and replay decoders:
// no panic, clear errors, and accepted values within their bounds.
func FuzzDecodeWebhookBodies(f *testing.F) {
	for _, seed := range []string{
		`{"url":"https://example.com/h","events":["call.ended"],"rate_limit":5}`, `{"rate_limit":0}`, `{"rate_limit":null,"enabled":false}`,
		`{"since":"2026-01-01T00:00:00Z","status":"all"}`, `{"since":"x"}`, `{"enabled":null}`, `{"events":null}`, `[]`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(err error) bool {
			if err != nil && (endcall.ErrorCode(err) != endcall.EINVALID || endcall.ErrorMessage(err) == "") {
				t.Fatalf("error %v is not a clear invalid_request", err)
			}
			return err == nil
		}
		if _, _, _, rl, err := decodeWebhook(body); check(err) && rl != nil && (*rl < 1 || *rl > 1000) {
			t.Fatalf("accepted rate_limit %d", *rl)
		}
		if p, err := decodeEndpointPatch(body); check(err) && p.RateLimit.Value != nil && (*p.RateLimit.Value < 1 || *p.RateLimit.Value > 1000) {
			t.Fatalf("accepted rate_limit %d", *p.RateLimit.Value)
		}
		if r, err := decodeReplay(body, time.Now()); check(err) && (r.Since.IsZero() || (r.Status != "failed" && r.Status != "succeeded" && r.Status != "all")) {
			t.Fatalf("accepted replay %+v", r)
		}
	})
}

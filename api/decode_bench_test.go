package api

import "testing"

// BenchmarkDecodeEndRequest measures the body decoding of every end request.
func BenchmarkDecodeEndRequest(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"call_id", `{"call_id":"7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11"}`},
		{"with_reason", `{"call_id":"7b0b7cc2-6c39-4a8e-9d6d-2b8a3d0c0f11","disconnect_reason":"Customer asked to stop the call"}`},
	} {
		body := []byte(bc.body)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := decodeEndRequest(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

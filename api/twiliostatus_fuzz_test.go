package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/twilio"
)

// FuzzTwilioStatusForm checks that no callback body makes the form decoding
// panic, that every refusal is a clear client error, and that what it
// accepts is flattened faithfully: one value a parameter, or refused for
// signature checking, and a signature computed over the accepted parameters
// the way Twilio computes it validates.
func FuzzTwilioStatusForm(f *testing.F) {
	for _, seed := range []string{
		"AccountSid=AC00000000000000000000000000000000&CallSid=CA1&CallStatus=completed",
		"CallSid=CA1&CallSid=CA2", "a=%zz", "=&=&", "a=1;b=2", "a+b=c%20d&e", "%00=%00", "CallStatus=in-progress&x=%F0%9F%98%80",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, statusCallbackPath, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		form, err := readForm(httptest.NewRecorder(), r)
		if err != nil {
			if code := endcall.ErrorCode(err); (code != endcall.EINVALID && code != endcall.ETOOLARGE) || endcall.ErrorMessage(err) == "" {
				t.Fatalf("error %v is not a clear client error", err)
			}
			return
		}
		params, single := formParams(form)
		repeated := false
		for _, v := range form {
			repeated = repeated || len(v) != 1
		}
		if single == repeated {
			t.Fatalf("single %v for form %v", single, form)
		}
		if !single {
			return
		}
		if len(params) != len(form) {
			t.Fatalf("params %v lose entries of form %v", params, form)
		}
		keys := make([]string, 0, len(params))
		for k, v := range params {
			if form.Get(k) != v {
				t.Fatalf("param %q: got %q, want %q", k, v, form.Get(k))
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		const token, url = "fuzz-token-0123456789", "https://endcall.example.com" + statusCallbackPath
		mac := hmac.New(sha1.New, []byte(token))
		mac.Write([]byte(url))
		for _, k := range keys {
			mac.Write([]byte(k + params[k]))
		}
		sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
		if !twilio.ValidateSignature(token, url, params, sig) {
			t.Fatalf("Twilio's signature over %v does not validate", params)
		}
		if twilio.ValidateSignature("another-token-0123456789", url, params, sig) {
			t.Fatal("a signature validates with another token")
		}
	})
}

package webhooktest_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/endcall/endcall/webhook"
	"github.com/endcall/endcall/webhook/webhooktest"
)

// deliver signs body for id with secret, as endcall does, and posts it.
func deliver(t *testing.T, url, secret, id, body string) *http.Response {
	t.Helper()
	return deliverAs(t, "application/json", url, secret, id, body)
}

// deliverAs is deliver with another Content-Type.
func deliverAs(t *testing.T, contentType, url, secret, id, body string) *http.Response {
	t.Helper()
	now := time.Now()
	sig, err := webhook.Sign([]string{secret}, id, now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header = http.Header{"Content-Type": {contentType}, "webhook-id": {id},
		"webhook-timestamp": {strconv.FormatInt(now.Unix(), 10)}, "webhook-signature": {sig}}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRecordsAndAnswers(t *testing.T) {
	t.Parallel()
	secret := newSecret(t)
	rc := webhooktest.New(t)
	if err := rc.SetSecret(secret); err != nil {
		t.Fatal(err)
	}
	rc.Script(webhooktest.Reply{Status: 503, RetryAfter: "7"}, webhooktest.Reply{Status: 410})
	var seen []string
	rc.Before(func(d webhooktest.Delivery) { seen = append(seen, d.ID) })

	ended := `{"type":"call.ended","data":{"id":"c1"}}`
	res := deliver(t, rc.URL+"/hook", secret, "msg_1", ended)
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "7" {
		t.Errorf("first: got %d Retry-After %q, want 503 and 7", res.StatusCode, res.Header.Get("Retry-After"))
	}
	for range 2 {
		if res := deliver(t, rc.URL+"/hook", secret, "msg_1", ended); res.StatusCode != 410 {
			t.Errorf("later: got %d, want 410, the last reply", res.StatusCode)
		}
	}
	deliver(t, rc.URL+"/hook", secret, "msg_2", `{"type":"call.analyzed","data":{"id":"c1"}}`)

	got := rc.Deliveries()
	if len(got) != 4 || rc.Count() != 4 || !slices.Equal(seen, []string{"msg_1", "msg_1", "msg_1", "msg_2"}) {
		t.Fatalf("got %d deliveries (Count %d, hook saw %v), want 4", len(got), rc.Count(), seen)
	}
	d := got[2]
	if d.ID != "msg_1" || d.Attempt != 3 || d.Type != "call.ended" || d.CallID != "c1" || d.Path != "/hook" ||
		d.Status != 410 || d.VerifyErr != nil || string(d.Body) != ended {
		t.Errorf("third delivery: got %+v", d)
	}
	if got[3].Attempt != 1 {
		t.Errorf("msg_2 attempt: got %d, want 1", got[3].Attempt)
	}
	if ev := rc.Events("c1"); !slices.Equal(ev, []string{"call.ended", "call.ended", "call.ended", "call.analyzed"}) {
		t.Errorf("Events(c1): got %v", ev)
	}
	if n := len(rc.ByType("call.analyzed")); n != 1 {
		t.Errorf("ByType(call.analyzed): got %d, want 1", n)
	}
	if err := d.VerifyWith(newSecret(t)); err == nil {
		t.Errorf("VerifyWith another secret: got nil, want an error")
	}
}

func TestRejectsWhatDoesNotVerify(t *testing.T) {
	t.Parallel()
	rc := webhooktest.NewHandler()
	srv := httptest.NewServer(rc)
	defer srv.Close()
	secret := newSecret(t)
	body := `{"type":"call.ended","data":{"id":"c1"}}`
	if res := deliver(t, srv.URL, secret, "msg_1", body); res.StatusCode != 401 {
		t.Errorf("before SetSecret: got %d, want 401", res.StatusCode)
	}
	rc.SetSecret(newSecret(t))
	if res := deliver(t, srv.URL, secret, "msg_1", body); res.StatusCode != 401 {
		t.Errorf("another secret: got %d, want 401", res.StatusCode)
	}
	rc.SetSecret(secret)
	if res := deliverAs(t, "text/plain", srv.URL, secret, "msg_1", body); res.StatusCode != 401 {
		t.Errorf("text/plain: got %d, want 401", res.StatusCode)
	}
	rc.FailFirst(1, 500)
	if res := deliver(t, srv.URL, secret, "msg_1", body); res.StatusCode != 500 {
		t.Errorf("first verified: got %d, want 500", res.StatusCode)
	}
	if res := deliver(t, srv.URL, secret, "msg_1", body); res.StatusCode != 204 {
		t.Errorf("second verified: got %d, want 204", res.StatusCode)
	}
	if got := rc.Deliveries(); rc.Rejected() != 3 || got[1].VerifyErr == nil || got[2].VerifyErr == nil || got[3].VerifyErr != nil {
		t.Errorf("Rejected: got %d (deliveries %+v), want the first two and the text/plain one", rc.Rejected(), got)
	}

	rc.CountOnly()
	rc.Script(webhooktest.Reply{Delay: 200 * time.Millisecond})
	start := time.Now()
	deliver(t, srv.URL, secret, "msg_2", body)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("delayed answer took %v, want at least 200ms", d)
	}
	if rc.Count() != 6 || len(rc.Deliveries()) != 0 {
		t.Errorf("CountOnly: Count %d, %d deliveries kept; want 6, none", rc.Count(), len(rc.Deliveries()))
	}
}

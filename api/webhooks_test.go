package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
)

type endpointJSON struct {
	ID      string   `json:"id"`
	URL     string   `json:"url"`
	Events  []string `json:"events"`
	Enabled bool     `json:"enabled"`
	Secret  *string  `json:"secret"`
}

func (r response) endpoint(t *testing.T) endpointJSON {
	t.Helper()
	var e endpointJSON
	if err := json.Unmarshal(r.Data, &e); err != nil {
		t.Fatalf("not an endpoint: %s", r.Body)
	}
	return e
}

func TestWebhookEndpointsCRUD(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do("POST", "/v1/webhooks", "", map[string]any{"url": "https://93.184.216.34/hook", "description": "prod"})
	r.want(t, 201, "")
	e := r.endpoint(t)
	if e.Secret == nil || !strings.HasPrefix(*e.Secret, "whsec_") || len(*e.Secret) != len("whsec_")+44 {
		t.Errorf("secret: got %v", e.Secret)
	}
	if strings.Join(e.Events, ",") != "call.ended,call.analyzed" || !e.Enabled {
		t.Errorf("defaults: events %v enabled %v", e.Events, e.Enabled)
	}
	g := b.do("GET", "/v1/webhooks/"+e.ID, "", nil)
	g.want(t, 200, "")
	if strings.Contains(string(g.Body), "whsec_") || strings.Contains(string(g.Body), `"secret"`) {
		t.Errorf("GET shows the secret: %s", g.Body)
	}
	if l := b.do("GET", "/v1/webhooks", "", nil); strings.Contains(string(l.Body), "whsec_") || !strings.Contains(string(l.Body), e.ID) {
		t.Errorf("list: %s", l.Body)
	}
	rot := b.do("POST", "/v1/webhooks/"+e.ID+"/rotate-secret", "", nil)
	rot.want(t, 200, "")
	if ns := rot.endpoint(t).Secret; ns == nil || *ns == *e.Secret {
		t.Errorf("rotated secret: got %v", ns)
	}
	b.do("POST", "/v1/webhooks/"+e.ID+"/rotate-secret", "", "{}").want(t, 200, "")
	b.do("POST", "/v1/webhooks/"+e.ID+"/rotate-secret", "", `{"x":1}`).want(t, 400, "invalid_request")
	b.do("GET", "/v1/webhooks/"+e.ID+"/deliveries?status=pending", "", nil).want(t, 200, "")
	b.do("GET", "/v1/webhooks/"+e.ID+"/deliveries?status=weird", "", nil).want(t, 400, "invalid_request")

	_, otherKey, _ := b.store.CreateAPIKey(context.Background(), "other")
	for _, req := range []struct{ method, path string }{
		{"GET", "/v1/webhooks/" + e.ID}, {"DELETE", "/v1/webhooks/" + e.ID},
		{"POST", "/v1/webhooks/" + e.ID + "/rotate-secret"}, {"GET", "/v1/webhooks/" + e.ID + "/deliveries"},
	} {
		b.do(req.method, req.path, otherKey, nil).want(t, 404, "not_found")
	}
	b.do("DELETE", "/v1/webhooks/"+e.ID, "", nil).want(t, 200, "")
	b.do("GET", "/v1/webhooks/"+e.ID, "", nil).want(t, 404, "not_found")
	b.do("POST", "/v1/webhook-deliveries/msg_00000000000000000000000000000000/redeliver", "", nil).want(t, 404, "not_found")
	b.do("POST", "/v1/webhook-deliveries/nope/redeliver", "", nil).want(t, 404, "not_found")
}

func TestWebhookRegistrationRefusesPrivateAddresses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := b.snapshot()
	for _, u := range []string{
		"http://127.0.0.1/x", "http://[::1]/x", "http://10.0.0.1/x", "http://172.16.0.1/x", "http://192.168.1.1/x",
		"http://100.64.0.1/x", "http://169.254.169.254/latest/meta-data", "http://0.0.0.0/x", "http://localhost:8080/x",
		"ftp://93.184.216.34/x", "not a url", "",
	} {
		r := b.do("POST", "/v1/webhooks", "", map[string]any{"url": u})
		r.want(t, 400, "invalid_request")
	}
	for _, body := range []string{`{"url":"https://93.184.216.34/","events":[]}`, `{"url":"https://93.184.216.34/","events":["call.started"]}`,
		`{"url":"https://93.184.216.34/","events":"call.ended"}`, `{"url":5}`} {
		b.do("POST", "/v1/webhooks", "", body).want(t, 400, "invalid_request")
	}
	var n int
	b.pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_endpoints`).Scan(&n)
	if n != 0 || b.snapshot() != before {
		t.Errorf("refused registrations stored %d endpoints", n)
	}
	allowed := setup(t, func(o *options) { o.allowPrivate = true })
	allowed.do("POST", "/v1/webhooks", "", map[string]any{"url": "http://127.0.0.1:9/x", "events": []string{"call.ended"}}).want(t, 201, "")
}

// A workspace gets at most its limit of endpoints, however many
// creations race; deleting one frees a place, and other workspaces are not
// affected.
func TestWebhookEndpointCap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const limit, tries = 5, 20
	b.store.SetEndpointLimit(limit)
	statuses := make(chan int, tries)
	var wg sync.WaitGroup
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", b.url+"/v1/webhooks", strings.NewReader(`{"url":"https://93.184.216.34/hook"}`))
			req.Header.Set("Authorization", "Bearer "+b.key)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201] != limit || count[409] != tries-limit {
		t.Fatalf("%d concurrent creations with a limit of %d: got statuses %v", tries, limit, count)
	}
	r := b.do("POST", "/v1/webhooks", "", map[string]any{"url": "https://93.184.216.34/hook"})
	r.want(t, 409, "conflict")
	if !strings.Contains(r.Message, "delete one") {
		t.Errorf("message: %q", r.Message)
	}
	l := b.do("GET", "/v1/webhooks", "", nil)
	var list []endpointJSON
	if err := json.Unmarshal(l.Data, &list); err != nil || len(list) != limit {
		t.Fatalf("list: %v %s", err, l.Body)
	}
	b.do("DELETE", "/v1/webhooks/"+list[0].ID, "", nil).want(t, 200, "")
	b.do("POST", "/v1/webhooks", "", map[string]any{"url": "https://93.184.216.34/hook"}).want(t, 201, "")

	_, otherKey, err := b.store.CreateAPIKey(context.Background(), "other-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	b.do("POST", "/v1/webhooks", otherKey, map[string]any{"url": "https://93.184.216.34/hook"}).want(t, 201, "")
}

package dashboard_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall/dashboard"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
)

const (
	user     = "ops"
	password = "s3cret-Pa55"
)

// setup serves the dashboard on its own Redis database, holding one pending
// task in each of endcall's queues so that Asynqmon lists them.
func setup(t *testing.T, readOnly bool) (base string, redisOpt asynq.RedisConnOpt) {
	t.Helper()
	redisOpt, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	for _, q := range []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueWebhooks} {
		if _, err := client.Enqueue(asynq.NewTask("dashboard:test", []byte(`{"queue":"`+q+`"}`)), asynq.Queue(q)); err != nil {
			t.Fatal(err)
		}
	}
	h := dashboard.New(dashboard.Config{Redis: redisOpt, Username: user, Password: password, ReadOnly: readOnly})
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("closing the dashboard: %v", err)
		}
	})
	mux := http.NewServeMux()
	mux.Handle(dashboard.Path, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, redisOpt
}

// request sends a request with Basic credentials, when given, and header
// names and values.
func request(t *testing.T, method, url, user, password string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, body
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	base, _ := setup(t, false)
	for _, tc := range []struct {
		name, path, user, password string
		want                       int
	}{
		{"no credentials", "/monitoring/", "", "", 401},
		{"wrong password", "/monitoring/", user, "s3cret-Pa56", 401},
		{"wrong user", "/monitoring/", "op", password, 401},
		{"password as user", "/monitoring/", password, user, 401},
		{"API without credentials", "/monitoring/api/queues", "", "", 401},
		{"right credentials", "/monitoring/", user, password, 200},
		{"API with credentials", "/monitoring/api/queues", user, password, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := request(t, "GET", base+tc.path, tc.user, tc.password)
			if res.StatusCode != tc.want {
				t.Fatalf("got %d, want %d (%s)", res.StatusCode, tc.want, body)
			}
			if tc.want == 401 && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic realm=") {
				t.Errorf("got WWW-Authenticate %q, want a Basic challenge", res.Header.Get("WWW-Authenticate"))
			}
		})
	}

	// Logged in, Asynqmon itself answers: its page and its queue list.
	res, body := request(t, "GET", base+"/monitoring/", user, password)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(body), "/monitoring") {
		t.Errorf("got %s page %.200q, want Asynqmon's index rooted at /monitoring", ct, body)
	}
	_, body = request(t, "GET", base+"/monitoring/api/queues", user, password)
	var queues struct {
		Queues []struct {
			Queue string `json:"queue"`
		} `json:"queues"`
	}
	if err := json.Unmarshal(body, &queues); err != nil {
		t.Fatalf("queue list %s: %v", body, err)
	}
	got := map[string]bool{}
	for _, q := range queues.Queues {
		got[q.Queue] = true
	}
	for _, want := range []string{"critical", "default", "webhooks"} {
		if !got[want] {
			t.Errorf("queue list %s lacks %q", body, want)
		}
	}
}

func TestOffWithoutCredentials(t *testing.T) {
	t.Parallel()
	for _, cfg := range []dashboard.Config{{}, {Username: user}, {Password: password}} {
		// No Redis is given: a dashboard that is off must not need one.
		h := dashboard.New(cfg)
		if h.Enabled() {
			t.Errorf("%+v: enabled, want off", cfg)
		}
		for _, path := range []string{"/monitoring/", "/monitoring/api/queues"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", path, nil)
			req.SetBasicAuth(user, password)
			h.ServeHTTP(rec, req)
			if rec.Code != 404 {
				t.Errorf("%+v: GET %s: got %d, want 404", cfg, path, rec.Code)
			}
		}
		if err := h.Close(); err != nil {
			t.Errorf("closing an off dashboard: %v", err)
		}
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		readOnly bool
		want     int
	}{{true, http.StatusMethodNotAllowed}, {false, http.StatusNoContent}} {
		base, redisOpt := setup(t, tc.readOnly)
		res, body := request(t, "POST", base+"/monitoring/api/queues/default:pause", user, password, "Origin", base)
		if res.StatusCode != tc.want {
			t.Errorf("read-only %v: pause got %d %s, want %d", tc.readOnly, res.StatusCode, body, tc.want)
		}
		inspector := asynq.NewInspector(redisOpt)
		info, err := inspector.GetQueueInfo("default")
		inspector.Close()
		if err != nil {
			t.Fatal(err)
		}
		if info.Paused == tc.readOnly {
			t.Errorf("read-only %v: queue paused %v", tc.readOnly, info.Paused)
		}
		// Reading is still allowed.
		if res, body := request(t, "GET", base+"/monitoring/api/queues", user, password); res.StatusCode != 200 {
			t.Errorf("read-only %v: list queues got %d %s", tc.readOnly, res.StatusCode, body)
		}
	}
}

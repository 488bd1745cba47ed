package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/routers"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/api"
	"github.com/endcall/endcall/calls"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/twilio"
	"github.com/endcall/endcall/twilio/twiliotest"
)

// options change what setup builds.
type options struct {
	legacy          bool
	jwtSecret       []byte
	redisURL        string // overrides the test's Redis (e.g. a dead one)
	databaseURL     string // overrides the test's database for the API's store
	providerTimeout time.Duration
	allowPrivate    bool
	deps            func(*api.Deps) // last word on what the server is built from
}

// bundle is what an API test works with: a real server on a real database
// and Redis, Twilio faked on the wire.
type bundle struct {
	t         *testing.T
	url       string
	pool      *pgxpool.Pool
	store     *postgres.Store
	twilio    *twiliotest.Server
	redis     asynq.RedisConnOpt
	inspector *asynq.Inspector
	tel       *twilio.Client
	workspace string
	key       string
	// platformSID and platformToken are the platform's Twilio account.
	platformSID, platformToken string
	// contract checks every response against the served openapi.json,
	// unless legacy, whose end errors are bodiless 200s by design.
	legacy       bool
	contract     routers.Router
	contractOnce sync.Once
}

var testKey = bytes.Repeat([]byte{7}, 32)

func setup(t *testing.T, opts ...func(*options)) *bundle {
	t.Helper()
	o := options{providerTimeout: 2 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	ctx := context.Background()
	b := &bundle{t: t, pool: testenv.DB(t), twilio: twiliotest.New(t), legacy: o.legacy}
	cipher, err := postgres.NewCipher(testKey)
	if err != nil {
		t.Fatal(err)
	}
	b.store = postgres.NewStore(b.pool, cipher)
	apiStore := b.store
	if o.databaseURL != "" {
		dead, err := pgxpool.New(ctx, o.databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(dead.Close)
		apiStore = postgres.NewStore(dead, cipher)
	}
	redisURL := o.redisURL
	if redisURL == "" {
		redisURL = testenv.Redis(t)
	}
	b.redis, err = asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(b.redis)
	t.Cleanup(func() { client.Close() })
	b.inspector = asynq.NewInspector(b.redis)
	t.Cleanup(func() { b.inspector.Close() })

	b.platformSID, b.platformToken = b.twilio.NewAccount()
	b.tel = twilio.New(twilio.Config{BaseURL: b.twilio.URL(), AccountSID: b.platformSID, AuthToken: b.platformToken, Timeout: o.providerTimeout})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	enq := &jobs.Enqueuer{Client: client, DeliverMaxRetry: 7}
	svc := &calls.Service{
		Store: apiStore, Telephony: b.tel, Log: log,
		Queue:           enq,
		ProviderTimeout: o.providerTimeout, EnqueueTimeout: 500 * time.Millisecond,
	}
	deps := api.Deps{
		Store: apiStore, Webhooks: apiStore, Redeliver: enq, Plans: apiStore, AllowPrivateWebhooks: o.allowPrivate,
		Calls: svc, Log: log, LegacyEmptyErrors: o.legacy,
		JWT: api.JWTConfig{Secret: o.jwtSecret},
		Twilio: api.TwilioConfig{Dialer: b.tel, Numbers: b.tel, VoiceURL: testVoiceURL, PublicBaseURL: testPublicURL,
			AccountSID: b.platformSID, AuthToken: b.platformToken, MaxCallDuration: time.Hour},
	}
	if o.deps != nil {
		o.deps(&deps)
	}
	srv := httptest.NewServer(api.NewServer(deps))
	t.Cleanup(srv.Close)
	b.url = srv.URL
	b.workspace, b.key, err = b.store.CreateAPIKey(ctx, "ws-"+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// response is a decoded API answer.
type response struct {
	Status  int
	Body    []byte
	Message string
	Code    string
	Data    json.RawMessage
}

// do sends a request with the bundle's API key (token "" → the key;
// "-" → no Authorization header).
func (b *bundle) do(method, path, token string, body any) response {
	b.t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			b.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.url+path, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	switch token {
	case "":
		req.Header.Set("Authorization", "Bearer "+b.key)
	case "-":
	default:
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	b.checkContract(req, res, raw)
	out := response{Status: res.StatusCode, Body: raw}
	if len(raw) > 0 {
		var env struct {
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
			Error   struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			b.t.Fatalf("%s %s: body is not JSON: %s", method, path, raw)
		}
		out.Message, out.Data, out.Code = env.Message, env.Data, env.Error.Code
	}
	return out
}

// call decodes the data of r as a call.
func (r response) call(t *testing.T) endcall.Call {
	t.Helper()
	var c endcall.Call
	if err := json.Unmarshal(r.Data, &c); err != nil {
		t.Fatalf("data is not a call: %v: %s", err, r.Body)
	}
	return c
}

// wantStatus fails the test unless r has the HTTP status and error code.
func (r response) want(t *testing.T, status int, code string) {
	t.Helper()
	if r.Status != status || r.Code != code {
		t.Fatalf("got %d %q, want %d %q; body %s", r.Status, r.Code, status, code, r.Body)
	}
}

// phone registers a number; with byot it carries its own Twilio account,
// which the fake knows. The fake's account holds the number.
func (b *bundle) phone(number string, byot bool) (id, accountSID string) {
	b.t.Helper()
	body := map[string]any{"number": number, "provider": "twilio"}
	accountSID = b.platformSID
	if byot {
		var token string
		accountSID, token = b.twilio.NewAccount()
		body["twilio_account_sid"], body["twilio_auth_token"] = accountSID, token
	}
	b.twilio.AddNumber(accountSID, number)
	r := b.do("POST", "/v1/phone-numbers", "", body)
	r.want(b.t, 201, "")
	var p endcall.PhoneNumber
	if err := json.Unmarshal(r.Data, &p); err != nil {
		b.t.Fatal(err)
	}
	return p.ID, accountSID
}

// activeCall registers a call from number with a call SID the fake knows.
func (b *bundle) activeCall(from, accountSID, status string, extra map[string]any) endcall.Call {
	b.t.Helper()
	sid := b.twilio.NewCall(accountSID, status)
	body := map[string]any{"call_from": from, "call_to": "+15557654321", "call_direction": "outbound",
		"call_sid": sid, "call_status": status, "room_name": "room-" + sid}
	for k, v := range extra {
		body[k] = v
	}
	r := b.do("POST", "/v1/calls", "", body)
	r.want(b.t, 201, "")
	return r.call(b.t)
}

// snapshot returns a digest of every row the API can change, so that a test
// can assert that a refused request changed nothing.
func (b *bundle) snapshot() string {
	b.t.Helper()
	var s string
	err := b.pool.QueryRow(context.Background(), `SELECT md5(
		coalesce((SELECT string_agg(c::text, '|' ORDER BY id) FROM calls c), '') ||
		coalesce((SELECT string_agg(p::text, '|' ORDER BY id) FROM phone_numbers p), '') ||
		coalesce((SELECT string_agg(d::text, '|' ORDER BY id) FROM webhook_deliveries d), ''))`).Scan(&s)
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// tasks lists the IDs of the tasks in a queue, pending or scheduled.
func (b *bundle) tasks(queue string) []string {
	b.t.Helper()
	var ids []string
	pending, err := b.inspector.ListPendingTasks(queue)
	if err != nil && !strings.Contains(err.Error(), "not found") {
		b.t.Fatal(err)
	}
	for _, ti := range pending {
		ids = append(ids, ti.ID)
	}
	return ids
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// doWithType sends body with an explicit Content-Type and the bundle's key.
func (b *bundle) doWithType(method, path, contentType, body string) response {
	b.t.Helper()
	req, err := http.NewRequest(method, b.url+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+b.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	b.checkContract(req, res, raw)
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(raw, &env)
	return response{Status: res.StatusCode, Body: raw, Code: env.Error.Code}
}

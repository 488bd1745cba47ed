package calls

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/jobs"
	"github.com/endcall/endcall/postgres"
	"github.com/endcall/endcall/twilio"
	"github.com/endcall/endcall/twilio/twiliotest"
)

type bundle struct {
	svc       *Service
	store     *postgres.Store
	pool      *pgxpool.Pool // the store's: two connections
	fake      *twiliotest.Server
	inspector *asynq.Inspector
	logs      *syncBuffer
	ws        string
	sid       string
	phone     string
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newBundle gives the service a store whose pool has only two connections,
// so that any connection held while the provider answers starves the rest.
func newBundle(t *testing.T, providerTimeout time.Duration) *bundle {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.DB(t).Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	b := &bundle{store: postgres.NewStore(pool, nil), pool: pool, fake: twiliotest.New(t), logs: &syncBuffer{}}
	redis, err := asynq.ParseRedisURI(testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(redis)
	t.Cleanup(func() { client.Close() })
	b.inspector = asynq.NewInspector(redis)
	t.Cleanup(func() { b.inspector.Close() })
	var token string
	b.sid, token = b.fake.NewAccount()
	b.svc = &Service{Store: b.store, Queue: &jobs.Enqueuer{Client: client},
		Telephony: twilio.New(twilio.Config{BaseURL: b.fake.URL(), AccountSID: b.sid, AuthToken: token, Timeout: time.Minute}),
		Log:       slog.New(slog.NewJSONHandler(b.logs, nil)), ProviderTimeout: providerTimeout, EnqueueTimeout: 5 * time.Second}
	ctx := context.Background()
	if b.ws, _, err = b.store.CreateAPIKey(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	p, err := b.store.CreatePhoneNumber(ctx, b.ws, "+15551110000", "twilio", nil)
	if err != nil {
		t.Fatal(err)
	}
	b.phone = p.ID
	return b
}

// newCall registers a call in status that the fake provider knows.
func (b *bundle) newCall(t *testing.T, status endcall.CallStatus) (id, sid string) {
	t.Helper()
	sid = b.fake.NewCall(b.sid, string(status))
	now := time.Now().UTC()
	c := &endcall.Call{WorkspaceID: b.ws, PhoneNumberID: &b.phone, CallSID: &sid,
		CallProvider: "twilio", CallFrom: "+15551110000", CallTo: "+15552220000", CallDirection: "outbound",
		CallStatus: status, CreatedAt: now}
	if status == endcall.StatusInProgress {
		c.StartedAt = &now
	}
	c, err := b.store.CreateCall(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID, sid
}

func (b *bundle) end(id, finalMessage string) (endcall.EndResult, error) {
	return b.svc.End(context.Background(), endcall.EndRequest{WorkspaceID: b.ws, CallID: id, Reason: "test",
		FinalMessage: finalMessage, Trigger: endcall.TriggerAPI})
}

// tasks lists the IDs of the tasks queued in every queue.
func (b *bundle) tasks(t *testing.T) []string {
	t.Helper()
	var ids []string
	for _, q := range []string{jobs.QueueCritical, jobs.QueueDefault, jobs.QueueWebhooks} {
		infos, err := b.inspector.ListPendingTasks(q)
		if err != nil && !strings.Contains(err.Error(), "not found") {
			t.Fatal(err)
		}
		for _, i := range infos {
			ids = append(ids, i.ID)
		}
	}
	return ids
}

// TestASlowProviderHoldsNoConnection: while the provider holds every hangup,
// no end holds a database connection, and the store keeps answering other
// reads and new ends of calls with no hangup to make.
func TestASlowProviderHoldsNoConnection(t *testing.T) {
	t.Parallel()
	b := newBundle(t, time.Minute)
	held := make(chan struct{}, 16)
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open)
	b.fake.OnUpdate(func(twiliotest.Request) *twiliotest.Error {
		held <- struct{}{}
		<-release
		return nil
	})
	const ends = 6 // three times the pool
	ids, sids := make([]string, ends), make([]string, ends)
	for i := range ends {
		ids[i], sids[i] = b.newCall(t, endcall.StatusInProgress)
	}
	results := make(chan error, ends)
	for _, id := range ids {
		go func() {
			res, err := b.end(id, "")
			if err == nil && (res.AlreadyEnded || *res.Call.ProviderHangupStatus != endcall.HangupSucceeded) {
				err = fmt.Errorf("end of %s: already ended %v, hangup %s", id, res.AlreadyEnded, endcall.Deref(res.Call.ProviderHangupStatus))
			}
			results <- err
		}()
	}
	for range ends {
		select {
		case <-held:
		case <-time.After(30 * time.Second):
			t.Fatal("the ends did not all reach the provider")
		}
	}
	if n := b.pool.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections held while the provider answers", n)
	}
	// Every end is recorded before the provider answers.
	for _, id := range ids {
		c, err := b.store.GetCall(context.Background(), b.ws, id)
		if err != nil || c.EndedAt == nil || *c.ProviderHangupStatus != endcall.HangupPending {
			t.Fatalf("call %s while its hangup is in flight: %+v, %v", id, c, err)
		}
	}
	// An end with no hangup to make goes through at once.
	noSID, err := b.store.CreateCall(context.Background(), &endcall.Call{WorkspaceID: b.ws, CallProvider: "twilio",
		CallFrom: "+15551110000", CallTo: "+15552220000", CallDirection: "outbound", CallStatus: endcall.StatusInProgress,
		CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := b.end(noSID.ID, ""); err != nil || *res.Call.ProviderHangupStatus != endcall.HangupSkipped {
		t.Fatalf("end without a hangup: %+v, %v", res, err)
	}
	open()
	for range ends {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	for _, sid := range sids {
		if n := b.fake.HangupCount(sid); n != 1 {
			t.Errorf("call %s hung up %d times, want once", sid, n)
		}
	}
}

// TestHungProviderEndsWithRetrying: past PROVIDER_TIMEOUT the end answers
// with the hangup retrying, and the background hangup is queued.
func TestHungProviderEndsWithRetrying(t *testing.T) {
	t.Parallel()
	b := newBundle(t, 200*time.Millisecond)
	id, sid := b.newCall(t, endcall.StatusInProgress)
	b.fake.SetDelay(sid, time.Minute)
	res, err := b.end(id, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := *res.Call.ProviderHangupStatus; got != endcall.HangupRetrying {
		t.Fatalf("hangup status %q, want retrying", got)
	}
	c, err := b.store.GetCall(context.Background(), b.ws, id)
	if err != nil || *c.ProviderHangupStatus != endcall.HangupRetrying {
		t.Fatalf("stored: %+v, %v", c, err)
	}
	want := "hangup:" + id
	tasks := b.tasks(t)
	found := false
	for _, task := range tasks {
		found = found || task == want
	}
	if !found {
		t.Fatalf("queued %v, want %s among them", tasks, want)
	}
}

// TestConcurrentEndsOfOneCall: 50 concurrent ends make one transition, one
// hangup request and one set of post-call work.
func TestConcurrentEndsOfOneCall(t *testing.T) {
	t.Parallel()
	b := newBundle(t, time.Minute)
	id, sid := b.newCall(t, endcall.StatusInProgress)
	b.fake.SetDelay(sid, 200*time.Millisecond)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ended, already := 0, 0
	for range 50 {
		wg.Go(func() {
			res, err := b.end(id, "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case res.AlreadyEnded:
				already++
			default:
				ended++
			}
		})
	}
	wg.Wait()
	if ended != 1 || already != 49 {
		t.Fatalf("%d ended, %d already ended; want 1 and 49", ended, already)
	}
	if n := b.fake.HangupCount(sid); n != 1 {
		t.Fatalf("%d hangup requests, want 1", n)
	}
	if tasks := b.tasks(t); len(tasks) != 1 || tasks[0] != "analyze:"+id {
		t.Fatalf("queued %v, want only the analysis", tasks)
	}
}

// TestFinalMessage: an in-progress call is given TwiML that says the message,
// XML-escaped, and hangs up; a queued one is canceled without it.
func TestFinalMessage(t *testing.T) {
	t.Parallel()
	b := newBundle(t, time.Minute)
	id, sid := b.newCall(t, endcall.StatusInProgress)
	msg := `Thanks <for> calling & "goodbye"`
	res, err := b.end(id, msg)
	if err != nil || *res.Call.ProviderHangupStatus != endcall.HangupSucceeded || *res.Call.FinalMessage != msg {
		t.Fatalf("end: %+v, %v", res, err)
	}
	hangups := b.fake.Hangups(sid)
	if len(hangups) != 1 {
		t.Fatalf("%d hangups, want 1", len(hangups))
	}
	const want = `<Response><Say>Thanks &lt;for&gt; calling &amp; &#34;goodbye&#34;</Say><Hangup/></Response>`
	if got := hangups[0].Form.Get("Twiml"); got != want {
		t.Errorf("Twiml = %s, want %s", got, want)
	}
	if s := hangups[0].Form.Get("Status"); s != "" {
		t.Errorf("Status = %q sent with the TwiML", s)
	}

	queued, qsid := b.newCall(t, endcall.StatusQueued)
	if _, err := b.end(queued, msg); err != nil {
		t.Fatal(err)
	}
	hangups = b.fake.Hangups(qsid)
	if len(hangups) != 1 || hangups[0].Form.Get("Status") != string(endcall.StatusCanceled) || hangups[0].Form.Has("Twiml") {
		t.Fatalf("queued call's hangup: %+v", hangups)
	}
}

// TestSimulatedTelephonyLogsTheHangup: no hangup is owed or made, and the
// final message is logged.
func TestSimulatedTelephonyLogsTheHangup(t *testing.T) {
	t.Parallel()
	b := newBundle(t, time.Minute)
	b.svc.Simulated = true
	id, _ := b.newCall(t, endcall.StatusInProgress)
	res, err := b.end(id, "see you")
	if err != nil || *res.Call.ProviderHangupStatus != endcall.HangupSkipped {
		t.Fatalf("end: %+v, %v", res, err)
	}
	if n := len(b.fake.Requests()); n != 0 {
		t.Fatalf("%d provider requests in simulated mode", n)
	}
	if logs := b.logs.String(); !strings.Contains(logs, `"msg":"simulated hangup"`) || !strings.Contains(logs, `"final_message":"see you"`) {
		t.Fatalf("logs: %s", logs)
	}
}

// TestADroppedConnectionIsUnavailableAndMakesNoHangup: when the end's
// connection drops mid-statement (Postgres terminates its backend, or the
// network between them is cut), the end is EUNAVAILABLE, nothing is recorded
// and the provider is never asked.
func TestADroppedConnectionIsUnavailableAndMakesNoHangup(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"terminated", "cut"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t, time.Minute)
			id, _ := b.newCall(t, endcall.StatusInProgress)
			ctx := context.Background()
			cfg := b.pool.Config().Copy()
			proxy := testenv.NewProxy(t, fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port))
			host, port, _ := strings.Cut(proxy.Addr(), ":")
			cfg.ConnConfig.Host = host
			fmt.Sscan(port, &cfg.ConnConfig.Port)
			viaProxy, err := pgxpool.NewWithConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer viaProxy.Close()
			b.svc.Store = postgres.NewStore(viaProxy, nil)
			// Another session locks the row, so the end's update waits
			// while its connection is dropped.
			tx, err := b.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, `SELECT 1 FROM calls WHERE id = $1 FOR UPDATE`, id); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := b.end(id, "")
				done <- err
			}()
			var pid int
			for deadline := time.Now().Add(10 * time.Second); pid == 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the end never waited on the row lock")
				}
				// Not on tx: a transaction sees one snapshot of the statistics.
				_ = b.pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database()
					AND wait_event_type = 'Lock' AND query LIKE 'UPDATE calls c SET ended_at%'`).Scan(&pid)
			}
			if how == "cut" {
				proxy.Cut()
			} else if _, err := tx.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
				t.Fatal(err)
			}
			err = <-done
			if code := endcall.ErrorCode(err); code != endcall.EUNAVAILABLE {
				t.Fatalf("end on a dropped connection: %v (code %s), want unavailable", err, code)
			}
			if err := tx.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			c, err := b.store.GetCall(ctx, b.ws, id)
			if err != nil || c.EndedAt != nil {
				t.Fatalf("the call changed: %+v, %v", c, err)
			}
			if n := len(b.fake.Requests()); n != 0 {
				t.Fatalf("%d provider requests, want none", n)
			}
		})
	}
}

// TestUndecryptableCredentialsStillEndTheCall: the hangup is failed at once,
// with the reason logged, and the provider is not asked.
func TestUndecryptableCredentialsStillEndTheCall(t *testing.T) {
	t.Parallel()
	b := newBundle(t, time.Minute)
	key := bytes.Repeat([]byte{1}, 32)
	cipher, err := postgres.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	byotSID, byotToken := b.fake.NewAccount()
	p, err := postgres.NewStore(b.pool, cipher).CreatePhoneNumber(context.Background(), b.ws, "+15553330000", "twilio",
		&endcall.ProviderCredentials{AccountSID: byotSID, AuthToken: byotToken})
	if err != nil {
		t.Fatal(err)
	}
	sid := b.fake.NewCall(byotSID, string(endcall.StatusInProgress))
	c, err := b.store.CreateCall(context.Background(), &endcall.Call{WorkspaceID: b.ws, PhoneNumberID: &p.ID, CallSID: &sid,
		CallProvider: "twilio", CallFrom: "+15553330000", CallTo: "+15552220000", CallDirection: "outbound",
		CallStatus: endcall.StatusInProgress, CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := postgres.NewCipher(bytes.Repeat([]byte{2}, 32))
	if err != nil {
		t.Fatal(err)
	}
	b.svc.Store = postgres.NewStore(b.pool, wrong)
	res, err := b.end(c.ID, "")
	if err != nil || res.AlreadyEnded || *res.Call.ProviderHangupStatus != endcall.HangupFailed {
		t.Fatalf("end: %+v, %v", res, err)
	}
	if n := len(b.fake.Requests()); n != 0 {
		t.Fatalf("%d provider requests, want none", n)
	}
	if !strings.Contains(b.logs.String(), "credentials cannot be used") {
		t.Fatalf("the reason was not logged: %s", b.logs.String())
	}
}

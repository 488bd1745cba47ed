package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/postgres"
)

// newCall registers an active, started call in the workspace.
func newCall(t *testing.T, store *postgres.Store, ws string, phoneID, room *string) *endcall.Call {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	started := now.Add(-42 * time.Second)
	sid := "CA" + uuid.NewString()[:32]
	c, err := store.CreateCall(context.Background(), &endcall.Call{WorkspaceID: ws, PhoneNumberID: phoneID, CallSID: &sid,
		CallProvider: "twilio", CallFrom: "+15550000001", CallTo: "+15550000002", CallDirection: "outbound",
		CallStatus: endcall.StatusInProgress, RoomName: room, StartedAt: &started, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type endFixture struct {
	store    *postgres.Store
	ws, ws2  string
	byot     string // a phone number of ws with BYOT credentials
	endpoint string // subscribed to call.ended in ws
}

func newEndFixture(t *testing.T, key byte) *endFixture {
	t.Helper()
	pool := testenv.DB(t)
	cipher, err := postgres.NewCipher(bytes.Repeat([]byte{key}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := &endFixture{store: postgres.NewStore(pool, cipher)}
	ctx := context.Background()
	if f.ws, _, err = f.store.CreateAPIKey(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	if f.ws2, _, err = f.store.CreateAPIKey(ctx, "two"); err != nil {
		t.Fatal(err)
	}
	e, err := f.store.CreateEndpoint(ctx, f.ws, "https://example.com/hook", []string{endcall.EventCallEnded}, nil, nil, "whsec_"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	f.endpoint = e.ID
	if _, err := f.store.CreateEndpoint(ctx, f.ws, "https://example.com/analyzed", []string{endcall.EventCallAnalyzed}, nil, nil, "whsec_"+uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	p, err := f.store.CreatePhoneNumber(ctx, f.ws, "+15550000001", "twilio",
		&endcall.ProviderCredentials{AccountSID: "AC" + uuid.NewString()[:32], AuthToken: "byot-token"})
	if err != nil {
		t.Fatal(err)
	}
	f.byot = p.ID
	return f
}

// TestRecordEnd records the end of an active call with everything it owes
// in one commit: the pending hangup with the phone number's credentials, the
// room, the analysis and one call.ended delivery per subscribed endpoint,
// with its body fixed.
func TestRecordEnd(t *testing.T) {
	t.Parallel()
	f := newEndFixture(t, 7)
	ctx := context.Background()
	room := "room-1"
	c := newCall(t, f.store, f.ws, &f.byot, &room)
	at := time.Now().UTC().Truncate(time.Microsecond)
	rec, err := f.store.RecordEnd(ctx, endcall.EndRecord{WorkspaceID: f.ws, CallID: c.ID, Reason: "bye",
		FinalMessage: "Goodbye & thanks", Hangup: true, At: at})
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Ended {
		t.Fatal("the active call was not ended")
	}
	got := rec.Call
	if got.CallStatus != endcall.StatusCompleted || *got.DisconnectReason != "bye" || *got.FinalMessage != "Goodbye & thanks" ||
		*got.ProviderHangupStatus != endcall.HangupPending || *got.RoomStatus != endcall.RoomPending ||
		*got.AnalysisStatus != endcall.AnalysisPending || *got.CallDuration != 42 || !got.EndedAt.Equal(at) {
		t.Fatalf("ended call: %+v", got)
	}
	stored, err := f.store.GetCall(ctx, f.ws, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(stored)
	b, _ := json.Marshal(got)
	if !bytes.Equal(a, b) {
		t.Fatalf("returned call differs from the stored one:\n got %s\nwant %s", b, a)
	}
	if rec.Hangup == nil || rec.Hangup.CallSID != *c.CallSID || rec.Hangup.Status != endcall.StatusCompleted ||
		rec.Hangup.FinalMessage != "Goodbye & thanks" || rec.Hangup.Credentials == nil ||
		rec.Hangup.Credentials.AuthToken != "byot-token" || rec.Hangup.CredentialsErr != nil {
		t.Fatalf("hangup owed: %+v", rec.Hangup)
	}
	var kinds []string
	var delivery string
	for _, w := range rec.Work {
		kinds = append(kinds, w.Kind)
		if w.Kind == endcall.WorkDeliver {
			delivery = w.DeliveryID
		}
	}
	if want := []string{endcall.WorkRoomDelete, endcall.WorkAnalyze, endcall.WorkDeliver}; !equal(kinds, want) {
		t.Fatalf("work owed: %v, want %v", kinds, want)
	}
	j, err := f.store.DeliveryJob(ctx, delivery)
	if err != nil {
		t.Fatal(err)
	}
	if j.EndpointID != f.endpoint || j.Event != endcall.EventCallEnded || len(j.Body) == 0 {
		t.Fatalf("delivery: %+v", j)
	}
	var body struct {
		Data endcall.Call `json:"data"`
	}
	if err := json.Unmarshal(j.Body, &body); err != nil || body.Data.ID != c.ID || *body.Data.DisconnectReason != "bye" {
		t.Fatalf("delivery body %s: %v", j.Body, err)
	}

	// A second end finds the call ended and changes nothing.
	again, err := f.store.RecordEnd(ctx, endcall.EndRecord{WorkspaceID: f.ws, CallID: c.ID, Reason: "again", Hangup: true, At: time.Now()})
	if err != nil || again.Ended || again.Hangup != nil || len(again.Work) != 0 || *again.Call.DisconnectReason != "bye" {
		t.Fatalf("second end: %+v, %v", again, err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRecordEndOwesAHangupOnlyWhenOneIsToBeMade: a call without call_sid, a
// provider-reported end and simulated telephony (Hangup false) owe none; a
// queued call is canceled.
func TestRecordEndOwesAHangupOnlyWhenOneIsToBeMade(t *testing.T) {
	t.Parallel()
	f := newEndFixture(t, 7)
	ctx := context.Background()
	now := time.Now().UTC()

	noSID, err := f.store.CreateCall(ctx, &endcall.Call{WorkspaceID: f.ws, CallProvider: "twilio", CallFrom: "+15550000001",
		CallTo: "+15550000002", CallDirection: "outbound", CallStatus: endcall.StatusInProgress, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := f.store.CreateCall(ctx, &endcall.Call{WorkspaceID: f.ws, CallSID: new("CA" + uuid.NewString()[:32]),
		CallProvider: "twilio", CallFrom: "+15550000001", CallTo: "+15550000002", CallDirection: "outbound",
		CallStatus: endcall.StatusQueued, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		rec        endcall.EndRecord
		status     endcall.CallStatus
		hangup     endcall.HangupStatus
		owesHangup bool
	}{
		{"no call_sid", endcall.EndRecord{CallID: noSID.ID, Hangup: true}, endcall.StatusCompleted, endcall.HangupSkipped, false},
		{"queued", endcall.EndRecord{CallID: queued.ID, Hangup: true}, endcall.StatusCanceled, endcall.HangupPending, true},
		{"provider reported", endcall.EndRecord{CallID: newCall(t, f.store, f.ws, nil, nil).ID, ProviderStatus: endcall.StatusBusy}, endcall.StatusBusy, endcall.HangupSkipped, false},
		{"simulated", endcall.EndRecord{CallID: newCall(t, f.store, f.ws, nil, nil).ID}, endcall.StatusCompleted, endcall.HangupSkipped, false},
	} {
		tc.rec.WorkspaceID, tc.rec.Reason, tc.rec.At = f.ws, "r", time.Now()
		rec, err := f.store.RecordEnd(ctx, tc.rec)
		if err != nil || !rec.Ended {
			t.Fatalf("%s: %+v, %v", tc.name, rec, err)
		}
		if rec.Call.CallStatus != tc.status || *rec.Call.ProviderHangupStatus != tc.hangup || (rec.Hangup != nil) != tc.owesHangup {
			t.Errorf("%s: status %s hangup %s owed %v", tc.name, rec.Call.CallStatus, *rec.Call.ProviderHangupStatus, rec.Hangup)
		}
		if tc.owesHangup && rec.Hangup.Status != endcall.StatusCanceled {
			t.Errorf("%s: hangup status %q, want canceled", tc.name, rec.Hangup.Status)
		}
		if *rec.Call.RoomStatus != endcall.RoomSkipped || rec.Call.FinalMessage != nil {
			t.Errorf("%s: room %s final message %v", tc.name, *rec.Call.RoomStatus, rec.Call.FinalMessage)
		}
	}
}

// TestRecordEndOfAnotherWorkspacesCallIsNotFound: another workspace's call,
// a missing one and an ID that is not a UUID read alike, and nothing changes.
func TestRecordEndOfAnotherWorkspacesCallIsNotFound(t *testing.T) {
	t.Parallel()
	f := newEndFixture(t, 7)
	ctx := context.Background()
	c := newCall(t, f.store, f.ws, nil, nil)
	for _, id := range []string{c.ID, uuid.NewString(), "not-a-uuid", ""} {
		_, err := f.store.RecordEnd(ctx, endcall.EndRecord{WorkspaceID: f.ws2, CallID: id, Reason: "x", Hangup: true, At: time.Now()})
		if endcall.ErrorCode(err) != endcall.ENOTFOUND {
			t.Errorf("end of %q from another workspace: %v, want not found", id, err)
		}
	}
	got, err := f.store.GetCall(ctx, f.ws, c.ID)
	if err != nil || got.EndedAt != nil {
		t.Fatalf("the call changed: %+v, %v", got, err)
	}
}

// TestRecordEndWithUndecryptableCredentials still ends the call: the hangup
// target carries the error, for the end path to record the hangup failed.
func TestRecordEndWithUndecryptableCredentials(t *testing.T) {
	t.Parallel()
	f := newEndFixture(t, 7)
	c := newCall(t, f.store, f.ws, &f.byot, nil)
	wrongKey, err := postgres.NewCipher(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	other := postgres.NewStore(f.store.Pool(), wrongKey)
	rec, err := other.RecordEnd(context.Background(), endcall.EndRecord{WorkspaceID: f.ws, CallID: c.ID, Reason: "x", Hangup: true, At: time.Now()})
	if err != nil || !rec.Ended {
		t.Fatalf("end: %+v, %v", rec, err)
	}
	if rec.Hangup == nil || rec.Hangup.CredentialsErr == nil || rec.Hangup.Credentials != nil {
		t.Fatalf("hangup owed: %+v", rec.Hangup)
	}
}

// TestConcurrentRecordEndsTransitionOnce: of 50 concurrent ends of one call
// exactly one records it, and one call.ended delivery is owed.
func TestConcurrentRecordEndsTransitionOnce(t *testing.T) {
	t.Parallel()
	f := newEndFixture(t, 7)
	c := newCall(t, f.store, f.ws, nil, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ended, found := 0, 0
	for range 50 {
		wg.Go(func() {
			rec, err := f.store.RecordEnd(context.Background(), endcall.EndRecord{WorkspaceID: f.ws, CallID: c.ID, Reason: "x", Hangup: true, At: time.Now()})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case rec.Ended:
				ended++
			default:
				found++
			}
		})
	}
	wg.Wait()
	if ended != 1 || found != 49 {
		t.Fatalf("%d ended, %d found ended; want 1 and 49", ended, found)
	}
	var n int
	if err := f.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE call_id = $1`, c.ID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d deliveries (%v), want 1", n, err)
	}
}

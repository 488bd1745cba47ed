package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/endcall/endcall"
)

// A call.analyzed delivery waits for the call.ended delivery of the same
// call to the same endpoint: DeliveryJob says so while that one is pending,
// and the attempt that ends it returns the call.analyzed delivery, but not
// one that has made an attempt of its own (its retry schedule stands).
func TestCallEndedFreesTheCallAnalyzedThatWaited(t *testing.T) {
	t.Parallel()
	f := newEndFixture(t, 9)
	ctx := context.Background()
	both, err := f.store.CreateEndpoint(ctx, f.ws, "https://example.com/both", []string{endcall.EventCallEnded, endcall.EventCallAnalyzed}, nil, nil, "whsec_"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	c := newCall(t, f.store, f.ws, nil, nil)
	rec, err := f.store.RecordEnd(ctx, endcall.EndRecord{WorkspaceID: f.ws, CallID: c.ID, Reason: "bye", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var ended string
	for _, w := range rec.Work {
		if w.Kind == endcall.WorkDeliver && w.EndpointID == both.ID {
			ended = w.DeliveryID
		}
	}
	_, run, _, err := f.store.AnalysisTarget(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	analyzed, err := f.store.CompleteAnalysis(ctx, c.ID, run, endcall.AnalysisCompleted, &endcall.Analysis{Summary: "s"}, nil)
	if err != nil || ended == "" || len(analyzed) != 2 {
		t.Fatalf("deliveries: call.ended %q, call.analyzed %+v (%v)", ended, analyzed, err)
	}
	var waiting string
	for _, w := range analyzed {
		j, err := f.store.DeliveryJob(ctx, w.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		switch w.EndpointID {
		case both.ID:
			waiting = w.DeliveryID
			if j.WaitsFor == nil {
				t.Error("the call.analyzed delivery to an endpoint whose call.ended is pending does not wait")
			}
		default:
			if j.WaitsFor != nil {
				t.Error("the call.analyzed delivery to an endpoint without call.ended waits")
			}
		}
	}

	attempt := func(id string, code int, status endcall.DeliveryStatus) []endcall.Work {
		t.Helper()
		a := endcall.DeliveryAttempt{Attempt: 1, At: time.Now().UTC(), StatusCode: &code}
		if status == endcall.DeliveryPending {
			next := time.Now().Add(time.Minute).UTC()
			a.NextAttemptAt = &next
		}
		freed, err := f.store.RecordAttempt(ctx, id, a, status)
		if err != nil {
			t.Fatal(err)
		}
		return freed
	}
	if freed := attempt(ended, 500, endcall.DeliveryPending); len(freed) != 0 {
		t.Fatalf("a failed call.ended attempt with retries left freed %+v", freed)
	}
	freed := attempt(ended, 204, endcall.DeliverySucceeded)
	if len(freed) != 1 || freed[0].DeliveryID != waiting || freed[0].CallID != c.ID || freed[0].EndpointID != both.ID ||
		freed[0].Event != endcall.EventCallAnalyzed || freed[0].Kind != endcall.WorkDeliver {
		t.Fatalf("call.ended succeeded: freed %+v, want the call.analyzed delivery %s", freed, waiting)
	}
	if j, err := f.store.DeliveryJob(ctx, waiting); err != nil || j.WaitsFor != nil {
		t.Fatalf("after call.ended: waits for %v (%v)", j.WaitsFor, err)
	}

	// A redelivery of call.ended leaves a call.analyzed that already made
	// an attempt to its own schedule.
	attempt(waiting, 500, endcall.DeliveryPending)
	if freed := attempt(ended, 204, endcall.DeliverySucceeded); len(freed) != 0 {
		t.Fatalf("a redelivered call.ended freed %+v, which has attempts of its own", freed)
	}
}

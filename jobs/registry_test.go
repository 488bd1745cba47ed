package jobs_test

import (
	"encoding/json"
	"testing"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/jobs"
)

// TestRegistry: every task type has a handler; one executing owed work has
// what the enqueuer and the reconciler read; a periodic one, its interval
// and slot task. Types and kinds of work are declared once.
func TestRegistry(t *testing.T) {
	types, works := map[string]bool{}, map[string]bool{}
	for _, tt := range jobs.Registry {
		if tt.Type == "" || tt.Queue == "" || tt.Handler == nil || types[tt.Type] {
			t.Errorf("%q: a task type needs a unique type, a queue and a handler", tt.Type)
		}
		types[tt.Type] = true
		if jobs.Lookup(tt.Type) != tt {
			t.Errorf("Lookup(%q) is not its declaration", tt.Type)
		}
		switch {
		case tt.Work != "":
			if tt.ID == nil || tt.Payload == nil || tt.Options == nil || tt.Owed == nil || tt.Slot != nil || works[tt.Work] {
				t.Errorf("%s: owed work needs an ID, a payload, options and an owed query, and no slot", tt.Type)
			}
			works[tt.Work] = true
		case tt.Slot == nil || tt.Every == nil:
			t.Errorf("%s: a task type executes owed work or is periodic", tt.Type)
		}
	}
	for _, kind := range []string{endcall.WorkHangup, endcall.WorkRoomDelete, endcall.WorkAnalyze, endcall.WorkDeliver, endcall.WorkEndBulk} {
		if !works[kind] {
			t.Errorf("no task type executes %s", kind)
		}
	}
}

// TestTask: the task of a piece of work carries its declared type and its
// payload, which names the work.
func TestTask(t *testing.T) {
	w := endcall.Work{Kind: endcall.WorkDeliver, CallID: "c1", DeliveryID: "msg_1", Event: endcall.EventCallEnded}
	task, err := (&jobs.Enqueuer{}).Task(w)
	if err != nil {
		t.Fatal(err)
	}
	var p jobs.DeliverPayload
	if err := json.Unmarshal(task.Payload(), &p); err != nil || task.Type() != jobs.TypeDeliver || p.DeliveryID != "msg_1" || p.CallID != "c1" {
		t.Fatalf("task %s %s: %v", task.Type(), task.Payload(), err)
	}
	if queue, id := jobs.TaskOf(w); queue != jobs.QueueWebhooks || id != "deliver:msg_1" || jobs.Revivals(task.Payload()) != 0 {
		t.Errorf("queue %q, task ID %q, revivals %d", queue, id, jobs.Revivals(task.Payload()))
	}
}

package worker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/endcall/endcall"
)

// Two active calls of a workspace share a room (a transfer): ending the
// first must not delete the room under the second; ending the second does.
func TestRoomHeldByAnotherActiveCallIsNotDeleted(t *testing.T) {
	t.Parallel()
	p := setupPipeline(t)
	room := "shared-room-" + t.Name()
	register := func() endcall.Call {
		var c endcall.Call
		body := map[string]any{"call_from": "+15553330000", "call_to": "+15554440000", "call_direction": "outbound", "room_name": room}
		if code := p.do("POST", "/v1/calls", body, &c); code != 201 {
			t.Fatalf("create call: %d", code)
		}
		return c
	}
	roomStatus := func(id string) endcall.RoomStatus {
		var s *endcall.RoomStatus
		if err := p.pool.QueryRow(context.Background(), `SELECT room_status FROM calls WHERE id = $1`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return endcall.Deref(s)
	}
	first, second := register(), register()

	if code := p.do("POST", "/v1/calls/end", map[string]any{"call_id": first.ID}, nil); code != 200 {
		t.Fatalf("end first call: %d", code)
	}
	waitFor(t, 10*time.Second, "the first call's room settled", func() bool { return roomStatus(first.ID) != endcall.RoomPending })
	if got := roomStatus(first.ID); got != endcall.RoomSkipped {
		t.Errorf("first call: room_status %q, want %q", got, endcall.RoomSkipped)
	}
	if got := p.rooms.deleted(); len(got) != 0 {
		t.Fatalf("LiveKit DeleteRoom sent for %v while another active call holds the room", got)
	}

	if code := p.do("POST", "/v1/calls/end", map[string]any{"call_id": second.ID}, nil); code != 200 {
		t.Fatalf("end second call: %d", code)
	}
	waitFor(t, 10*time.Second, "the second call's room deleted", func() bool { return roomStatus(second.ID) == endcall.RoomDeleted })
	if got := p.rooms.deleted(); !slices.Equal(got, []string{room}) {
		t.Errorf("rooms deleted: got %v, want [%s]", got, room)
	}
}

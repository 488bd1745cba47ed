package api_test

import (
	"context"
	"sync"
	"testing"
)

// otherWorkspace creates a second workspace with a platform number of its
// own and returns its API key.
func (b *bundle) otherWorkspace(number string) string {
	b.t.Helper()
	ctx := context.Background()
	ws, key, err := b.store.CreateAPIKey(ctx, "other-"+b.t.Name())
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.store.CreatePhoneNumber(ctx, ws, number, "twilio", nil); err != nil {
		b.t.Fatal(err)
	}
	return key
}

func TestRoomTakeOverIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.phone("+15550500000", false)
	victim := b.activeCall("+15550500000", b.platformSID, "in-progress", map[string]any{"room_name": "victim-room"})
	otherKey := b.otherWorkspace("+15550500001")
	register := func(key, room string) response {
		return b.do("POST", "/v1/calls", key, map[string]any{"call_from": "+15550500001", "call_to": "+15557654321",
			"call_direction": "outbound", "room_name": room})
	}

	before := b.snapshot()
	r := register(otherKey, "victim-room")
	r.want(t, 409, "conflict")
	if b.snapshot() != before {
		t.Error("a refused registration changed the database")
	}
	own := register(otherKey, "attacker-room")
	own.want(t, 201, "")
	b.do("PATCH", "/v1/calls/"+own.call(t).ID, otherKey, map[string]any{"room_name": "victim-room"}).want(t, 409, "conflict")
	if got := b.getCallIn(otherKey, own.call(t).ID); got == nil || *got != "attacker-room" {
		t.Errorf("after a refused PATCH: room_name %v, want attacker-room", got)
	}

	// The room's own workspace may bring another call into it.
	transfer := b.activeCall("+15550500000", b.platformSID, "in-progress", map[string]any{"room_name": "victim-room"})

	// The name is free again only once every call in the room has ended.
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": victim.ID}).want(t, 200, "")
	register(otherKey, "victim-room").want(t, 409, "conflict")
	b.do("POST", "/v1/calls/end", "", map[string]any{"call_id": transfer.ID}).want(t, 200, "")
	register(otherKey, "victim-room").want(t, 201, "")
}

// Two workspaces racing for one room: only one of them gets it.
func TestRoomRaceHasOneWinner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.phone("+15550510000", false)
	otherKey := b.otherWorkspace("+15550510001")
	const n = 8
	var wg sync.WaitGroup
	status := make([][2]int, n)
	for i := range n {
		for j, who := range []struct{ key, from string }{{"", "+15550510000"}, {otherKey, "+15550510001"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status[i][j] = b.do("POST", "/v1/calls", who.key, map[string]any{"call_from": who.from, "call_to": "+15557654321",
					"call_direction": "outbound", "room_name": "contested"}).Status
			}()
		}
	}
	wg.Wait()
	var workspaces int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(DISTINCT workspace_id) FROM calls WHERE room_name = 'contested'`).Scan(&workspaces); err != nil {
		t.Fatal(err)
	}
	if workspaces != 1 {
		t.Errorf("room held by %d workspaces at once, want 1 (statuses %v)", workspaces, status)
	}
	for _, s := range status {
		for _, code := range s {
			if code != 201 && code != 409 {
				t.Errorf("status %d, want 201 or 409 (%v)", code, status)
			}
		}
	}
}

// getCallIn reads a call's room_name through the API with key.
func (b *bundle) getCallIn(key, id string) *string {
	b.t.Helper()
	r := b.do("GET", "/v1/calls/"+id, key, nil)
	r.want(b.t, 200, "")
	return r.call(b.t).RoomName
}

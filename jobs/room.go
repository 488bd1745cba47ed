package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/livekit"
)

// TypeRoomDelete deletes the call's LiveKit room.
const TypeRoomDelete = "room:delete"

var roomTask = TaskType{
	Type:    TypeRoomDelete,
	Queue:   QueueDefault,
	Work:    endcall.WorkRoomDelete,
	ID:      func(w endcall.Work) string { return "room:" + w.CallID },
	Payload: callPayload,
	Options: fixed(asynq.MaxRetry(10), asynq.Timeout(30*time.Second)),
	Owed:    OwedStore.OwedRooms,
	Handler: func(d *Deps) asynq.Handler { return &RoomHandler{Store: d.Store, Rooms: d.Rooms} },
}

// RoomStore is the persistence room:delete needs.
type RoomStore interface {
	// Room returns the call's room name and room status (nil when unset),
	// whether another active call still holds the room, or ENOTFOUND.
	Room(ctx context.Context, callID string) (name *string, status *endcall.RoomStatus, shared bool, err error)
	SetRoomStatus(ctx context.Context, callID string, status endcall.RoomStatus) error
}

// RoomDeleter deletes a media room; deleting a missing room succeeds.
type RoomDeleter interface {
	DeleteRoom(ctx context.Context, room string) error
}

// RoomHandler processes room:delete.
type RoomHandler struct {
	Store RoomStore
	// Rooms is nil when LIVEKIT_URL is unset: rooms are then skipped.
	Rooms RoomDeleter
}

// ProcessTask deletes the call's room and records room_status. A settled
// room status makes a re-run a no-op. A room another active call still
// holds is left alone and recorded skipped: deleting it would cut that call
// off.
func (h *RoomHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := decodeCallPayload(t)
	if err != nil {
		return err
	}
	// Only the room's two columns: the whole call (its transcript) is not
	// needed here.
	room, status, shared, err := h.Store.Room(ctx, p.CallID)
	if endcall.ErrorCode(err) == endcall.ENOTFOUND {
		return fmt.Errorf("call %s: %w", p.CallID, asynq.SkipRetry)
	} else if err != nil {
		return err
	}
	if status == nil || *status != endcall.RoomPending {
		return nil
	}
	if h.Rooms == nil || room == nil || *room == "" || shared {
		return h.Store.SetRoomStatus(ctx, p.CallID, endcall.RoomSkipped)
	}
	err = h.Rooms.DeleteRoom(ctx, *room)
	switch {
	case err == nil:
		return h.Store.SetRoomStatus(ctx, p.CallID, endcall.RoomDeleted)
	case errors.Is(err, livekit.ErrPermanent):
		if serr := h.Store.SetRoomStatus(ctx, p.CallID, endcall.RoomFailed); serr != nil {
			return serr
		}
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	case lastAttempt(ctx):
		if serr := h.Store.SetRoomStatus(ctx, p.CallID, endcall.RoomFailed); serr != nil {
			return serr
		}
	}
	return err
}

// lastAttempt reports whether the running task has no retries left.
func lastAttempt(ctx context.Context) bool {
	retried, _ := asynq.GetRetryCount(ctx)
	return retried >= maxRetry(ctx)
}

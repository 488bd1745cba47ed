package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/livekit"
)

// RoomStore is the persistence room:delete needs.
type RoomStore interface {
	CallByID(ctx context.Context, id string) (*endcall.Call, error)
	SetRoomStatus(ctx context.Context, callID, status string) error
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
// room status makes a re-run a no-op.
func (h *RoomHandler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	c, err := taskCall(ctx, h.Store, t)
	if err != nil {
		return err
	}
	if c.RoomStatus == nil || *c.RoomStatus != endcall.RoomPending {
		return nil
	}
	if h.Rooms == nil || c.RoomName == nil || *c.RoomName == "" {
		return h.Store.SetRoomStatus(ctx, c.ID, endcall.RoomSkipped)
	}
	err = h.Rooms.DeleteRoom(ctx, *c.RoomName)
	switch {
	case err == nil:
		return h.Store.SetRoomStatus(ctx, c.ID, endcall.RoomDeleted)
	case errors.Is(err, livekit.ErrPermanent):
		if serr := h.Store.SetRoomStatus(ctx, c.ID, endcall.RoomFailed); serr != nil {
			return serr
		}
		return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
	case lastAttempt(ctx):
		if serr := h.Store.SetRoomStatus(ctx, c.ID, endcall.RoomFailed); serr != nil {
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

// Package livekit deletes LiveKit rooms through the server's Twirp API
// (POST /twirp/livekit.RoomService/DeleteRoom) with plain net/http and a
// short-lived HS256 access token, without the LiveKit SDK.
//
// A room that no longer exists counts as deleted. Failures that retrying
// cannot fix (bad credentials, a malformed request) match ErrPermanent with
// errors.Is; every other failure is temporary and worth retrying, which is
// how the room:delete task in package jobs decides between asynq.SkipRetry
// and a retry.
package livekit

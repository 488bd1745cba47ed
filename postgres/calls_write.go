package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
)

// CreateCall inserts a new active call and returns it as stored. A call_sid
// already registered with the provider is ECONFLICT.
func (s *Store) CreateCall(ctx context.Context, c *endcall.Call) (*endcall.Call, error) {
	transcriptObject, err := marshalTurns(c.TranscriptObject)
	if err != nil {
		return nil, err
	}
	row := s.pool.QueryRow(ctx, `INSERT INTO calls AS c (workspace_id, phone_number_id, call_sid, call_provider,
		call_from, call_to, call_direction, call_status, is_test, ai_agent_id, campaign_id, contact_id,
		room_name, record_url, transcript, transcript_object, metadata, agent_dynamic_variables, notes,
		max_duration_seconds, started_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $22)
		RETURNING `+callColumns,
		c.WorkspaceID, c.PhoneNumberID, c.CallSID, c.CallProvider, c.CallFrom, c.CallTo, c.CallDirection,
		c.CallStatus, c.IsTest, c.AIAgentID, c.CampaignID, c.ContactID, c.RoomName, c.RecordURL, c.Transcript,
		transcriptObject, nullJSON(c.Metadata), nullJSON(c.AgentDynamicVariables), c.Notes, c.MaxDurationSeconds,
		c.StartedAt, c.CreatedAt)
	created, err := scanCall(row)
	if violates(err, "calls_room_one_workspace") {
		return nil, roomTaken(c.RoomName)
	}
	if isUniqueViolation(err) {
		return nil, endcall.Errorf(endcall.ECONFLICT, "A call with call_sid %q already exists.", endcall.Deref(c.CallSID))
	}
	return created, dbError(err)
}

// nullJSON stores an absent or JSON-null value as SQL NULL.
func nullJSON(raw json.RawMessage) []byte {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

func marshalTurns(turns []endcall.Turn) ([]byte, error) {
	if turns == nil {
		return nil, nil
	}
	return json.Marshal(turns)
}

// PatchCall applies p to a call of the workspace under a row lock, so that
// it cannot interleave with an end. Changing anything but the rating or
// feedback of an ended call, or moving call_status backwards, is ECONFLICT.
func (s *Store) PatchCall(ctx context.Context, workspaceID, callID string, p endcall.CallPatch) (*endcall.Call, error) {
	var out *endcall.Call
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		row := tx.QueryRow(ctx, `SELECT `+callColumns+` FROM calls c WHERE c.id = $1 AND c.workspace_id = $2 FOR UPDATE`, callID, workspaceID)
		cur, err := scanCall(row)
		if err != nil {
			return notFound(dbError(err), "call")
		}
		ended := cur.EndedAt != nil || !endcall.IsActive(cur.CallStatus)
		if ended && p.TouchesActiveFields() {
			return endcall.Errorf(endcall.ECONFLICT, "The call has ended; only call_rating and call_feedback can be changed.")
		}
		sets, args := []string{"updated_at = now()"}, []any{callID}
		set := func(column string, v any) {
			args = append(args, v)
			sets = append(sets, fmt.Sprintf("%s = $%d", column, len(args)))
		}
		if p.CallStatus.Set {
			next := *p.CallStatus.Value
			if endcall.StatusRank(next) < endcall.StatusRank(cur.CallStatus) {
				return endcall.Errorf(endcall.ECONFLICT, "call_status cannot move back from %s to %s.", cur.CallStatus, next)
			}
			set("call_status", next)
			if next == endcall.StatusInProgress && cur.StartedAt == nil {
				sets = append(sets, "started_at = now()")
			}
		}
		if p.TranscriptObject.Set {
			var turns []endcall.Turn
			if p.TranscriptObject.Value != nil {
				turns = *p.TranscriptObject.Value
			}
			raw, err := marshalTurns(turns)
			if err != nil {
				return err
			}
			set("transcript_object", raw)
			if turns == nil {
				set("transcript", nil)
			} else {
				set("transcript", endcall.TranscriptText(turns))
			}
		}
		for _, f := range []struct {
			column string
			v      endcall.Optional[string]
		}{{"record_url", p.RecordURL}, {"notes", p.Notes}, {"room_name", p.RoomName}, {"call_feedback", p.CallFeedback}} {
			if f.v.Set {
				set(f.column, f.v.Value)
			}
		}
		if p.Metadata.Set {
			var raw json.RawMessage
			if p.Metadata.Value != nil {
				raw = *p.Metadata.Value
			}
			set("metadata", nullJSON(raw))
		}
		if p.CallRating.Set {
			set("call_rating", p.CallRating.Value)
		}
		row = tx.QueryRow(ctx, `UPDATE calls c SET `+strings.Join(sets, ", ")+` WHERE c.id = $1 RETURNING `+callColumns, args...)
		out, err = scanCall(row)
		if violates(err, "calls_room_one_workspace") {
			return roomTaken(p.RoomName.Value)
		}
		return err
	})
	if err != nil {
		return nil, dbError(err)
	}
	return out, nil
}

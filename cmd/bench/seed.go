package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// uuid returns a random (version 4) UUID and its text form.
func uuid() ([16]byte, string) {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return u, h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	raw, err := hex.DecodeString(s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
	if err != nil || len(raw) != 16 || len(s) != 36 {
		return u, fmt.Errorf("not a UUID: %q", s)
	}
	copy(u[:], raw)
	return u, nil
}

// transcripts are the conversations of seeded calls: a few turns each with
// times, so that the analyzer does its real work.
var transcripts = func() []transcript {
	convs := [][][2]string{
		{{"agent", "Hello, this is Ava from Acme Energy. Am I speaking with the account holder?"},
			{"user", "Yes, that's me. What is this about?"},
			{"agent", "We noticed your last bill was higher than usual and wanted to help you save."},
			{"user", "Oh great, thank you, that would be really helpful."},
			{"agent", "I can switch you to the off-peak plan today at no cost."},
			{"user", "Perfect, please do that. I appreciate the call."}},
		{{"agent", "Hi, I'm calling about your recent order with Northwind."},
			{"user", "It arrived broken and nobody answered my emails. I'm quite frustrated."},
			{"agent", "I'm sorry to hear that. I can send a replacement or a refund."},
			{"user", "A refund please. This was a terrible experience."},
			{"agent", "Done, the refund will reach your card within five days."}},
		{{"agent", "Good afternoon, this is the clinic confirming tomorrow's appointment at ten."},
			{"user", "Tomorrow at ten works. Is there parking?"},
			{"agent", "Yes, free parking is available behind the building."},
			{"user", "Okay, see you then."}},
	}
	var out []transcript
	for _, conv := range convs {
		type turn struct {
			Role    string `json:"role"`
			Content string `json:"content"`
			StartMS int64  `json:"start_ms"`
			EndMS   int64  `json:"end_ms"`
		}
		var turns []turn
		var lines []string
		t := int64(0)
		for _, c := range conv {
			d := int64(len(c[1]) * 60)
			turns = append(turns, turn{Role: c[0], Content: c[1], StartMS: t, EndMS: t + d})
			lines = append(lines, c[0]+": "+c[1])
			t += d + 700
		}
		raw, _ := json.Marshal(turns)
		out = append(out, transcript{object: raw, text: strings.Join(lines, "\n")})
	}
	return out
}()

type transcript struct {
	object []byte
	text   string
}

// seedCalls copies n active, in-progress calls of the workspace into the
// database, each with a Twilio call SID, a LiveKit room and a transcript,
// registers them with the tracker and returns their IDs, then vacuums. A
// campaign, when not empty, is their campaign_id.
func seedCalls(ctx context.Context, pool *pgxpool.Pool, calls *tracker, workspaceID, phoneID string, n int, campaign string) ([]string, error) {
	ws, err := parseUUID(workspaceID)
	if err != nil {
		return nil, err
	}
	phone, err := parseUUID(phoneID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	started := now.Add(-90 * time.Second)
	var campaignID any
	if campaign != "" {
		campaignID = campaign
	}
	ids := make([]string, n)
	rows := make([][]any, n)
	for i := range n {
		id, text := uuid()
		sid := "CA" + hex.EncodeToString(id[:])
		room := "room-" + text
		ids[i] = text
		tr := transcripts[i%len(transcripts)]
		calls.add(text, sid, room)
		rows[i] = []any{id, ws, phone, sid, "twilio", benchNumber, fmt.Sprintf("+1555%07d", i%10000000),
			"outbound", "in-progress", room, tr.object, tr.text, started, now, now, campaignID}
	}
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"calls"},
		[]string{"id", "workspace_id", "phone_number_id", "call_sid", "call_provider", "call_from", "call_to",
			"call_direction", "call_status", "room_name", "transcript_object", "transcript", "started_at", "created_at", "updated_at",
			"campaign_id"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return nil, fmt.Errorf("seeding calls: %w", err)
	}
	// Calls arrive one by one in service, and autovacuum keeps up with
	// them; a copy of thousands at once would leave the measurement that
	// follows sharing the machine with their vacuum.
	for _, table := range []string{"calls", "call_search"} {
		if _, err := pool.Exec(ctx, `VACUUM (ANALYZE) `+table); err != nil {
			return nil, fmt.Errorf("vacuuming %s after seeding: %w", table, err)
		}
	}
	return ids, nil
}

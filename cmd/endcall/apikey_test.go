package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/postgres"
)

func TestAPIKeyListAndRevoke(t *testing.T) {
	t.Parallel()
	pool := testenv.DB(t)
	cfg := pool.Config().ConnConfig
	vars := map[string]string{"DATABASE_URL": "postgres://" + cfg.User + "@" + cfg.Host + ":" + strconv.Itoa(int(cfg.Port)) + "/" + cfg.Database + "?sslmode=disable"}
	ctx := context.Background()
	cli := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, args, env(vars), &stdout, &stderr)
		return stdout.String(), err
	}
	var keys []string
	for range 2 {
		out, err := cli("apikey", "create", "--workspace", "acme")
		if err != nil {
			t.Fatal(err)
		}
		var created map[string]string
		json.Unmarshal([]byte(out), &created)
		keys = append(keys, created["api_key"])
	}
	cli("apikey", "create", "--workspace", "other")
	// Using a key records the minute of its use.
	if _, err := postgres.NewStore(pool, nil).WorkspaceForAPIKey(ctx, keys[1]); err != nil {
		t.Fatal(err)
	}
	type listed struct {
		ID         string     `json:"id"`
		Prefix     *string    `json:"prefix"`
		CreatedAt  time.Time  `json:"created_at"`
		LastUsedAt *time.Time `json:"last_used_at"`
		RevokedAt  *time.Time `json:"revoked_at"`
	}
	list := func() []listed {
		t.Helper()
		out, err := cli("apikey", "list", "--workspace", "acme")
		if err != nil {
			t.Fatal(err)
		}
		var got []listed
		for line := range strings.Lines(out) {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal([]byte(line), &fields); err != nil || len(fields) != 5 {
				t.Fatalf("line %q: %v, want one object with 5 fields", line, err)
			}
			var k listed
			json.Unmarshal([]byte(line), &k)
			got = append(got, k)
		}
		return got
	}
	got := list()
	if len(got) != 2 {
		t.Fatalf("listed %d keys, want 2: %+v", len(got), got)
	}
	for i, k := range got {
		if k.Prefix == nil || *k.Prefix != keys[i][:8] || k.CreatedAt.IsZero() || k.RevokedAt != nil {
			t.Errorf("key %d: %+v", i, k)
		}
	}
	if got[0].LastUsedAt != nil || got[1].LastUsedAt == nil || got[1].LastUsedAt.Second() != 0 || got[1].LastUsedAt.Nanosecond() != 0 ||
		time.Since(*got[1].LastUsedAt) > 2*time.Minute {
		t.Errorf("last_used_at: %v and %v, want null and this minute", got[0].LastUsedAt, got[1].LastUsedAt)
	}

	out, err := cli("apikey", "revoke", got[0].ID)
	if err != nil || !strings.Contains(out, `"revoked_at":"`) || strings.Count(out, "\n") != 1 {
		t.Fatalf("revoke: %q %v", out, err)
	}
	again := list()
	if again[0].RevokedAt == nil || again[1].RevokedAt != nil {
		t.Errorf("after revoke: %+v", again)
	}
	if _, err := postgres.NewStore(pool, nil).WorkspaceForAPIKey(ctx, keys[0]); err == nil {
		t.Error("the revoked key still resolves")
	}
	// Revoking again changes nothing; unknown IDs and workspaces are one clear line.
	if out, err := cli("apikey", "revoke", got[0].ID); err != nil || !strings.Contains(out, again[0].RevokedAt.Format(time.RFC3339Nano)) {
		t.Errorf("revoke again: %q %v, want revoked_at %v unchanged", out, err, again[0].RevokedAt)
	}
	for _, args := range [][]string{
		{"apikey", "revoke", "0b7e2a39-6c3b-4a2f-9a44-3f1f6a7d2c11"},
		{"apikey", "revoke", "nope"},
		{"apikey", "revoke"},
		{"apikey", "list", "--workspace", "nobody"},
		{"apikey", "list"},
		{"apikey", "list", "--bogus"},
		{"apikey", "delete"},
	} {
		if _, err := cli(args...); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line", args, err)
		}
	}
}

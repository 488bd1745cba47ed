package testenv_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall/internal/testenv"
)

func TestDBsAreMigratedEmptyAndIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := testenv.DB(t), testenv.DB(t)

	var nameA, nameB string
	if err := a.QueryRow(ctx, "SELECT current_database()").Scan(&nameA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(ctx, "SELECT current_database()").Scan(&nameB); err != nil {
		t.Fatal(err)
	}
	if nameA == nameB {
		t.Fatalf("both pools use database %q, want two databases", nameA)
	}

	for _, table := range []string{"workspaces", "calls"} {
		var n int
		if err := a.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
			t.Fatalf("counting %s in a migrated database: %v", table, err)
		}
		if n != 0 {
			t.Errorf("%s has %d rows in a fresh database, want 0", table, n)
		}
	}

	if _, err := a.Exec(ctx, "INSERT INTO workspaces (name) VALUES ('only-in-a')"); err != nil {
		t.Fatal(err)
	}
	var got int
	if err := b.QueryRow(ctx, "SELECT count(*) FROM workspaces").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != 0 {
		t.Errorf("database b sees %d workspaces after an insert into a, want 0", got)
	}
}

func TestDatabaseDroppedAtCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testenv.DB(t)

	var name string
	t.Run("user", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, testenv.DatabaseURL(t))
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: the drop must not depend on callers closing.
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})

	var exists bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %q exists after its test ended, want it dropped", name)
	}
}

func TestRedisDatabasesAreDistinct(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	urlA, urlB := testenv.Redis(t), testenv.Redis(t)
	if urlA == urlB {
		t.Fatalf("got the same Redis URL %q twice, want two databases", urlA)
	}

	a, b := client(t, urlA), client(t, urlB)
	if err := a.Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS k in database b = %d, %v after setting it in a; want 0, nil", n, err)
	}
	if n, err := b.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE of a fresh database = %d, %v; want 0, nil", n, err)
	}
}

func TestRedisFlushedAtCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	var u string
	t.Run("user", func(t *testing.T) {
		u = testenv.Redis(t)
		if err := client(t, u).Set(ctx, "left-behind", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})

	if n, err := client(t, u).DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE of %s after its test ended = %d, %v; want 0, nil", u, n, err)
	}
}

func TestHashDir(t *testing.T) {
	t.Parallel()
	base := fstest.MapFS{
		"00001_init.sql": {Data: []byte("CREATE TABLE a ();")},
		"00002_more.sql": {Data: []byte("CREATE TABLE b ();")},
		"README.md":      {Data: []byte("not a migration")},
	}
	want, err := testenv.HashDir(base)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		fsys     fstest.MapFS
		wantSame bool
	}{
		{"same files", fstest.MapFS{
			"00001_init.sql": {Data: []byte("CREATE TABLE a ();")},
			"00002_more.sql": {Data: []byte("CREATE TABLE b ();")},
		}, true},
		{"changed content", fstest.MapFS{
			"00001_init.sql": {Data: []byte("CREATE TABLE a (x int);")},
			"00002_more.sql": {Data: []byte("CREATE TABLE b ();")},
		}, false},
		{"added file", fstest.MapFS{
			"00001_init.sql": {Data: []byte("CREATE TABLE a ();")},
			"00002_more.sql": {Data: []byte("CREATE TABLE b ();")},
			"00003_new.sql":  {Data: []byte("")},
		}, false},
		{"renamed file", fstest.MapFS{
			"00001_init.sql":  {Data: []byte("CREATE TABLE a ();")},
			"00003_other.sql": {Data: []byte("CREATE TABLE b ();")},
		}, false},
	}
	for _, tt := range tests {
		got, err := testenv.HashDir(tt.fsys)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if (got == want) != tt.wantSame {
			t.Errorf("%s: hash %s vs %s, want same=%v", tt.name, got, want, tt.wantSame)
		}
	}
}

func client(t *testing.T, u string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

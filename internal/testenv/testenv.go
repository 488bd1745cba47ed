// Package testenv gives each test its own real Postgres database and its own
// real Redis logical database, so tests can run in parallel (and packages in
// parallel processes) without seeing each other's data.
//
// The servers are named by TEST_DATABASE_URL and TEST_REDIS_URL. `make test`
// starts throwaway ones and sets both; without them the helpers fail the test
// (they never skip, and never fall back to a server on a default port).
//
// Databases are cheap: the migrations run once into a template database whose
// name carries a hash of the migration files, and each test gets
// `CREATE DATABASE ... TEMPLATE` of it, dropped when the test ends. Changing a
// migration yields a new template; the old one is simply no longer used.
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		pool := testenv.DB(t)            // migrated, empty, this test's alone
//		redisURL := testenv.Redis(t)     // redis://host:port/N, flushed
//		...
//	}
package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/endcall/endcall/postgres"
)

const (
	modulePath    = "github.com/endcall/endcall"
	migrationsDir = "postgres/migrations" // relative to the module root
	setupTimeout  = 2 * time.Minute

	// templateLockKey serializes template creation across test processes.
	templateLockKey int64 = 0x656e6463616c6c // "endcall"

	// redisCounterKey, in Redis DB 0, hands out logical databases.
	redisCounterKey = "endcall:testenv:next-db"
)

const runMakeTest = "run the tests with `make test`, which starts throwaway Postgres and Redis, " +
	"or set TEST_DATABASE_URL and TEST_REDIS_URL yourself"

// DB returns a connection pool to a fresh, migrated, empty database that
// belongs to t alone. The pool is closed and the database dropped when t ends.
func DB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dbURL := DatabaseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("testenv: connecting to the test database: %v", err)
	}
	// Cleanups run last-in first-out: the pool closes before the drop.
	t.Cleanup(pool.Close)
	return pool
}

// DatabaseURL returns the URL of a fresh, migrated, empty database that
// belongs to t alone, for tests that connect by URL (e.g. run the CLI). The
// database is dropped when t ends, even if connections to it remain.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		t.Fatal("testenv: TEST_DATABASE_URL is not set: " + runMakeTest)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	admin, err := adminPool(ctx, base)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	tpl, err := ensureTemplate(ctx, admin, base)
	if err != nil {
		t.Fatalf("testenv: preparing the template database: %v", err)
	}

	name := "test_" + randomHex(8)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+
		" TEMPLATE "+pgx.Identifier{tpl}.Sanitize()); err != nil {
		t.Fatalf("testenv: creating database %s from %s: %v", name, tpl, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: dropping database %s: %v", name, err)
		}
	})
	return withDatabase(base, name)
}

var (
	adminMu   sync.Mutex
	adminURL  string
	admin     *pgxpool.Pool
	templates = map[string]bool{} // base URL + template name → known to exist

	templateMu sync.Mutex // serializes ensureTemplate's slow path
)

// adminPool returns this process's pool to the maintenance database (the
// one TEST_DATABASE_URL names), used to create and drop test databases. It
// lives as long as the test binary.
func adminPool(ctx context.Context, base string) (*pgxpool.Pool, error) {
	adminMu.Lock()
	defer adminMu.Unlock()
	if admin != nil && adminURL == base {
		return admin, nil
	}
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return nil, errors.New("TEST_DATABASE_URL must be a postgres:// URL")
	}
	cfg, err := pgxpool.ParseConfig(base)
	if err != nil {
		return nil, fmt.Errorf("TEST_DATABASE_URL: %v", err)
	}
	cfg.MaxConns = 4
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = p.Ping(ctx)
	}
	if err != nil {
		if p != nil {
			p.Close()
		}
		return nil, fmt.Errorf("connecting to TEST_DATABASE_URL: %v (%s)", err, runMakeTest)
	}
	admin, adminURL = p, base
	return p, nil
}

// ensureTemplate returns the name of the migrated template database for the
// current migration files, creating it if no process has yet.
func ensureTemplate(ctx context.Context, admin *pgxpool.Pool, base string) (string, error) {
	hash, err := migrationsHash()
	if err != nil {
		return "", err
	}
	tpl := "endcall_tpl_" + hash

	adminMu.Lock()
	known := templates[base+" "+tpl]
	adminMu.Unlock()
	if known {
		return tpl, nil
	}

	// One goroutine per process checks and builds; the advisory lock in
	// createTemplate covers the other processes.
	templateMu.Lock()
	defer templateMu.Unlock()
	exists, err := databaseExists(ctx, admin, tpl)
	if err != nil {
		return "", err
	}
	if !exists {
		if err := createTemplate(ctx, admin, base, tpl); err != nil {
			return "", err
		}
	}
	adminMu.Lock()
	templates[base+" "+tpl] = true
	adminMu.Unlock()
	return tpl, nil
}

// createTemplate migrates a new database and renames it to tpl, under an
// advisory lock so that concurrent test processes build it once. The rename
// makes the template appear complete or not at all.
func createTemplate(ctx context.Context, admin *pgxpool.Pool, base, tpl string) error {
	conn, err := admin.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("taking the template lock: %w", err)
	}
	defer func() {
		// A fresh context: unlock even when ctx has expired.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", templateLockKey); err != nil {
			conn.Conn().Close(ctx) // closing the session releases the lock
		}
	}()

	exists, err := databaseExists(ctx, conn, tpl)
	if err != nil || exists {
		return err
	}

	build := tpl + "_build"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{build}.Sanitize()+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{build}.Sanitize()+" TEMPLATE template0"); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, withDatabase(base, build))
	if err != nil {
		return err
	}
	err = postgres.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{build}.Sanitize()+" WITH IS_TEMPLATE true"); err != nil {
		return err
	}
	// RENAME waits briefly for the migration's backends to exit.
	_, err = conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{build}.Sanitize()+
		" RENAME TO "+pgx.Identifier{tpl}.Sanitize())
	return err
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func databaseExists(ctx context.Context, q querier, name string) (bool, error) {
	var exists bool
	err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	return exists, err
}

var (
	hashOnce sync.Once
	hashVal  string
	hashErr  error
)

// migrationsHash returns a short hash of the migration files (names and
// contents), the same files package postgres embeds.
func migrationsHash() (string, error) {
	hashOnce.Do(func() {
		dir, err := findMigrations()
		if err != nil {
			hashErr = err
			return
		}
		hashVal, hashErr = hashDir(os.DirFS(dir))
	})
	return hashVal, hashErr
}

func hashDir(fsys fs.FS) (string, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return "", errors.New("no migration files found")
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// findMigrations locates postgres/migrations in the module's source tree:
// from the working directory (go test runs in the package directory) up to
// the module root, else relative to this source file.
func findMigrations() (string, error) {
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if isModuleRoot(dir) {
				return filepath.Join(dir, migrationsDir), nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if isModuleRoot(root) {
			return filepath.Join(root, migrationsDir), nil
		}
	}
	return "", fmt.Errorf("cannot find %s of module %s from the working directory", migrationsDir, modulePath)
}

func isModuleRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "module ") {
			return strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "module ")), `"`) == modulePath
		}
	}
	return false
}

// withDatabase returns the Postgres URL base with its database replaced.
func withDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		// adminPool has already parsed base successfully.
		panic(fmt.Sprintf("testenv: TEST_DATABASE_URL: %v", err))
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// Redis returns the URL (redis://host:port/N) of a Redis logical database
// that belongs to t alone. It is flushed now and when t ends.
func Redis(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_REDIS_URL")
	if base == "" {
		t.Fatal("testenv: TEST_REDIS_URL is not set: " + runMakeTest)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	opts, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("testenv: TEST_REDIS_URL: %v", err)
	}
	opts.DB = 0
	c0 := redis.NewClient(opts)
	defer c0.Close()

	dbs, err := redisDatabases(ctx, c0)
	if err != nil {
		t.Fatalf("testenv: asking Redis at TEST_REDIS_URL for its database count: %v (%s)", err, runMakeTest)
	}
	if dbs < 2 {
		t.Fatalf("testenv: Redis at TEST_REDIS_URL has %d database(s); need at least 2", dbs)
	}
	n, err := c0.Incr(ctx, redisCounterKey).Result()
	if err != nil {
		t.Fatalf("testenv: allocating a Redis database: %v", err)
	}
	db := int((n-1)%int64(dbs-1)) + 1 // 1..dbs-1; DB 0 holds the counter

	opts.DB = db
	c := redis.NewClient(opts)
	if err := c.FlushDB(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("testenv: flushing Redis database %d: %v", db, err)
	}
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.FlushDB(ctx).Err(); err != nil {
			t.Errorf("testenv: flushing Redis database %d: %v", db, err)
		}
	})

	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testenv: TEST_REDIS_URL: %v", err)
	}
	u.Path = "/" + strconv.Itoa(db)
	u.RawPath = ""
	q := u.Query()
	q.Del("db")
	u.RawQuery = q.Encode()
	return u.String()
}

var (
	redisDBsMu sync.Mutex
	redisDBs   = map[string]int{} // address → CONFIG GET databases
)

// redisDatabases returns the server's number of logical databases.
func redisDatabases(ctx context.Context, c *redis.Client) (int, error) {
	addr := c.Options().Addr
	redisDBsMu.Lock()
	n, ok := redisDBs[addr]
	redisDBsMu.Unlock()
	if ok {
		return n, nil
	}
	cfg, err := c.ConfigGet(ctx, "databases").Result()
	if err != nil {
		return 0, err
	}
	n, err = strconv.Atoi(cfg["databases"])
	if err != nil {
		return 0, fmt.Errorf("CONFIG GET databases: %q: %v", cfg["databases"], err)
	}
	redisDBsMu.Lock()
	redisDBs[addr] = n
	redisDBsMu.Unlock()
	return n, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// a server a test starts itself.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

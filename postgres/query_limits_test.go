package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/endcall/endcall"
	"github.com/endcall/endcall/internal/testenv"
	"github.com/endcall/endcall/postgres"
)

// The statements of a query run under a statement_timeout.
func TestQueryCallsStatementTimeouts(t *testing.T) {
	t.Parallel()
	store := postgres.NewStore(testenv.DB(t), nil)
	count, page, err := store.StatementTimeouts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if count != "5s" || page != "30s" {
		t.Errorf("statement_timeout: count %q, page %q; want 5s and 30s", count, page)
	}
}

// A query whose request goes away gives back its connections at once,
// the shared count's included. Not parallel: the bound is a second, and
// the package's other tests would share the CPU.
func TestQueryCallsCancelledReleasesConnections(t *testing.T) {
	pool := testenv.DB(t)
	store := postgres.NewStore(pool, nil)
	ws := newWorkspace(t, store, "w")
	insertCalls(t, pool, ws, 3, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), "")

	// Another session holds the table, so that the page and the count wait.
	ctx := context.Background()
	locker, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `LOCK TABLE calls IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}

	qctx, cancel := context.WithCancel(ctx)
	errs := make(chan error, 1)
	go func() {
		_, _, err := store.QueryCalls(qctx, endcall.CallQuery{WorkspaceID: ws, PerPage: 10, SortColumn: "created_at", Descending: true})
		errs <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); pool.Stat().AcquiredConns() < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("the page and the count never both held a connection (%d)", pool.Stat().AcquiredConns())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) && endcall.ErrorCode(err) != endcall.EUNAVAILABLE {
		t.Errorf("QueryCalls: %v", err)
	}
	deadline := time.Now().Add(time.Second)
	for pool.Stat().AcquiredConns() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a second after its request went away, the query still holds %d connections", pool.Stat().AcquiredConns())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

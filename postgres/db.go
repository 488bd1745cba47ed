package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/endcall/endcall"
)

// defaultMaxConns is the pool size unless DATABASE_URL sets pool_max_conns.
const defaultMaxConns = 20

// Open connects a pool to the database at url and checks that it answers.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default follows the CPU count (4 on two cores), narrower
		// than a worker's concurrency; no connection is ever held while an
		// outside system answers, so this bounds only Postgres's own work.
		cfg.MaxConns = max(cfg.MaxConns, defaultMaxConns)
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	return pool, nil
}

// Store implements the persistence interfaces of the domain.
type Store struct {
	pool   *pgxpool.Pool
	cipher *Cipher
	now    func() time.Time
	counts *countCache // of QueryCalls
	// endpointLimit is the most live webhook endpoints a workspace may
	// have (0: no limit).
	endpointLimit int
}

// NewStore returns a store on pool. cipher may be nil when no ENCRYPTION_KEY
// is configured; storing BYOT credentials then fails with EINVALID.
func NewStore(pool *pgxpool.Pool, cipher *Cipher) *Store {
	return &Store{pool: pool, cipher: cipher, now: time.Now, counts: newCountCache()}
}

// SetEndpointLimit sets the most live webhook endpoints a workspace may
// have (WEBHOOK_ENDPOINTS_PER_WORKSPACE); 0, the default, is no limit.
func (s *Store) SetEndpointLimit(n int) { s.endpointLimit = n }

// Pool returns the underlying pool (readiness checks, tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

var _ endcall.EndStore = (*Store)(nil)

// dbError translates a driver error into a domain error: connection
// failures become EUNAVAILABLE so that the API answers 503, and everything
// else stays internal (logged, never shown).
func dbError(err error) error {
	if err == nil {
		return nil
	}
	var e *endcall.Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return endcall.Errorf(endcall.ENOTFOUND, "not found")
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	// A connection dropped mid-statement (a failover, a proxy cut) reads as
	// an unexpected EOF or a closed connection; its outcome is unknown and
	// the client may try again.
	if errors.As(err, &connErr) || errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) ||
		pgconn.SafeToRetry(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) {
		return &unavailable{err}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P03") {
		return &unavailable{err}
	}
	return fmt.Errorf("postgres: %w", err)
}

// unavailable is a database outage: it reads as EUNAVAILABLE to clients and
// keeps the cause for the logs.
type unavailable struct{ err error }

func (u *unavailable) Error() string { return "postgres unavailable: " + u.err.Error() }
func (u *unavailable) Unwrap() error { return u.err }

// As lets errors.As(err, **endcall.Error) see the outage as EUNAVAILABLE.
func (u *unavailable) As(target any) bool {
	if t, ok := target.(**endcall.Error); ok {
		*t = endcall.Errorf(endcall.EUNAVAILABLE, "The database is unavailable; try again shortly.")
		return true
	}
	return false
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// violates reports whether err is a unique or exclusion violation of the
// named constraint or index.
func violates(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "23P01") && pgErr.ConstraintName == constraint
}

// roomTaken is a room_name that an active call of another workspace holds.
func roomTaken(room *string) error {
	return endcall.Errorf(endcall.ECONFLICT, "Room %q is held by an active call of another workspace.", endcall.Deref(room))
}

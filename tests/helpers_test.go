package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// fixture is what most tests start from: a fresh migrated database (superuser pool with an empty
// search_path) and a client over it.
type fixture struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	store *annals.Client
}

func setup(t *testing.T, opts ...annals.ClientOptions) fixture {
	t.Helper()
	pool := annalstest.NewDB(t)
	return fixture{ctx: t.Context(), pool: pool, store: annals.New(pool, append(opts, annals.ClientOptions{})[0])}
}

var streamSeq atomic.Int64

// stream returns a stream id unique within the test binary, so subtests can share a database.
func stream(category string) string {
	return fmt.Sprintf("%s-%d", category, streamSeq.Add(1))
}

// ev is an event with a fresh client-side id, so a test can resend it.
func ev(t *testing.T, typ string, data any) annals.EventData {
	t.Helper()
	id, err := uuid.NewV7()
	require.NoError(t, err)
	return annals.EventData{ID: id, Type: typ, Data: data}
}

// events returns n events of type typ with data {"n": i}.
func events(t *testing.T, typ string, n int) []annals.EventData {
	t.Helper()
	out := make([]annals.EventData, n)
	for i := range out {
		out[i] = ev(t, typ, map[string]any{"n": i})
	}
	return out
}

// readAll reads a whole stream through the Go API.
func (f fixture) readAll(t *testing.T, streamID string) []annals.RecordedEvent {
	t.Helper()
	return collect(t, f.store.ReadStream(f.ctx, streamID, annals.ReadOptions{}))
}

func collect(t *testing.T, seq func(func(annals.RecordedEvent, error) bool)) []annals.RecordedEvent {
	t.Helper()
	var out []annals.RecordedEvent
	for e, err := range seq {
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

// countRows counts a stream's events with the SQL read function, bypassing the Go wrapper.
func (f fixture) countRows(t *testing.T, streamID string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, f.pool.QueryRow(f.ctx,
		"SELECT count(*) FROM annals.read_stream($1, NULL, 1000000) AS e", streamID).Scan(&n))
	return n
}

// totals counts every stored event and stream row (the test pool is a superuser).
func (f fixture) totals(t *testing.T) (events, streams int64) {
	t.Helper()
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT (SELECT count(*) FROM annals_internal.events),
		(SELECT count(*) FROM annals_internal.streams)`).Scan(&events, &streams))
	return events, streams
}

// version is the stream's current version, 0 when it has none.
func (f fixture) version(t *testing.T, streamID string) int64 {
	t.Helper()
	info, err := f.store.StreamInfo(f.ctx, streamID)
	if errors.Is(err, annals.ErrStreamNotFound) {
		return 0
	}
	require.NoError(t, err)
	return info.StreamVersion
}

// appendSQL calls annals.append_events directly, the way any SQL client does.
func (f fixture) appendSQL(streamID any, expected any, events any) error {
	_, err := f.pool.Exec(f.ctx, "SELECT * FROM annals.append_events($1, $2, $3::jsonb)", streamID, expected, events)
	return err
}

// requirePgError asserts that err unwraps to a *pgconn.PgError with code and returns it.
func requirePgError(t *testing.T, err error, code string) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a *pgconn.PgError with %s, got %T: %v", code, err, err)
	require.Equal(t, code, pgErr.Code, "SQLSTATE of %v", err)
	return pgErr
}

// detailOf parses a PgError's JSON DETAIL.
func detailOf(t *testing.T, pgErr *pgconn.PgError) map[string]any {
	t.Helper()
	var d map[string]any
	require.NoError(t, json.Unmarshal([]byte(pgErr.Detail), &d), "DETAIL %q is not JSON", pgErr.Detail)
	return d
}

// connect opens a small pool with an empty search_path on connString, switched to database and
// user unless they are empty.
func connect(t *testing.T, connString, database, user string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(connString)
	require.NoError(t, err)
	if database != "" {
		cfg.ConnConfig.Database = database
	}
	if user != "" {
		cfg.ConnConfig.User = user
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = ""
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// dedicatedConn opens one connection outside any pool, closed when the test ends.
func dedicatedConn(t *testing.T, cfg *pgx.ConnConfig) *pgx.Conn {
	t.Helper()
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

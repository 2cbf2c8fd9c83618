// Package feed_test covers milestone M2: the gap-free global feed, category reads and consumer
// groups, subscriptions (SQL and the Go Subscriber), notifications, observability and the
// logical-restore guard. Every test runs against a real PostgreSQL on a fresh database.
//
// The feed barrier is cluster-wide: any transaction with an id anywhere on the server (another
// test's CREATE DATABASE, say) holds back every database's feed until it ends. So a test never
// expects an event to be readable the instant it commits; it polls with a generous deadline.
// Assertions that something is NOT readable are safe without polling: other transactions can
// only hold the barrier further back.
package feed_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// waitTimeout bounds every poll for something that must happen: long enough to ride out another
// test holding the cluster-wide barrier, short enough to fail a broken build quickly.
const waitTimeout = 30 * time.Second

// env is what every test starts from: a fresh migrated database (superuser pool, empty
// search_path) and a client over it.
type env struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	store *annals.Client
}

func newEnv(t *testing.T) env {
	t.Helper()
	pool := annalstest.NewDB(t)
	return env{ctx: t.Context(), pool: pool, store: annals.New(pool, annals.ClientOptions{})}
}

// conn takes a connection out of the pool for the whole test: explicit BEGIN/COMMIT
// interleavings need to know which session runs what.
func (e env) conn(t *testing.T) *pgxpool.Conn {
	t.Helper()
	c, err := e.pool.Acquire(e.ctx)
	require.NoError(t, err)
	t.Cleanup(c.Release)
	return c
}

// dedicated opens a connection outside the pool, optionally adjusting its config first (to set
// OnNotice, say).
func (e env) dedicated(t *testing.T, adjust func(*pgx.ConnConfig)) *pgx.Conn {
	t.Helper()
	cfg := e.pool.Config().ConnConfig.Copy()
	if adjust != nil {
		adjust(cfg)
	}
	c, err := pgx.ConnectConfig(e.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// queryer is what pools, connections and transactions share.
type queryer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// appended describes one append_events call: the ids sent, in order, and the result row.
type appended struct {
	Stream        string
	IDs           []uuid.UUID
	StreamVersion int64 // of the last event
	Position      int64 // of the last event
	TransactionID uint64
}

// firstVersion is the stream version of the batch's first event.
func (a appended) firstVersion() int64 { return a.StreamVersion - int64(len(a.IDs)) + 1 }

// batchJSON builds the events argument of append_events for n events of type typ with fresh ids.
func batchJSON(typ string, n int) ([]byte, []uuid.UUID) {
	ids := make([]uuid.UUID, n)
	evs := make([]map[string]any, n)
	for i := range evs {
		ids[i] = uuid.Must(uuid.NewV7())
		evs[i] = map[string]any{"id": ids[i], "type": typ, "data": map[string]any{"i": i}}
	}
	b, err := json.Marshal(evs)
	if err != nil {
		panic(err)
	}
	return b, ids
}

// tryAppend calls annals.append_events through SQL (any client's path) with expected version any.
func tryAppend(ctx context.Context, db queryer, stream, typ string, n int) (appended, error) {
	batch, ids := batchJSON(typ, n)
	a := appended{Stream: stream, IDs: ids}
	err := db.QueryRow(ctx,
		"SELECT r.stream_version, r.global_position, r.transaction_id FROM annals.append_events($1, NULL, $2::jsonb) AS r",
		stream, batch).Scan(&a.StreamVersion, &a.Position, &a.TransactionID)
	return a, err
}

// appendEvents is tryAppend that must succeed.
func appendEvents(t *testing.T, db queryer, stream, typ string, n int) appended {
	t.Helper()
	a, err := tryAppend(t.Context(), db, stream, typ, n)
	require.NoError(t, err, "append %d to %s", n, stream)
	return a
}

// eventColumns names the columns of annals.event explicitly, as the Go package does.
const eventColumns = `e.stream_id, e.stream_version, e.global_position, e.event_id, e.event_type,
e.schema_version, e.data, e.metadata, e.transaction_id, e.recorded_at`

func collectEvents(t *testing.T, db queryer, sql string, args ...any) []annals.RecordedEvent {
	t.Helper()
	evs, err := queryEvents(t.Context(), db, sql, args...)
	require.NoError(t, err)
	return evs
}

func queryEvents(ctx context.Context, db queryer, sql string, args ...any) ([]annals.RecordedEvent, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[annals.RecordedEvent])
}

// readAll is one page of annals.read_all through SQL.
func readAll(t *testing.T, db queryer, after annals.Checkpoint, maxCount int) []annals.RecordedEvent {
	t.Helper()
	return collectEvents(t, db, "SELECT "+eventColumns+" FROM annals.read_all($1, $2, $3) AS e",
		after.TransactionID, after.GlobalPosition, maxCount)
}

// drain pages through read_all from after, pageSize at a time, until it has exactly want events
// (polling while the barrier holds some back); it fails on more. It checks the feed order and
// that every page starts strictly after the checkpoint it was asked for.
func drain(t *testing.T, db queryer, after annals.Checkpoint, pageSize, want int) []annals.RecordedEvent {
	t.Helper()
	return drainWith(t, after, pageSize, want, func(cp annals.Checkpoint) []annals.RecordedEvent {
		return readAll(t, db, cp, pageSize)
	})
}

func drainWith(t *testing.T, after annals.Checkpoint, pageSize, want int, read func(annals.Checkpoint) []annals.RecordedEvent) []annals.RecordedEvent {
	t.Helper()
	var out []annals.RecordedEvent
	deadline := time.Now().Add(waitTimeout)
	for len(out) < want {
		page := read(after)
		require.LessOrEqual(t, len(page), pageSize)
		for _, ev := range page {
			require.True(t, ev.Checkpoint().After(after), "feed went backwards: %+v after %+v", ev.Checkpoint(), after)
			after = ev.Checkpoint()
		}
		out = append(out, page...)
		if len(page) == 0 {
			require.True(t, time.Now().Before(deadline), "feed stalled at %d of %d events", len(out), want)
			time.Sleep(10 * time.Millisecond)
		}
	}
	require.Len(t, out, want, "the feed returned more events than were committed")
	require.Empty(t, read(after), "the feed returned more events than were committed")
	return out
}

// ids lists the events' ids in feed order.
func ids(evs []annals.RecordedEvent) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID
	}
	return out
}

// concat joins id lists in order.
func concat(lists ...[]uuid.UUID) []uuid.UUID {
	var out []uuid.UUID
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// eventually polls cond every 10ms until it holds, failing with msg after waitTimeout.
func eventually(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", waitTimeout, fmt.Sprintf(msg, args...))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requirePgCode asserts err carries SQLSTATE code and returns the database error.
func requirePgCode(t *testing.T, err error, code string) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "not a database error: %v", err)
	require.Equal(t, code, pgErr.Code, "message: %s", pgErr.Message)
	return pgErr
}

// detailOf parses an Annals error's JSON DETAIL.
func detailOf(t *testing.T, pgErr *pgconn.PgError) map[string]any {
	t.Helper()
	var d map[string]any
	require.NoError(t, json.Unmarshal([]byte(pgErr.Detail), &d), "DETAIL %q", pgErr.Detail)
	return d
}

// waitUntilBlocked waits until the backend pid waits on a lock: a deterministic "B is now
// blocked" step for interleavings, instead of a sleep.
func waitUntilBlocked(t *testing.T, db queryer, pid uint32) {
	t.Helper()
	eventually(t, func() bool {
		var waiting bool
		err := db.QueryRow(t.Context(),
			"SELECT coalesce(a.wait_event_type = 'Lock', false) FROM pg_catalog.pg_stat_activity AS a WHERE a.pid = $1",
			int32(pid)).Scan(&waiting)
		return err == nil && waiting
	}, "backend %d never waited on a lock", pid)
}

// barrier is the feed barrier annals.feed_head reports.
func barrier(t *testing.T, e env) uint64 {
	t.Helper()
	h, err := e.store.FeedHead(e.ctx)
	require.NoError(t, err)
	return h.Barrier
}

// Package projections_test is the M3 suite: projections inside the database (inline dispatch,
// async runner, rebuilds, materialized views, BI access, the inventory read models), against a
// real PostgreSQL. Every test gets its own migrated database (annalstest.NewDB), so projection,
// schema and table names are fixed per test; only roles, which are cluster-wide, get unique names.
package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// fixture is a fresh migrated database (superuser pool, empty search_path) and a client over it.
type fixture struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	store *annals.Client
}

func setup(t *testing.T) fixture {
	t.Helper()
	pool := annalstest.NewDB(t)
	return fixture{ctx: t.Context(), pool: pool, store: annals.New(pool, annals.ClientOptions{})}
}

// exec runs SQL (several statements allowed when there are no arguments) and fails the test on error.
func (f fixture) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := f.pool.Exec(f.ctx, sql, args...)
	require.NoError(t, err, "SQL:\n%s", sql)
}

// scalar returns the single value of a one-row, one-column query.
func scalar[T any](t testing.TB, f fixture, sql string, args ...any) T {
	t.Helper()
	var v T
	require.NoError(t, f.pool.QueryRow(f.ctx, sql, args...).Scan(&v), "SQL:\n%s", sql)
	return v
}

// dump renders a query's rows as text lines, so two states of a table compare with require.Equal
// and a difference prints readably. The query must ORDER BY everything it returns.
func dump(t testing.TB, f fixture, sql string) []string {
	t.Helper()
	rows, err := f.pool.Query(f.ctx, sql)
	require.NoError(t, err, "SQL:\n%s", sql)
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		cols := make([]string, len(vals))
		for i, v := range vals {
			cols[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(cols, " "))
	}
	require.NoError(t, rows.Err())
	return out
}

// grantOwner gives annals_owner what a projection's schema must grant it: USAGE on the schema,
// SELECT, INSERT, UPDATE, DELETE on its tables and USAGE on its sequences (the pattern at the
// top of internal/inventory/readmodels/001_read_models.sql). Functions are executable by PUBLIC
// unless revoked.
func (f fixture) grantOwner(t testing.TB, schema string) {
	t.Helper()
	f.exec(t, fmt.Sprintf(`
		GRANT USAGE ON SCHEMA %[1]s TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %[1]s TO annals_owner;
		GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %[1]s TO annals_owner;`, schema))
}

// projection describes a call to annals.register_projection.
type projection struct {
	name, handler string
	tables        []string
	eventTypes    []string // nil: every type
	categories    []string // nil: every category
	mode          string   // "" means inline
}

func (f fixture) register(t testing.TB, p projection) {
	t.Helper()
	require.NoError(t, f.tryRegister(p))
}

func (f fixture) tryRegister(p projection) error {
	mode := p.mode
	if mode == "" {
		mode = "inline"
	}
	_, err := f.pool.Exec(f.ctx, `SELECT annals.register_projection($1, $2::text::regprocedure, $3::text[]::regclass[],
		event_types => $4, categories => $5, mode => $6)`, p.name, p.handler, p.tables, p.eventTypes, p.categories, mode)
	return err
}

// createCallLog creates schema s with a table s.calls where log handlers record each call.
func (f fixture) createCallLog(t testing.TB) {
	t.Helper()
	f.exec(t, `
		CREATE SCHEMA s;
		CREATE TABLE s.calls (
			call_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			projection  text     NOT NULL,
			txid        xid8     NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
			n           integer  NOT NULL,
			types       text[]   NOT NULL,
			categories  text[]   NOT NULL,
			positions   bigint[] NOT NULL);`)
	f.grantOwner(t, "s")
}

// logProjection registers an inline projection `name` whose handler logs each call in s.calls
// (how many events, their types, categories and positions, in the order received). It owns
// its own empty table, s.<name>_owned, since a table belongs to one projection only.
func (f fixture) logProjection(t testing.TB, name string, eventTypes, categories []string) {
	t.Helper()
	f.logProjectionMode(t, name, "inline", eventTypes, categories)
}

// logProjectionMode is logProjection with a mode (inline or async).
func (f fixture) logProjectionMode(t testing.TB, name, mode string, eventTypes, categories []string) {
	t.Helper()
	f.exec(t, fmt.Sprintf(`
		CREATE TABLE s.%[1]s_owned (x integer);
		GRANT SELECT, INSERT, UPDATE, DELETE ON s.%[1]s_owned TO annals_owner;
		CREATE FUNCTION s.%[1]s_handler(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			INSERT INTO s.calls (projection, n, types, categories, positions)
			SELECT '%[1]s', pg_catalog.count(*),
			       pg_catalog.array_agg(e.event_type ORDER BY e.i),
			       pg_catalog.array_agg(pg_catalog.split_part(e.stream_id, '-', 1) ORDER BY e.i),
			       pg_catalog.array_agg(e.global_position ORDER BY e.i)
			  FROM pg_catalog.unnest(events) WITH ORDINALITY AS e(stream_id, stream_version, global_position,
			       event_id, event_type, schema_version, data, metadata, transaction_id, recorded_at, i)
		$fn$;`, name))
	f.register(t, projection{name: name, handler: "s." + name + "_handler(annals.event[])",
		tables: []string{"s." + name + "_owned"}, eventTypes: eventTypes, categories: categories, mode: mode})
}

// call is one row of s.calls.
type call struct {
	Projection string   `db:"projection"`
	N          int      `db:"n"`
	Types      []string `db:"types"`
	Categories []string `db:"categories"`
	Positions  []int64  `db:"positions"`
}

func (f fixture) calls(t testing.TB) []call {
	t.Helper()
	rows, err := f.pool.Query(f.ctx, `SELECT c.projection, c.n, c.types, c.categories, c.positions FROM s.calls AS c ORDER BY c.call_id`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[call])
	require.NoError(t, err)
	return out
}

// ev builds an event; data nil means {}.
func ev(typ string, data map[string]any) annals.EventData {
	if data == nil {
		return annals.EventData{Type: typ} // a typed nil map would encode as JSON null
	}
	return annals.EventData{Type: typ, Data: data}
}

// evs builds n events of type typ with data {"i": i}.
func evs(typ string, n int) []annals.EventData {
	out := make([]annals.EventData, n)
	for i := range out {
		out[i] = ev(typ, map[string]any{"i": i})
	}
	return out
}

func (f fixture) append(t testing.TB, stream string, events ...annals.EventData) annals.AppendResult {
	t.Helper()
	res, err := f.store.Append(f.ctx, stream, annals.Any, events...)
	require.NoError(t, err, "append to %s", stream)
	return res
}

// appendJSON appends through SQL with a prebuilt JSON batch (fast bulk loading).
func (f fixture) appendJSON(t testing.TB, stream string, events []map[string]any) {
	t.Helper()
	b, err := json.Marshal(events)
	require.NoError(t, err)
	f.exec(t, "SELECT r.stream_version FROM annals.append_events($1, NULL, $2::jsonb) AS r", stream, string(b))
}

// pgCode returns err's SQLSTATE, failing when err is not a database error.
func pgCode(t testing.TB, err error) *pgconn.PgError {
	t.Helper()
	require.Error(t, err)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want a *pgconn.PgError, got %T: %v", err, err)
	return pgErr
}

// requireInvalid asserts err is ST422 (annals.ErrInvalidArgument once mapped) with a message
// containing every fragment.
func requireInvalid(t testing.TB, err error, fragments ...string) {
	t.Helper()
	pgErr := pgCode(t, err)
	require.Equal(t, "ST422", pgErr.Code, "message: %s", pgErr.Message)
	for _, frag := range fragments {
		require.Contains(t, pgErr.Message, frag)
	}
}

// waitingOnLock counts this database's sessions that wait on a heavyweight lock while running a
// statement containing fragment.
func waitingOnLock(t testing.TB, f fixture, fragment string) int64 {
	t.Helper()
	return scalar[int64](t, f, `SELECT count(*) FROM pg_stat_activity AS a
		WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' AND strpos(a.query, $1) > 0`, fragment)
}

// eventually polls cond until it holds or timeout passes. The gap-free feed's barrier is
// cluster-wide (transaction ids are), so a long transaction in a parallel test of another
// database can hold it back for seconds: anything that waits for the barrier polls.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var roleSeq atomic.Int64

// loginRole creates a LOGIN role (cluster-wide, so uniquely named) granted the given roles, and
// returns a pool connected as it to the test's database. The role is dropped when the test ends.
func loginRole(t *testing.T, f fixture, grants ...string) *pgxpool.Pool {
	t.Helper()
	name := fmt.Sprintf("annals_qa_%d_%d", time.Now().UnixNano()%1_000_000_000, roleSeq.Add(1))
	f.exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN IN ROLE %s", name, strings.Join(grants, ", ")))
	cfg := f.pool.Config().Copy()
	cfg.ConnConfig.User = name
	cfg.ConnConfig.Password = ""
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(f.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		pool.Close()
		// The database is dropped after this (cleanups run last-in first-out); the role is not.
		_, err := f.pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+name)
		if err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	return pool
}

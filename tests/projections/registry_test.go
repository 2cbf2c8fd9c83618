package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/stretchr/testify/require"
)

func TestRegisterProjectionErrorsAreClear(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `
		CREATE SCHEMA s;
		CREATE TABLE s.t (x integer);
		CREATE TABLE s.t2 (x integer);
		CREATE TABLE s.select_only (x integer);
		CREATE VIEW s.a_view AS SELECT 1 AS x;
		CREATE SEQUENCE s.a_sequence;
		CREATE FUNCTION s.h(events annals.event[]) RETURNS void LANGUAGE sql AS 'SELECT';
		CREATE FUNCTION s.wrong_arg(events jsonb) RETURNS void LANGUAGE sql AS 'SELECT';
		CREATE FUNCTION s.wrong_return(events annals.event[]) RETURNS integer LANGUAGE sql AS 'SELECT 1';
		CREATE FUNCTION s.two_args(events annals.event[], x integer) RETURNS void LANGUAGE sql AS 'SELECT';
		CREATE FUNCTION s.set_returning(events annals.event[]) RETURNS SETOF void LANGUAGE sql AS 'SELECT';
		CREATE PROCEDURE s.a_procedure(events annals.event[]) LANGUAGE sql AS 'SELECT';
		CREATE FUNCTION s.private(events annals.event[]) RETURNS void LANGUAGE sql AS 'SELECT';
		REVOKE EXECUTE ON FUNCTION s.private(annals.event[]) FROM PUBLIC;
		CREATE SCHEMA hidden;
		CREATE FUNCTION hidden.h(events annals.event[]) RETURNS void LANGUAGE sql AS 'SELECT';
		CREATE TABLE hidden.t (x integer);
		GRANT SELECT, INSERT, UPDATE, DELETE ON hidden.t TO annals_owner;`)
	f.grantOwner(t, "s")
	f.exec(t, "REVOKE INSERT, UPDATE, DELETE ON s.select_only FROM annals_owner")
	ok := projection{name: "p", handler: "s.h(annals.event[])", tables: []string{"s.t"}}

	// Unknown handler: the cast to regprocedure fails before annals.register_projection runs,
	// with PostgreSQL's own error naming the function.
	p := ok
	p.handler = "s.nope(annals.event[])"
	err := f.tryRegister(p)
	pgErr := pgCode(t, err)
	require.Equal(t, "42883", pgErr.Code)
	require.Contains(t, pgErr.Message, "s.nope(annals.event[])")

	// Wrong signatures.
	for _, h := range []string{"s.wrong_arg(jsonb)", "s.wrong_return(annals.event[])", "s.two_args(annals.event[],integer)",
		"s.set_returning(annals.event[])", "s.a_procedure(annals.event[])"} {
		p := ok
		p.handler = h
		requireInvalid(t, f.tryRegister(p), "must have the signature (events annals.event[]) RETURNS void")
	}
	// annals_owner cannot run it: revoked, or no USAGE on its schema.
	p = ok
	p.handler = "s.private(annals.event[])"
	requireInvalid(t, f.tryRegister(p), "GRANT EXECUTE ON FUNCTION s.private(annals.event[]) TO annals_owner")
	p = ok
	p.handler = "hidden.h(annals.event[])"
	requireInvalid(t, f.tryRegister(p), "annals_owner cannot execute hidden.h(annals.event[])", "USAGE")

	// Tables.
	for _, tables := range [][]string{nil, {}} {
		p := ok
		p.tables = tables
		requireInvalid(t, f.tryRegister(p), "at least one table")
	}
	for _, tbl := range []string{"s.a_view", "s.a_sequence"} {
		p := ok
		p.tables = []string{"s.t", tbl}
		requireInvalid(t, f.tryRegister(p), tbl+" is not a table")
	}
	_, err = f.pool.Exec(f.ctx, "SELECT annals.register_projection('p', 's.h(annals.event[])', ARRAY['s.t', NULL]::regclass[])")
	requireInvalid(t, err, "tables", "NULL")
	p = ok
	p.tables = []string{"s.select_only"} // SELECT alone is not enough: a rebuild deletes, the handler writes
	requireInvalid(t, f.tryRegister(p), "annals_owner needs SELECT, INSERT, UPDATE, DELETE on s.select_only", "GRANT")
	p = ok
	p.tables = []string{"hidden.t"} // privileges on the table but no USAGE on its schema
	requireInvalid(t, f.tryRegister(p), "hidden.t", "USAGE on its schema")

	// Mode and filters.
	p = ok
	p.mode = "sometimes"
	requireInvalid(t, f.tryRegister(p), "mode", "'inline' or 'async'")
	p = ok
	p.eventTypes = []string{}
	requireInvalid(t, f.tryRegister(p), "event_types", "NULL (every type) or a non-empty array")
	p = ok
	p.categories = []string{}
	requireInvalid(t, f.tryRegister(p), "categories", "NULL (every category) or a non-empty array")
	_, err = f.pool.Exec(f.ctx, "SELECT annals.register_projection('', 's.h(annals.event[])', ARRAY['s.t']::regclass[])")
	requireInvalid(t, err, "name")
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals.projections"), "no failed call registered anything")

	// A table belongs to one projection.
	require.True(t, scalar[bool](t, f, "SELECT annals.register_projection('p', 's.h(annals.event[])', ARRAY['s.t']::regclass[])"))
	p = ok
	p.name = "q"
	p.tables = []string{"s.t2", "s.t"}
	requireInvalid(t, f.tryRegister(p), "s.t already belongs to another projection")
	// Re-registering the same projection updates it (false: not new).
	require.False(t, scalar[bool](t, f, "SELECT annals.register_projection('p', 's.h(annals.event[])', ARRAY['s.t', 's.t2']::regclass[], event_types => ARRAY['X'])"))
	require.Equal(t, []string{"p [s.t s.t2] [X]"}, dump(t, f, "SELECT p.projection_name, p.tables, p.event_types FROM annals.projections AS p"))

	// set_projection_enabled on an unknown projection: ST404, annals.ErrNotFound in Go.
	_, err = f.pool.Exec(f.ctx, "SELECT annals.set_projection_enabled('nope', false)")
	require.Equal(t, "ST404", pgCode(t, err).Code)
	_, err = f.store.RebuildProjection(f.ctx, "nope", nil, 0)
	require.ErrorIs(t, err, annals.ErrNotFound)
	_, err = f.pool.Exec(f.ctx, "SELECT annals.set_projection_enabled('p', NULL)")
	requireInvalid(t, err, "enabled")

	// Through the Go API: disable, enable, and ST404 (ErrNotFound) for an unknown name.
	require.NoError(t, f.store.SetProjectionEnabled(f.ctx, "p", false))
	require.False(t, scalar[bool](t, f, "SELECT p.enabled FROM annals.projections AS p WHERE p.projection_name = 'p'"))
	require.NoError(t, f.store.SetProjectionEnabled(f.ctx, "p", true))
	require.True(t, scalar[bool](t, f, "SELECT p.enabled FROM annals.projections AS p WHERE p.projection_name = 'p'"))
	require.ErrorIs(t, f.store.SetProjectionEnabled(f.ctx, "nope", true), annals.ErrNotFound)

	// drop_projection: true once, then ST404 with the name in the DETAIL and a hint; the handler
	// is no longer called.
	require.True(t, scalar[bool](t, f, "SELECT annals.drop_projection('p')"))
	_, err = f.pool.Exec(f.ctx, "SELECT annals.drop_projection('p')")
	pgErr = pgCode(t, err)
	require.Equal(t, "ST404", pgErr.Code)
	require.JSONEq(t, `{"projection": "p"}`, pgErr.Detail)
	require.Contains(t, pgErr.Hint, "annals.projections")
	require.ErrorIs(t, f.store.DropProjection(f.ctx, "p"), annals.ErrNotFound)
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals.projections"))
	// Its tables are free again.
	p = ok
	p.name = "q"
	require.NoError(t, f.tryRegister(p))
}

// A handler runs as annals_owner, and its owner can redefine it at any time (a SECURITY DEFINER
// function's owner can switch that off again), so only a role that is a member of annals_owner
// may own one: otherwise that owner could run anything as annals_owner.
func TestRegisterProjectionRefusesHandlersOwnedByUntrustedRoles(t *testing.T) {
	t.Parallel()
	f := setup(t)
	role := fmt.Sprintf("proj_dev_%d", time.Now().UnixNano())
	f.exec(t, "CREATE ROLE "+role)
	t.Cleanup(func() {
		_, _ = f.pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS dev CASCADE")
		_, _ = f.pool.Exec(context.Background(), "REVOKE ALL ON SCHEMA annals FROM "+role)
		_, _ = f.pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	f.exec(t, "GRANT USAGE ON SCHEMA annals TO "+role)
	f.exec(t, "CREATE SCHEMA dev AUTHORIZATION "+role)
	f.exec(t, "GRANT USAGE ON SCHEMA dev TO annals_owner")
	f.exec(t, "CREATE TABLE dev.t (x integer)")
	f.exec(t, "GRANT SELECT, INSERT, UPDATE, DELETE ON dev.t TO annals_owner")
	f.exec(t, "CREATE FUNCTION dev.h(events annals.event[]) RETURNS void LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'")
	f.exec(t, "GRANT EXECUTE ON FUNCTION dev.h(annals.event[]) TO annals_owner")
	f.exec(t, "ALTER FUNCTION dev.h(annals.event[]) OWNER TO "+role)

	register := "SELECT annals.register_projection('dev', 'dev.h(annals.event[])', ARRAY['dev.t']::regclass[])"
	_, err := f.pool.Exec(f.ctx, register)
	requireInvalid(t, err, "owned by "+role, "not a member of annals_owner", "OWNER TO annals_owner")
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals.projections"))

	// Its schema's owner could drop it and create another under the same name.
	f.exec(t, "ALTER FUNCTION dev.h(annals.event[]) OWNER TO annals_owner")
	_, err = f.pool.Exec(f.ctx, register)
	requireInvalid(t, err, "the schema of dev.h(annals.event[]), dev, is owned by "+role, "ALTER SCHEMA dev OWNER TO annals_owner")
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals.projections"))

	f.exec(t, "ALTER SCHEMA dev OWNER TO annals_owner")
	require.True(t, scalar[bool](t, f, register))
}

// Upcasters run as annals_owner on every read: the same ownership rule as handlers, plus the
// schema USAGE check (without it every read of the type would fail).
func TestRegisterUpcasterRefusesUntrustedOwnersAndMissingUsage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	role := fmt.Sprintf("up_dev_%d", time.Now().UnixNano())
	f.exec(t, "CREATE ROLE "+role)
	t.Cleanup(func() {
		_, _ = f.pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS up CASCADE")
		_, _ = f.pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	f.exec(t, "CREATE SCHEMA up")
	f.exec(t, "CREATE FUNCTION up.v1_to_v2(data jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE RETURN data || '{\"v\": 2}'")
	f.exec(t, "GRANT EXECUTE ON FUNCTION up.v1_to_v2(jsonb) TO annals_owner")
	register := "SELECT annals.register_upcaster('Thing', 1, 'up.v1_to_v2(jsonb)')"

	_, err := f.pool.Exec(f.ctx, register)
	requireInvalid(t, err, "annals_owner cannot execute up.v1_to_v2(jsonb)", "USAGE on its schema")
	f.exec(t, "GRANT USAGE ON SCHEMA up TO annals_owner")

	f.exec(t, "ALTER FUNCTION up.v1_to_v2(jsonb) OWNER TO "+role)
	_, err = f.pool.Exec(f.ctx, register)
	requireInvalid(t, err, "owned by "+role, "not a member of annals_owner")

	f.exec(t, "ALTER FUNCTION up.v1_to_v2(jsonb) OWNER TO annals_owner")
	require.True(t, scalar[bool](t, f, register))
	f.append(t, "thing-1", ev("Thing", map[string]any{"a": 1}))
	require.Equal(t, `{"a": 1, "v": 2}`, scalar[string](t, f, "SELECT e.data::text FROM annals.read_stream('thing-1') AS e"))

	// An upcaster that returns anything but a JSON object fails every read of the type with
	// ST500, naming it; raw reads still work.
	f.exec(t, "CREATE FUNCTION up.v2_to_v3(data jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE RETURN '[]'::jsonb")
	f.exec(t, "ALTER FUNCTION up.v2_to_v3(jsonb) OWNER TO annals_owner")
	require.True(t, scalar[bool](t, f, "SELECT annals.register_upcaster('Thing', 2, 'up.v2_to_v3(jsonb)')"))
	_, err = f.pool.Exec(f.ctx, "SELECT e.data FROM annals.read_stream('thing-1') AS e")
	pgErr := pgCode(t, err)
	require.Equal(t, "ST500", pgErr.Code)
	require.Contains(t, pgErr.Message, "up.v2_to_v3")
	require.Contains(t, pgErr.Message, "not a JSON object")
	require.Equal(t, `{"a": 1}`, scalar[string](t, f, "SELECT e.data::text FROM annals.read_stream('thing-1', raw => true) AS e"))
}

// The dispatch trigger exists only while an enabled inline projection does.
func TestDispatchTriggerFollowsInlineProjections(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.createCallLog(t)
	tg := func() string {
		return scalar[string](t, f, `SELECT t.tgenabled::text FROM pg_trigger AS t
			WHERE t.tgrelid = 'annals_internal.events'::regclass AND t.tgname = 'events_dispatch_inline'`)
	}
	require.Equal(t, "D", tg(), "a fresh store pays nothing")

	f.logProjectionMode(t, "a", "async", nil, nil)
	require.Equal(t, "D", tg(), "async projections do not need it")
	f.logProjection(t, "b", nil, nil)
	require.Equal(t, "O", tg())
	f.logProjection(t, "c", nil, nil)
	f.exec(t, "SELECT annals.set_projection_enabled('b', false)")
	require.Equal(t, "O", tg(), "c is still enabled")
	f.exec(t, "SELECT annals.set_projection_enabled('c', false)")
	require.Equal(t, "D", tg(), "the last enabled inline projection was disabled")
	f.append(t, "acct-1", ev("X", nil))
	require.Empty(t, f.calls(t))

	f.exec(t, "SELECT annals.set_projection_enabled('c', true)")
	require.Equal(t, "O", tg())
	f.append(t, "acct-1", ev("X", nil))
	require.Len(t, f.calls(t), 1)

	// Switching c to async in place would apply every event again on top of its rows: refused,
	// with the way to do it (drop, register, rebuild).
	_, err := f.pool.Exec(f.ctx, "SELECT annals.register_projection('c', 's.c_handler(annals.event[])', ARRAY['s.c_owned']::regclass[], mode => 'async')")
	requireInvalid(t, err, "mode", "drop_projection", "rebuild_projection")
	f.exec(t, "SELECT annals.drop_projection('c')")
	f.exec(t, "SELECT annals.register_projection('c', 's.c_handler(annals.event[])', ARRAY['s.c_owned']::regclass[], mode => 'async')")
	require.Equal(t, "D", tg())
	f.exec(t, "SELECT annals.set_projection_enabled('b', true)")
	require.Equal(t, "O", tg())
	f.exec(t, "SELECT annals.drop_projection('b')")
	require.Equal(t, "D", tg())
	f.exec(t, "SELECT annals.drop_projection('a'); SELECT annals.drop_projection('c')")
	require.Equal(t, "D", tg())
	// Dropping an async projection drops its subscription (checkpoint, dead letters) too.
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.subscriptions"))
}

// The dispatch is generated with the upcasters built in; registering an alias or an upcaster
// after the projection regenerates it, so inline handlers see what every other read sees.
func TestInlineDispatchFollowsUpcastersRegisteredLater(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `
		CREATE SCHEMA s;
		CREATE TABLE s.seen (event_type text, schema_version integer, data jsonb);
		CREATE FUNCTION s.see(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			INSERT INTO s.seen SELECT e.event_type, e.schema_version, e.data FROM pg_catalog.unnest(events) AS e
		$fn$;
		CREATE FUNCTION s.moved_v1_to_v2(data jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE RETURN data || '{"v": 2}';
		ALTER FUNCTION s.moved_v1_to_v2(jsonb) OWNER TO annals_owner;`)
	f.grantOwner(t, "s")
	f.register(t, projection{name: "moves", handler: "s.see(annals.event[])", tables: []string{"s.seen"},
		eventTypes: []string{"ItemMoved"}})
	seen := func() []string {
		return dump(t, f, "SELECT event_type, schema_version, data::text FROM s.seen ORDER BY data ->> 'n'")
	}

	f.append(t, "item-1", ev("ItemShifted", map[string]any{"n": 1}))
	require.Empty(t, seen(), "ItemShifted is not a type the projection asked for")

	require.True(t, scalar[bool](t, f, "SELECT annals.register_event_alias('ItemShifted', 'ItemMoved')"))
	f.append(t, "item-1", ev("ItemShifted", map[string]any{"n": 2}))
	require.True(t, scalar[bool](t, f, "SELECT annals.register_upcaster('ItemMoved', 1, 's.moved_v1_to_v2(jsonb)')"))
	f.append(t, "item-1", ev("ItemShifted", map[string]any{"n": 3}))
	require.Equal(t, []string{
		`ItemMoved 1 {"n": 2}`,
		`ItemMoved 2 {"n": 3, "v": 2}`,
	}, seen())
}

// Two transactions registering inline projections at once: the second regenerates the dispatch
// after the first commits and includes both, instead of failing or dropping the first.
func TestConcurrentRegistrationsKeepEveryProjection(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.createCallLog(t)
	f.exec(t, `
		CREATE TABLE s.a_owned (x integer); CREATE TABLE s.b_owned (x integer);
		GRANT SELECT, INSERT, UPDATE, DELETE ON s.a_owned, s.b_owned TO annals_owner;
		CREATE FUNCTION s.a_handler(events annals.event[]) RETURNS void LANGUAGE sql AS
			$fn$ INSERT INTO s.calls (projection, n, types, categories, positions) VALUES ('a', 1, '{}', '{}', '{}') $fn$;
		CREATE FUNCTION s.b_handler(events annals.event[]) RETURNS void LANGUAGE sql AS
			$fn$ INSERT INTO s.calls (projection, n, types, categories, positions) VALUES ('b', 1, '{}', '{}', '{}') $fn$;`)

	txA, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = txA.Rollback(context.Background()) }()
	_, err = txA.Exec(f.ctx, "SELECT annals.register_projection('a', 's.a_handler(annals.event[])', ARRAY['s.a_owned']::regclass[])")
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := f.pool.Exec(f.ctx, "SELECT annals.register_projection('b', 's.b_handler(annals.event[])', ARRAY['s.b_owned']::regclass[])")
		done <- err
	}()
	eventually(t, 10*time.Second, "b's registration to wait for a's", func() bool {
		return waitingOnLock(t, f, "register_projection('b'") == 1
	})
	require.NoError(t, txA.Commit(f.ctx))
	require.NoError(t, <-done)

	f.append(t, "acct-1", ev("X", nil))
	var got []string
	for _, c := range f.calls(t) {
		got = append(got, c.Projection)
	}
	require.Equal(t, []string{"a", "b"}, got)
}

// An upgrade re-applies the functions, dispatch_inline among them: the registered inline
// projections must still be called afterwards.
func TestReappliedFunctionsKeepTheGeneratedDispatch(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.createCallLog(t)
	f.logProjection(t, "kept", nil, nil)
	f.exec(t, "UPDATE annals_internal.schema_info SET functions_checksum = 'from an older build'")
	res, err := annals.Migrate(f.ctx, f.pool)
	require.NoError(t, err)
	require.True(t, res.FunctionsApplied, "the functions were re-applied")

	f.append(t, "acct-1", ev("X", nil))
	calls := f.calls(t)
	require.Len(t, calls, 1)
	require.Equal(t, "kept", calls[0].Projection)
}

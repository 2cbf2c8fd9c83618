package projections_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/annals-db/annals/internal/pgutil"
)

// Handlers run as annals_owner, so whatever they write runs its triggers as annals_owner. A
// writer that owns a projection's table could add a trigger that grants itself the event store;
// the table, its schema, its partitions and its trigger functions must all be owned by members
// of annals_owner, checked when the projection is registered.
func TestRegisterProjectionRefusesTablesOthersCouldRigWithTriggers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	writer := loginRole(t, f, "annals_writer")
	who := writer.Config().ConnConfig.User
	f.exec(t, `
		CREATE SCHEMA app;
		CREATE TABLE app.t (n bigint);
		CREATE SCHEMA p;
		CREATE FUNCTION p.copy(events annals.event[]) RETURNS void LANGUAGE sql AS
			'INSERT INTO app.t (n) SELECT e.stream_version FROM pg_catalog.unnest(events) AS e';`)
	f.grantOwner(t, "app")
	f.grantOwner(t, "p")
	reg := projection{name: "copy", handler: "p.copy(annals.event[])", tables: []string{"app.t"}}

	// The attack the check closes: the writer owns the table and adds a trigger to it.
	f.exec(t, "ALTER TABLE app.t OWNER TO "+who)
	requireInvalid(t, f.tryRegister(reg), "app.t is owned by "+who, "ALTER TABLE app.t OWNER TO annals_owner")

	// Owned by a member, but in a schema the writer owns: it could drop and replace the table.
	f.exec(t, "ALTER TABLE app.t OWNER TO annals_owner; ALTER SCHEMA app OWNER TO "+who)
	requireInvalid(t, f.tryRegister(reg), "the schema of app.t, app, is owned by "+who, "ALTER SCHEMA app OWNER TO annals_owner")
	f.exec(t, "ALTER SCHEMA app OWNER TO annals_owner")

	// A partition owned by the writer fires its own triggers.
	f.exec(t, `CREATE TABLE app.parted (n bigint) PARTITION BY RANGE (n);
		CREATE TABLE app.parted_all PARTITION OF app.parted FOR VALUES FROM (MINVALUE) TO (MAXVALUE);
		GRANT SELECT, INSERT, UPDATE, DELETE ON app.parted TO annals_owner;
		ALTER TABLE app.parted_all OWNER TO `+who)
	requireInvalid(t, f.tryRegister(projection{name: "parted", handler: "p.copy(annals.event[])", tables: []string{"app.parted"}}),
		"app.parted_all is owned by "+who)
	f.exec(t, "DROP TABLE app.parted") // the role is dropped when the test ends

	// A trigger on a trusted table whose function the writer owns: the writer redefines it.
	f.exec(t, `CREATE FUNCTION app.note() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
		CREATE TRIGGER note BEFORE INSERT ON app.t FOR EACH ROW EXECUTE FUNCTION app.note();
		ALTER FUNCTION app.note() OWNER TO `+who)
	requireInvalid(t, f.tryRegister(reg), "trigger note on app.t calls app.note(), owned by "+who)
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals.projections"), "nothing registered")

	f.exec(t, "ALTER FUNCTION app.note() OWNER TO annals_owner")
	f.register(t, reg)
	// And once registered, the writer cannot add a trigger to a table it does not own.
	_, err := writer.Exec(f.ctx, "CREATE TRIGGER evil BEFORE INSERT ON app.t FOR EACH ROW EXECUTE FUNCTION app.note()")
	require.Equal(t, "42501", pgCode(t, err).Code)
}

// A handler is called through a pin bound to its OID: while the projection is registered the
// handler cannot be dropped, and a function created later under its name is never called.
func TestProjectionHandlerIsPinnedByOID(t *testing.T) {
	t.Parallel()
	f := setup(t)
	createCounts(t, f, nil)
	f.append(t, "acct-1", ev("Ticked", nil))

	_, err := f.pool.Exec(f.ctx, "DROP FUNCTION s.count_events(annals.event[])")
	require.Equal(t, "2BP01", pgCode(t, err).Code, "a registered handler cannot be dropped")

	// Renamed away and replaced under the old name: appends still call the original.
	f.exec(t, `ALTER FUNCTION s.count_events(annals.event[]) RENAME TO count_events_v1;
		CREATE FUNCTION s.count_events(events annals.event[]) RETURNS void LANGUAGE plpgsql AS
			$fn$BEGIN RAISE EXCEPTION 'the impostor ran'; END$fn$;
		GRANT EXECUTE ON FUNCTION s.count_events(annals.event[]) TO annals_owner;`)
	f.append(t, "acct-1", ev("Ticked", nil))
	require.EqualValues(t, 2, scalar[int64](t, f, "SELECT c.events FROM s.counts AS c WHERE c.stream_id = 'acct-1'"))
	_, err = f.store.RebuildProjection(f.ctx, "counts", nil, 0)
	require.NoError(t, err, "rebuilds call the original too")

	// Dropped with CASCADE (which takes the pin along): appends fail, the impostor never runs.
	f.exec(t, "DROP FUNCTION s.count_events_v1(annals.event[]) CASCADE")
	err = f.appendErr(t, "acct-1")
	require.Equal(t, "42883", pgCode(t, err).Code)
	require.NotContains(t, err.Error(), "impostor")

	// Unregistered, the handler is the user's again.
	f.exec(t, "SELECT annals.drop_projection('counts')")
	f.exec(t, "DROP FUNCTION s.count_events(annals.event[])")
}

// An upcaster runs on every read as annals_owner; it is pinned the same way.
func TestUpcasterIsPinnedByOID(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `CREATE SCHEMA up;
		CREATE FUNCTION up.v1_to_v2(data jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE RETURN data || '{"v": 2}';`)
	f.grantOwner(t, "up")
	f.exec(t, "SELECT annals.register_upcaster('Ticked', 1, 'up.v1_to_v2(jsonb)')")
	f.append(t, "acct-1", ev("Ticked", nil))
	read := "SELECT e.data ->> 'v' FROM annals.read_stream('acct-1') AS e"
	require.Equal(t, "2", scalar[string](t, f, read))

	_, err := f.pool.Exec(f.ctx, "DROP FUNCTION up.v1_to_v2(jsonb)")
	require.Equal(t, "2BP01", pgCode(t, err).Code, "a registered upcaster cannot be dropped")
	f.exec(t, `ALTER FUNCTION up.v1_to_v2(jsonb) RENAME TO original;
		CREATE FUNCTION up.v1_to_v2(data jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE RETURN data || '{"v": "impostor"}';`)
	require.Equal(t, "2", scalar[string](t, f, read), "reads call the original")
}

// refusingCounts replaces s.count_events (createCounts, slowCounts) with a handler that counts
// the same way but raises when an event's data has the key refused.
func refusingCounts(t testing.TB, f fixture, refused string) {
	t.Helper()
	f.exec(t, `CREATE OR REPLACE FUNCTION s.count_events(events annals.event[]) RETURNS void LANGUAGE plpgsql AS $fn$
		BEGIN
			IF EXISTS (SELECT FROM pg_catalog.unnest(events) AS e WHERE e.data ? `+pgutil.QuoteLiteral(refused)+`) THEN
				RAISE EXCEPTION 'cannot count an event with %', `+pgutil.QuoteLiteral(refused)+`;
			END IF;
			INSERT INTO s.counts AS c (stream_id, events, last_version)
			SELECT e.stream_id, pg_catalog.count(*), pg_catalog.max(e.stream_version) FROM pg_catalog.unnest(events) AS e GROUP BY 1
			ON CONFLICT (stream_id) DO UPDATE SET events = c.events + excluded.events, last_version = excluded.last_version;
		END $fn$`)
}

// appendErr appends one event and returns the error.
func (f fixture) appendErr(t testing.TB, stream string) error {
	t.Helper()
	_, err := f.pool.Exec(f.ctx, `SELECT FROM annals.append_events($1, NULL, '[{"type": "Ticked"}]')`, stream)
	return err
}

// '$' subscription names are Annals': an async projection's checkpoint and dead letters live
// under '$projection:<name>'. A writer can neither replay it (doubling its counts), drop it
// (stopping it while the status says active) nor create such a name.
func TestWritersCannotTouchReservedSubscriptions(t *testing.T) {
	t.Parallel()
	f := setup(t)
	slowCounts(t, f, "async", 0)
	refusingCounts(t, f, "poison")
	f.append(t, "acct-1", evs("Ticked", 3)...)
	f.append(t, "acct-2", ev("Ticked", map[string]any{"poison": true}))
	drainAsync(t, f)
	deadLetter := scalar[int64](t, f, "SELECT d.dead_letter_id FROM annals.dead_letters AS d WHERE d.subscription_name = '$projection:counts'")
	writer := loginRole(t, f, "annals_writer")

	for _, call := range []string{
		"SELECT annals.reset_subscription('$projection:counts', '0', 0)",
		"SELECT annals.drop_subscription('$projection:counts')",
		"SELECT annals.create_subscription('$projection:x')",
		"SELECT annals.create_subscription('$mine')",
		"SELECT * FROM annals.read_subscription('$projection:counts', 0)",
		"SELECT annals.subscription_checkpoint('$projection:counts', 0)",
		"SELECT annals.ack_subscription('$projection:counts', 0, '0', 0, '0', 0)",
		"SELECT annals.acquire_lease('$projection:counts', 0, 'me')",
		"SELECT annals.release_lease('$projection:counts', 0, 'me')",
		"SELECT annals.retry_dead_letters('$projection:counts')",
		"SELECT * FROM annals.read_dead_letters('$projection:counts')",
		"SELECT annals.park_event('$projection:counts', 0, 'acct-1', 1, 1, 'x')",
		fmt.Sprintf("SELECT annals.resolve_dead_letter(%d, true)", deadLetter),
	} {
		for _, pool := range []*pgxpool.Pool{writer, f.pool} {
			_, err := pool.Exec(context.Background(), call)
			pgErr := pgCode(t, err)
			require.Equal(t, "ST403", pgErr.Code, "%s: %s", call, pgErr.Message)
			require.Contains(t, pgErr.Message, "is reserved")
		}
	}
	require.EqualValues(t, 3, scalar[int64](t, f, "SELECT c.events FROM s.counts AS c WHERE c.stream_id = 'acct-1'"))
	require.Equal(t, "failing", scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = 'counts'"))
	require.EqualValues(t, 1, scalar[int64](t, f, "SELECT count(*) FROM annals.subscription_status AS s WHERE s.subscription_name = '$projection:counts'"))
	require.Equal(t, "parked", scalar[string](t, f, "SELECT d.status FROM annals.dead_letters AS d WHERE d.subscription_name = '$projection:counts'"))
}

func projectionState(t testing.TB, f fixture, name string) string {
	t.Helper()
	return scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = $1", name)
}

// A projection registered over history it has not applied says so until it is rebuilt.
func TestProjectionRegisteredOverHistoryIsIncomplete(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.append(t, "acct-1", evs("Ticked", 2)...)
	createCounts(t, f, []string{"acct"})
	require.Equal(t, "incomplete", projectionState(t, f, "counts"))
	f.append(t, "acct-1", ev("Ticked", nil))
	require.Equal(t, "incomplete", projectionState(t, f, "counts"), "new events do not fill the gap")
	_, err := f.store.RebuildProjection(f.ctx, "counts", nil, 0)
	require.NoError(t, err)
	require.Equal(t, "active", projectionState(t, f, "counts"))
	require.EqualValues(t, 3, scalar[int64](t, f, "SELECT c.events FROM s.counts AS c WHERE c.stream_id = 'acct-1'"))

	// Widening its filters leaves the tables without the newly matching history.
	f.append(t, "other-1", ev("Ticked", nil))
	f.register(t, projection{name: "counts", handler: "s.count_events(annals.event[])", tables: []string{"s.counts"}})
	require.Equal(t, "incomplete", projectionState(t, f, "counts"))
	_, err = f.store.RebuildProjection(f.ctx, "counts", nil, 0)
	require.NoError(t, err)
	require.Equal(t, "active", projectionState(t, f, "counts"))

	// Registering again unchanged keeps it complete; a projection with no matching history is.
	f.register(t, projection{name: "counts", handler: "s.count_events(annals.event[])", tables: []string{"s.counts"}})
	require.Equal(t, "active", projectionState(t, f, "counts"))
	f.exec(t, "CREATE TABLE s.none (LIKE s.counts INCLUDING ALL); GRANT SELECT, INSERT, UPDATE, DELETE ON s.none TO annals_owner")
	f.register(t, projection{name: "none", handler: "s.count_events(annals.event[])", tables: []string{"s.none"}, eventTypes: []string{"Never"}})
	require.Equal(t, "active", projectionState(t, f, "none"))

	// Disabled and enabled again: incomplete only when matching events were appended meanwhile.
	f.exec(t, "SELECT annals.set_projection_enabled('counts', false)")
	f.exec(t, "SELECT annals.set_projection_enabled('counts', true)")
	require.Equal(t, "active", projectionState(t, f, "counts"))
	f.exec(t, "SELECT annals.set_projection_enabled('counts', false)")
	f.append(t, "acct-2", ev("Ticked", nil))
	f.exec(t, "SELECT annals.set_projection_enabled('counts', true)")
	require.Equal(t, "incomplete", projectionState(t, f, "counts"))
	_, err = f.store.RebuildProjection(f.ctx, "counts", nil, 0)
	require.NoError(t, err)
	require.Equal(t, "active", projectionState(t, f, "counts"))

	// An async projection starts at the beginning of the feed: it lags, it does not miss anything.
	f.exec(t, "CREATE TABLE s.later (LIKE s.counts INCLUDING ALL); GRANT SELECT, INSERT, UPDATE, DELETE ON s.later TO annals_owner")
	f.register(t, projection{name: "later", handler: "s.count_events(annals.event[])", tables: []string{"s.later"}, mode: "async"})
	require.Equal(t, "active", projectionState(t, f, "later"))
}

// A rebuild that fails on the first event of old history rolls back everything it did; the
// projection must still say that its tables are not what a replay gives.
func TestRebuildFailingOnTheFirstEventLeavesTheProjectionStale(t *testing.T) {
	t.Parallel()
	f := setup(t)
	createCounts(t, f, nil)
	f.append(t, "acct-1", ev("Ticked", map[string]any{"old": true}))
	f.append(t, "acct-1", evs("Ticked", 2)...)
	require.Equal(t, "active", projectionState(t, f, "counts"))

	// The new handler rejects the old shape.
	refusingCounts(t, f, "old")
	_, err := f.store.RebuildProjection(f.ctx, "counts", nil, 0)
	require.Equal(t, "P0001", pgCode(t, err).Code)
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.projection_skips"), "no append skipped it")
	require.Equal(t, "stale", projectionState(t, f, "counts"))

	// Inside a transaction that rolls back, too.
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(f.ctx, "SELECT annals.rebuild_projection('counts')")
	require.Error(t, err)
	require.NoError(t, tx.Rollback(f.ctx))
	require.Equal(t, "stale", projectionState(t, f, "counts"))

	refusingCounts(t, f, "none of the events has this key")
	_, err = f.store.RebuildProjection(f.ctx, "counts", nil, 0)
	require.NoError(t, err)
	require.Equal(t, "active", projectionState(t, f, "counts"))

	// Dropped and registered again under the same name, it starts clean.
	f.exec(t, "SELECT annals.drop_projection('counts')")
	f.register(t, projection{name: "counts", handler: "s.count_events(annals.event[])", tables: []string{"s.counts"}, mode: "async"})
	require.Equal(t, "active", projectionState(t, f, "counts"))
}

// A refresh runs a materialized view's query as its owner, annals_owner: whoever owns a function
// or view it uses could make the next refresh run anything with annals_owner's rights.
func TestRegisterViewRefusesViewsUsingUntrustedObjects(t *testing.T) {
	t.Parallel()
	f := setup(t)
	writer := loginRole(t, f, "annals_writer")
	who := writer.Config().ConnConfig.User
	f.exec(t, `
		CREATE SCHEMA v;
		GRANT USAGE ON SCHEMA v TO annals_owner;
		CREATE FUNCTION v.keep(category text) RETURNS boolean LANGUAGE sql STABLE RETURN category IS NOT NULL;
		CREATE VIEW v.inner_events AS SELECT e.category FROM annals_internal.events AS e WHERE v.keep(e.category);
		CREATE MATERIALIZED VIEW v.per_category AS
		SELECT i.category, count(*) AS events FROM v.inner_events AS i GROUP BY i.category WITH NO DATA;
		CREATE UNIQUE INDEX per_category_key ON v.per_category (category);
		ALTER MATERIALIZED VIEW v.per_category OWNER TO annals_owner;
		GRANT SELECT ON v.inner_events TO annals_owner;`)
	register := "SELECT annals.register_view('v.per_category')"

	f.exec(t, "ALTER FUNCTION v.keep(text) OWNER TO "+who)
	_, err := f.pool.Exec(f.ctx, register)
	requireInvalid(t, err, "v.per_category calls v.keep(text), owned by "+who, "ALTER FUNCTION v.keep(text) OWNER TO annals_owner")
	f.exec(t, "ALTER FUNCTION v.keep(text) OWNER TO annals_owner; ALTER VIEW v.inner_events OWNER TO "+who)
	_, err = f.pool.Exec(f.ctx, register)
	requireInvalid(t, err, "v.per_category reads v.inner_events, owned by "+who)
	f.exec(t, "ALTER VIEW v.inner_events OWNER TO annals_owner")
	require.True(t, scalar[bool](t, f, register))

	// Ownership handed away later: annals doctor's check finds it.
	f.exec(t, "ALTER FUNCTION v.keep(text) OWNER TO "+who)
	require.Equal(t, "materialized view v.per_category", scalar[string](t, f, "SELECT t.subject FROM annals_internal.trust_problems() AS t"))
	f.exec(t, "ALTER FUNCTION v.keep(text) OWNER TO annals_owner")
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.trust_problems()"))
}

// A failing rebuild names the projection and the event its handler failed on, with the
// handler's own SQLSTATE and message, and leaves nothing behind from finding that event.
func TestFailingRebuildNamesTheProjectionAndTheEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	createCounts(t, f, nil)
	f.append(t, "acct-1", evs("Ticked", 3)...)
	f.append(t, "acct-2", ev("Ticked", map[string]any{"old": true}))
	f.append(t, "acct-3", evs("Ticked", 2)...)
	before := dump(t, f, "SELECT c.stream_id, c.events FROM s.counts AS c ORDER BY 1")
	refusingCounts(t, f, "old")

	_, err := f.pool.Exec(f.ctx, "SELECT annals.rebuild_projection('counts', 2)")
	pgErr := pgCode(t, err)
	require.Equal(t, "P0001", pgErr.Code, "the handler's SQLSTATE")
	require.Regexp(t, `^rebuild of projection 'counts' failed at acct-2@1 \(Ticked, position \d+\): cannot count an event with old$`, pgErr.Message)
	require.Contains(t, pgErr.Hint, "then rebuild again")
	require.Equal(t, before, dump(t, f, "SELECT c.stream_id, c.events FROM s.counts AS c ORDER BY 1"), "the old rows stay")
	require.Equal(t, "stale", projectionState(t, f, "counts"))
}

// Event types starting with $ are Annals': no event carries one, so an alias or upcaster for one
// is refused as reserved, like the type itself.
func TestAliasesAndUpcastersRefuseReservedTypes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `CREATE SCHEMA up;
		CREATE FUNCTION up.v1_to_v2(data jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE RETURN data;`)
	f.grantOwner(t, "up")
	for _, call := range []string{
		"SELECT annals.register_event_alias('$old', 'New')",
		"SELECT annals.register_event_alias('Old', '$new')",
		"SELECT annals.register_upcaster('$thing', 1, 'up.v1_to_v2(jsonb)')",
	} {
		_, err := f.pool.Exec(f.ctx, call)
		pgErr := pgCode(t, err)
		require.Equal(t, "ST403", pgErr.Code, call)
		require.Contains(t, pgErr.Message, "is reserved", call)
	}
}

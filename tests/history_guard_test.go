package tests

import (
	"context"
	"fmt"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// guardAttacks are DDL a member of annals_owner could use to change history if the append-only
// triggers were the only defence: each disables, drops, replaces or sidesteps a guard, or rewrites
// a history table. member is replaced by the attacking login's name. Every one is a statement
// list run in one transaction; the statement that changes history is left out where the DDL
// itself is refused (the tests check the data did not change either way).
var guardAttacks = []struct {
	name  string
	stmts []string
}{
	{"disable the events trigger", []string{
		"ALTER TABLE annals_internal.events DISABLE TRIGGER events_append_only",
		"UPDATE annals_internal.events SET data = '{\"rewritten\": true}'"}},
	{"disable a partition's trigger", []string{
		"ALTER TABLE annals_internal.events_p3 DISABLE TRIGGER events_delete_check",
		"DELETE FROM annals_internal.events_p3"}},
	{"disable a partition's update trigger", []string{
		"ALTER TABLE annals_internal.events_p3 DISABLE TRIGGER events_append_only",
		"UPDATE annals_internal.events_p3 SET data = '{}'"}},
	{"disable every trigger on events", []string{"ALTER TABLE annals_internal.events DISABLE TRIGGER ALL"}},
	{"disable user triggers on a partition", []string{"ALTER TABLE annals_internal.events_p0 DISABLE TRIGGER USER"}},
	{"make a trigger fire only on replicas", []string{"ALTER TABLE annals_internal.events_p5 ENABLE REPLICA TRIGGER events_append_only"}},
	{"disable the truncate trigger of a partition", []string{
		"ALTER TABLE annals_internal.events_p1 DISABLE TRIGGER events_no_truncate",
		"TRUNCATE annals_internal.events_p1"}},
	{"disable the streams trigger", []string{
		"ALTER TABLE annals_internal.streams DISABLE TRIGGER streams_no_delete",
		"DELETE FROM annals_internal.streams"}},
	{"disable the lifecycle log trigger", []string{
		"ALTER TABLE annals_internal.lifecycle_log DISABLE TRIGGER lifecycle_log_append_only",
		"DELETE FROM annals_internal.lifecycle_log"}},
	{"drop the events trigger", []string{"DROP TRIGGER events_append_only ON annals_internal.events"}},
	{"drop a partition's truncate trigger", []string{"DROP TRIGGER events_no_truncate ON annals_internal.events_p2"}},
	{"drop the lifecycle log trigger", []string{"DROP TRIGGER lifecycle_log_append_only ON annals_internal.lifecycle_log"}},
	{"drop the streams trigger", []string{"DROP TRIGGER streams_no_delete ON annals_internal.streams"}},
	{"rename the events trigger", []string{"ALTER TRIGGER events_append_only ON annals_internal.events RENAME TO events_was_append_only"}},
	{"replace the trigger with one that allows", []string{`CREATE OR REPLACE TRIGGER events_append_only
		BEFORE UPDATE OR DELETE ON annals_internal.events FOR EACH ROW EXECUTE FUNCTION annals_internal.notify_append()`}},
	{"add a trigger that rewrites appends", []string{`CREATE TRIGGER a_forge BEFORE INSERT ON annals_internal.events
		FOR EACH ROW EXECUTE FUNCTION annals_internal.reject_history_change()`}},
	{"replace the guard function", []string{
		`CREATE OR REPLACE FUNCTION annals_internal.reject_history_change() RETURNS trigger LANGUAGE plpgsql
		 SET search_path = pg_catalog, pg_temp AS $$ BEGIN RETURN coalesce(NEW, OLD); END $$`,
		"UPDATE annals_internal.events SET data = '{\"rewritten\": true}'"}},
	{"reconfigure the guard function", []string{"ALTER FUNCTION annals_internal.reject_history_change() SET search_path = public"}},
	{"give the guard function away", []string{"ALTER FUNCTION annals_internal.reject_history_change() OWNER TO member"}},
	{"drop the guard function", []string{"DROP FUNCTION annals_internal.reject_history_change() CASCADE"}},
	{"detach a partition", []string{
		"ALTER TABLE annals_internal.events DETACH PARTITION annals_internal.events_p4",
		"ALTER TABLE annals_internal.events_p4 DISABLE TRIGGER events_no_truncate"}},
	// The functions taking the events row type (functions/004_as_event.sql and the reads built on
	// it) make PostgreSQL refuse any column type change of events, superusers included; an owner
	// can drop them first.
	{"rewrite events with ALTER COLUMN TYPE USING", []string{
		"DROP FUNCTION annals_internal.as_event(annals_internal.events) CASCADE",
		`ALTER TABLE annals_internal.events ALTER COLUMN data TYPE jsonb USING '{"rewritten": true}'::jsonb`}},
	{"rewrite streams with ALTER COLUMN TYPE USING", []string{
		`ALTER TABLE annals_internal.streams ALTER COLUMN stream_version TYPE bigint USING 1`}},
	{"rewrite the lifecycle log with ALTER COLUMN TYPE USING", []string{
		`ALTER TABLE annals_internal.lifecycle_log ALTER COLUMN reason TYPE text USING 'rewritten'`}},
	{"rewrite a partition as unlogged", []string{"ALTER TABLE annals_internal.events_p6 SET UNLOGGED"}},
	{"add a column", []string{"ALTER TABLE annals_internal.events ADD COLUMN forged boolean"}},
	{"drop a unique key", []string{"ALTER TABLE annals_internal.events DROP CONSTRAINT events_event_id_key"}},
	{"drop a check", []string{"ALTER TABLE annals_internal.streams DROP CONSTRAINT streams_version_chk"}},
	{"drop the events table", []string{"DROP TABLE annals_internal.events CASCADE"}},
	{"drop a partition", []string{"DROP TABLE annals_internal.events_p5"}},
	{"drop the streams table", []string{"DROP TABLE annals_internal.streams CASCADE"}},
	{"drop the lifecycle log", []string{"DROP TABLE annals_internal.lifecycle_log"}},
	{"rename the events table", []string{"ALTER TABLE annals_internal.events RENAME TO events_old"}},
	{"rename a partition", []string{"ALTER TABLE annals_internal.events_p3 RENAME TO events_p3_old"}},
	{"rename the lifecycle log", []string{"ALTER TABLE annals_internal.lifecycle_log RENAME TO lifecycle_log_old"}},
	{"move the streams table", []string{"ALTER TABLE annals_internal.streams SET SCHEMA annals"}},
	{"move the lifecycle log to a new schema", []string{"CREATE SCHEMA elsewhere", "ALTER TABLE annals_internal.lifecycle_log SET SCHEMA elsewhere"}},
	{"rename the schema", []string{"ALTER SCHEMA annals_internal RENAME TO annals_internal_old"}},
	{"drop the schema", []string{"DROP SCHEMA annals_internal CASCADE"}},
	{"drop everything the owner owns", []string{"DROP OWNED BY annals_owner"}},
	{"take the events table", []string{"ALTER TABLE annals_internal.events OWNER TO member"}},
	{"hide appends with a rule", []string{"CREATE RULE forget AS ON INSERT TO annals_internal.events DO INSTEAD NOTHING"}},
	{"hide history with row-level security", []string{
		"CREATE POLICY hide ON annals_internal.events USING (false)",
		"ALTER TABLE annals_internal.events FORCE ROW LEVEL SECURITY"}},
	{"as annals_owner", []string{
		"SET LOCAL ROLE annals_owner",
		"ALTER TABLE annals_internal.events DISABLE TRIGGER events_append_only"}},
	{"from a DO block", []string{`DO $$ BEGIN
		EXECUTE 'ALTER TABLE annals_internal.events_p1 DISABLE TRIGGER events_delete_check';
		DELETE FROM annals_internal.events_p1;
	END $$`}},
	{"from a SECURITY DEFINER function", []string{
		`CREATE FUNCTION annals_internal.sneak() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
		 SET search_path = pg_catalog, pg_temp AS $$ BEGIN
			ALTER TABLE annals_internal.lifecycle_log DISABLE TRIGGER lifecycle_log_append_only;
			DELETE FROM annals_internal.lifecycle_log;
		 END $$`,
		"ALTER FUNCTION annals_internal.sneak() OWNER TO annals_owner",
		"SELECT annals_internal.sneak()"}},
}

// historyDigest is everything the guard protects, in one comparable value: the guarded state as
// annals_guard sees it and the rows of events, streams and the lifecycle log.
func historyDigest(t *testing.T, f fixture) []string {
	t.Helper()
	var state []string
	var events, streams, log string
	require.NoError(t, f.pool.QueryRow(f.ctx, `
		SELECT annals_guard.history_state(),
		       (SELECT coalesce(md5(string_agg(e::text, ',' ORDER BY e.global_position)), '') FROM annals_internal.events AS e),
		       (SELECT coalesce(md5(string_agg(s::text, ',' ORDER BY s.stream_id)), '') FROM annals_internal.streams AS s),
		       (SELECT coalesce(md5(string_agg(l::text, ',' ORDER BY l.log_id)), '') FROM annals_internal.lifecycle_log AS l)`).
		Scan(&state, &events, &streams, &log))
	return append(state, "events "+events, "streams "+streams, "lifecycle_log "+log)
}

// seedHistory appends to a few streams (so every partition holds events) and closes one, so the
// lifecycle log has a row.
func seedHistory(t *testing.T, f fixture) {
	t.Helper()
	for i := range 16 {
		_, err := f.store.Append(f.ctx, fmt.Sprintf("guarded-%d", i), annals.NoStream, events(t, "Recorded", 2)...)
		require.NoError(t, err)
	}
	_, err := f.store.DeleteStream(f.ctx, "guarded-0", annals.Any, "seeded")
	require.NoError(t, err)
}

// inTx runs statements in one transaction on pool and rolls it back; it returns the first error.
func inTx(ctx context.Context, pool *pgxpool.Pool, stmts []string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func withMember(stmts []string, member string) []string {
	out := make([]string, len(stmts))
	for i, s := range stmts {
		out[i] = replaceWord(s, "member", pgx.Identifier{member}.Sanitize())
	}
	return out
}

// replaceWord replaces whole-word occurrences of from (ASCII identifier characters around it).
func replaceWord(s, from, to string) string {
	isIdent := func(b byte) bool {
		return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
	}
	out := []byte{}
	for i := 0; i < len(s); {
		if i+len(from) <= len(s) && s[i:i+len(from)] == from &&
			(i == 0 || !isIdent(s[i-1])) && (i+len(from) == len(s) || !isIdent(s[i+len(from)])) {
			out = append(out, to...)
			i += len(from)
			continue
		}
		out = append(out, s[i])
		i++
	}
	return string(out)
}

// installerMember is a login that is a member of annals_owner with CREATE on the database, as a
// non-superuser installer has it (the README asks for that), and a pool connected as it.
func installerMember(t *testing.T, f fixture) (string, *pgxpool.Pool) {
	t.Helper()
	member := loginRole(t, f, "annals_owner")
	var db string
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT current_database()").Scan(&db))
	_, err := f.pool.Exec(f.ctx, "GRANT CREATE ON DATABASE "+pgx.Identifier{db}.Sanitize()+" TO "+member)
	require.NoError(t, err)
	pool, _ := f.as(t, member)
	return member, pool
}

// A member of annals_owner who is no superuser cannot disable, drop, replace or sidestep the
// append-only guards, nor rewrite a history table; a superuser can do all of it.
func TestHistoryGuardRefusesOwnerMembers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seedHistory(t, f)
	member, memberPool := installerMember(t, f)
	before := historyDigest(t, f)

	for _, a := range guardAttacks {
		stmts := withMember(a.stmts, member)
		err := inTx(f.ctx, memberPool, stmts)
		pgErr := requirePgError(t, err, "ST401")
		require.Contains(t, pgErr.Message, "refused", a.name)
		require.Contains(t, pgErr.Message, "only a superuser may", a.name)
		require.Contains(t, pgErr.Hint, "superuser", a.name)
		d := detailOf(t, pgErr)
		require.NotEmpty(t, d["operation"], "%s: %s", a.name, pgErr.Detail)
		require.NotEmpty(t, d["objects"], "%s: %s", a.name, pgErr.Detail)
		require.Equal(t, before, historyDigest(t, f), "%s changed nothing", a.name)
	}

	// Committed, too: the refusal is not a matter of rolling back.
	_, err := memberPool.Exec(f.ctx, "ALTER TABLE annals_internal.events_p2 DISABLE TRIGGER events_append_only")
	requirePgError(t, err, "ST401")
	// The triggers still stop the member's UPDATE and DELETE.
	_, err = memberPool.Exec(f.ctx, "UPDATE annals_internal.events SET data = '{}'")
	requirePgError(t, err, "ST405")
	_, err = memberPool.Exec(f.ctx, "DELETE FROM annals_internal.lifecycle_log")
	requirePgError(t, err, "ST405")
	require.Equal(t, before, historyDigest(t, f))

	// A superuser may run every one of them (rolled back here, which restores the guards).
	for _, a := range guardAttacks {
		stmts := withMember(a.stmts, member)
		require.NoError(t, inTx(f.ctx, f.pool, stmts), "as a superuser: %s", a.name)
	}
	require.Equal(t, before, historyDigest(t, f))

	// A superuser's committed change is pinned: members' DDL goes on working afterwards, and
	// the changed guard is now the superuser's to restore.
	_, err = f.pool.Exec(f.ctx, "ALTER TABLE annals_internal.events_p2 DISABLE TRIGGER events_append_only")
	require.NoError(t, err)
	_, err = memberPool.Exec(f.ctx, "CREATE TABLE annals_internal.scratch (n integer); DROP TABLE annals_internal.scratch")
	require.NoError(t, err, "unrelated DDL by a member after a superuser's change")
	_, err = memberPool.Exec(f.ctx, "ALTER TABLE annals_internal.events_p2 ENABLE TRIGGER events_append_only")
	requirePgError(t, err, "ST401")
	_, err = f.pool.Exec(f.ctx, "ALTER TABLE annals_internal.events_p2 ENABLE TRIGGER events_append_only")
	require.NoError(t, err)
	require.Equal(t, before, historyDigest(t, f))
	_, err = memberPool.Exec(f.ctx, "ALTER TABLE annals_internal.events_p2 DISABLE TRIGGER events_append_only")
	requirePgError(t, err, "ST401")

	// The error names what the command would have changed.
	_, err = memberPool.Exec(f.ctx, "DROP TABLE annals_internal.lifecycle_log")
	pgErr := requirePgError(t, err, "ST401")
	require.Contains(t, pgErr.Message, "DROP TABLE refused: it changes relation annals_internal.lifecycle_log (and ")
	_, err = memberPool.Exec(f.ctx, "ALTER TABLE annals_internal.events_p3 DISABLE TRIGGER events_append_only")
	pgErr = requirePgError(t, err, "ST401")
	require.Equal(t, "ALTER TABLE refused: it changes trigger events_append_only on annals_internal.events_p3, which guards Annals history; only a superuser may", pgErr.Message)
	require.JSONEq(t, `{"operation": "ALTER TABLE", "objects": ["trigger events_append_only on annals_internal.events_p3"], "changed": 1}`, pgErr.Detail)
	require.Nil(t, annals.Kind(err), "no Go kind: the CLI explains ST401 itself")
}

// What annals_owner does in the normal course of things still works for a member who is no
// superuser: projections switch and regenerate the inline dispatch, configure switches NOTIFY,
// owner functions create objects in annals_internal, and a nothing-to-do rebase passes.
func TestHistoryGuardLetsOwnersWork(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seedHistory(t, f)
	_, err := f.pool.Exec(f.ctx, `
		CREATE SCHEMA guardp;
		CREATE TABLE guardp.counts (event_type text PRIMARY KEY, n bigint NOT NULL);
		CREATE FUNCTION guardp.count(events annals.event[]) RETURNS void LANGUAGE sql
		SET search_path = pg_catalog, pg_temp AS $$
			INSERT INTO guardp.counts AS c (event_type, n)
			SELECT e.event_type, count(*) FROM unnest(events) AS e GROUP BY e.event_type
			ON CONFLICT (event_type) DO UPDATE SET n = c.n + excluded.n
		$$;
		ALTER FUNCTION guardp.count(annals.event[]) OWNER TO annals_owner;
		GRANT USAGE ON SCHEMA guardp TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON guardp.counts TO annals_owner`)
	require.NoError(t, err)
	member := loginRole(t, f, "annals_owner")
	pool, client := f.as(t, member)
	exec := func(sql string) {
		t.Helper()
		_, err := pool.Exec(f.ctx, sql)
		require.NoError(t, err, "as a member of annals_owner: %s", sql)
	}
	before := historyDigest(t, f)

	exec(`SELECT annals.register_projection('counts', 'guardp.count(annals.event[])', ARRAY['guardp.counts']::regclass[])`)
	exec(`SELECT annals.rebuild_projection('counts')`)
	_, err = client.Append(f.ctx, "guarded-99", annals.NoStream, ev(t, "Counted", nil))
	require.NoError(t, err)
	var n int64
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT n FROM guardp.counts WHERE event_type = 'Counted'").Scan(&n))
	require.EqualValues(t, 1, n, "the regenerated dispatch ran the handler")
	exec(`SELECT annals.set_projection_enabled('counts', false)`)
	exec(`SELECT annals.set_projection_enabled('counts', true)`)
	exec(`SELECT annals.drop_projection('counts')`)
	exec(`SELECT annals.configure(notify => false)`)
	exec(`SELECT annals.configure(notify => true)`)
	exec(`CREATE SEQUENCE annals_internal.guard_test_seq`)
	exec(`CREATE FUNCTION annals_internal.guard_test_fn() RETURNS integer LANGUAGE sql IMMUTABLE RETURN 1`)
	exec(`DROP FUNCTION annals_internal.guard_test_fn(); DROP SEQUENCE annals_internal.guard_test_seq`)
	exec(`CREATE INDEX guard_test_idx ON annals_internal.lifecycle_log (performed_at); DROP INDEX annals_internal.guard_test_idx`)
	// The function files' own statements, re-applied unchanged.
	exec(`CREATE OR REPLACE TRIGGER events_append_only BEFORE UPDATE ON annals_internal.events
		FOR EACH ROW EXECUTE FUNCTION annals_internal.reject_history_change()`)
	exec(`CREATE OR REPLACE TRIGGER events_delete_check AFTER DELETE ON annals_internal.events
		REFERENCING OLD TABLE AS deleted_events
		FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.check_history_delete()`)
	var rebased int64
	require.NoError(t, pool.QueryRow(f.ctx, "SELECT annals.rebase_transaction_ids()").Scan(&rebased))
	require.Zero(t, rebased)

	after := historyDigest(t, f)
	require.Equal(t, before[:len(before)-3], after[:len(after)-3], "the guarded state is as it was")
}

// `annals migrate` by a member who is no superuser, on a database a superuser installed: it
// re-applies the functions (they leave the guarded state as it was) and keeps the guard; it stops
// with ST401 when this build's guard is newer than the installed one, which only a superuser may
// replace. A non-superuser install has no guard until a superuser migrates.
func TestHistoryGuardMigrate(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seedHistory(t, f)
	_, memberPool := installerMember(t, f)
	before := historyDigest(t, f)

	forceFunctions := func() {
		_, err := f.pool.Exec(f.ctx, "UPDATE annals_internal.schema_info SET functions_checksum = 'stale'")
		require.NoError(t, err)
	}
	forceFunctions()
	res, err := annals.Migrate(f.ctx, memberPool)
	require.NoError(t, err, "a member's migrate over a guarded install")
	require.True(t, res.FunctionsApplied)
	require.True(t, res.HistoryGuard)
	require.Equal(t, before, historyDigest(t, f))

	// An older guard installed: the member may not replace it.
	_, err = f.pool.Exec(f.ctx, `COMMENT ON SCHEMA annals_guard IS 'Annals history guard, version 0'`)
	require.NoError(t, err)
	forceFunctions()
	_, err = annals.Migrate(f.ctx, memberPool)
	pgErr := requirePgError(t, err, "ST401")
	require.Contains(t, pgErr.Message, "only a superuser may replace it")
	require.Equal(t, "Run annals migrate as a superuser.", pgErr.Hint)
	res, err = annals.Migrate(f.ctx, f.pool)
	require.NoError(t, err)
	require.True(t, res.FunctionsApplied)
	require.True(t, res.HistoryGuard)
	var comment string
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT obj_description('annals_guard'::regnamespace, 'pg_namespace')").Scan(&comment))
	require.Contains(t, comment, "history guard, version 1")

	// Without the guard (a superuser dropped it), a member's migrate leaves it missing and says so;
	// a superuser's migrate brings it back although the functions match.
	_, err = f.pool.Exec(f.ctx, "DROP SCHEMA annals_guard CASCADE")
	require.NoError(t, err)
	res, err = annals.Migrate(f.ctx, memberPool)
	require.NoError(t, err)
	require.False(t, res.FunctionsApplied)
	require.False(t, res.HistoryGuard)
	_, err = memberPool.Exec(f.ctx, "ALTER TABLE annals_internal.events_p0 DISABLE TRIGGER events_append_only; "+
		"ALTER TABLE annals_internal.events_p0 ENABLE TRIGGER events_append_only")
	require.NoError(t, err, "without the guard a member can disable the triggers")
	res, err = annals.Migrate(f.ctx, f.pool)
	require.NoError(t, err)
	require.True(t, res.FunctionsApplied, "a superuser re-applies the functions to install the guard")
	require.True(t, res.HistoryGuard)
	_, err = memberPool.Exec(f.ctx, "ALTER TABLE annals_internal.events_p0 DISABLE TRIGGER events_append_only")
	requirePgError(t, err, "ST401")
	require.Equal(t, before, historyDigest(t, f))
}

// A non-superuser installer (CREATEROLE, CREATE on the database) gets no guard; a superuser's
// migrate afterwards installs it, and from then on the installer cannot disable the triggers.
func TestHistoryGuardAfterNonSuperuserInstall(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	admin, name := emptyDB(t)
	adminPool := connect(t, admin, name, "")
	installer := "annals_t_installer_" + pgutil.RandomHex(6)
	_, err := adminPool.Exec(ctx, "CREATE ROLE "+installer+" LOGIN CREATEROLE")
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = adminPool.Exec(ctx, "DROP OWNED BY "+installer)
		if _, err := adminPool.Exec(ctx, "DROP ROLE "+installer); err != nil {
			t.Errorf("drop role %s: %v", installer, err)
		}
	})
	_, err = adminPool.Exec(ctx, "GRANT CREATE ON DATABASE "+name+" TO "+installer)
	require.NoError(t, err)
	installerPool := connect(t, admin, name, installer)

	res, err := annals.Migrate(ctx, installerPool)
	require.NoError(t, err)
	require.False(t, res.HistoryGuard, "only a superuser installs the guard")
	var guard bool
	require.NoError(t, adminPool.QueryRow(ctx, "SELECT to_regnamespace('annals_guard') IS NOT NULL").Scan(&guard))
	require.False(t, guard)
	_, err = installerPool.Exec(ctx, "ALTER TABLE annals_internal.lifecycle_log DISABLE TRIGGER lifecycle_log_append_only; "+
		"ALTER TABLE annals_internal.lifecycle_log ENABLE TRIGGER lifecycle_log_append_only")
	require.NoError(t, err, "the documented gap: without the guard the installer can disable a trigger")

	res, err = annals.Migrate(ctx, adminPool)
	require.NoError(t, err)
	require.True(t, res.FunctionsApplied)
	require.True(t, res.HistoryGuard)
	_, err = installerPool.Exec(ctx, "ALTER TABLE annals_internal.lifecycle_log DISABLE TRIGGER lifecycle_log_append_only")
	requirePgError(t, err, "ST401")
	res, err = annals.Migrate(ctx, installerPool)
	require.NoError(t, err, "the installer's later migrate still works")
	require.True(t, res.HistoryGuard)
}

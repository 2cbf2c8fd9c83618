package cli_test

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// doctorLines maps each check's area to its level, from doctor's output.
func doctorLines(t *testing.T, out string) map[string][]string {
	t.Helper()
	lines := map[string][]string{}
	re := regexp.MustCompile(`^(OK|WARN|FAIL)\s+(\S+(?: letters)?)\s+(.*)$`)
	for _, l := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			lines[m[2]] = append(lines[m[2]], m[1]+" "+m[3])
		}
	}
	return lines
}

func TestCLIDoctorHealthy(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	installInventory(t, db)
	ok(t, db, "views", "refresh")

	r := annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "doctor on a fresh database:\n%s\n%s", r.stdout, r.stderr)
	require.NotContains(t, r.stdout, "FAIL ")
	lines := doctorLines(t, r.stdout)
	for _, area := range []string{"connection", "schema", "functions", "roles", "guard", "privileges", "triggers",
		"projections", "dead letters", "views"} {
		require.Len(t, lines[area], 1, "area %s in:\n%s", area, r.stdout)
		require.True(t, strings.HasPrefix(lines[area][0], "OK "), "%s: %s", area, lines[area][0])
	}
	// The feed and owners checks depend on the whole cluster (a long transaction elsewhere pauses
	// the feed; roles, members of annals_owner among them, are cluster-wide): OK or WARN.
	require.Len(t, lines["owners"], 1, r.stdout)
	require.Regexp(t, `^(OK|WARN) `, lines["owners"][0])
	require.Len(t, lines["feed"], 1, r.stdout)
	require.Regexp(t, `^(OK readable through position \d+|WARN paused: )`, lines["feed"][0])
	require.Regexp(t, `(?m)^\d+ OK, \d+ WARN, 0 FAIL$`, r.stdout)
	require.Contains(t, lines["functions"][0], "present and match it")
}

func TestCLIDoctorFindsProblems(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := installInventory(t, db)
	installAsyncCounter(t, pool, `IF EXISTS (SELECT FROM unnest(events) AS e WHERE e.event_type = 'Broken') THEN
		RAISE EXCEPTION 'cannot count a broken event'; END IF;`)
	execSQL(t, pool, `SELECT annals.create_subscription('billing')`)
	execSQL(t, pool, `SELECT annals.park_event('billing', 0, 'inventory-42', 1, 3, 'boom')`)

	// Break things: a table privilege for an application role, and a failing async projection.
	execSQL(t, pool, `GRANT SELECT ON annals_internal.events TO annals_reader`)
	appendEvent(t, db, "misc-1", "no-stream", "Broken", `{}`)
	deadline := time.Now().Add(feedTimeout)
	for {
		var lastError *string
		execSQL(t, pool, `SELECT annals.run_async_projections()`)
		require.NoError(t, pool.QueryRow(t.Context(),
			`SELECT last_error FROM annals.projections WHERE projection_name = 'event_counts'`).Scan(&lastError))
		if lastError != nil {
			break
		}
		require.True(t, time.Now().Before(deadline), "the broken event never reached the async projection")
		time.Sleep(100 * time.Millisecond)
	}

	r := annals(t, db, "doctor")
	require.Equal(t, 1, r.code, "doctor must fail:\n%s\n%s", r.stdout, r.stderr)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "fix the FAIL lines above")
	lines := doctorLines(t, r.stdout)
	require.Contains(t, lines["privileges"], "FAIL annals_reader has SELECT on annals_internal.events; application roles use the annals functions, never the tables: REVOKE ALL ON annals_internal.events FROM annals_reader", r.stdout)
	require.Len(t, lines["projections"], 1, r.stdout)
	require.Regexp(t, `^FAIL event_counts is failing: misc-1@1: cannot count a broken event .*annals projections rebuild event_counts`, lines["projections"][0])
	require.Len(t, lines["dead letters"], 2, r.stdout)
	require.Contains(t, strings.Join(lines["dead letters"], "\n"), "WARN 1 event(s) parked by billing: see annals subscriptions dead-letters billing")
	require.Contains(t, strings.Join(lines["dead letters"], "\n"), "'$projection:event_counts'")
	require.Regexp(t, `(?m)^\d+ OK, \d+ WARN, 2 FAIL$`, r.stdout)

	// Fixed, it passes again (dead letters stay a warning).
	execSQL(t, pool, `REVOKE ALL ON annals_internal.events FROM annals_reader`)
	execSQL(t, pool, `SELECT annals.drop_projection('event_counts')`)
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "%s\n%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "WARN  dead letters")
}

// The inline dispatch is generated from the registry; doctor notices one that no longer is.
func TestCLIDoctorFindsAStaleDispatch(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := installInventory(t, db)
	execSQL(t, pool, `CREATE OR REPLACE FUNCTION annals_internal.dispatch_inline() RETURNS trigger LANGUAGE plpgsql
		SET search_path = pg_catalog, pg_temp AS $$ BEGIN RETURN NULL; END $$`)

	r := annals(t, db, "doctor")
	require.Equal(t, 1, r.code, "doctor must fail:\n%s\n%s", r.stdout, r.stderr)
	require.Contains(t, doctorLines(t, r.stdout)["projections"],
		"FAIL the inline dispatch (annals_internal.dispatch_inline) does not match the registry; "+
			"regenerate it as annals_owner: SELECT annals_internal.sync_dispatch_trigger()", r.stdout)

	execSQL(t, pool, `SELECT annals_internal.sync_dispatch_trigger()`)
	r = annals(t, db, "doctor")
	require.NotContains(t, r.stdout, "FAIL ", r.stdout)
	require.True(t, strings.HasPrefix(doctorLines(t, r.stdout)["projections"][0], "OK "), r.stdout)
}

func TestCLIDoctorWithoutAnnals(t *testing.T) {
	t.Parallel()
	admin := annalstest.AdminURL(t)
	name := fmt.Sprintf("annals_cli_empty_%d", time.Now().UnixNano())
	conn, err := pgx.Connect(t.Context(), admin)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), "CREATE DATABASE "+name)
	conn.Close(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			conn.Close(ctx)
		}
	})
	db := admin + " dbname=" + name
	if strings.Contains(admin, "://") {
		u, err := url.Parse(admin)
		require.NoError(t, err)
		u.Path = "/" + name
		db = u.String()
	}

	r := annals(t, db, "doctor")
	require.Equal(t, 1, r.code, r.stdout)
	require.Regexp(t, "(?m)^FAIL\\s+schema\\s+.*`annals migrate`", r.stdout)

	out := ok(t, db, "migrate", "status")
	require.Regexp(t, `(?m)^  pending\s+001_roles_and_schemas\.sql$`, out)
	require.Contains(t, out, "schema: not installed")
	require.Contains(t, out, "functions: not installed")
}

// uniqueRole creates a role (cluster-wide, so uniquely named) with the given attributes and drops
// it when the test ends, after dropping what it owns and holds in pool's database.
func uniqueRole(t *testing.T, pool *pgxpool.Pool, prefix, attributes string) string {
	t.Helper()
	name := "annals_t_" + prefix + "_" + pgutil.RandomHex(6)
	execSQL(t, pool, "CREATE ROLE "+name+" "+attributes)
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = pool.Exec(ctx, "DROP OWNED BY "+name)
		if _, err := pool.Exec(ctx, "DROP ROLE "+name); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	return name
}

// Privileges in annals_internal belong to annals_owner alone: doctor names every other grant, on
// the schema, a table, a column, a sequence and a function, with the REVOKE that removes it, and
// those REVOKEs are enough.
func TestCLIDoctorFindsForeignPrivileges(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := poolFor(t, db)
	role := uniqueRole(t, pool, "doctor_priv", "NOLOGIN")
	execSQL(t, pool, fmt.Sprintf(`
		GRANT USAGE ON SCHEMA annals_internal TO %[1]s;
		GRANT SELECT, UPDATE ON annals_internal.streams TO %[1]s;
		GRANT SELECT (data) ON annals_internal.events_p0 TO %[1]s;
		GRANT USAGE ON SEQUENCE annals_internal.global_position_seq TO %[1]s;
		GRANT EXECUTE ON FUNCTION annals_internal.raise_invalid(text, text) TO %[1]s;
		GRANT EXECUTE ON FUNCTION annals_internal.raise_invalid(text, text) TO annals_writer`, role))

	r := annals(t, db, "doctor")
	require.Equal(t, 1, r.code, "doctor must fail:\n%s\n%s", r.stdout, r.stderr)
	lines := doctorLines(t, r.stdout)["privileges"]
	want := []string{
		"FAIL " + role + " has USAGE on schema annals_internal; only annals_owner may hold privileges in annals_internal (members of annals_owner act through it): REVOKE ALL ON SCHEMA annals_internal FROM " + role,
		"FAIL " + role + " has SELECT, UPDATE on annals_internal.streams; only annals_owner may hold privileges in annals_internal (members of annals_owner act through it): REVOKE ALL ON annals_internal.streams FROM " + role,
		"FAIL " + role + " has SELECT on column annals_internal.events_p0.data; only annals_owner may hold privileges in annals_internal (members of annals_owner act through it): REVOKE ALL (data) ON annals_internal.events_p0 FROM " + role,
		"FAIL " + role + " has USAGE on sequence annals_internal.global_position_seq; only annals_owner may hold privileges in annals_internal (members of annals_owner act through it): REVOKE ALL ON SEQUENCE annals_internal.global_position_seq FROM " + role,
		"FAIL " + role + " has EXECUTE on function annals_internal.raise_invalid(text,text); only annals_owner may hold privileges in annals_internal (members of annals_owner act through it): REVOKE ALL ON FUNCTION annals_internal.raise_invalid(text,text) FROM " + role,
		"FAIL annals_writer has EXECUTE on function annals_internal.raise_invalid(text,text); only annals_owner may hold privileges in annals_internal (members of annals_owner act through it): REVOKE ALL ON FUNCTION annals_internal.raise_invalid(text,text) FROM annals_writer",
	}
	require.ElementsMatch(t, want, lines, r.stdout)
	require.Regexp(t, `(?m)^\d+ OK, \d+ WARN, 6 FAIL$`, r.stdout)

	// Running what doctor says fixes it.
	for _, l := range lines {
		execSQL(t, pool, l[strings.LastIndex(l, "REVOKE ALL"):])
	}
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "%s\n%s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, "no role but annals_owner holds a privilege in annals_internal")
}

// A disabled trigger on Annals' tables fails doctor (the append-only ones would let history
// change); the inline dispatch and NOTIFY triggers are Annals' own switches and are judged by
// their settings.
func TestCLIDoctorFindsDisabledTriggers(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := poolFor(t, db)
	execSQL(t, pool, `ALTER TABLE annals_internal.events_p5 DISABLE TRIGGER events_append_only;
		ALTER TABLE annals_internal.streams ENABLE REPLICA TRIGGER streams_no_delete;
		DROP TRIGGER lifecycle_log_no_truncate ON annals_internal.lifecycle_log;
		SELECT annals.configure(notify => false)`)

	r := annals(t, db, "doctor")
	require.Equal(t, 1, r.code, "doctor must fail:\n%s\n%s", r.stdout, r.stderr)
	lines := doctorLines(t, r.stdout)["triggers"]
	require.ElementsMatch(t, []string{
		"FAIL 1 append-only trigger(s) missing (lifecycle_log_no_truncate on annals_internal.lifecycle_log), so history there can be changed: run `annals migrate` (as a superuser where the history guard is on)",
		"FAIL trigger events_append_only on annals_internal.events_p5 is disabled; Annals' triggers must always fire: as a superuser, ALTER TABLE annals_internal.events_p5 ENABLE TRIGGER events_append_only",
		"FAIL trigger streams_no_delete on annals_internal.streams is set to fire only on replicas; Annals' triggers must always fire: as a superuser, ALTER TABLE annals_internal.streams ENABLE TRIGGER streams_no_delete",
	}, lines, r.stdout)

	execSQL(t, pool, `ALTER TABLE annals_internal.events_p5 ENABLE TRIGGER events_append_only;
		ALTER TABLE annals_internal.streams ENABLE TRIGGER streams_no_delete;
		CREATE TRIGGER lifecycle_log_no_truncate BEFORE TRUNCATE ON annals_internal.lifecycle_log
		    FOR EACH STATEMENT EXECUTE FUNCTION annals_internal.reject_history_change()`)
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "notify off leaves its trigger disabled, rightly:\n%s\n%s", r.stdout, r.stderr)
	require.Equal(t, []string{"OK the append-only triggers are in place on events (every partition), streams and lifecycle_log; none of Annals' triggers is disabled"},
		doctorLines(t, r.stdout)["triggers"])

	// NOTIFY's trigger off while the setting says on: listeners would wait for nothing.
	execSQL(t, pool, `SELECT annals.configure(notify => true); ALTER TABLE annals_internal.events DISABLE TRIGGER events_notify`)
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "%s\n%s", r.stdout, r.stderr)
	require.Equal(t, []string{"WARN events_notify is disabled although notify is on, so listeners are not woken: SELECT annals.configure(notify => true) as annals_owner"},
		doctorLines(t, r.stdout)["triggers"])
}

// Doctor lists who can act as annals_owner, and says whether the history guard stops them: OK
// while it is on, WARN when it is disabled or missing, with what to run; a superuser's migrate
// brings it back. A guarded state that no longer matches the pinned one is a WARN that migrate
// fixes.
func TestCLIDoctorGuardAndOwners(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := poolFor(t, db)
	group := uniqueRole(t, pool, "doctor_admins", "NOLOGIN")
	login := uniqueRole(t, pool, "doctor_login", "LOGIN")
	super := uniqueRole(t, pool, "doctor_super", "NOLOGIN SUPERUSER")
	execSQL(t, pool, fmt.Sprintf("GRANT annals_owner TO %[1]s; GRANT %[1]s TO %[2]s; GRANT annals_owner TO %[3]s", group, login, super))
	// Only when no other test of the cluster left a CREATEROLE member around can the line be OK.
	var escapes bool
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM pg_roles AS r
		WHERE pg_has_role(r.oid, 'annals_owner', 'MEMBER') AND NOT r.rolsuper AND r.rolcreaterole)`).Scan(&escapes))

	r := annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "%s\n%s", r.stdout, r.stderr)
	lines := doctorLines(t, r.stdout)
	require.Equal(t, []string{"OK the history guard is on: only superusers may disable, drop or alter the append-only triggers and the history tables"}, lines["guard"])
	require.Len(t, lines["owners"], 1, r.stdout)
	owners := lines["owners"][0]
	if !escapes {
		require.Regexp(t, `^OK \d+ member\(s\) of annals_owner: .*; with the guard on, none can change history without a superuser's login; superusers: `, owners)
	}
	for _, want := range []string{group + " (group)", login, super + " (superuser)"} {
		require.Contains(t, owners, want)
	}

	// A member with CREATEROLE can make itself a member of pg_execute_server_program: past any guard.
	installer := uniqueRole(t, pool, "doctor_installer", "LOGIN CREATEROLE")
	execSQL(t, pool, "GRANT annals_owner TO "+installer)
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "%s\n%s", r.stdout, r.stderr)
	owners = doctorLines(t, r.stdout)["owners"][0]
	require.Regexp(t, `^WARN \d+ member\(s\) of annals_owner: .*; .* can act as the server's operating-system user `+
		`\(CREATEROLE may grant itself pg_execute_server_program\), so no guard binds them: once Annals is installed, `, owners)
	require.Contains(t, owners, installer+" (CREATEROLE)")
	require.Contains(t, owners, "ALTER ROLE "+installer+" NOCREATEROLE")
	execSQL(t, pool, "ALTER ROLE "+installer+" NOCREATEROLE")

	execSQL(t, pool, "ALTER EVENT TRIGGER annals_history_guard DISABLE")
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "a missing guard is a warning:\n%s\n%s", r.stdout, r.stderr)
	lines = doctorLines(t, r.stdout)
	require.Equal(t, []string{"WARN the history guard is disabled, so any member of annals_owner can disable the append-only triggers and rewrite history: " +
		"as a superuser, ALTER EVENT TRIGGER annals_history_guard ENABLE (or run `annals migrate` as a superuser)"}, lines["guard"])
	require.Len(t, lines["owners"], 1, r.stdout)
	require.Regexp(t, `^WARN \d+ member\(s\) of annals_owner: .*; without the history guard each can disable the append-only triggers and rewrite history: `+
		"keep membership to administrators, and run `annals migrate` as a superuser; (.*; )?superusers: ", lines["owners"][0])
	require.Contains(t, lines["owners"][0], login)

	execSQL(t, pool, "DROP SCHEMA annals_guard CASCADE")
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "%s\n%s", r.stdout, r.stderr)
	require.Equal(t, []string{"WARN the history guard is not installed (no event trigger annals_history_guard, annals_history_guard_rewrite), " +
		"so any member of annals_owner can disable the append-only triggers and rewrite history: run `annals migrate` as a superuser to install it"},
		doctorLines(t, r.stdout)["guard"])

	out := ok(t, db, "migrate")
	require.NotContains(t, out, "history guard is not installed")
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "%s\n%s", r.stdout, r.stderr)
	require.True(t, strings.HasPrefix(doctorLines(t, r.stdout)["guard"][0], "OK "), r.stdout)

	// A pinned state that no longer matches (here edited by hand; in life a renamed role or
	// REASSIGN OWNED, which no event trigger sees): members' DDL would be refused until a superuser's
	// migrate pins the state again.
	execSQL(t, pool, "UPDATE annals_guard.pinned SET state = state[2:]")
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "%s\n%s", r.stdout, r.stderr)
	require.Equal(t, []string{"WARN the history tables or their triggers differ from the state the guard pinned, so it refuses every DDL command of non-superusers: " +
		"check annals doctor's other lines, then run `annals migrate` as a superuser to pin the state as it is"}, doctorLines(t, r.stdout)["guard"])
	ok(t, db, "migrate")
	r = annals(t, db, "doctor")
	require.True(t, strings.HasPrefix(doctorLines(t, r.stdout)["guard"][0], "OK "), r.stdout)
}

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
	"github.com/jackc/pgx/v5"
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
	for _, area := range []string{"connection", "schema", "functions", "roles", "privileges", "projections", "dead letters", "views"} {
		require.Len(t, lines[area], 1, "area %s in:\n%s", area, r.stdout)
		require.True(t, strings.HasPrefix(lines[area][0], "OK "), "%s: %s", area, lines[area][0])
	}
	// The feed check depends on the whole cluster (a long transaction elsewhere pauses it): OK or WARN.
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

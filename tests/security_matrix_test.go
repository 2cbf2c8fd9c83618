package tests

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// securityProbes are the README's security table rows (the "capability" column, verbatim) and the
// statements that exercise each: a role has the capability when they all succeed in one
// transaction, which is then rolled back. A refusal must be one of refusalCodes, so a broken probe
// cannot pass for a "no".
var securityProbes = map[string][]string{
	"append events": {`SELECT * FROM annals.append_events('matrix-1', NULL, '[{"type": "Probe"}]')`},
	"read streams":  {`SELECT count(*) FROM annals.read_stream('matrix-1')`},
	"read the feed": {`SELECT count(*) FROM annals.read_all('0', 0, 10)`},
	"manage subscriptions": {
		`SELECT annals.create_subscription('matrix_probe')`,
		`SELECT annals.drop_subscription('matrix_probe')`},
	"register and rebuild projections": {
		`SELECT annals.set_projection_enabled('matrix_counts', false)`,
		`SELECT annals.set_projection_enabled('matrix_counts', true)`,
		`SELECT annals.rebuild_projection('matrix_counts')`},
	"read projection tables":                            {`SELECT count(*) FROM matrix.counts`},
	"read the events table directly":                    {`SELECT count(*) FROM annals_internal.events`},
	"update or delete events while the triggers are on": {`DELETE FROM annals_internal.events`},
	"rewrite or delete history": {
		`ALTER TABLE annals_internal.events_p0 DISABLE TRIGGER events_append_only`,
		`UPDATE annals_internal.events_p0 SET data = '{"rewritten": true}'`,
		`DELETE FROM annals_internal.events_p0`},
	"reset, drop or create a `$` subscription (an async projection's checkpoint)": {
		`SELECT annals.reset_subscription('$projection:matrix_counts', '0', 0)`,
		`SELECT annals.drop_subscription('$projection:matrix_counts')`,
		`SELECT annals.create_subscription('$projection:matrix_other')`},
	"disable, drop or replace the append-only triggers": {
		`DROP TRIGGER lifecycle_log_append_only ON annals_internal.lifecycle_log`},
}

// refusalCodes are how a capability is denied: no privilege, the history guard, a reserved name,
// the append-only triggers.
var refusalCodes = []string{"42501", "ST401", "ST403", "ST405"}

// securityColumns maps the README table's column headers to the kind of login each stands for.
var securityColumns = map[string]string{
	"superuser":                "superuser",
	"`annals_owner` members":   "annals_owner",
	"`annals_writer`":          "annals_writer",
	"`annals_reader`":          "annals_reader",
	"`annals_bi`":              "annals_bi",
	"PUBLIC (any other login)": "",
}

// securityMatrix parses the table that follows the security-matrix marker in README.md: the
// header's column names and, per capability, one cell per column.
func securityMatrix(t *testing.T) (columns []string, rows map[string][]string) {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	text := string(b)
	i := strings.Index(text, "<!-- security-matrix:")
	require.GreaterOrEqual(t, i, 0, "README.md has no security-matrix marker")
	var lines []string
	for _, l := range strings.Split(text[i:], "\n")[1:] {
		if !strings.HasPrefix(l, "|") {
			break
		}
		lines = append(lines, l)
	}
	require.GreaterOrEqual(t, len(lines), 3, "the security table after the marker")
	cells := func(l string) []string {
		parts := strings.Split(strings.Trim(l, "|"), "|")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts
	}
	header := cells(lines[0])
	require.Equal(t, "capability", header[0])
	columns = header[1:]
	rows = map[string][]string{}
	for _, l := range lines[2:] {
		c := cells(l)
		require.Len(t, c, len(header), "row %q", l)
		require.NotContains(t, rows, c[0], "capability %q twice", c[0])
		rows[c[0]] = c[1:]
	}
	return columns, rows
}

// can runs a probe as pool's login in a transaction that is rolled back, and reports whether
// every statement succeeded.
func can(t *testing.T, ctx context.Context, pool *pgxpool.Pool, stmts []string) bool {
	t.Helper()
	err := inTx(ctx, pool, stmts)
	if err == nil {
		return true
	}
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "probe failed without a database error: %v", err)
	require.Contains(t, refusalCodes, pgErr.Code, "probe refused for an unexpected reason: %v", err)
	return false
}

// A database for the matrix: a stream, and an inline projection set up as the example's read
// models are (SELECT for annals_bi and the owner).
func matrixDB(t *testing.T) fixture {
	t.Helper()
	f := setup(t)
	_, err := f.pool.Exec(f.ctx, `
		SELECT * FROM annals.append_events('matrix-1', 0, '[{"type": "Seeded"}, {"type": "Seeded"}]');
		CREATE SCHEMA matrix;
		CREATE TABLE matrix.counts (event_type text PRIMARY KEY, n bigint NOT NULL);
		CREATE FUNCTION matrix.count(events annals.event[]) RETURNS void LANGUAGE sql
		SET search_path = pg_catalog, pg_temp AS $$
			INSERT INTO matrix.counts AS c (event_type, n)
			SELECT e.event_type, count(*) FROM unnest(events) AS e GROUP BY e.event_type
			ON CONFLICT (event_type) DO UPDATE SET n = c.n + excluded.n
		$$;
		ALTER FUNCTION matrix.count(annals.event[]) OWNER TO annals_owner;
		GRANT USAGE ON SCHEMA matrix TO annals_owner, annals_bi;
		GRANT SELECT, INSERT, UPDATE, DELETE ON matrix.counts TO annals_owner;
		GRANT SELECT ON matrix.counts TO annals_bi;
		SELECT annals.register_projection('matrix_counts', 'matrix.count(annals.event[])', ARRAY['matrix.counts']::regclass[]);
		SELECT annals.rebuild_projection('matrix_counts')`)
	require.NoError(t, err)
	return f
}

// Every cell of the README's security table holds against a real database: "yes" with and
// without the history guard, "no" with neither, "no (yes without the guard)" only without it.
func TestREADMESecurityMatrix(t *testing.T) {
	t.Parallel()
	columns, rows := securityMatrix(t)

	probeNames := make([]string, 0, len(securityProbes))
	for name := range securityProbes {
		probeNames = append(probeNames, name)
	}
	rowNames := make([]string, 0, len(rows))
	for name := range rows {
		rowNames = append(rowNames, name)
	}
	require.ElementsMatch(t, probeNames, rowNames, "the README's capabilities and this test's probes")
	kinds := make([]string, len(columns))
	for i, c := range columns {
		k, ok := securityColumns[c]
		require.True(t, ok, "unknown column %q in the README's security table", c)
		kinds[i] = k
	}

	guarded := matrixDB(t)
	unguarded := matrixDB(t)
	_, err := unguarded.pool.Exec(unguarded.ctx, "DROP SCHEMA annals_guard CASCADE")
	require.NoError(t, err)

	// One login per column (the superuser is the test's own), valid in both databases.
	logins := map[string]string{}
	for _, k := range kinds {
		switch k {
		case "superuser":
		case "":
			logins[k] = loginRole(t, guarded)
		default:
			logins[k] = loginRole(t, guarded, k)
		}
	}
	pools := map[[2]string]*pgxpool.Pool{}
	poolFor := func(f fixture, kind string) *pgxpool.Pool {
		if kind == "superuser" {
			var super bool
			require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super))
			require.True(t, super, "the test login must be a superuser")
			return f.pool
		}
		key := [2]string{f.pool.Config().ConnConfig.Database, kind}
		if pools[key] == nil {
			pools[key], _ = f.as(t, logins[kind])
		}
		return pools[key]
	}

	for name, cells := range rows {
		for i, cell := range cells {
			var withGuard, withoutGuard bool
			switch cell {
			case "yes":
				withGuard, withoutGuard = true, true
			case "no":
			case "no (yes without the guard)":
				withoutGuard = true
			default:
				require.Failf(t, "unknown cell", "%q in row %q, column %s", cell, name, columns[i])
			}
			got := can(t, guarded.ctx, poolFor(guarded, kinds[i]), securityProbes[name])
			require.Equal(t, withGuard, got, "%s: %s, with the history guard (README says %q)", columns[i], name, cell)
			got = can(t, unguarded.ctx, poolFor(unguarded, kinds[i]), securityProbes[name])
			require.Equal(t, withoutGuard, got, "%s: %s, without the history guard (README says %q)", columns[i], name, cell)
		}
	}
}

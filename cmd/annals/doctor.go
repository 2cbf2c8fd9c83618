package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/annals-db/annals/functions"
	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
)

func newDoctorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor [--blocker-age D]",
		Short: "Check the installation and say what to fix: schema, functions, roles, privileges, feed, projections, views.",
		Long: `Check the installation and say what to fix: schema, functions, roles, privileges, feed, projections, views.

Prints one line per check, OK, WARN or FAIL, with what to do for the last two, and exits 1 when a
check fails. Checks: the schema version this build expects; every function and view of this build
present (and the installed functions' checksum, when the login may read it); the roles
annals_owner, annals_writer, annals_reader, annals_bi exist, NOLOGIN, the owner no superuser;
the history guard is installed and enabled (a superuser's annals migrate installs it); who the
members of annals_owner are (each can rewrite history where the guard is missing, and one with
CREATEROLE can act as the server's operating-system user in any case); annals_writer
may append and annals_reader read, PUBLIC may execute nothing, and no role but annals_owner (and
superusers) holds a privilege on annals_internal's schema, tables, sequences or functions; every
append-only trigger is present and no trigger on Annals' tables is disabled; the feed is readable
and no transaction older than --blocker-age holds it back; no projection is failing, stale or disabled; no dead letters wait; no
materialized view is stale or failing to refresh; on a hot standby, that it streams and replays and
how far behind it is, on a primary its standbys' replay lag. Changes nothing.`,
		Args: noArgs,
	}
	db := addDatabaseFlag(cmd)
	blockerAge := cmd.Flags().Duration("blocker-age", time.Minute, "warn when the transaction holding the feed back is older than this")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		d := &doctor{out: cmd.OutOrStdout(), pool: pool, client: client, blockerAge: *blockerAge}
		d.run(ctx)
		fmt.Fprintf(d.out, "\n%d OK, %d WARN, %d FAIL\n", d.counts["OK"], d.counts["WARN"], d.counts["FAIL"])
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n := d.counts["FAIL"]; n > 0 {
			return fmt.Errorf("doctor: %d check(s) failed; fix the FAIL lines above and run annals doctor again", n)
		}
		return nil
	}
	return cmd
}

type doctor struct {
	out        io.Writer
	pool       *pgxpool.Pool
	client     *annals.Client
	blockerAge time.Duration
	counts     map[string]int
	// guardOn is set by checkGuard: the history guard is installed and enabled.
	guardOn bool
}

func (d *doctor) report(level, area, format string, args ...any) {
	if d.counts == nil {
		d.counts = map[string]int{}
	}
	d.counts[level]++
	fmt.Fprintf(d.out, "%-4s  %-13s %s\n", level, area, fmt.Sprintf(format, args...))
}

func (d *doctor) ok(area, format string, args ...any)   { d.report("OK", area, format, args...) }
func (d *doctor) warn(area, format string, args ...any) { d.report("WARN", area, format, args...) }
func (d *doctor) fail(area, format string, args ...any) { d.report("FAIL", area, format, args...) }

// cannot reports a check that could not run, with the reason in one line.
func (d *doctor) cannot(area string, err error) {
	d.warn(area, "could not check: %s", explain(err))
}

func (d *doctor) run(ctx context.Context) {
	var server, user string
	if err := d.pool.QueryRow(ctx, "SELECT pg_catalog.current_setting('server_version'), current_user::text").Scan(&server, &user); err == nil {
		d.ok("connection", "PostgreSQL %s as %s", server, user)
	}
	if !d.checkSchema(ctx) {
		return // nothing else makes sense without the schema
	}
	checks := []func(context.Context){
		d.checkFunctions, d.checkRoles, d.checkGuard, d.checkOwners, d.checkPrivileges, d.checkTriggers,
		d.checkFeed, d.checkStorage, d.checkProjections, d.checkDeadLetters, d.checkViews, d.checkRetention, d.checkReplication,
	}
	for _, c := range checks {
		if ctx.Err() != nil {
			return
		}
		c(ctx)
	}
}

func (d *doctor) checkSchema(ctx context.Context) bool {
	err := d.client.CheckSchema(ctx)
	switch {
	case err == nil:
		d.ok("schema", "version %d, as this build expects", annals.SchemaVersion())
		return true
	case errors.Is(err, annals.ErrSchemaNotInstalled):
		d.fail("schema", "%s (as the owner or a superuser)", tidyMessage(err.Error()))
	case errors.Is(err, annals.ErrSchemaTooNew):
		d.fail("schema", "%s: upgrade this annals binary", tidyMessage(err.Error()))
	default:
		d.fail("schema", "%s", explain(err))
	}
	return false
}

// definedObjects are the functions and views this build's function files create, by schema-qualified name.
var (
	reFunction = regexp.MustCompile(`(?i)CREATE\s+OR\s+REPLACE\s+FUNCTION\s+(annals(?:_internal)?)\.(\w+)\s*\(`)
	reView     = regexp.MustCompile(`(?i)CREATE\s+OR\s+REPLACE\s+VIEW\s+(annals(?:_internal)?)\.(\w+)`)
)

func definedObjects() (funcs, views []string, err error) {
	names, err := fs.Glob(functions.FS, "*.sql")
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, n := range names {
		b, err := fs.ReadFile(functions.FS, n)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range reFunction.FindAllStringSubmatch(string(b), -1) {
			if q := m[1] + "." + m[2]; !seen[q] {
				seen[q] = true
				funcs = append(funcs, q)
			}
		}
		for _, m := range reView.FindAllStringSubmatch(string(b), -1) {
			if q := m[1] + "." + m[2]; !seen[q] {
				seen[q] = true
				views = append(views, q)
			}
		}
	}
	sort.Strings(funcs)
	sort.Strings(views)
	return funcs, views, nil
}

func (d *doctor) checkFunctions(ctx context.Context) {
	funcs, views, err := definedObjects()
	if err != nil {
		d.cannot("functions", err)
		return
	}
	var missing []string
	err = d.pool.QueryRow(ctx, `
		SELECT coalesce(array_agg(f.name ORDER BY f.name), '{}')
		  FROM unnest($1::text[]) AS f(name)
		 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_proc AS p
		                    WHERE p.pronamespace::regnamespace::text = split_part(f.name, '.', 1)
		                      AND p.proname = split_part(f.name, '.', 2))`, funcs).Scan(&missing)
	if err != nil {
		d.cannot("functions", err)
		return
	}
	var missingViews []string
	err = d.pool.QueryRow(ctx, `
		SELECT coalesce(array_agg(v.name ORDER BY v.name), '{}')
		  FROM unnest($1::text[]) AS v(name)
		 WHERE to_regclass(v.name) IS NULL`, views).Scan(&missingViews)
	if err != nil {
		d.cannot("functions", err)
		return
	}
	var plpgsql bool
	_ = d.pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_catalog.pg_language WHERE lanname = 'plpgsql')").Scan(&plpgsql)
	switch {
	case !plpgsql:
		d.fail("functions", "the plpgsql language is missing: CREATE EXTENSION plpgsql, then run `annals migrate`")
		return
	case len(missing)+len(missingViews) > 0:
		d.fail("functions", "%d function(s) and %d view(s) of this build are missing (%s): run `annals migrate`",
			len(missing), len(missingViews), firstFew(append(missing, missingViews...), 4))
		return
	}
	sum, err := annals.FunctionsChecksum()
	if err != nil {
		d.cannot("functions", err)
		return
	}
	var installed string
	err = d.pool.QueryRow(ctx, "SELECT s.functions_checksum FROM annals_internal.schema_info AS s").Scan(&installed)
	switch {
	case errors.Is(annals.MapError(err), annals.ErrPermissionDenied):
		d.ok("functions", "all %d functions and %d views of this build are present (checksum not readable by this login)", len(funcs), len(views))
	case err != nil:
		d.cannot("functions", err)
	case installed != sum:
		d.warn("functions", "all present, but they differ from this build's (installed checksum %s, this build %s): run `annals migrate` to re-apply them",
			installed[:min(12, len(installed))], sum[:12])
	default:
		d.ok("functions", "all %d functions and %d views of this build are present and match it", len(funcs), len(views))
	}
}

var annalsRoles = []string{"annals_owner", "annals_writer", "annals_reader", "annals_bi"}

func (d *doctor) checkRoles(ctx context.Context) {
	rows, err := d.pool.Query(ctx, `
		SELECT r.name, a.rolname IS NOT NULL, coalesce(a.rolcanlogin, false), coalesce(a.rolsuper, false), coalesce(a.rolbypassrls, false)
		  FROM unnest($1::text[]) AS r(name)
		  LEFT JOIN pg_catalog.pg_roles AS a ON a.rolname = r.name`, annalsRoles)
	if err != nil {
		d.cannot("roles", err)
		return
	}
	type role struct {
		Name                            string
		Exists, Login, Super, BypassRLS bool
	}
	roles, err := pgx.CollectRows(rows, pgx.RowToStructByPos[role])
	if err != nil {
		d.cannot("roles", err)
		return
	}
	problems := 0
	for _, r := range roles {
		switch {
		case !r.Exists:
			d.fail("roles", "role %s is missing: run `annals migrate` as a superuser (it creates the roles)", r.Name)
		case r.Login:
			d.fail("roles", "role %s can log in; Annals' roles are groups: ALTER ROLE %s NOLOGIN, and GRANT %s TO your application's login", r.Name, r.Name, r.Name)
		case r.Super:
			d.fail("roles", "role %s is a superuser, which bypasses every check: ALTER ROLE %s NOSUPERUSER", r.Name, r.Name)
		case r.BypassRLS:
			d.warn("roles", "role %s has BYPASSRLS, which Annals does not need: ALTER ROLE %s NOBYPASSRLS", r.Name, r.Name)
		default:
			continue
		}
		problems++
	}
	if problems == 0 {
		d.ok("roles", "%s exist, NOLOGIN, no superuser", strings.Join(annalsRoles, ", "))
	}
}

func (d *doctor) checkPrivileges(ctx context.Context) {
	problems := 0
	// What the roles must be able to do.
	must := []struct{ role, fn, what string }{
		{"annals_writer", "annals.append_events(text, bigint, jsonb)", "append"},
		{"annals_writer", "annals.read_stream(text, bigint, integer, boolean, boolean)", "read"},
		{"annals_reader", "annals.read_stream(text, bigint, integer, boolean, boolean)", "read"},
		{"annals_reader", "annals.read_all(xid8, bigint, integer, text[], text[], boolean)", "read the feed"},
	}
	for _, m := range must {
		var can *bool
		err := d.pool.QueryRow(ctx, `SELECT CASE WHEN to_regprocedure($2) IS NULL THEN NULL
			ELSE has_function_privilege($1, to_regprocedure($2), 'EXECUTE') END`, m.role, m.fn).Scan(&can)
		if err != nil {
			d.cannot("privileges", err)
			return
		}
		if can != nil && !*can {
			d.fail("privileges", "%s cannot %s: GRANT EXECUTE ON FUNCTION %s TO %s (or run `annals migrate` again)", m.role, m.what, m.fn, m.role)
			problems++
		}
	}

	// PUBLIC may execute nothing.
	var public []string
	err := d.pool.QueryRow(ctx, `
		SELECT coalesce(array_agg(p.oid::regprocedure::text ORDER BY 1), '{}')
		  FROM pg_catalog.pg_proc AS p,
		       aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
		 WHERE p.pronamespace IN ('annals'::regnamespace, 'annals_internal'::regnamespace)
		   AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'`).Scan(&public)
	if err != nil {
		d.cannot("privileges", err)
		return
	}
	if len(public) > 0 {
		d.fail("privileges", "PUBLIC may execute %d Annals function(s) (%s): REVOKE ALL ON FUNCTION %s FROM PUBLIC, for each",
			len(public), firstFew(public, 3), public[0])
		problems++
	}

	// Only annals_owner (and superusers, who need no grant) holds privileges in annals_internal:
	// first every grant in the ACLs of the schema, its relations, their columns and its functions
	// (PUBLIC's EXECUTE is reported above; the readers of a public view execute the function that
	// computes its rows), then what the application roles hold some other way.
	rows, err := d.pool.Query(ctx, `
		WITH acl AS (
		    SELECT 'schema annals_internal' AS what, 'ON SCHEMA annals_internal' AS target,
		           n.nspowner AS owner, a.grantee, a.privilege_type, false AS tbl
		      FROM pg_catalog.pg_namespace AS n, aclexplode(n.nspacl) AS a
		     WHERE n.nspname = 'annals_internal'
		    UNION ALL
		    SELECT CASE WHEN c.relkind = 'S' THEN 'sequence ' ELSE '' END || c.oid::regclass::text,
		           CASE WHEN c.relkind = 'S' THEN 'ON SEQUENCE ' ELSE 'ON ' END || c.oid::regclass::text,
		           c.relowner, a.grantee, a.privilege_type, c.relkind <> 'S'
		      FROM pg_catalog.pg_class AS c, aclexplode(c.relacl) AS a
		     WHERE c.relnamespace = 'annals_internal'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
		    UNION ALL
		    SELECT format('column %s.%I', c.oid::regclass, t.attname), format('(%I) ON %s', t.attname, c.oid::regclass),
		           c.relowner, a.grantee, a.privilege_type, false
		      FROM pg_catalog.pg_class AS c
		      JOIN pg_catalog.pg_attribute AS t ON t.attrelid = c.oid AND t.attnum > 0 AND NOT t.attisdropped,
		           aclexplode(t.attacl) AS a
		     WHERE c.relnamespace = 'annals_internal'::regnamespace
		    UNION ALL
		    SELECT lower(k.kind) || ' ' || p.oid::regprocedure::text, 'ON ' || k.kind || ' ' || p.oid::regprocedure::text,
		           p.proowner, a.grantee, a.privilege_type, false
		      FROM pg_catalog.pg_proc AS p
		     CROSS JOIN LATERAL (SELECT CASE WHEN p.prokind = 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END) AS k(kind),
		           aclexplode(p.proacl) AS a
		     WHERE p.pronamespace = 'annals_internal'::regnamespace AND a.grantee <> 0
		       -- A public view's rows function: its readers execute it (Annals grants that itself).
		       AND NOT (a.privilege_type = 'EXECUTE' AND EXISTS (
		               SELECT FROM pg_catalog.pg_depend AS d
		                 JOIN pg_catalog.pg_rewrite AS rw ON rw.oid = d.objid
		                 JOIN pg_catalog.pg_class AS v ON v.oid = rw.ev_class
		                WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_proc'::regclass
		                  AND d.refobjid = p.oid AND v.relnamespace = 'annals'::regnamespace
		                  AND has_table_privilege(a.grantee, v.oid, 'SELECT')))
		)
		SELECT CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE acl.grantee::regrole::text END, acl.what, acl.target,
		       string_agg(acl.privilege_type, ', ' ORDER BY acl.privilege_type), bool_or(acl.tbl)
		  FROM acl
		  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = acl.grantee
		 WHERE acl.grantee <> acl.owner AND acl.grantee <> 'annals_owner'::regrole AND NOT coalesce(r.rolsuper, false)
		 GROUP BY 1, 2, 3
		 ORDER BY 1, 2`)
	if err != nil {
		d.cannot("privileges", err)
		return
	}
	type grant struct {
		Role, What, Target, Privileges string
		Table                          bool
	}
	grants, err := pgx.CollectRows(rows, pgx.RowToStructByPos[grant])
	if err != nil {
		d.cannot("privileges", err)
		return
	}
	reported := map[[2]string]bool{}
	for _, g := range grants {
		reported[[2]string{g.Role, g.What}] = true
	}

	// What the application roles (and PUBLIC) may do on the tables, however they got it, unless
	// through membership in annals_owner, which checkOwners reports.
	rows, err = d.pool.Query(ctx, `
		SELECT r.role, c.oid::regclass::text, 'ON ' || c.oid::regclass::text,
		       array_to_string(ARRAY(SELECT k FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS k
		                              WHERE has_table_privilege(r.role, c.oid, k)), ', '),
		       true
		  FROM pg_catalog.pg_class AS c,
		       unnest(ARRAY['annals_writer', 'annals_reader', 'annals_bi', 'public']) AS r(role)
		 WHERE c.relnamespace = 'annals_internal'::regnamespace
		   AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
		   AND has_table_privilege(r.role, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
		   AND CASE WHEN r.role = 'public' THEN true ELSE NOT pg_has_role(r.role, 'annals_owner', 'MEMBER') END
		 ORDER BY 1, 2`)
	if err != nil {
		d.cannot("privileges", err)
		return
	}
	held, err := pgx.CollectRows(rows, pgx.RowToStructByPos[grant])
	if err != nil {
		d.cannot("privileges", err)
		return
	}
	for _, g := range held {
		if g.Role == "public" {
			g.Role = "PUBLIC"
		}
		if !reported[[2]string{g.Role, g.What}] {
			grants = append(grants, g)
		}
	}

	const shown = 10
	for i, g := range grants {
		if i == shown {
			d.fail("privileges", "and %d more grant(s) like those: revoke them too, then run annals doctor again", len(grants)-shown)
			problems++
			break
		}
		why := "only annals_owner may hold privileges in annals_internal (members of annals_owner act through it)"
		if g.Table && (g.Role == "annals_writer" || g.Role == "annals_reader" || g.Role == "annals_bi" || g.Role == "PUBLIC") {
			why = "application roles use the annals functions, never the tables"
		}
		d.fail("privileges", "%s has %s on %s; %s: REVOKE ALL %s FROM %s", g.Role, g.Privileges, g.What, why, g.Target, g.Role)
		problems++
	}
	if problems == 0 {
		d.ok("privileges", "annals_writer may append, annals_reader read; PUBLIC executes nothing; no role but annals_owner holds a privilege in annals_internal")
	}
}

// guardTriggers are the history guard's event triggers (functions/011_history_guard.sql).
var guardTriggers = []string{"annals_history_guard", "annals_history_guard_rewrite"}

func (d *doctor) checkGuard(ctx context.Context) {
	rows, err := d.pool.Query(ctx, `
		SELECT g.name, e.evtname IS NOT NULL, coalesce(e.evtenabled <> 'D', false), coalesce(r.rolsuper, false)
		  FROM unnest($1::text[]) AS g(name)
		  LEFT JOIN pg_catalog.pg_event_trigger AS e ON e.evtname = g.name
		  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = e.evtowner
		 ORDER BY 1`, guardTriggers)
	if err != nil {
		d.cannot("guard", err)
		return
	}
	type trigger struct {
		Name                    string
		Exists, Enabled, ByRoot bool
	}
	ts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[trigger])
	if err != nil {
		d.cannot("guard", err)
		return
	}
	var missing, disabled []string
	for _, t := range ts {
		switch {
		case !t.Exists:
			missing = append(missing, t.Name)
		case !t.Enabled:
			disabled = append(disabled, t.Name)
		}
	}
	switch {
	case len(missing) > 0:
		d.warn("guard", "the history guard is not installed (no event trigger %s), so any member of annals_owner can disable the append-only triggers and rewrite history: run `annals migrate` as a superuser to install it",
			strings.Join(missing, ", "))
		return
	case len(disabled) > 0:
		d.warn("guard", "the history guard is disabled, so any member of annals_owner can disable the append-only triggers and rewrite history: as a superuser, ALTER EVENT TRIGGER %s ENABLE (or run `annals migrate` as a superuser)",
			strings.Join(disabled, " ENABLE; ALTER EVENT TRIGGER "))
		return
	}
	d.guardOn = true
	// A superuser may compare the state with the pinned one; a difference (made where no event
	// trigger fires, such as REASSIGN OWNED or a renamed role) makes the guard refuse members' DDL.
	var super, drifted bool
	err = d.pool.QueryRow(ctx, "SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user").Scan(&super)
	if err == nil && super {
		err = d.pool.QueryRow(ctx, `SELECT annals_guard.history_state() IS DISTINCT FROM (SELECT p.state FROM annals_guard.pinned AS p)`).Scan(&drifted)
	}
	switch {
	case err != nil:
		d.cannot("guard", err)
	case drifted:
		d.warn("guard", "the history tables or their triggers differ from the state the guard pinned, so it refuses every DDL command of non-superusers: "+
			"check annals doctor's other lines, then run `annals migrate` as a superuser to pin the state as it is")
	default:
		d.ok("guard", "the history guard is on: only superusers may disable, drop or alter the append-only triggers and the history tables")
	}
}

func (d *doctor) checkOwners(ctx context.Context) {
	// Everyone who can act as annals_owner, directly or through other roles, with the role
	// through which each holds it.
	rows, err := d.pool.Query(ctx, `
		WITH RECURSIVE m(member, via) AS (
		    SELECT a.member, a.roleid FROM pg_catalog.pg_auth_members AS a WHERE a.roleid = 'annals_owner'::regrole
		    UNION
		    SELECT a.member, a.roleid FROM pg_catalog.pg_auth_members AS a JOIN m ON a.roleid = m.member
		)
		SELECT r.rolname::text, min(m.via::regrole::text), r.rolsuper, r.rolcanlogin,
		       CASE WHEN r.rolsuper THEN ''
		            WHEN r.rolcreaterole THEN 'CREATEROLE'
		            WHEN pg_has_role(r.oid, 'pg_execute_server_program', 'MEMBER') THEN 'pg_execute_server_program'
		            WHEN pg_has_role(r.oid, 'pg_write_server_files', 'MEMBER') THEN 'pg_write_server_files'
		            ELSE '' END
		  FROM m JOIN pg_catalog.pg_roles AS r ON r.oid = m.member
		 GROUP BY r.oid, r.rolname, r.rolsuper, r.rolcanlogin, r.rolcreaterole
		 ORDER BY r.rolname`)
	if err != nil {
		d.cannot("owners", err)
		return
	}
	type member struct {
		Name, Via    string
		Super, Login bool
		// Escape names what lets a non-superuser act as the server's operating-system user, and
		// so past any guard: CREATEROLE (on PostgreSQL 15 it may grant itself
		// pg_execute_server_program), or membership in one of the server file and program roles.
		Escape string
	}
	members, err := pgx.CollectRows(rows, pgx.RowToStructByPos[member])
	if err != nil {
		d.cannot("owners", err)
		return
	}
	var superusers []string
	if err := d.pool.QueryRow(ctx, `SELECT coalesce(array_agg(r.rolname::text ORDER BY r.rolname), '{}')
		FROM pg_catalog.pg_roles AS r WHERE r.rolsuper AND r.rolcanlogin`).Scan(&superusers); err != nil {
		d.cannot("owners", err)
		return
	}
	problems := 0
	var names, escapes, fixes []string
	for _, m := range members {
		switch m.Name {
		case "annals_writer", "annals_reader", "annals_bi":
			d.fail("owners", "%s is a member of annals_owner, so every login granted %s acts as the owner: REVOKE %s FROM %s",
				m.Name, m.Name, m.Via, m.Name)
			problems++
		}
		name := m.Name
		switch {
		case m.Super:
			name += " (superuser)"
		case m.Escape != "":
			name += " (" + m.Escape + ")"
			escapes = append(escapes, m.Name)
			if m.Escape == "CREATEROLE" {
				fixes = append(fixes, "ALTER ROLE "+m.Name+" NOCREATEROLE")
			} else {
				fixes = append(fixes, "REVOKE "+m.Escape+" FROM "+m.Name)
			}
		case !m.Login:
			name += " (group)"
		}
		names = append(names, name)
	}
	supers := "superusers: " + orNone(strings.Join(superusers, ", "))
	if problems > 0 {
		return
	}
	if len(members) == 0 {
		d.ok("owners", "annals_owner has no members; %s", supers)
		return
	}
	var risks []string
	if !d.guardOn {
		risks = append(risks, "without the history guard each can disable the append-only triggers and rewrite history: "+
			"keep membership to administrators, and run `annals migrate` as a superuser")
	}
	if len(escapes) > 0 {
		risks = append(risks, fmt.Sprintf("%s can act as the server's operating-system user (CREATEROLE may grant itself "+
			"pg_execute_server_program), so no guard binds them: once Annals is installed, %s", firstFew(escapes, 3), strings.Join(fixes, "; ")))
	}
	if len(risks) == 0 {
		d.ok("owners", "%d member(s) of annals_owner: %s; with the guard on, none can change history without a superuser's login; %s",
			len(members), firstFew(names, 8), supers)
		return
	}
	d.warn("owners", "%d member(s) of annals_owner: %s; %s; %s", len(members), firstFew(names, 8), strings.Join(risks, "; "), supers)
}

// checkTriggers finds missing append-only triggers (functions/010_append_only.sql: the events
// ones on the parent and on every partition) and any disabled trigger on Annals' tables but the
// inline dispatch, whose state checkProjections compares with the registry.
func (d *doctor) checkTriggers(ctx context.Context) {
	var missing []string
	err := d.pool.QueryRow(ctx, `
		WITH expected(rel, trigger) AS (
		    SELECT p.relid, x.trigger
		      FROM pg_catalog.pg_partition_tree('annals_internal.events') AS p,
		           (VALUES ('events_append_only'), ('events_no_truncate')) AS x(trigger)
		    UNION ALL
		    VALUES ('annals_internal.streams'::regclass, 'streams_no_delete'), ('annals_internal.streams', 'streams_no_truncate'),
		           ('annals_internal.lifecycle_log', 'lifecycle_log_append_only'), ('annals_internal.lifecycle_log', 'lifecycle_log_no_truncate')
		)
		SELECT coalesce(array_agg(format('%I on %s', e.trigger, e.rel) ORDER BY e.rel::text, e.trigger), '{}')
		  FROM expected AS e
		 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS t
		                    WHERE t.tgrelid = e.rel AND t.tgname = e.trigger
		                      AND t.tgfoid = to_regprocedure('annals_internal.reject_history_change()'))`).Scan(&missing)
	if err != nil {
		d.cannot("triggers", err)
		return
	}
	problems := 0
	if len(missing) > 0 {
		d.fail("triggers", "%d append-only trigger(s) missing (%s), so history there can be changed: run `annals migrate` (as a superuser where the history guard is on)",
			len(missing), firstFew(missing, 3))
		problems++
	}

	rows, err := d.pool.Query(ctx, `
		SELECT t.tgname::text, t.tgrelid::regclass::text, t.tgenabled::text
		  FROM pg_catalog.pg_trigger AS t
		  JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
		 WHERE c.relnamespace = 'annals_internal'::regnamespace AND NOT t.tgisinternal
		   AND t.tgenabled NOT IN ('O', 'A')
		   AND NOT (t.tgrelid = 'annals_internal.events'::regclass AND t.tgname = 'events_dispatch_inline')
		 ORDER BY 2, 1`)
	if err != nil {
		d.cannot("triggers", err)
		return
	}
	type trigger struct{ Name, Table, Enabled string }
	disabled, err := pgx.CollectRows(rows, pgx.RowToStructByPos[trigger])
	if err != nil {
		d.cannot("triggers", err)
		return
	}
	for _, t := range disabled {
		if t.Table == "annals_internal.events" && t.Name == "events_notify" && t.Enabled == "D" {
			// annals.configure(notify => false) switches it off; it must agree with the setting.
			var notify *bool
			err := d.pool.QueryRow(ctx, "SELECT s.notify FROM annals_internal.settings AS s").Scan(&notify)
			if errors.Is(annals.MapError(err), annals.ErrPermissionDenied) || err == nil && notify != nil && !*notify {
				continue // switched off by configure (or this login cannot tell)
			}
			if err != nil {
				d.cannot("triggers", err)
				problems++
				continue
			}
			d.warn("triggers", "events_notify is disabled although notify is on, so listeners are not woken: SELECT annals.configure(notify => true) as annals_owner")
			problems++
			continue
		}
		state := "disabled"
		if t.Enabled == "R" {
			state = "set to fire only on replicas"
		}
		d.fail("triggers", "trigger %s on %s is %s; Annals' triggers must always fire: as a superuser, ALTER TABLE %s ENABLE TRIGGER %s",
			t.Name, t.Table, state, t.Table, t.Name)
		problems++
	}
	if problems == 0 {
		d.ok("triggers", "the append-only triggers are in place on events (every partition), streams and lifecycle_log; none of Annals' triggers is disabled")
	}
}

func (d *doctor) checkFeed(ctx context.Context) {
	// A read of one event raises ST503 when transaction ids were restored from another cluster.
	if _, err := d.client.ReadAll(ctx, annals.Checkpoint{}, annals.FeedOptions{MaxCount: 1}); err != nil {
		if errors.Is(err, annals.ErrFeedRestored) {
			d.fail("feed", "%s: run SELECT annals.rebase_transaction_ids() as a superuser once", tidyMessage(err.Error()))
		} else {
			d.cannot("feed", err)
		}
		return
	}
	head, err := d.client.FeedHead(ctx)
	if err != nil {
		d.cannot("feed", err)
		return
	}
	b, err := feedBlocker(ctx, d.pool)
	if err != nil {
		d.cannot("feed", err)
		return
	}
	if b != nil && b.Age > d.blockerAge {
		d.warn("feed", "paused: %s", b.describe())
		return
	}
	d.ok("feed", "readable through position %d; no transaction older than %s holds it back", head.LastPosition, d.blockerAge)
}

// checkStorage reports the hot and cold tiers (annals.storage_stats: it counts every hot event).
func (d *doctor) checkStorage(ctx context.Context) {
	tiers, err := d.client.StorageStats(ctx)
	if err != nil {
		d.cannot("storage", err)
		return
	}
	var parts []string
	hot := 0.0
	for _, t := range tiers {
		if t.Tier == "hot" {
			hot = t.BytesPerEvent
		}
		switch {
		case t.Events == 0:
			parts = append(parts, fmt.Sprintf("%s: no events", t.Tier))
		case t.Tier == "cold" && hot > 0:
			parts = append(parts, fmt.Sprintf("%s: %d events, %s (%.0f bytes/event, %.2fx hot)", t.Tier, t.Events, formatBytes(t.Bytes), t.BytesPerEvent, t.BytesPerEvent/hot))
		default:
			parts = append(parts, fmt.Sprintf("%s: %d events, %s (%.0f bytes/event)", t.Tier, t.Events, formatBytes(t.Bytes), t.BytesPerEvent))
		}
	}
	d.ok("storage", "%s", strings.Join(parts, "; "))
}

func (d *doctor) checkProjections(ctx context.Context) {
	ps, err := queryProjections(ctx, d.pool, nil)
	if err != nil {
		d.cannot("projections", err)
		return
	}
	problems := 0
	// The inline dispatch is generated from the registry; a stale one calls the wrong handlers.
	var current bool
	err = d.pool.QueryRow(ctx, `SELECT annals_internal.dispatch_source() = p.prosrc FROM pg_catalog.pg_proc AS p
		WHERE p.oid = 'annals_internal.dispatch_inline()'::pg_catalog.regprocedure`).Scan(&current)
	switch {
	case err != nil:
		d.cannot("projections", err)
		problems++
	case !current:
		d.fail("projections", "the inline dispatch (annals_internal.dispatch_inline) does not match the registry; "+
			"regenerate it as annals_owner: SELECT annals_internal.sync_dispatch_trigger()")
		problems++
	}
	for _, p := range ps {
		switch {
		case p.State == "failing":
			fix := "fix the handler " + p.Handler + ", then annals projections rebuild " + shellQuote(p.Name)
			if p.Mode == "async" && p.DeadLetters > 0 {
				fix += fmt.Sprintf(" (it replays its %d parked event(s); list them: annals subscriptions dead-letters '$projection:%s')", p.DeadLetters, p.Name)
			}
			d.fail("projections", "%s is failing: %s; %s", p.Name, truncate(orDash(p.LastError), 200), fix)
		case p.State == "stale":
			d.fail("projections", "%s is stale: its last rebuild failed, so its tables are not a replay of history; fix the cause, then annals projections rebuild %s",
				p.Name, shellQuote(p.Name))
		case p.State == "incomplete":
			d.fail("projections", "%s is incomplete: it was registered (or changed) after matching events were stored, and its tables miss them; annals projections rebuild %s (SELECT annals.rebuild_projection(%s))",
				p.Name, shellQuote(p.Name), pgutil.QuoteLiteral(p.Name))
		case p.State == "disabled":
			d.warn("projections", "%s is disabled: SELECT annals.set_projection_enabled(%s, true), then annals projections rebuild %s",
				p.Name, pgutil.QuoteLiteral(p.Name), shellQuote(p.Name))
		case p.Mode == "async" && p.EventsBehind > 0 && p.SecondsBehind > 300:
			d.warn("projections", "%s is %s events (%s) behind: is annals worker running?", p.Name,
				behind(p.EventsBehind, true), formatAge(seconds(p.SecondsBehind)))
		default:
			continue
		}
		problems++
	}
	problems += d.checkTrust(ctx)
	if problems == 0 {
		if len(ps) == 0 {
			d.ok("projections", "none registered")
		} else {
			d.ok("projections", "%d registered, none failing, disabled or lagging; the inline dispatch matches them", len(ps))
		}
	}
}

// checkTrust reports registrations through which a role outside annals_owner could run code as
// annals_owner (annals_internal.trust_problems), and returns how many it found.
func (d *doctor) checkTrust(ctx context.Context) int {
	type problem struct{ Subject, Problem string }
	rows, err := d.pool.Query(ctx, "SELECT t.subject, t.problem FROM annals_internal.trust_problems() AS t")
	var ps []problem
	if err == nil {
		ps, err = pgx.CollectRows(rows, pgx.RowToStructByPos[problem])
	}
	switch {
	case errors.Is(annals.MapError(err), annals.ErrPermissionDenied):
		d.warn("projections", "could not check who owns the handlers, upcasters and projection tables: run annals doctor as a member of annals_owner")
		return 1
	case err != nil:
		d.cannot("projections", err)
		return 1
	}
	for _, p := range ps {
		d.fail("projections", "%s runs code others control: %s", p.Subject, p.Problem)
	}
	return len(ps)
}

func (d *doctor) checkDeadLetters(ctx context.Context) {
	rows, err := d.pool.Query(ctx, `
		SELECT d.subscription_name, count(*)
		  FROM annals.dead_letters AS d
		 WHERE d.status <> 'resolved'
		 GROUP BY d.subscription_name
		 ORDER BY d.subscription_name`)
	if err != nil {
		d.cannot("dead letters", err)
		return
	}
	type parked struct {
		Subscription string
		Count        int64
	}
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[parked])
	if err != nil {
		d.cannot("dead letters", err)
		return
	}
	for _, p := range ps {
		if name, ok := strings.CutPrefix(p.Subscription, "$projection:"); ok {
			d.warn("dead letters", "%d event(s) parked by projection %s: see annals subscriptions dead-letters %s; after fixing the handler, annals projections rebuild %s",
				p.Count, name, shellQuote(p.Subscription), shellQuote(name))
			continue
		}
		d.warn("dead letters", "%d event(s) parked by %s: see annals subscriptions dead-letters %s; after fixing the handler, annals subscriptions replay %s",
			p.Count, p.Subscription, shellQuote(p.Subscription), shellQuote(p.Subscription))
	}
	if len(ps) == 0 {
		d.ok("dead letters", "none waiting")
	}
}

func (d *doctor) checkViews(ctx context.Context) {
	vs, err := queryViews(ctx, d.pool)
	if err != nil {
		d.cannot("views", err)
		return
	}
	problems := 0
	for _, v := range vs {
		interval := seconds(v.IntervalSeconds)
		switch {
		case v.LastError != nil:
			d.fail("views", "%s fails to refresh: %s; fix the view's query or privileges, then annals views refresh --force", v.Name, truncate(*v.LastError, 200))
		case v.AgeSeconds == nil:
			d.warn("views", "%s was never refreshed: annals views refresh, and keep annals worker running", v.Name)
		case v.EventsBehind > 0 && seconds(*v.AgeSeconds) > 2*interval+time.Minute:
			d.warn("views", "%s is stale: refreshed %s ago, %s events behind, refresh interval %s: is annals worker running? (annals views refresh does it now)",
				v.Name, formatAge(seconds(*v.AgeSeconds)), behind(v.EventsBehind, true), formatAge(interval))
		default:
			continue
		}
		problems++
	}
	if problems == 0 {
		if len(vs) == 0 {
			d.ok("views", "no materialized views registered")
		} else {
			d.ok("views", "%d materialized view(s) fresh", len(vs))
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func firstFew(xs []string, n int) string {
	if len(xs) <= n {
		return strings.Join(xs, ", ")
	}
	return strings.Join(xs[:n], ", ") + fmt.Sprintf(", and %d more", len(xs)-n)
}

// checkRetention reports the retention rules and when annals.apply_retention last ran.
func (d *doctor) checkRetention(ctx context.Context) {
	st, err := d.client.RetentionStatus(ctx)
	if err != nil {
		d.cannot("retention", err)
		return
	}
	switch {
	case st.Rules == 0:
		d.ok("retention", "no rules")
	case st.LastRunAt.IsZero():
		d.warn("retention", "%d rule(s), never applied: schedule annals retention apply (or SELECT annals.apply_retention())", st.Rules)
	case !st.LastDone:
		d.warn("retention", "%d rule(s); the last run (%s ago) removed %d event(s) and stopped at its budget: more is due, run annals retention apply --all",
			st.Rules, time.Since(st.LastRunAt).Round(time.Second), st.LastRemoved)
	default:
		d.ok("retention", "%d rule(s); last applied %s ago, removed %d event(s)", st.Rules, time.Since(st.LastRunAt).Round(time.Second), st.LastRemoved)
	}
}

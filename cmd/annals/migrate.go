package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"text/tabwriter"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/shard"
	"github.com/annals-db/annals/migrations"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"
	"github.com/spf13/cobra"
)

func newMigrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate [--database-url URL] [--check]",
		Short: "Install or upgrade Annals in the database (idempotent; safe to run from several processes at once).",
		Long: `Install or upgrade Annals in the database (idempotent; safe to run from several processes at once).

Applies the versioned migrations, then re-applies the functions when they differ from this build's.
The login must be a superuser, or have CREATEROLE and CREATE on the database. Only a superuser
installs the history guard, which keeps other members of annals_owner from disabling the
append-only triggers; once it is installed, an upgrade that changes the history tables or their
triggers needs a superuser too (SQLSTATE ST401 otherwise). --check changes
nothing: it fails unless the installed schema version is the one this build expects.
On a sharded store's proxy it upgrades every shard of the proxy's map, then the proxy's routing
functions (see ` + "`annals shard`" + `). ` + "`annals migrate status`" + ` lists the applied migrations and whether the functions match.`,
		Args: noArgs,
	}
	db := addDatabaseFlag(cmd)
	check := cmd.Flags().Bool("check", false, "only verify the installed version; change nothing")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		pool, err := db.pool(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		if *check {
			if err := annals.New(pool, annals.ClientOptions{}).CheckSchema(ctx); err != nil {
				return err
			}
			fmt.Fprintf(out, "annals schema is at version %d, as this build expects\n", annals.SchemaVersion())
			return nil
		}
		if sharded, err := shard.IsProxy(ctx, pool); err != nil {
			return err
		} else if sharded {
			return migrateSharded(ctx, cmd, pool)
		}
		res, err := annals.Migrate(ctx, pool)
		if err != nil {
			return err
		}
		for _, a := range res.Applied {
			fmt.Fprintf(out, "applied %s\n", path.Base(a))
		}
		switch {
		case len(res.Applied) > 0:
			fmt.Fprintf(out, "annals migrated from version %d to %d and applied the functions\n", res.FromVersion, res.ToVersion)
		case res.FunctionsApplied:
			fmt.Fprintf(out, "annals is at version %d; re-applied the functions, which differed from this build's or lacked the history guard\n", res.ToVersion)
		default:
			fmt.Fprintf(out, "annals is up to date at version %d\n", res.ToVersion)
		}
		if !res.HistoryGuard {
			fmt.Fprintln(out, "note: the history guard is not installed, so members of annals_owner can disable the append-only "+
				"triggers and rewrite history; run annals migrate as a superuser to install it (see annals doctor)")
		}
		return annals.New(pool, annals.ClientOptions{}).CheckSchema(ctx)
	}
	cmd.AddCommand(newMigrateStatusCmd())
	return cmd
}

func newMigrateStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [--database-url URL]",
		Short: "List the applied and pending migrations and whether the installed functions match this build.",
		Long: `List the applied and pending migrations and whether the installed functions match this build.

Reads annals_internal.goose_db_version and annals_internal.schema_info, so it needs the owner's or a
superuser's login, like migrate itself. Changes nothing.`,
		Args: noArgs,
	}
	db := addDatabaseFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		pool, err := db.pool(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		return migrateStatus(ctx, pool, cmd.OutOrStdout())
	}
	return cmd
}

func migrateStatus(ctx context.Context, pool *pgxpool.Pool, out io.Writer) error {
	var installed bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", annals.VersionTable).Scan(&installed); err != nil {
		return err
	}
	applied := map[int64]time.Time{}
	if installed {
		rows, err := pool.Query(ctx, `
			SELECT DISTINCT ON (v.version_id) v.version_id, v.is_applied, v.tstamp
			  FROM `+annals.VersionTable+` AS v
			 ORDER BY v.version_id, v.id DESC`)
		if err != nil {
			return fmt.Errorf("read %s: %w", annals.VersionTable, err)
		}
		type row struct {
			Version   int64
			IsApplied bool
			At        time.Time
		}
		rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		if err != nil {
			return fmt.Errorf("read %s: %w", annals.VersionTable, err)
		}
		for _, r := range rs {
			if r.IsApplied && r.Version > 0 {
				applied[r.Version] = r.At
			}
		}
	}

	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	known := map[int64]bool{}
	var current int64
	pending := 0
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(out, "migrations:")
	for _, n := range names {
		v, err := goose.NumericComponent(n)
		if err != nil {
			return err
		}
		known[v] = true
		if at, ok := applied[v]; ok {
			current = max(current, v)
			fmt.Fprintf(tw, "  applied\t%s\t%s\n", formatTime(at), n)
		} else {
			pending++
			fmt.Fprintf(tw, "  pending\t\t%s\n", n)
		}
	}
	var unknown []int64
	for v := range applied {
		if !known[v] {
			unknown = append(unknown, v)
		}
	}
	sort.Slice(unknown, func(i, j int) bool { return unknown[i] < unknown[j] })
	for _, v := range unknown {
		current = max(current, v)
		fmt.Fprintf(tw, "  applied\t%s\tversion %d (not in this build: a newer release installed it)\n", formatTime(applied[v]), v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	want := annals.SchemaVersion()
	switch {
	case !installed || len(applied) == 0:
		fmt.Fprintf(out, "schema: not installed; this build expects version %d: run `annals migrate`\n", want)
	case len(unknown) > 0:
		fmt.Fprintf(out, "schema: version %d installed, newer than this build's %d: upgrade this annals binary\n", current, want)
	case pending > 0:
		fmt.Fprintf(out, "schema: version %d installed, %d migration(s) pending for this build's %d: run `annals migrate`\n", current, pending, want)
	default:
		fmt.Fprintf(out, "schema: version %d installed, as this build expects\n", current)
	}

	sum, err := annals.FunctionsChecksum()
	if err != nil {
		return err
	}
	var installedSum string
	var at time.Time
	err = pool.QueryRow(ctx, "SELECT s.functions_checksum, s.installed_at FROM annals_internal.schema_info AS s").Scan(&installedSum, &at)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || !installed:
		fmt.Fprintln(out, "functions: not installed: run `annals migrate`")
	case err != nil:
		return fmt.Errorf("read annals_internal.schema_info: %w", err)
	case installedSum == sum:
		fmt.Fprintf(out, "functions: match this build (checksum %s, applied %s)\n", sum[:12], formatTime(at))
	default:
		fmt.Fprintf(out, "functions: differ from this build (installed checksum %s, this build %s): run `annals migrate` to re-apply them\n",
			installedSum[:min(12, len(installedSum))], sum[:12])
	}
	return nil
}

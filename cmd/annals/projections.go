package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/annals-db/annals/internal/progress"
)

func newProjectionsCmd() *cobra.Command {
	return group("projections COMMAND", "List projections, show one's state and lag, rebuild, disable, enable or drop one.",
		`List projections, show one's state and lag, rebuild, disable, enable or drop one.

Projections are SQL handlers registered with annals.register_projection: inline ones run in every
appending transaction, async ones from the gap-free feed (annals worker runs them). list and status
read the annals.projections view; rebuild, enable, disable and drop call annals.rebuild_projection,
annals.set_projection_enabled and annals.drop_projection, which need the owner's or a superuser's login.`,
		newProjectionsListCmd(), newProjectionsStatusCmd(), newProjectionsRebuildCmd(),
		newProjectionsEnableCmd(), newProjectionsDisableCmd(), newProjectionsDropCmd())
}

// projectionMissing is the error for a projection name that is not registered.
func projectionMissing(name string) error {
	return notFound("projection %q does not exist (annals projections list shows them)", name)
}

// projectionRow is a row of the annals.projections view.
type projectionRow struct {
	Name          string     `db:"projection_name" json:"name"`
	Mode          string     `db:"mode" json:"mode"`
	Enabled       bool       `db:"enabled" json:"enabled"`
	State         string     `db:"state" json:"state"`
	Handler       string     `db:"handler" json:"handler"`
	Tables        []string   `db:"tables" json:"tables"`
	EventTypes    []string   `db:"event_types" json:"event_types"`
	Categories    []string   `db:"categories" json:"categories"`
	Checkpoint    *string    `db:"checkpoint" json:"checkpoint"`
	EventsBehind  int64      `db:"events_behind" json:"events_behind"`
	SecondsBehind float64    `db:"seconds_behind" json:"seconds_behind"`
	RebuildDone   *int64     `db:"rebuild_done" json:"rebuild_done"`
	RebuildTotal  *int64     `db:"rebuild_total" json:"rebuild_total"`
	DeadLetters   int64      `db:"dead_letters" json:"dead_letters"`
	LastError     *string    `db:"last_error" json:"last_error"`
	LastErrorAt   *time.Time `db:"last_error_at" json:"last_error_at"`
	RebuiltAt     *time.Time `db:"rebuilt_at" json:"rebuilt_at"`
	RebuiltEvents *int64     `db:"rebuilt_events" json:"rebuilt_events"`
}

func queryProjections(ctx context.Context, pool *pgxpool.Pool, name *string) ([]projectionRow, error) {
	return queryRows[projectionRow](ctx, pool, "annals.projections", `
		SELECT p.projection_name, p.mode, p.enabled, p.state, p.handler, p.tables, p.event_types, p.categories,
		       p.checkpoint_transaction::text || ':' || p.checkpoint_position::text AS checkpoint,
		       p.events_behind, coalesce(extract(epoch FROM p.time_behind), 0)::float8 AS seconds_behind,
		       p.rebuild_done, p.rebuild_total, p.dead_letters, p.last_error, p.last_error_at,
		       p.rebuilt_at, p.rebuilt_events
		  FROM annals.projections AS p
		 WHERE $1::text IS NULL OR p.projection_name = $1
		 ORDER BY p.projection_name`, name)
}

func newProjectionsListCmd() *cobra.Command {
	return newListCmd("List projections with mode, state, lag, dead letters and last error.",
		"one JSON object per projection and line", listing[projectionRow]{
			query: func(ctx context.Context, pool *pgxpool.Pool) ([]projectionRow, error) {
				return queryProjections(ctx, pool, nil)
			},
			empty:  "no projections; register one with SELECT annals.register_projection(...)",
			header: "NAME\tMODE\tSTATE\tEVENTS_BEHIND\tDEAD_LETTERS\tREBUILT_AT\tLAST_ERROR",
			row:    projectionLine,
		})
}

// projectionLine is a projection's table line; inline projections have no lag to show.
func projectionLine(p projectionRow) string {
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s\t%s", p.Name, p.Mode, p.State, behind(p.EventsBehind, p.Mode == "async"),
		p.DeadLetters, formatTimePtr(p.RebuiltAt), truncate(orDash(p.LastError), 60))
}

// behind prints a lag counted up to 100000 by the status views.
func behind(n int64, applies bool) string {
	switch {
	case !applies:
		return "-"
	case n >= 100000:
		return ">=100000"
	}
	return fmt.Sprint(n)
}

func newProjectionsStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status NAME [--json]",
		Short: "Show one projection: handler, tables, filters, state, lag, rebuild progress, last error.",
		Args:  exactArgs("NAME"),
	}
	db := addDatabaseFlag(cmd)
	asJSON := cmd.Flags().Bool("json", false, "print one JSON object")
	cmd.ValidArgsFunction = completeProjections(db)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		pool, err := db.pool(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		ps, err := queryProjections(ctx, pool, &args[0])
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			return projectionMissing(args[0])
		}
		p := ps[0]
		if *asJSON {
			return writeJSONLine(out, p)
		}
		tw := newTable(out)
		fmt.Fprintf(tw, "projection\t%s\n", p.Name)
		fmt.Fprintf(tw, "mode\t%s\n", p.Mode)
		fmt.Fprintf(tw, "state\t%s\n", p.State)
		fmt.Fprintf(tw, "handler\t%s\n", p.Handler)
		fmt.Fprintf(tw, "tables\t%s\n", strings.Join(p.Tables, ", "))
		fmt.Fprintf(tw, "event types\t%s\n", listOrAll(p.EventTypes))
		fmt.Fprintf(tw, "categories\t%s\n", listOrAll(p.Categories))
		if p.Mode == "async" {
			fmt.Fprintf(tw, "checkpoint\t%s\n", orDash(p.Checkpoint))
			fmt.Fprintf(tw, "behind\t%s events, %s\n", behind(p.EventsBehind, true), formatAge(time.Duration(p.SecondsBehind*float64(time.Second))))
		}
		if p.RebuildDone != nil && p.RebuildTotal != nil {
			fmt.Fprintf(tw, "rebuilding\t%d of %d events\n", *p.RebuildDone, *p.RebuildTotal)
		}
		fmt.Fprintf(tw, "rebuilt\t%s", formatTimePtr(p.RebuiltAt))
		if p.RebuiltEvents != nil {
			fmt.Fprintf(tw, " (%d events)", *p.RebuiltEvents)
		}
		fmt.Fprintln(tw)
		fmt.Fprintf(tw, "dead letters\t%d\n", p.DeadLetters)
		fmt.Fprintf(tw, "last error\t%s\n", orDash(p.LastError))
		if p.LastErrorAt != nil {
			fmt.Fprintf(tw, "last error at\t%s\n", formatTime(*p.LastErrorAt))
		}
		return tw.Flush()
	}
	return cmd
}

func listOrAll(xs []string) string {
	if len(xs) == 0 {
		return "all"
	}
	return strings.Join(xs, ", ")
}

func newProjectionsRebuildCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rebuild NAME",
		Short: "Rebuild a projection's tables from the whole history, without downtime, with a progress bar.",
		Long: `Rebuild a projection's tables from the whole history, without downtime, with a progress bar.

Runs annals.rebuild_projection(NAME) in one transaction: readers keep seeing the old rows until it
commits, and appends keep flowing. The progress bar (on stderr) comes from the rebuild's
progress, which annals.projections shows to every session. Needs the owner's or a superuser's login.`,
		Args: exactArgs("NAME"),
	}
	db := addDatabaseFlag(cmd)
	cmd.ValidArgsFunction = completeProjections(db)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		bar := progress.New(cmd.ErrOrStderr(), "rebuilding "+args[0])
		started := time.Now()
		n, err := client.RebuildProjection(ctx, args[0], bar.Update, 200*time.Millisecond)
		bar.Finish(err == nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "rebuilt %s from %d events in %s\n", args[0], n, progress.Duration(time.Since(started)))
		return nil
	}
	return cmd
}

func newProjectionsEnableCmd() *cobra.Command {
	return projectionSwitchCmd(true, `enable NAME`, "Enable a disabled projection again.",
		`Enable a disabled projection again (annals.set_projection_enabled(NAME, true)).

An async projection resumes from its checkpoint: annals worker catches it up. An inline one is
called again by the next append, but it missed every event appended while it was disabled: rebuild
it (annals projections rebuild NAME) to apply them. Needs the owner's or a superuser's login.`)
}

func newProjectionsDisableCmd() *cobra.Command {
	return projectionSwitchCmd(false, `disable NAME`, "Disable a projection: appends and the worker stop calling it.",
		`Disable a projection: appends and the worker stop calling it (annals.set_projection_enabled(NAME, false)).

Its tables stay as they are. An inline projection misses the events appended while disabled: once
enabled it is incomplete (when any were appended) until rebuilt; an async one keeps its checkpoint
and catches up once enabled. Needs the owner's or a superuser's login.`)
}

// projectionSwitchCmd is enable or disable: the same call with the other boolean.
func projectionSwitchCmd(enable bool, use, short, long string) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: exactArgs("NAME")}
	db := addDatabaseFlag(cmd)
	cmd.ValidArgsFunction = completeProjections(db)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		name := args[0]
		before, err := queryProjections(ctx, pool, &name)
		if err != nil {
			return err
		}
		if len(before) == 0 {
			return projectionMissing(name)
		}
		p := before[0]
		verb := map[bool]string{true: "enabled", false: "disabled"}[enable]
		if p.Enabled == enable {
			fmt.Fprintf(out, "%s is already %s; nothing changed\n", name, verb)
			return nil
		}
		if err := client.SetProjectionEnabled(ctx, name, enable); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s %s %s\n", verb, p.Mode, name)
		switch {
		case enable && p.Mode == "inline":
			after, err := queryProjections(ctx, pool, &name)
			if err == nil && len(after) == 1 && after[0].State == "incomplete" {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s missed the events appended while it was disabled and is incomplete; apply them with annals projections rebuild %s\n",
					name, shellQuote(name))
			}
		case enable:
			fmt.Fprintf(cmd.ErrOrStderr(), "note: annals worker catches %s up from its checkpoint\n", name)
		}
		return nil
	}
	return cmd
}

func newProjectionsDropCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drop NAME",
		Short: "Unregister a projection; its tables and handler stay.",
		Long: `Unregister a projection (annals.drop_projection(NAME)): appends and the worker stop calling it, and an
async projection's checkpoint and dead letters go with it. Its tables and handler function stay:
drop them yourself once nothing reads them. Exit code 3 when no projection has that name. Needs the
owner's or a superuser's login.`,
		Example: `  annals projections drop inventory_item_counts
  psql "$DATABASE_URL" -c 'DROP TABLE inventory.item_counts'`,
		Args: exactArgs("NAME"),
	}
	db := addDatabaseFlag(cmd)
	cmd.ValidArgsFunction = completeProjections(db)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		name := args[0]
		ps, err := queryProjections(ctx, pool, &name)
		if err != nil {
			return err
		}
		if err := client.DropProjection(ctx, name); err != nil {
			return err
		}
		what := "projection " + name
		if len(ps) == 1 {
			what = fmt.Sprintf("%s projection %s", ps[0].Mode, name)
		}
		fmt.Fprintf(out, "dropped %s\n", what)
		if len(ps) == 1 {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: its tables (%s) and handler %s stay; drop them when nothing reads them\n",
				strings.Join(ps[0].Tables, ", "), ps[0].Handler)
		}
		return nil
	}
	return cmd
}

// completeProjections completes projection names from the database, when it is reachable.
func completeProjections(db *dbFlag) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
		defer cancel()
		pool, err := db.pool(ctx, cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer pool.Close()
		rows, err := pool.Query(ctx, "SELECT p.projection_name FROM annals.projections AS p ORDER BY 1")
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

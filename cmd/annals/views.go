package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/progress"
)

func newViewsCmd() *cobra.Command {
	return group("views COMMAND", "Show the freshness of registered materialized views and refresh them.",
		`Show the freshness of registered materialized views and refresh them.

Views are registered with annals.register_view and refreshed CONCURRENTLY (readers never wait) by
annals.refresh_views, which annals worker calls on a schedule.`,
		newViewsListCmd(), newViewsRefreshCmd())
}

// viewRow is a row of annals.view_freshness.
type viewRow struct {
	Name            string     `db:"view_name" json:"view"`
	IntervalSeconds float64    `db:"interval_seconds" json:"refresh_interval_seconds"`
	RefreshedAt     *time.Time `db:"refreshed_at" json:"refreshed_at"`
	EventsBehind    int64      `db:"events_behind" json:"events_behind"`
	AgeSeconds      *float64   `db:"age_seconds" json:"age_seconds"`
	LastDurationMs  *float64   `db:"last_duration_ms" json:"last_duration_ms"`
	LastError       *string    `db:"last_error" json:"last_error"`
}

func queryViews(ctx context.Context, pool *pgxpool.Pool) ([]viewRow, error) {
	return queryRows[viewRow](ctx, pool, "annals.view_freshness", `
		SELECT v.view_name, extract(epoch FROM v.refresh_interval)::float8 AS interval_seconds, v.refreshed_at,
		       v.events_behind, extract(epoch FROM v.age)::float8 AS age_seconds,
		       (extract(epoch FROM v.last_duration) * 1000)::float8 AS last_duration_ms, v.last_error
		  FROM annals.view_freshness AS v
		 ORDER BY v.view_name`)
}

// noViewsHint is what list and refresh say when no view is registered.
const noViewsHint = "no materialized views registered; register one with SELECT annals.register_view(...)"

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func newViewsListCmd() *cobra.Command {
	return newListCmd("List registered materialized views: last refresh, age, events behind, last error.",
		"one JSON object per view and line", listing[viewRow]{
			query:  queryViews,
			empty:  noViewsHint,
			header: "VIEW\tINTERVAL\tREFRESHED_AT\tAGE\tEVENTS_BEHIND\tLAST_ERROR",
			row:    viewLine,
		})
}

// viewLine is a view's table line; a view never refreshed has no age.
func viewLine(v viewRow) string {
	age := "never"
	if v.AgeSeconds != nil {
		age = formatAge(seconds(*v.AgeSeconds))
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", v.Name, formatAge(seconds(v.IntervalSeconds)), formatTimePtr(v.RefreshedAt),
		age, behind(v.EventsBehind, true), truncate(orDash(v.LastError), 60))
}

func newViewsRefreshCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "refresh [--force]",
		Short: "Refresh the materialized views that are due (all with --force), CONCURRENTLY.",
		Long: `Refresh the materialized views that are due (all with --force), CONCURRENTLY.

A view is due when it was never refreshed, or new events arrived and its refresh interval passed.
Runs annals.refresh_views(force): the login needs annals_writer. Exit code 1 when a view failed.`,
		Args: noArgs,
	}
	db := addDatabaseFlag(cmd)
	force := cmd.Flags().Bool("force", false, "refresh every registered view, due or not")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var failed, total int
		err := runListing(cmd, db, false, listing[annals.ViewRefresh]{
			query: func(ctx context.Context, pool *pgxpool.Pool) ([]annals.ViewRefresh, error) {
				res, err := annals.New(pool, annals.ClientOptions{Tenant: tenantFlag(cmd)}).RefreshViews(ctx, *force)
				total = len(res)
				for _, r := range res {
					if r.Error != nil {
						failed++
					}
				}
				return res, err
			},
			empty:  noViewsHint,
			header: "VIEW\tRESULT\tDURATION\tERROR",
			row:    refreshLine,
		})
		if err != nil || failed == 0 {
			return err
		}
		return fmt.Errorf("%d of %d view(s) failed to refresh; the errors are above and in annals.view_freshness", failed, total)
	}
	return cmd
}

// refreshLine is a refresh result's table line: what happened to the view, and how long it took.
func refreshLine(r annals.ViewRefresh) string {
	result := "not due"
	switch {
	case r.Error != nil:
		result = "FAILED"
	case r.Refreshed:
		result = "refreshed"
	}
	dur := "-"
	if r.Duration != nil {
		dur = progress.Duration(*r.Duration)
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s", r.View, result, dur, orDash(r.Error))
}

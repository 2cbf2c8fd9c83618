package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
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
	rows, err := pool.Query(ctx, `
		SELECT v.view_name, extract(epoch FROM v.refresh_interval)::float8 AS interval_seconds, v.refreshed_at,
		       v.events_behind, extract(epoch FROM v.age)::float8 AS age_seconds,
		       (extract(epoch FROM v.last_duration) * 1000)::float8 AS last_duration_ms, v.last_error
		  FROM annals.view_freshness AS v
		 ORDER BY v.view_name`)
	if err != nil {
		return nil, fmt.Errorf("read annals.view_freshness: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[viewRow])
	if err != nil {
		return nil, fmt.Errorf("read annals.view_freshness: %w", err)
	}
	return out, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func newViewsListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List registered materialized views: last refresh, age, events behind, last error.",
		Args:  noArgs,
	}
	db := addDatabaseFlag(cmd)
	asJSON := cmd.Flags().Bool("json", false, "one JSON object per view and line")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		pool, err := db.pool(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		vs, err := queryViews(ctx, pool)
		if err != nil {
			return err
		}
		if *asJSON {
			for _, v := range vs {
				if err := writeJSONLine(out, v); err != nil {
					return err
				}
			}
			return nil
		}
		if len(vs) == 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "no materialized views registered; register one with SELECT annals.register_view(...)")
			return nil
		}
		tw := newTable(out)
		fmt.Fprintln(tw, "VIEW\tINTERVAL\tREFRESHED_AT\tAGE\tEVENTS_BEHIND\tLAST_ERROR")
		for _, v := range vs {
			age := "never"
			if v.AgeSeconds != nil {
				age = formatAge(seconds(*v.AgeSeconds))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, formatAge(seconds(v.IntervalSeconds)), formatTimePtr(v.RefreshedAt),
				age, behind(v.EventsBehind, true), truncate(orDash(v.LastError), 60))
		}
		return tw.Flush()
	}
	return cmd
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
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		res, err := client.RefreshViews(ctx, *force)
		if err != nil {
			return err
		}
		if len(res) == 0 {
			fmt.Fprintln(cmd.ErrOrStderr(), "no materialized views registered; register one with SELECT annals.register_view(...)")
			return nil
		}
		tw := newTable(out)
		fmt.Fprintln(tw, "VIEW\tRESULT\tDURATION\tERROR")
		failed := 0
		for _, r := range res {
			result := "not due"
			switch {
			case r.Error != nil:
				result = "FAILED"
				failed++
			case r.Refreshed:
				result = "refreshed"
			}
			dur := "-"
			if r.Duration != nil {
				dur = roundDur(*r.Duration)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.View, result, dur, orDash(r.Error))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d view(s) failed to refresh; the errors are above and in annals.view_freshness", failed, len(res))
		}
		return nil
	}
	return cmd
}

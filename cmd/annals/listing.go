package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
)

// listing is the output shape the list and status commands share: rows read in one go, printed as
// JSON lines with --json or as an aligned table under a header. Declaring only what differs keeps
// every such command printing, hinting and failing the same way.
type listing[T any] struct {
	// query reads the rows. A command for which no rows is an error (a name that does not exist)
	// returns that error from here.
	query func(ctx context.Context, pool *pgxpool.Pool) ([]T, error)
	// json is a row's --json form; nil writes the row itself (its json tags).
	json func(T) any
	// empty is the hint printed on stderr, instead of a bare header, when there are no rows.
	empty string
	// header is the table's first line, columns separated by tabs.
	header string
	// row is a row's table line, columns separated by tabs, without the newline.
	row func(T) string
}

// listingCmd makes cmd a listing command: it adds --database-url and --json (jsonHelp says what
// a line holds) and runs the listing build makes from the arguments, so that closures over flags
// and arguments see their parsed values. It returns the database flag for name completions.
func listingCmd[T any](cmd *cobra.Command, jsonHelp string, build func(args []string) listing[T]) *dbFlag {
	db := addDatabaseFlag(cmd)
	asJSON := cmd.Flags().Bool("json", false, jsonHelp)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return runListing(cmd, db, *asJSON, build(args))
	}
	return db
}

// newListCmd is a group's "list [--json]" command, which takes no arguments and prints l.
func newListCmd[T any](short, jsonHelp string, l listing[T]) *cobra.Command {
	cmd := &cobra.Command{Use: "list [--json]", Short: short, Args: noArgs}
	listingCmd(cmd, jsonHelp, func([]string) listing[T] { return l })
	return cmd
}

// runListing opens the database of db, reads l's rows and prints them on cmd's output.
func runListing[T any](cmd *cobra.Command, db *dbFlag, asJSON bool, l listing[T]) error {
	ctx := cmd.Context()
	pool, err := db.pool(ctx, cmd)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := l.query(ctx, pool)
	if err != nil {
		return err
	}
	return l.print(cmd, rows, asJSON)
}

// querier is what the listings read through: the command's pool, or a transaction that carries
// its tenant (inTenant).
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// inTenant runs fn on pool, or, when the command has a tenant (--tenant, ANNALS_TENANT), in a
// transaction of pool that carries it (set for that transaction only, so through a pooler too).
func inTenant[T any](ctx context.Context, cmd *cobra.Command, pool *pgxpool.Pool, fn func(q querier) (T, error)) (T, error) {
	tenant := tenantFlag(cmd)
	if tenant == "" {
		return fn(pool)
	}
	var zero T
	tx, err := pool.Begin(ctx)
	if err != nil {
		return zero, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, "SELECT pg_catalog.set_config('annals.tenant', $1, true)", tenant); err != nil {
		return zero, err
	}
	return fn(tx)
}

// queryRows reads sql's rows into T by column name (its db tags). Errors name the source read,
// since pgx's own do not say which of a command's reads failed.
func queryRows[T any](ctx context.Context, pool querier, source, sql string, args ...any) ([]T, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[T])
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	return out, nil
}

// print writes rows as JSON lines or as a table. With --json no rows prints nothing at all: its
// reader is a program, which an empty stream tells enough; a person gets the hint on stderr, so
// stdout stays empty for pipes either way.
func (l listing[T]) print(cmd *cobra.Command, rows []T, asJSON bool) error {
	out := cmd.OutOrStdout()
	if asJSON {
		for _, r := range rows {
			var v any = r
			if l.json != nil {
				v = l.json(r)
			}
			if err := writeJSONLine(out, v); err != nil {
				return err
			}
		}
		return nil
	}
	if len(rows) == 0 {
		fmt.Fprintln(cmd.ErrOrStderr(), l.empty)
		return nil
	}
	tw := newTable(out)
	fmt.Fprintln(tw, l.header)
	for _, r := range rows {
		fmt.Fprintln(tw, l.row(r))
	}
	return tw.Flush()
}

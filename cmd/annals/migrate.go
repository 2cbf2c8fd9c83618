package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgxpool"
)

func init() {
	register(command{
		name:    "migrate",
		summary: "Install or upgrade Annals in the database (idempotent; safe to run from several processes at once).",
		usage:   "[--database-url URL] [--check]",
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			url := databaseURL(fs)
			check := fs.Bool("check", false, "only verify the installed version; change nothing")
			return func(ctx context.Context, _ []string, out io.Writer) error {
				u, err := url()
				if err != nil {
					return err
				}
				pool, err := pgxpool.New(ctx, u)
				if err != nil {
					return err
				}
				defer pool.Close()
				if *check {
					if err := annals.New(pool).CheckSchema(ctx); err != nil {
						return err
					}
					fmt.Fprintf(out, "annals schema is at version %d, as this build expects\n", annals.SchemaVersion())
					return nil
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
					fmt.Fprintf(out, "annals is at version %d; re-applied the functions, which differed from this build's\n", res.ToVersion)
				default:
					fmt.Fprintf(out, "annals is up to date at version %d\n", res.ToVersion)
				}
				return annals.New(pool).CheckSchema(ctx)
			}
		},
	})
}

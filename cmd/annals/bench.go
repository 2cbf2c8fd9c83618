package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/annals-db/annals/internal/bench"
)

// bench is a thin wrapper: flags in, bench.Config out; the work is in internal/bench.
func init() {
	register(command{
		name:    "bench",
		summary: bench.Help(),
		usage:   "[--quick] [--scenarios a,b] [--duration 5s] [--clients 1,8,32] [--json] [--keep]",
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			var cfg bench.Config
			fs.StringVar(&cfg.DatabaseURL, "database-url", "", "server to measure (default $DATABASE_URL, else the local server)")
			fs.BoolVar(&cfg.Quick, "quick", false, "small sizes and short repetitions: the whole run takes about a minute")
			scenarios := fs.String("scenarios", "", "comma-separated scenarios to run (default: all but the opt-in ones; 'all' for every one)")
			fs.DurationVar(&cfg.Duration, "duration", 0, "length of one measured repetition (default 5s, quick 1s)")
			fs.IntVar(&cfg.Reps, "reps", 0, "measured repetitions per side (default 5, quick 2)")
			clients := fs.String("clients", "1,8,32", "client counts for the append scenario; the others use 8 (or the largest)")
			fs.IntVar(&cfg.FeedEvents, "feed-events", 0, "events feed-catchup pages through (default 1000000, quick 50000)")
			fs.BoolVar(&cfg.FullGrowth, "full-growth", false, "add the 10M-events step to the growth scenario (loads for minutes)")
			fs.StringVar(&cfg.Driver, "driver", "", "statement load generator: pgbench or go (default pgbench when installed)")
			fs.BoolVar(&cfg.Keep, "keep", false, "keep the scratch database")
			asJSON := fs.Bool("json", false, "print the results as a JSON array instead of a table")
			return func(ctx context.Context, args []string, out io.Writer) (err error) {
				if len(args) > 0 {
					return usageError{fmt.Sprintf("bench takes no arguments, got %q", args)}
				}
				if cfg.Clients, err = bench.ParseClients(*clients); err != nil {
					return usageError{"--clients: " + err.Error()}
				}
				cfg.Scenarios, cfg.Progress = bench.ParseList(*scenarios), os.Stderr
				b, err := bench.Open(ctx, cfg)
				if err != nil {
					return err
				}
				defer func() {
					if closeErr := b.Close(ctx); err == nil {
						err = closeErr
					}
					if name, conn := b.ScratchDatabase(); cfg.Keep {
						fmt.Fprintf(os.Stderr, "kept the scratch database %s: psql %q\n", name, conn)
					}
				}()
				settingsOut := out
				if *asJSON {
					settingsOut = os.Stderr // stdout carries only the JSON array
				}
				bench.WriteSettings(settingsOut, b.Settings())
				results, err := b.Run(ctx)
				if *asJSON {
					if jsonErr := bench.WriteJSON(out, results); err == nil {
						err = jsonErr
					}
					return err
				}
				bench.WriteTable(out, results)
				return err
			}
		},
	})
}

package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/annals-db/annals/internal/bench"
)

// newBenchCmd is a thin wrapper: flags in, bench.Config out; the work is in internal/bench.
func newBenchCmd() *cobra.Command {
	short, _, _ := strings.Cut(bench.Help(), "\n")
	var (
		cfg                bench.Config
		scenarios, clients string
		asJSON             bool
	)
	cmd := &cobra.Command{
		Use:   "bench [--quick] [--scenarios a,b] [--duration 5s] [--clients 1,8,32] [--json] [--keep]",
		Short: strings.TrimSpace(short),
		Long:  bench.Help(),
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			if cfg.Clients, err = bench.ParseClients(clients); err != nil {
				return usagef("--clients: %v", err)
			}
			cfg.Scenarios, cfg.Progress = bench.ParseList(scenarios), os.Stderr
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
			if asJSON {
				settingsOut = os.Stderr // stdout carries only the JSON array
			}
			bench.WriteSettings(settingsOut, b.Settings())
			results, err := b.Run(ctx)
			if asJSON {
				if jsonErr := bench.WriteJSON(out, results); err == nil {
					err = jsonErr
				}
				return err
			}
			bench.WriteTable(out, results)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DatabaseURL, "database-url", "", "server to measure (default $DATABASE_URL, else the local server)")
	f.BoolVar(&cfg.Quick, "quick", false, "small sizes and short repetitions: the whole run takes about a minute")
	f.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios to run (default: all but the opt-in ones; 'all' for every one)")
	f.DurationVar(&cfg.Duration, "duration", 0, "length of one measured repetition (default 5s, quick 1s)")
	f.IntVar(&cfg.Reps, "reps", 0, "measured repetitions per side (default 5, quick 2)")
	f.StringVar(&clients, "clients", "1,8,32", "client counts for the append scenario; the others use 8 (or the largest)")
	f.IntVar(&cfg.FeedEvents, "feed-events", 0, "events feed-catchup pages through (default 1000000, quick 50000)")
	f.BoolVar(&cfg.FullGrowth, "full-growth", false, "add the 10M-events step to the growth scenario (loads for minutes)")
	f.StringVar(&cfg.Driver, "driver", "", "statement load generator: pgbench or go (default pgbench when installed)")
	f.BoolVar(&cfg.Keep, "keep", false, "keep the scratch database")
	f.BoolVar(&asJSON, "json", false, "print the results as a JSON array instead of a table")
	return cmd
}

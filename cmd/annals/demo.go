package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/annals-db/annals/internal/demo"
)

func newDemoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo [--keep] [--database-url URL]",
		Short: "Play the inventory story against a scratch database, with the SQL of every step.",
		Long: `Play the inventory story against a scratch database, with the SQL of every step.

The story runs on the inventory domain of internal/inventory. Steps: an item is added and adjusted
with exact expected versions, an overdraw is rejected, two writers race (one gets ST409), a lost
reply is retried idempotently, the history, the state as of an earlier version or time and
stream_info are read back; then an inline projection updated inside the appending transaction, a
materialized view refreshed, a snapshot loaded with its tail, an old event upcast on read, a
subscription catching up, and a projection rebuilt. Each step checks its facts: a wrong one
stops the demo with an error.

PostgreSQL comes from --database-url or DATABASE_URL (a role that may create databases and roles;
the demo creates annals_demo_<random> there and drops it afterwards), else the local server
(127.0.0.1:5432, then the socket in /var/run/postgresql as postgres and as you), else, when
PostgreSQL's server binaries are installed, a throwaway cluster in a temporary directory that is
stopped and removed at the end (also on Ctrl-C).`,
		Args: noArgs,
	}
	u := cmd.Flags().String("database-url", "", "PostgreSQL server to use (default $DATABASE_URL, else a local or throwaway server)")
	keep := cmd.Flags().Bool("keep", false, "keep the scratch database (and a throwaway cluster) and print how to connect with psql")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		explicit, source := *u, "--database-url"
		if explicit == "" {
			explicit, source = os.Getenv("DATABASE_URL"), "DATABASE_URL"
		}
		return demo.Run(cmd.Context(), cmd.OutOrStdout(), explicit, source, *keep)
	}
	return cmd
}

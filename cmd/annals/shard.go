package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/shard"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
)

func newShardCmd() *cobra.Command {
	return group("shard", "Set up and inspect a sharded store: one PL/Proxy proxy database routing to N shard databases.",
		`Set up and inspect a sharded store: one PL/Proxy proxy database routing to N shard databases.

A sharded store's proxy database has the same annals.* stream calls as one node; PL/Proxy runs each
on the shard owning the stream (hashtext(stream_id) picks one of a fixed number of partitions). See
the README's "Scale-out (sharding)" section.`,
		newShardInitCmd(), newShardStatusCmd())
}

func newShardInitCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init --proxy URL --shard URL [--shard URL ...] [--name NAME ...] [--partitions N]",
		Short: "Install Annals on each shard and the routing functions and partition map on the proxy.",
		Long: `Install Annals on each shard and the routing functions and partition map on the proxy.

Each --shard is migrated like ` + "`annals migrate`" + ` (idempotent). The proxy gets the plproxy extension,
the annals.* routing functions and the map: --partitions hash partitions (a power of two, default 16,
fixed for the store's life) spread round-robin over the shards, in the order given. The proxy
connects to a shard with its URL minus user and password, as the role calling the proxy; give
passwords with CREATE USER MAPPING ... SERVER annals_shards. The proxy's login must be a superuser.
Running it again with the same shards changes nothing; another map is refused.`,
		Args: noArgs,
	}
	proxyURL := cmd.Flags().String("proxy", "", "the proxy database's URL (required)")
	shardURLs := cmd.Flags().StringArray("shard", nil, "a shard database's URL (repeat, in order)")
	names := cmd.Flags().StringArray("name", nil, "the shards' names, in the same order (default shard1, shard2, ...)")
	partitions := cmd.Flags().Int("partitions", shard.DefaultPartitions, "number of hash partitions (a power of two)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		if *proxyURL == "" || len(*shardURLs) == 0 {
			return usagef("--proxy and at least one --shard are required")
		}
		if len(*names) > 0 && len(*names) != len(*shardURLs) {
			return usagef("give one --name per --shard (%d names for %d shards)", len(*names), len(*shardURLs))
		}
		proxy, err := (&dbFlag{url: *proxyURL}).pool(ctx, cmd)
		if err != nil {
			return err
		}
		defer proxy.Close()
		var specs []shard.Shard
		for i, u := range *shardURLs {
			pool, err := (&dbFlag{url: u}).pool(ctx, cmd)
			if err != nil {
				return err
			}
			defer pool.Close()
			info, err := shard.Conninfo(u)
			if err != nil {
				return usagef("%v", err)
			}
			name := fmt.Sprintf("shard%d", i+1)
			if len(*names) > 0 {
				name = (*names)[i]
			}
			specs = append(specs, shard.Shard{Name: name, Pool: pool, Conninfo: info})
		}
		res, err := shard.Init(ctx, proxy, specs, shard.InitOptions{Partitions: *partitions})
		if err != nil {
			return err
		}
		for i, r := range res.Shards {
			fmt.Fprintf(out, "shard %d (%s): %s\n", i+1, specs[i].Name, describeMigrate(r))
		}
		if res.MapCreated {
			fmt.Fprintf(out, "proxy: %d partitions over %d shards, map created\n", res.Partitions, len(specs))
		} else {
			fmt.Fprintf(out, "proxy: %d partitions over %d shards, map unchanged\n", res.Partitions, len(specs))
		}
		return nil
	}
	return cmd
}

func newShardStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [--database-url PROXY_URL]",
		Short: "Show the partition map and whether the proxy reaches each shard, its schema version and feed head.",
		Args:  noArgs,
	}
	db := addDatabaseFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		pool, err := db.pool(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		health, err := shard.Status(ctx, pool)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "SHARD\tNAME\tPARTITIONS\tSTATE\tSCHEMA\tLAST POSITION")
		down := 0
		for _, h := range health {
			parts := make([]string, len(h.Partitions))
			for i, p := range h.Partitions {
				parts[i] = fmt.Sprint(p)
			}
			if h.Available {
				fmt.Fprintf(w, "%d\t%s\t%s\tup\t%d\t%d\n", h.Shard, h.Name, strings.Join(parts, ","), h.SchemaVersion, h.LastPosition)
			} else {
				down++
				fmt.Fprintf(w, "%d\t%s\t%s\tdown\t-\t-\n", h.Shard, h.Name, strings.Join(parts, ","))
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		for _, h := range health {
			if !h.Available {
				fmt.Fprintf(out, "shard %d: %s\n", h.Shard, h.Problem)
			}
		}
		if down > 0 {
			return fmt.Errorf("%d of %d shards unavailable", down, len(health))
		}
		return nil
	}
	return cmd
}

// describeMigrate is the one-line summary of one shard's migration, shorter than what
// `annals migrate` prints for a single database (it lists the files).
func describeMigrate(r annals.MigrateResult) string {
	switch {
	case len(r.Applied) > 0:
		return fmt.Sprintf("annals migrated from version %d to %d (%d migrations)", r.FromVersion, r.ToVersion, len(r.Applied))
	case r.FunctionsApplied:
		return fmt.Sprintf("annals is at version %d; re-applied the functions", r.ToVersion)
	}
	return fmt.Sprintf("annals is up to date at version %d", r.ToVersion)
}

// migrateSharded upgrades a sharded store from its proxy: every shard of the map (connecting with
// the proxy login's user and password unless the shard's conninfo has them), then the proxy.
func migrateSharded(ctx context.Context, cmd *cobra.Command, proxy *pgxpool.Pool) error {
	out := cmd.OutOrStdout()
	login := proxy.Config().ConnConfig
	res, err := shard.Migrate(ctx, proxy, func(ctx context.Context, conninfo string) (*pgxpool.Pool, error) {
		cfg, err := pgxpool.ParseConfig(conninfo)
		if err != nil {
			return nil, err
		}
		cfg.ConnConfig.User = login.User
		if !strings.Contains(conninfo, "password=") {
			cfg.ConnConfig.Password = login.Password
		}
		cfg.ConnConfig.RuntimeParams["application_name"] = cmd.CommandPath()
		return pgxpool.NewWithConfig(ctx, cfg)
	})
	infos, ierr := shard.Shards(ctx, proxy)
	for _, in := range infos {
		if r, ok := res.Shards[in.Name]; ok {
			fmt.Fprintf(out, "shard %d (%s): %s\n", in.Shard, in.Name, describeMigrate(r))
		}
	}
	if err != nil {
		return err
	}
	if ierr != nil {
		return ierr
	}
	if res.ProxyApplied {
		fmt.Fprintln(out, "proxy: re-applied the routing functions")
	} else {
		fmt.Fprintln(out, "proxy: routing functions up to date")
	}
	return annals.New(proxy, annals.ClientOptions{}).CheckSchema(ctx)
}

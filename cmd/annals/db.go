package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/connstr"
)

// dbFlag is a command's --database-url, resolved against DATABASE_URL when used.
type dbFlag struct{ url string }

// addDatabaseFlag registers --database-url on cmd.
func addDatabaseFlag(cmd *cobra.Command) *dbFlag {
	d := &dbFlag{}
	cmd.Flags().StringVar(&d.url, "database-url", "", "PostgreSQL connection URL (default $DATABASE_URL)")
	return d
}

// pool opens a pool to the configured database, named after the command in pg_stat_activity
// (application_name, unless the URL sets one) so operators can tell what a session is. The
// first connection is made at once: a wrong URL fails here, with a clear error.
func (d *dbFlag) pool(ctx context.Context, cmd *cobra.Command) (*pgxpool.Pool, error) {
	url, err := resolveDatabaseURL(d.url)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, usagef("bad database URL: %v", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = cmd.CommandPath()
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", connstr.Display(url), connstr.ShortErr(err))
	}
	return pool, nil
}

// client opens a pool and an Annals client over it. The caller closes the pool.
func (d *dbFlag) client(ctx context.Context, cmd *cobra.Command) (*annals.Client, *pgxpool.Pool, error) {
	pool, err := d.pool(ctx, cmd)
	if err != nil {
		return nil, nil, err
	}
	return annals.New(pool, annals.ClientOptions{Tenant: tenantFlag(cmd)}), pool, nil
}

// setTenantTx sets the command's tenant (if any) in tx, for the …Tx calls run in it.
func setTenantTx(ctx context.Context, cmd *cobra.Command, tx pgx.Tx) error {
	if t := tenantFlag(cmd); t != "" {
		return annals.SetTenant(ctx, tx, t)
	}
	return nil
}

// tenantFlag is the tenant the command runs as: --tenant, else $ANNALS_TENANT, else none.
func tenantFlag(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("tenant"); f != nil && f.Changed {
		return f.Value.String()
	}
	return os.Getenv("ANNALS_TENANT")
}

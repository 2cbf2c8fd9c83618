package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// newTenancyCmd groups the tenancy switch (M15): enable and status.
func newTenancyCmd() *cobra.Command {
	enable := &cobra.Command{
		Use:   "enable",
		Short: "Turn tenancy on: row-level security on the store's tables (a superuser, idempotent).",
		Long: `Turn tenancy on: row-level security on the store's tables (a superuser, idempotent).

Calls annals.enable_tenancy(). From then on a session sees only the streams of its tenant
(--tenant, ANNALS_TENANT, annals.set_tenant), or the untenanted ones when it sets none. It
changes the history tables: where the history guard is installed only a superuser may (ST401).`,
		Args: cobra.NoArgs,
	}
	enableDB := addDatabaseFlag(enable)
	enable.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		client, pool, err := enableDB.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		created, err := client.EnableTenancy(ctx)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintln(cmd.OutOrStdout(), "tenancy enabled")
		} else {
			fmt.Fprintln(cmd.OutOrStdout(), "tenancy was already enabled")
		}
		return nil
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Say whether tenancy is on and which tenant this command runs as.",
		Args:  cobra.NoArgs,
	}
	statusDB := addDatabaseFlag(status)
	status.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		client, pool, err := statusDB.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		on, err := client.TenancyEnabled(ctx)
		if err != nil {
			return err
		}
		tenant, err := client.CurrentTenant(ctx)
		if err != nil {
			return err
		}
		state := "off"
		if on {
			state = "on"
		}
		if tenant == "" {
			tenant = "(none)"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "tenancy: %s\ntenant:  %s\n", state, tenant)
		return nil
	}
	return group("tenancy", "Multi-tenancy: turn it on, see the current tenant.",
		"Multi-tenancy: turn it on, see the current tenant (README: Tenants).", enable, status)
}

// Package readmodels installs the inventory read models of the original guide into a database
// that has Annals: the current count per item (an inline projection into a hash-partitioned table)
// and the movements per day (a materialized view refreshed by annals.refresh_views). It is also the
// worked example of the privileges a projection needs.
package readmodels

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed 001_read_models.sql
var script string

// Install creates (or replaces) the inventory schema's read models and registers them, then
// rebuilds the projection from the events already stored. It must run as a superuser or as the
// owner of the inventory schema with membership in annals_owner; it is idempotent.
func Install(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("inventory read models: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, script); err != nil {
		return fmt.Errorf("inventory read models: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("inventory read models: %w", err)
	}
	if _, err := pool.Exec(ctx, "SELECT annals.rebuild_projection('inventory_item_counts')"); err != nil {
		return fmt.Errorf("inventory read models: rebuild: %w", err)
	}
	if _, err := pool.Exec(ctx, "SELECT annals.refresh_views(force => true)"); err != nil {
		return fmt.Errorf("inventory read models: refresh: %w", err)
	}
	return nil
}

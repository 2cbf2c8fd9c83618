package projections_test

import (
	"testing"

	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/stretchr/testify/require"
)

// annals_bi reads projection tables, materialized views and the public status views, and
// nothing else: no events, no function that reads streams or writes.
func TestBIRoleReadsReadModelsAndNothingElse(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := newInventoryModel()
	m.history(t, f, "a", 6)
	require.NoError(t, readmodels.Install(f.ctx, f.pool))
	refreshedThroughHeadAll(t, f)
	bi := loginRole(t, f, "annals_bi")

	for _, q := range []string{
		"SELECT count(*) FROM inventory.item_counts",
		"SELECT count(*) FROM inventory.movements_per_day",
		"SELECT count(*) FROM annals.projections",
		"SELECT count(*) FROM annals.view_freshness",
		"SELECT count(*) FROM annals.feed_blocker",
		"SELECT count(*) FROM annals.subscription_status",
		"SELECT count(*) FROM annals.dead_letters",
	} {
		var n int64
		require.NoError(t, bi.QueryRow(f.ctx, q).Scan(&n), q)
		if q == "SELECT count(*) FROM inventory.item_counts" {
			require.EqualValues(t, 6, n)
		}
		if q == "SELECT count(*) FROM annals.projections" || q == "SELECT count(*) FROM annals.view_freshness" {
			require.EqualValues(t, 1, n, q)
		}
	}
	// The rows BI sees are the real ones.
	var state string
	require.NoError(t, bi.QueryRow(f.ctx, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = 'inventory_item_counts'").Scan(&state))
	require.Equal(t, "active", state)

	for _, q := range []string{
		"SELECT count(*) FROM annals_internal.events",
		"SELECT count(*) FROM annals_internal.streams",
		"SELECT count(*) FROM annals_internal.projections",
		"SELECT count(*) FROM annals.read_stream('inventory-a001', NULL, 10) AS e",
		"SELECT count(*) FROM annals.read_all('0', 0, 10) AS e",
		`SELECT r.stream_version FROM annals.append_events('inventory-x', NULL, '[{"type": "ItemAdded"}]') AS r`,
		"SELECT annals.rebuild_projection('inventory_item_counts')",
		"SELECT annals.register_projection('x', 'inventory.project_item_counts(annals.event[])', ARRAY['inventory.item_counts']::regclass[])",
		"SELECT annals.set_projection_enabled('inventory_item_counts', false)",
		"SELECT annals.drop_projection('inventory_item_counts')",
		"SELECT annals.run_async_projections()",
		"SELECT count(*) FROM annals.refresh_views()",
		"SELECT annals.register_view('inventory.movements_per_day')",
		"INSERT INTO inventory.item_counts VALUES ('x', 'x', 1, 1, now())",
		"DELETE FROM inventory.item_counts",
		"REFRESH MATERIALIZED VIEW inventory.movements_per_day",
	} {
		_, err := bi.Exec(f.ctx, q)
		code := pgCode(t, err).Code
		require.Equal(t, "42501", code, "BI must not run: %s", q)
	}
	// Nothing changed.
	require.Equal(t, m.rows(), itemCounts(t, f))
}

package cold

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// storage_stats counts small tiers exactly (the other tests) and estimates a large hot tier from
// the table statistics instead of counting it: close to the count after ANALYZE, and following
// the table's growth by its pages before the next one.
func TestStorageStatsEstimatesALargeHotTier(t *testing.T) {
	t.Parallel()
	f := setup(t)
	load := func(from, to int) {
		f.exec(t, `
			INSERT INTO annals_internal.events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, transaction_id, recorded_at)
			SELECT 'big-' || (g % 1000), g / 1000 + 1, gen_random_uuid(), 'ItemsReceived', 1,
			       jsonb_build_object('sku', 'sku-' || (g % 97), 'quantity', g % 50), '{}', pg_current_xact_id(), now()
			  FROM generate_series($1::bigint, $2::bigint) AS g`, from, to-1)
	}
	hot := func() int64 {
		st, err := f.store.StorageStats(f.ctx)
		require.NoError(t, err)
		require.Equal(t, "hot", st[0].Tier)
		return st[0].Events
	}
	within := func(want, got int64, msg string) {
		t.Helper()
		require.InDelta(t, float64(want), float64(got), 0.05*float64(want), "%s: estimate %d, count %d", msg, got, want)
	}
	// No autovacuum here: an ANALYZE running while a load is in flight counts the new pages but
	// not their uncommitted rows, and the density (so the estimate) dips until the next one.
	f.exec(t, `DO $$ DECLARE p regclass; BEGIN
		FOR p IN SELECT relid FROM pg_partition_tree('annals_internal.events') WHERE isleaf LOOP
			EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = off)', p);
		END LOOP; END $$`)
	load(0, 150000)
	f.exec(t, "ANALYZE annals_internal.events")
	n := scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events")
	require.EqualValues(t, 150000, n)
	within(n, hot(), "after ANALYZE")
	load(150000, 200000)
	within(200000, hot(), "grown by a third since ANALYZE")
	// Estimated, not counted: the statistics say what the planner believes. Told the table
	// is twice as dense as it is, the figure doubles.
	f.exec(t, `UPDATE pg_catalog.pg_class SET reltuples = reltuples * 2
	            WHERE oid IN (SELECT relid FROM pg_partition_tree('annals_internal.events') WHERE isleaf)`)
	within(400000, hot(), "statistics doubled")
	// A partition without statistics (never analyzed): counted exactly.
	f.exec(t, `UPDATE pg_catalog.pg_class SET reltuples = -1 WHERE oid = 'annals_internal.events_p3'::regclass`)
	require.EqualValues(t, 200000, hot())
}

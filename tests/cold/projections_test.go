package cold

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Async projections and rebuilds replay cold history like hot: an async projection registered
// before the move, one registered after it (it starts from the beginning, through cold events),
// and a rebuild of each, all end with the same table as the all-hot run.
func TestProjectionsReplayColdHistory(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seed(t, f)
	f.exec(t, `
		CREATE SCHEMA s;
		CREATE TABLE s.seen_b (projection text NOT NULL, global_position bigint NOT NULL, stream_id text NOT NULL,
		                     stream_version bigint NOT NULL, event_type text NOT NULL, data jsonb NOT NULL);
		CREATE TABLE s.seen_a (projection text NOT NULL, global_position bigint NOT NULL, stream_id text NOT NULL,
		                     stream_version bigint NOT NULL, event_type text NOT NULL, data jsonb NOT NULL);
		CREATE FUNCTION s.apply_a(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			INSERT INTO s.seen_a SELECT 'a', e.global_position, e.stream_id, e.stream_version, e.event_type, e.data FROM unnest(events) AS e
		$fn$;
		CREATE FUNCTION s.apply_b(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			INSERT INTO s.seen_b SELECT 'b', e.global_position, e.stream_id, e.stream_version, e.event_type, e.data FROM unnest(events) AS e
		$fn$;
		GRANT USAGE ON SCHEMA s TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA s TO annals_owner;
		SELECT annals.register_projection('a', 's.apply_a(annals.event[])', ARRAY['s.seen_a']::regclass[],
		                                  ARRAY['ItemsShipped', 'PriceSet'], NULL, 'async');`)
	drain := func() {
		for i := 0; ; i++ {
			require.Less(t, i, 10000)
			n, err := f.store.RunAsyncProjections(f.ctx, 17)
			require.NoError(t, err)
			if n == 0 {
				return
			}
		}
	}
	seen := func(p string) string {
		return rowsText(t, f.ctx, f.pool, "SELECT global_position, stream_id, stream_version, event_type, data FROM s.seen_"+p+" ORDER BY global_position")
	}
	drain()
	hot := seen("a")
	require.NotEmpty(t, hot)

	// Part of the history moves, then all of it; projection b starts after.
	require.Positive(t, scalar[int64](t, f, "SELECT annals.compress_events('0', 200)"))
	f.exec(t, `SELECT annals.register_projection('b', 's.apply_b(annals.event[])', ARRAY['s.seen_b']::regclass[],
	                                             ARRAY['ItemsShipped', 'PriceSet'], NULL, 'async')`)
	require.Positive(t, scalar[int64](t, f, "SELECT annals.compress_events('0')"))
	drain()
	require.Equal(t, hot, seen("a"))
	require.Equal(t, hot, seen("b"), "a projection started on cold history sees what one on hot history saw")

	// Rebuilds read everything again, now cold.
	_, err := f.store.RebuildProjection(f.ctx, "a", nil, time.Second)
	require.NoError(t, err)
	require.Equal(t, hot, seen("a"))
	_, err = f.store.RebuildProjection(f.ctx, "b", nil, time.Second)
	require.NoError(t, err)
	require.Equal(t, hot, seen("b"))
}

package cold

import (
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
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

// A live rebuild pass leaves behind the transactions still running below its position
// ("skipped") and applies them in a later pass once they have ended. Events of such a
// transaction may have moved to cold storage in between: the re-read finds them there, merged
// with the hot ones of other skipped transactions, in feed order, across batches.
func TestSkippedTransactionsReReadFromColdStorage(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `
		CREATE SCHEMA s;
		CREATE TABLE s.seen (global_position bigint NOT NULL, transaction_id xid8 NOT NULL, stream_id text NOT NULL,
		                     stream_version bigint NOT NULL, event_type text NOT NULL, data jsonb NOT NULL);
		CREATE FUNCTION s.apply(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			INSERT INTO s.seen SELECT e.global_position, e.transaction_id, e.stream_id, e.stream_version, e.event_type, e.data
			  FROM unnest(events) AS e
		$fn$;
		GRANT USAGE ON SCHEMA s TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA s TO annals_owner;
		SELECT annals.register_projection('p', 's.apply(annals.event[])', ARRAY['s.seen']::regclass[],
		                                  ARRAY['ItemsReceived', 'ItemsShipped'], NULL, 'async');`)
	types := []string{"ItemsReceived", "ItemsShipped", "PriceSet"}
	appendTx := func(stream string, from, n int) uint64 {
		batch := make([]annals.EventData, n)
		for i := range batch {
			batch[i] = ev(types[(from+i)%3], from+i)
		}
		r, err := f.store.Append(f.ctx, stream, annals.Exact(int64(from)), batch...)
		require.NoError(t, err)
		return r.TransactionID
	}
	// Three transactions of interest among others: two whose events go cold, one that stays hot.
	appendTx("skip-1", 0, 3)
	cold1 := appendTx("skip-2", 0, 5)
	appendTx("skip-1", 3, 2)
	cold2 := appendTx("skip-3", 0, 7)
	appendTx("skip-2", 5, 4)
	waitBarrier(t, f)
	require.Positive(t, scalar[int64](t, f, "SELECT annals.compress_events('0')"))
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events"), "all history is cold")
	hot1 := appendTx("skip-1", 5, 6)
	waitBarrier(t, f)

	// What the re-read must apply: the three transactions' events of the projection's types, in
	// feed order (read through the public feed, which is checked hot vs cold elsewhere).
	want := rowsText(t, f.ctx, f.pool, `
		SELECT e.global_position, e.transaction_id, e.stream_id, e.stream_version, e.event_type, e.data
		  FROM annals.read_all('0', 0, 10000) AS e
		 WHERE e.transaction_id::text::bigint = ANY ($1) AND e.event_type IN ('ItemsReceived', 'ItemsShipped')
		 ORDER BY e.transaction_id, e.global_position`, []int64{int64(cold1), int64(cold2), int64(hot1)})
	require.Len(t, splitLines(want), 4+5+4, "events of the projection's types in the three transactions")

	for _, how := range []string{"live", "locked"} {
		f.exec(t, "DELETE FROM s.seen")
		// A pass positioned past everything, handed the three as skipped (ended since): only
		// the re-read applies anything, in batches of 2 (continuing across hot and cold rows).
		var applied int64
		var left []string
		require.NoError(t, f.pool.QueryRow(f.ctx, `
			SELECT r.applied, r.skipped::text[]
			  FROM annals_internal.projections AS p,
			       annals_internal.replay_projection(p, pg_snapshot_xmin(pg_current_snapshot()), 0, 2, $1, NULL, 0, 0,
			                                         ARRAY[$2::bigint, $3::bigint, $4::bigint]::text[]::xid8[]) AS r
			 WHERE p.projection_name = 'p'`, how, int64(cold1), int64(cold2), int64(hot1)).Scan(&applied, &left))
		require.EqualValues(t, 4+5+4, applied, how)
		require.Empty(t, left, "%s: every skipped transaction has ended and was applied", how)
		require.Equal(t, want, rowsText(t, f.ctx, f.pool,
			"SELECT global_position, transaction_id, stream_id, stream_version, event_type, data FROM s.seen ORDER BY transaction_id, global_position"), how)
	}
}

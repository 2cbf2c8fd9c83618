package cold

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The lag figures count cold history: a subscription or async projection whose checkpoint lies
// before compressed events shows the same events_behind as when they were hot (filters, aliases
// and consumer groups included, checkpoints inside a cold batch too), a time_behind that still
// counts from the oldest pending event, and 0 once caught up. annals.feed_head names the newest
// event, hot or cold.
func TestLagCountsColdEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seed(t, f)
	total := scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events")
	f.exec(t, `
		SELECT annals.create_subscription('all');
		SELECT annals.create_subscription('typed', 'beginning', ARRAY['ItemsShipped', 'PriceSet'], ARRAY['stock']);
		SELECT annals.create_subscription('group', 'beginning', NULL, NULL, 3);
		SELECT annals.create_subscription('mid');
		CREATE SCHEMA s;
		CREATE TABLE s.n (p text NOT NULL, n bigint NOT NULL);
		CREATE TABLE s.m (p text NOT NULL, n bigint NOT NULL);
		CREATE FUNCTION s.h(events annals.event[]) RETURNS void LANGUAGE sql AS
			$fn$ INSERT INTO s.n SELECT 'x', cardinality(events) $fn$;
		CREATE FUNCTION s.g(events annals.event[]) RETURNS void LANGUAGE sql AS
			$fn$ INSERT INTO s.m SELECT 'x', cardinality(events) $fn$;
		GRANT USAGE ON SCHEMA s TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON s.n, s.m TO annals_owner;
		SELECT annals.register_projection('pa', 's.h(annals.event[])', ARRAY['s.n']::regclass[], NULL, NULL, 'async');
		SELECT annals.register_projection('pf', 's.g(annals.event[])', ARRAY['s.m']::regclass[],
		                                  ARRAY['ItemsShipped'], ARRAY['order', 'stock'], 'async');`)
	// 'mid' takes 150 events: its checkpoint will lie inside a cold batch.
	ack := func(name string, member, n int) {
		f.exec(t, fmt.Sprintf(`
			WITH r AS (SELECT * FROM annals.read_subscription('%[1]s', %[2]d, %[3]d)),
			     last AS (SELECT r.transaction_id, r.global_position FROM r
			               ORDER BY r.transaction_id DESC, r.global_position DESC LIMIT 1)
			SELECT annals.ack_subscription('%[1]s', %[2]d, c.transaction_id, c.global_position,
			                               last.transaction_id, last.global_position)
			  FROM last, annals.subscription_checkpoint('%[1]s', %[2]d) AS c`, name, member, n))
	}
	ack("mid", 0, 150)
	waitBarrier(t, f)

	figures := func() string {
		return rowsText(t, f.ctx, f.pool, `
			SELECT subscription_name, member, events_behind, events_behind_capped FROM annals.subscription_status
			UNION ALL
			SELECT projection_name, NULL, events_behind, NULL FROM annals.projections
			ORDER BY 1, 2`)
	}
	oldest := func() string {
		return rowsText(t, f.ctx, f.pool, `
			SELECT subscription_name, member, time_behind > interval '0' FROM annals.subscription_status
			UNION ALL
			SELECT projection_name, NULL, time_behind > interval '0' FROM annals.projections
			ORDER BY 1, 2`)
	}
	timeBehind := func(name string) time.Duration {
		return scalar[time.Duration](t, f, `SELECT time_behind FROM annals.subscription_status WHERE subscription_name = $1 AND member = 0`, name)
	}
	head := func() string {
		return rowsText(t, f.ctx, f.pool, "SELECT last_position, last_recorded_at FROM annals.feed_head()")
	}
	hot, hotOldest, hotHead := figures(), oldest(), head()
	hotBehind := timeBehind("all")
	require.Equal(t, total, scalar[int64](t, f, "SELECT events_behind FROM annals.subscription_status WHERE subscription_name = 'all'"))
	require.Equal(t, total, scalar[int64](t, f, "SELECT events_behind FROM annals.projections WHERE projection_name = 'pa'"))
	require.NotContains(t, hotOldest, "false")

	// Part of the history, then all of it, moves: the figures stay.
	require.Positive(t, scalar[int64](t, f, "SELECT annals.compress_events('0', 200)"))
	require.Equal(t, hot, figures(), "some history cold")
	require.Equal(t, hotOldest, oldest())
	require.Equal(t, hotHead, head())
	require.Positive(t, scalar[int64](t, f, "SELECT annals.compress_events('0')"))
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events"))
	require.Equal(t, hot, figures(), "all history cold")
	require.Equal(t, hotOldest, oldest())
	require.Equal(t, hotHead, head(), "feed_head finds the newest event in cold storage")
	require.GreaterOrEqual(t, timeBehind("all"), hotBehind, "time_behind counts from the oldest cold event")
	require.Equal(t, total, scalar[int64](t, f, "SELECT events_behind FROM annals.subscription_status WHERE subscription_name = 'all'"))
	require.Equal(t, total, scalar[int64](t, f, "SELECT events_behind FROM annals.projections WHERE projection_name = 'pa'"))

	// Caught up: nothing behind.
	for _, sub := range []struct {
		name    string
		members int
	}{{"all", 1}, {"typed", 1}, {"group", 3}, {"mid", 1}} {
		for m := range sub.members {
			ack(sub.name, m, 100000)
		}
	}
	for i := 0; ; i++ {
		require.Less(t, i, 1000)
		n, err := f.store.RunAsyncProjections(f.ctx, 1000)
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	// (seed's own subscriptions, cold-*, stay where they are.)
	require.Equal(t, "", rowsText(t, f.ctx, f.pool, `
		SELECT x.* FROM (
			SELECT subscription_name AS name, events_behind, time_behind FROM annals.subscription_status
			 WHERE subscription_name NOT LIKE 'cold-%'
			UNION ALL SELECT projection_name, events_behind, time_behind FROM annals.projections) AS x
		 WHERE x.events_behind <> 0 OR coalesce(x.time_behind, interval '0') <> interval '0'`))
}

// A rebuild whose handler fails on a cold event names that event, as it does for a hot one.
func TestRebuildNamesFailingColdEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seed(t, f)
	waitBarrier(t, f)
	f.exec(t, `
		CREATE SCHEMA s;
		CREATE TABLE s.n (stream_id text NOT NULL, stream_version bigint NOT NULL);
		CREATE FUNCTION s.h(events annals.event[]) RETURNS void LANGUAGE plpgsql AS $fn$
		BEGIN
			IF EXISTS (SELECT FROM unnest(events) AS e WHERE e.stream_id = 'stock-4' AND e.stream_version = 77) THEN
				RAISE EXCEPTION 'cannot apply stock-4@77';
			END IF;
			INSERT INTO s.n SELECT e.stream_id, e.stream_version FROM unnest(events) AS e;
		END
		$fn$;
		GRANT USAGE ON SCHEMA s TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON s.n TO annals_owner;
		SELECT annals.register_projection('p', 's.h(annals.event[])', ARRAY['s.n']::regclass[], NULL, NULL, 'async');`)
	want := scalar[string](t, f, `SELECT format('failed at stock-4@77 (%s, position %s)', event_type, global_position)
	                                FROM annals_internal.events WHERE stream_id = 'stock-4' AND stream_version = 77`)

	_, err := f.store.RebuildProjection(f.ctx, "p", nil, time.Second)
	require.ErrorContains(t, err, want, "hot")
	require.Positive(t, scalar[int64](t, f, "SELECT annals.compress_events('0')"))
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events WHERE stream_id = 'stock-4'"))
	_, err = f.store.RebuildProjection(f.ctx, "p", nil, time.Second)
	require.ErrorContains(t, err, want, "cold")
}

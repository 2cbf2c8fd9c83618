package projections_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// createCategoryView creates v.per_category, a materialized view of events per category owned by
// annals_owner, whose refresh sleeps v.delay seconds (0 at first), and registers it.
func createCategoryView(t testing.TB, f fixture, interval string) {
	t.Helper()
	f.exec(t, `
		CREATE SCHEMA v;
		CREATE TABLE v.delay (seconds float8 NOT NULL);
		INSERT INTO v.delay VALUES (0);
		CREATE FUNCTION v.slow() RETURNS boolean LANGUAGE plpgsql AS $fn$
		BEGIN
			PERFORM pg_catalog.pg_sleep((SELECT d.seconds FROM v.delay AS d));
			RETURN true;
		END
		$fn$;
		CREATE MATERIALIZED VIEW v.per_category AS
		SELECT e.category, count(*) AS events, max(e.global_position) AS last_position
		  FROM annals_internal.events AS e
		 WHERE (SELECT v.slow())
		 GROUP BY e.category
		WITH NO DATA;
		CREATE UNIQUE INDEX per_category_key ON v.per_category (category);
		ALTER MATERIALIZED VIEW v.per_category OWNER TO annals_owner;
		GRANT USAGE ON SCHEMA v TO annals_owner;
		GRANT SELECT ON v.delay TO annals_owner;`)
	require.True(t, scalar[bool](t, f, "SELECT annals.register_view('v.per_category', $1::interval)", interval))
}

type freshness struct {
	RefreshedAt       *time.Time `db:"refreshed_at"`
	ThroughPosition   *int64     `db:"refreshed_through_position"`
	EventsBehind      int64      `db:"events_behind"`
	LastError         *string    `db:"last_error"`
	RefreshedInterval string     `db:"refresh_interval"`
}

func viewFreshness(t testing.TB, f fixture) freshness {
	t.Helper()
	var fr freshness
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT m.refreshed_at, m.refreshed_through_position, m.events_behind, m.last_error, m.refresh_interval::text
		FROM annals.view_freshness AS m WHERE m.view_name = 'v.per_category'`).
		Scan(&fr.RefreshedAt, &fr.ThroughPosition, &fr.EventsBehind, &fr.LastError, &fr.RefreshedInterval))
	return fr
}

// refresh calls annals.refresh_views through the Go API and returns whether v.per_category was refreshed.
func refresh(t testing.TB, f fixture, force bool) bool {
	t.Helper()
	res, err := f.store.RefreshViews(f.ctx, force)
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Equal(t, "v.per_category", res[0].View)
	require.Nil(t, res[0].Error)
	if res[0].Refreshed {
		require.NotNil(t, res[0].Duration)
	}
	return res[0].Refreshed
}

// refreshedThroughHead refreshes until the view is refreshed through the last event. A refresh
// sees every committed event at once (events_behind 0), but the feed position it records is the
// gap-free barrier, which a long transaction anywhere in the cluster holds back.
func refreshedThroughHead(t testing.TB, f fixture) {
	t.Helper()
	head := scalar[int64](t, f, "SELECT max(global_position) FROM annals_internal.events")
	eventually(t, 30*time.Second, "the view to be refreshed through the last event", func() bool {
		refresh(t, f, true)
		fr := viewFreshness(t, f)
		require.Zero(t, fr.EventsBehind, "a refresh sees every committed event")
		return fr.ThroughPosition != nil && *fr.ThroughPosition == head
	})
}

func perCategory(t testing.TB, f fixture) []string {
	t.Helper()
	return dump(t, f, "SELECT c.category, c.events FROM v.per_category AS c ORDER BY 1")
}

func TestMaterializedViewRefreshFreshnessAndSchedule(t *testing.T) {
	t.Parallel()
	f := setup(t)
	createCategoryView(t, f, "0")
	f.append(t, "acct-1", evs("Deposited", 3)...)
	f.append(t, "card-1", evs("Issued", 2)...)

	fr := viewFreshness(t, f)
	require.Nil(t, fr.RefreshedAt, "never refreshed")
	require.EqualValues(t, 5, fr.EventsBehind)
	_, err := f.pool.Exec(f.ctx, "SELECT count(*) FROM v.per_category")
	require.Equal(t, "55000", pgCode(t, err).Code, "not populated until the first refresh")

	require.True(t, refresh(t, f, false), "a never-refreshed view is due")
	refreshedThroughHead(t, f)
	require.Equal(t, []string{"acct 3", "card 2"}, perCategory(t, f))
	fr = viewFreshness(t, f)
	require.NotNil(t, fr.RefreshedAt)
	require.WithinDuration(t, time.Now(), *fr.RefreshedAt, time.Minute)
	require.Equal(t, scalar[int64](t, f, "SELECT max(global_position) FROM annals_internal.events"), *fr.ThroughPosition)
	require.Nil(t, fr.LastError)

	// Nothing new: not due, even with a zero interval.
	require.False(t, refresh(t, f, false))

	// Appends never refresh the view: it lags until refresh_views.
	res := f.append(t, "acct-1", evs("Withdrawn", 4)...)
	require.Equal(t, []string{"acct 3", "card 2"}, perCategory(t, f), "the append path does not refresh")
	require.EqualValues(t, 4, viewFreshness(t, f).EventsBehind)
	// Due (new events, zero interval) once they are below the barrier.
	eventually(t, 30*time.Second, "a due refresh", func() bool {
		refresh(t, f, false)
		fr := viewFreshness(t, f)
		return fr.ThroughPosition != nil && *fr.ThroughPosition == res.GlobalPosition
	})
	require.Zero(t, viewFreshness(t, f).EventsBehind)
	require.Equal(t, []string{"acct 7", "card 2"}, perCategory(t, f))

	// A long interval: new events do not make it due before the interval has passed; force does.
	require.False(t, scalar[bool](t, f, "SELECT annals.register_view('v.per_category', '1 hour')"), "re-registering updates")
	require.Equal(t, "01:00:00", viewFreshness(t, f).RefreshedInterval)
	f.append(t, "loan-1", ev("Granted", nil))
	require.False(t, refresh(t, f, false), "interval not elapsed")
	require.Equal(t, []string{"acct 7", "card 2"}, perCategory(t, f))
	refreshedThroughHead(t, f)
	require.Equal(t, []string{"acct 7", "card 2", "loan 1"}, perCategory(t, f))

	// Unregistered views are no longer refreshed.
	require.True(t, scalar[bool](t, f, "SELECT annals.unregister_view('v.per_category')"))
	require.False(t, scalar[bool](t, f, "SELECT annals.unregister_view('v.per_category')"))
	out, err := f.store.RefreshViews(f.ctx, true)
	require.NoError(t, err)
	require.Empty(t, out)
}

// REFRESH ... CONCURRENTLY takes EXCLUSIVE, which lets ACCESS SHARE readers through both ways.
func TestRefreshViewsNeverBlocksReaders(t *testing.T) {
	t.Parallel()
	f := setup(t)
	createCategoryView(t, f, "0")
	f.append(t, "acct-1", evs("Deposited", 3)...)
	refreshedThroughHead(t, f) // populated: later refreshes are CONCURRENTLY
	f.append(t, "acct-1", evs("Deposited", 2)...)
	old := []string{"acct 3"}

	// 1. A long read is running when the refresh starts: the refresh does not wait for it.
	readDone := make(chan []string, 1)
	readErr := make(chan error, 1)
	go func() {
		rows, err := f.pool.Query(f.ctx, "SELECT c.category || ' ' || c.events, pg_sleep(2)::text FROM v.per_category AS c ORDER BY 1")
		if err != nil {
			readErr <- err
			return
		}
		var got []string
		for rows.Next() {
			var s, sleep string
			if err := rows.Scan(&s, &sleep); err != nil {
				readErr <- err
				return
			}
			got = append(got, s)
		}
		if err := rows.Err(); err != nil {
			readErr <- err
			return
		}
		readDone <- got
	}()
	eventually(t, 10*time.Second, "the long read to start", func() bool {
		return scalar[bool](t, f, `SELECT EXISTS (SELECT FROM pg_stat_activity AS a
			WHERE a.datname = current_database() AND a.wait_event = 'PgSleep' AND a.query LIKE '%v.per_category%')`)
	})
	require.True(t, refresh(t, f, true))
	select {
	case got := <-readDone:
		t.Fatalf("the refresh waited for the reader (read returned %v first)", got)
	case err := <-readErr:
		require.NoError(t, err)
	default: // the refresh is done, the reader still sleeping
	}
	select {
	case got := <-readDone:
		require.Equal(t, old, got, "the reader saw its snapshot, the old content")
	case err := <-readErr:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not finish")
	}
	require.Equal(t, []string{"acct 5"}, perCategory(t, f))

	// 2. A slow refresh is running (its query sleeps 1.5 s under EXCLUSIVE): a reader starting now
	// gets the current content at once.
	f.exec(t, "UPDATE v.delay SET seconds = 1.5")
	f.append(t, "acct-1", evs("Deposited", 1)...)
	refreshDone := make(chan error, 1)
	go func() {
		_, err := f.store.RefreshViews(f.ctx, true)
		refreshDone <- err
	}()
	eventually(t, 10*time.Second, "the refresh to hold its lock", func() bool {
		return scalar[bool](t, f, `SELECT EXISTS (SELECT FROM pg_locks AS l
			WHERE l.relation = 'v.per_category'::regclass AND l.mode = 'ExclusiveLock' AND l.granted)`)
	})
	got := perCategory(t, f)
	select {
	case err := <-refreshDone:
		require.NoError(t, err)
		t.Fatal("the refresh finished before the read: nothing shown")
	default:
	}
	require.Equal(t, []string{"acct 5"}, got, "a reader during the refresh sees the previous content, unblocked")
	require.NoError(t, <-refreshDone)
	require.Equal(t, []string{"acct 6"}, perCategory(t, f))
}

// register_view explains what is wrong and how to fix it.
func TestRegisterViewRefusesUnsuitableViews(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `
		CREATE SCHEMA v;
		GRANT USAGE ON SCHEMA v TO annals_owner;
		CREATE MATERIALIZED VIEW v.no_index AS SELECT 1 AS k WITH NO DATA;
		ALTER MATERIALIZED VIEW v.no_index OWNER TO annals_owner;
		CREATE MATERIALIZED VIEW v.partial AS SELECT 1 AS k WITH NO DATA;
		CREATE UNIQUE INDEX ON v.partial (k) WHERE k > 0;
		ALTER MATERIALIZED VIEW v.partial OWNER TO annals_owner;
		CREATE MATERIALIZED VIEW v.expression AS SELECT 1 AS k WITH NO DATA;
		CREATE UNIQUE INDEX ON v.expression ((k + 1));
		ALTER MATERIALIZED VIEW v.expression OWNER TO annals_owner;
		CREATE MATERIALIZED VIEW v.foreign_owner AS SELECT 1 AS k WITH NO DATA;
		CREATE UNIQUE INDEX ON v.foreign_owner (k);
		CREATE VIEW v.plain AS SELECT 1 AS k;
		CREATE TABLE v.tbl (k integer PRIMARY KEY);
		CREATE MATERIALIZED VIEW v.good AS SELECT 1 AS k WITH NO DATA;
		CREATE UNIQUE INDEX ON v.good (k);
		ALTER MATERIALIZED VIEW v.good OWNER TO annals_owner;`)
	register := func(view string) error {
		_, err := f.pool.Exec(f.ctx, "SELECT annals.register_view($1::text::regclass, '1 minute')", view)
		return err
	}
	for _, view := range []string{"v.no_index", "v.partial", "v.expression"} {
		requireInvalid(t, register(view), view, "CONCURRENTLY", "CREATE UNIQUE INDEX ON "+view)
	}
	requireInvalid(t, register("v.plain"), "v.plain is not a materialized view")
	requireInvalid(t, register("v.tbl"), "v.tbl is not a materialized view")
	requireInvalid(t, register("v.foreign_owner"), "owned by postgres", "ALTER MATERIALIZED VIEW v.foreign_owner OWNER TO annals_owner")
	_, err := f.pool.Exec(f.ctx, "SELECT annals.register_view('v.good', '-1 minute')")
	requireInvalid(t, err, "refresh_interval")
	_, err = f.pool.Exec(f.ctx, "SELECT annals.register_view(NULL)")
	requireInvalid(t, err, "view")
	_, err = f.pool.Exec(f.ctx, "SELECT annals.register_view('v.missing')")
	require.Equal(t, "42P01", pgCode(t, err).Code)
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals.view_freshness"), "nothing registered by the failures")

	require.NoError(t, register("v.good"))
	require.Equal(t, []string{"v.good"}, dump(t, f, "SELECT m.view_name FROM annals.view_freshness AS m"))
}

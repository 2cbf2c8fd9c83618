package projections_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// createCounts creates schema s with s.counts (events and last version per stream) and registers
// it as the inline projection "counts" over the given categories (nil: all).
func createCounts(t testing.TB, f fixture, categories []string) {
	t.Helper()
	f.exec(t, `
		CREATE SCHEMA s;
		CREATE TABLE s.counts (
			stream_id    text   PRIMARY KEY,
			events       bigint NOT NULL,
			last_version bigint NOT NULL);
		CREATE FUNCTION s.count_events(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			INSERT INTO s.counts AS c (stream_id, events, last_version)
			SELECT e.stream_id, pg_catalog.count(*), pg_catalog.max(e.stream_version)
			  FROM pg_catalog.unnest(events) AS e
			 GROUP BY e.stream_id
			ON CONFLICT (stream_id) DO UPDATE
			   SET events = c.events + excluded.events,
			       last_version = greatest(c.last_version, excluded.last_version)
		$fn$;`)
	f.grantOwner(t, "s")
	f.register(t, projection{name: "counts", handler: "s.count_events(annals.event[])",
		tables: []string{"s.counts"}, categories: categories})
}

func TestInlineProjectionIsVisibleInTheAppendingTransaction(t *testing.T) {
	t.Parallel()
	f := setup(t)
	createCounts(t, f, nil)

	row := func(db pgx.Tx) (events, version int64, found bool) {
		err := db.QueryRow(f.ctx, "SELECT c.events, c.last_version FROM s.counts AS c WHERE c.stream_id = 'acct-1'").Scan(&events, &version)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, 0, false
		}
		require.NoError(t, err)
		return events, version, true
	}
	outside := func() int64 {
		return scalar[int64](t, f, "SELECT count(*) FROM s.counts AS c WHERE c.stream_id = 'acct-1'")
	}

	// Rolled back: the row is there inside the transaction, right after the append, and gone after.
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	_, err = f.store.AppendTx(f.ctx, tx, "acct-1", annals.NoStream, evs("Deposited", 3)...)
	require.NoError(t, err)
	events, version, found := row(tx)
	require.True(t, found, "the projection row is visible in the appending transaction before commit")
	require.EqualValues(t, 3, events)
	require.EqualValues(t, 3, version)
	require.Zero(t, outside(), "another transaction does not see it before commit")
	require.NoError(t, tx.Rollback(f.ctx))
	require.Zero(t, outside(), "gone after rollback")
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals.stream_info('acct-1') AS s"))

	// Committed: the same, and then everyone sees it; a second append in the same transaction
	// sees the first one's effect.
	tx, err = f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer tx.Rollback(f.ctx) //nolint:errcheck // no-op after commit
	_, err = f.store.AppendTx(f.ctx, tx, "acct-1", annals.NoStream, evs("Deposited", 2)...)
	require.NoError(t, err)
	_, err = f.store.AppendTx(f.ctx, tx, "acct-1", annals.Exact(2), evs("Withdrawn", 1)...)
	require.NoError(t, err)
	events, version, found = row(tx)
	require.True(t, found)
	require.EqualValues(t, 3, events)
	require.EqualValues(t, 3, version)
	require.NoError(t, tx.Commit(f.ctx))
	require.EqualValues(t, 1, outside())
	require.Equal(t, []string{"acct-1 3 3"}, dump(t, f, "SELECT c.stream_id, c.events, c.last_version FROM s.counts AS c ORDER BY 1"))
}

func TestPoisonEventAbortsTheAppend(t *testing.T) {
	t.Parallel()
	f := setup(t)
	createCounts(t, f, nil) // "counts" runs before "guard" (name order) and its writes must roll back too
	f.exec(t, `
		CREATE TABLE s.guard_owned (x integer);
		GRANT SELECT, INSERT, UPDATE, DELETE ON s.guard_owned TO annals_owner;
		CREATE FUNCTION s.guard(events annals.event[]) RETURNS void LANGUAGE plpgsql AS $fn$
		DECLARE
			e annals.event;
		BEGIN
			FOREACH e IN ARRAY events LOOP
				IF e.data ->> 'poison' = 'true' THEN
					RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = pg_catalog.format('poison event %s@%s', e.stream_id, e.stream_version);
				END IF;
			END LOOP;
		END
		$fn$;`)
	f.register(t, projection{name: "guard", handler: "s.guard(annals.event[])", tables: []string{"s.guard_owned"}})

	f.append(t, "acct-1", ev("Deposited", nil))
	eventsBefore := scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events")
	countsBefore := dump(t, f, "SELECT c.stream_id, c.events, c.last_version FROM s.counts AS c ORDER BY 1")
	require.Equal(t, []string{"acct-1 1 1"}, countsBefore)

	requirePoisoned := func(err error, stream string, version int) {
		t.Helper()
		pgErr := pgCode(t, err)
		require.Equal(t, "P0001", pgErr.Code, "the handler's SQLSTATE reaches the caller")
		require.Equal(t, fmt.Sprintf("poison event %s@%d", stream, version), pgErr.Message)
		// SQL clients see the projection in the CONTEXT, one line.
		require.Contains(t, pgErr.Where, `PL/pgSQL function annals_internal."inline projection guard"(annals.event[])`)
	}

	// An existing stream: a batch with a poison event in second place. Go names the projection.
	_, err := f.store.Append(f.ctx, "acct-1", annals.Exact(1), ev("Deposited", nil), ev("Deposited", map[string]any{"poison": true}))
	requirePoisoned(err, "acct-1", 3)
	var projErr *annals.ProjectionError
	require.ErrorAs(t, err, &projErr)
	require.Equal(t, "guard", projErr.Projection)
	require.Equal(t, `annals: append to "acct-1": inline projection "guard" failed: poison event acct-1@3 (SQLSTATE P0001)`, err.Error())
	require.EqualValues(t, 1, scalar[int64](t, f, "SELECT s.stream_version FROM annals.stream_info('acct-1') AS s"))

	// A new stream: it must not come into existence.
	_, err = f.store.Append(f.ctx, "acct-2", annals.NoStream, ev("Deposited", map[string]any{"poison": true}))
	requirePoisoned(err, "acct-2", 1)
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals.stream_info('acct-2') AS s"))
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals.read_stream('acct-2', NULL, 100) AS e"))

	// The same through SQL, in the caller's transaction: the transaction is aborted.
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(f.ctx, `SELECT r.stream_version FROM annals.append_events('acct-3', NULL, '[{"type": "Deposited", "data": {"poison": "true"}}]') AS r`)
	requirePoisoned(err, "acct-3", 1)
	_, err = tx.Exec(f.ctx, "SELECT 1")
	require.Equal(t, "25P02", pgCode(t, err).Code, "the caller's transaction is aborted")
	require.NoError(t, tx.Rollback(f.ctx))

	require.Equal(t, eventsBefore, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events"), "no event was written")
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.streams WHERE stream_id <> 'acct-1'"))
	require.Equal(t, countsBefore, dump(t, f, "SELECT c.stream_id, c.events, c.last_version FROM s.counts AS c ORDER BY 1"),
		"the projection that ran before the failing one is rolled back too")

	// The store keeps working for good events.
	f.append(t, "acct-1", ev("Deposited", map[string]any{"poison": false}))
	require.Equal(t, []string{"acct-1 2 2"}, dump(t, f, "SELECT c.stream_id, c.events, c.last_version FROM s.counts AS c ORDER BY 1"))
}

func TestInlineFiltersOrderAndOneDispatchPerStatement(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.createCallLog(t)
	// Registered out of name order: dispatch goes by name, not by registration.
	f.logProjection(t, "d_both", []string{"Deposited"}, []string{"acct"})
	f.logProjection(t, "c_all", nil, nil)
	f.logProjection(t, "b_categories", nil, []string{"acct", "loan"})
	f.logProjection(t, "a_types", []string{"Deposited", "Renamed"}, nil)

	type want struct {
		projection string
		n          int
		types      []string
		category   string
	}
	check := func(what string, wants []want) {
		t.Helper()
		calls := f.calls(t)
		require.Len(t, calls, len(wants), "%s: %+v", what, calls)
		for i, w := range wants {
			c := calls[i]
			require.Equal(t, w.projection, c.Projection, "%s: call %d", what, i)
			require.Equal(t, w.n, c.N, "%s: %s's batch size", what, c.Projection)
			require.Len(t, c.Types, c.N)
			for _, typ := range c.Types {
				require.Contains(t, w.types, typ, "%s: %s got a type it did not ask for", what, c.Projection)
			}
			for _, cat := range c.Categories {
				require.Equal(t, w.category, cat, "%s: %s", what, c.Projection)
			}
			for j := 1; j < len(c.Positions); j++ {
				require.Less(t, c.Positions[j-1], c.Positions[j], "%s: %s gets events in position order", what, c.Projection)
			}
		}
		f.exec(t, "DELETE FROM s.calls")
	}
	all := []string{"Deposited", "Withdrawn", "Renamed"}

	// One statement of 100 events: each handler runs once, with its share.
	batch := make([]annals.EventData, 100)
	for i := range batch {
		batch[i] = ev(all[i%2], map[string]any{"i": i}) // Deposited, Withdrawn, ...
	}
	f.append(t, "acct-1", batch...)
	check("100 events to acct", []want{
		{"a_types", 50, []string{"Deposited"}, "acct"},
		{"b_categories", 100, all, "acct"},
		{"c_all", 100, all, "acct"},
		{"d_both", 50, []string{"Deposited"}, "acct"},
	})

	// Another category: the category filters keep it out.
	f.append(t, "card-1", ev("Deposited", nil), ev("Withdrawn", nil), ev("Renamed", nil))
	check("card", []want{
		{"a_types", 2, []string{"Deposited", "Renamed"}, "card"},
		{"c_all", 3, all, "card"},
	})

	// Nothing matches but c_all: the others are not called at all (no empty batches).
	f.append(t, "card-2", ev("Withdrawn", nil))
	check("nothing matches", []want{{"c_all", 1, all, "card"}})

	// "acct" is a whole category, not a prefix; the second category of b's filter counts.
	f.append(t, "accts-1", ev("Withdrawn", nil))
	f.append(t, "loan-1", ev("Withdrawn", nil))
	check("acct is not a prefix", []want{
		{"c_all", 1, all, "accts"},
		{"b_categories", 1, all, "loan"},
		{"c_all", 1, all, "loan"},
	})

	// Two appends in one transaction are two statements: two dispatches, in the same transaction.
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	_, err = f.store.AppendTx(f.ctx, tx, "acct-2", annals.Any, evs("Deposited", 5)...)
	require.NoError(t, err)
	_, err = f.store.AppendTx(f.ctx, tx, "acct-3", annals.Any, evs("Deposited", 7)...)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(f.ctx))
	require.EqualValues(t, 1, scalar[int64](t, f, "SELECT count(DISTINCT c.txid) FROM s.calls AS c"))
	check("two appends in one transaction", []want{
		{"a_types", 5, all, "acct"}, {"b_categories", 5, all, "acct"}, {"c_all", 5, all, "acct"}, {"d_both", 5, all, "acct"},
		{"a_types", 7, all, "acct"}, {"b_categories", 7, all, "acct"}, {"c_all", 7, all, "acct"}, {"d_both", 7, all, "acct"},
	})

	// A disabled projection is skipped; enabled again it runs again (and missed what came between).
	f.exec(t, "SELECT annals.set_projection_enabled('b_categories', false)")
	f.append(t, "acct-4", ev("Withdrawn", nil))
	check("b disabled", []want{{"c_all", 1, all, "acct"}})
	f.exec(t, "SELECT annals.set_projection_enabled('b_categories', true)")
	f.append(t, "acct-4", ev("Withdrawn", nil))
	check("b enabled", []want{{"b_categories", 1, all, "acct"}, {"c_all", 1, all, "acct"}})

	// A replayed append (same ids, nothing inserted) dispatches nothing.
	replay := []annals.EventData{ev("Deposited", nil)}
	res := f.append(t, "acct-5", replay...)
	f.exec(t, "DELETE FROM s.calls")
	replay[0].ID = res.EventIDs[0]
	again := f.append(t, "acct-5", replay...)
	require.Equal(t, res.StreamVersion, again.StreamVersion)
	require.Empty(t, f.calls(t), "an idempotent replay hands no events to projections")
}

// A reader never sees half an append: the handler moves two counters in two statements and
// inserts one row per event; a reader's snapshot must see all of an append (events in the
// stream, both counters, the rows) or none of it.
func TestConcurrentReaderNeverSeesHalfAnAppend(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `
		CREATE SCHEMA s;
		CREATE TABLE s.totals (k text PRIMARY KEY, n bigint NOT NULL);
		INSERT INTO s.totals VALUES ('a', 0), ('b', 0);
		CREATE TABLE s.rows (stream_id text NOT NULL, stream_version bigint NOT NULL, batch integer NOT NULL,
		                     PRIMARY KEY (stream_id, stream_version));
		CREATE FUNCTION s.apply(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			UPDATE s.totals SET n = n + pg_catalog.cardinality(events) WHERE k = 'a';
			INSERT INTO s.rows (stream_id, stream_version, batch)
			SELECT e.stream_id, e.stream_version, pg_catalog.cardinality(events) FROM pg_catalog.unnest(events) AS e;
			SELECT pg_catalog.pg_sleep(0.002);  -- widen the window between the two counters
			UPDATE s.totals SET n = n + pg_catalog.cardinality(events) WHERE k = 'b';
		$fn$;`)
	f.grantOwner(t, "s")
	f.register(t, projection{name: "totals", handler: "s.apply(annals.event[])", tables: []string{"s.totals", "s.rows"}})

	const batch = 7
	streams := []string{"acct-w0", "acct-w1"}
	stop := make(chan struct{})
	var appended atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for _, stream := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.store.Append(f.ctx, stream, annals.Any, evs("Ticked", batch)...); err != nil {
					errs <- err
					return
				}
				appended.Add(1)
			}
		}()
	}

	type obs struct{ a, b, rows, streamEvents, versions, badBatches int64 }
	var snapshots, nonEmpty atomic.Int64
	reader := func(repeatable bool) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var o obs
			if repeatable {
				// One snapshot across statements, functions included: read_stream is read through SQL.
				err := pgx.BeginTxFunc(f.ctx, f.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
					if err := tx.QueryRow(f.ctx, "SELECT n FROM s.totals WHERE k = 'a'").Scan(&o.a); err != nil {
						return err
					}
					if err := tx.QueryRow(f.ctx, `SELECT (SELECT count(*) FROM annals.read_stream('acct-w0', NULL, 1000000) AS e)
					                                   + (SELECT count(*) FROM annals.read_stream('acct-w1', NULL, 1000000) AS e)`).Scan(&o.streamEvents); err != nil {
						return err
					}
					if err := tx.QueryRow(f.ctx, "SELECT count(*) FROM s.rows").Scan(&o.rows); err != nil {
						return err
					}
					if err := tx.QueryRow(f.ctx, `SELECT coalesce(sum(s.stream_version), 0) FROM annals.stream_info('acct-w0') AS s`).Scan(&o.versions); err != nil {
						return err
					}
					var v1 int64
					if err := tx.QueryRow(f.ctx, `SELECT coalesce(sum(s.stream_version), 0) FROM annals.stream_info('acct-w1') AS s`).Scan(&v1); err != nil {
						return err
					}
					o.versions += v1
					return tx.QueryRow(f.ctx, "SELECT n FROM s.totals WHERE k = 'b'").Scan(&o.b)
				})
				if err != nil {
					errs <- err
					return
				}
			} else {
				// A single statement reads one snapshot (plain tables only: functions would take their own).
				err := f.pool.QueryRow(f.ctx, `
					SELECT (SELECT n FROM s.totals WHERE k = 'a'), (SELECT n FROM s.totals WHERE k = 'b'),
					       (SELECT count(*) FROM s.rows),
					       (SELECT count(*) FROM annals_internal.events WHERE stream_id IN ('acct-w0', 'acct-w1')),
					       (SELECT coalesce(sum(stream_version), 0) FROM annals_internal.streams WHERE stream_id IN ('acct-w0', 'acct-w1')),
					       (SELECT count(*) FROM (SELECT r.stream_id FROM s.rows AS r GROUP BY r.stream_id HAVING count(*) % 7 <> 0) AS x)`).
					Scan(&o.a, &o.b, &o.rows, &o.streamEvents, &o.versions, &o.badBatches)
				if err != nil {
					errs <- err
					return
				}
			}
			if o.a != o.b || o.a != o.rows || o.a != o.streamEvents || o.a != o.versions || o.a%batch != 0 || o.badBatches != 0 {
				errs <- fmt.Errorf("half an append seen (repeatable read %v): %+v", repeatable, o)
				return
			}
			snapshots.Add(1)
			if o.a > 0 {
				nonEmpty.Add(1)
			}
		}
	}
	wg.Add(2)
	go reader(false)
	go reader(true)

	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d appends of %d events, %d consistent snapshots", appended.Load(), batch, snapshots.Load())
	require.Greater(t, appended.Load(), int64(10))
	require.Greater(t, nonEmpty.Load(), int64(10), "the readers ran while appends were happening")
	require.Equal(t, appended.Load()*batch, scalar[int64](t, f, "SELECT n FROM s.totals WHERE k = 'b'"))
}

package projections_test

import (
	"context"
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

// createLedger registers "ledger": two tables (balances per account, counts per event type),
// over category acct only, with a handler that depends on event order (last type, version).
func createLedger(t testing.TB, f fixture) {
	t.Helper()
	f.exec(t, `
		CREATE SCHEMA s;
		CREATE TABLE s.balances (
			account      text        PRIMARY KEY,
			balance      numeric     NOT NULL,
			deposits     integer     NOT NULL,
			withdrawals  integer     NOT NULL,
			last_version bigint      NOT NULL,
			last_type    text        NOT NULL,
			updated_at   timestamptz NOT NULL);
		CREATE TABLE s.type_counts (
			event_type     text   PRIMARY KEY,
			n              bigint NOT NULL,
			first_position bigint NOT NULL,
			last_position  bigint NOT NULL);
		CREATE FUNCTION s.ledger(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			INSERT INTO s.balances AS b (account, balance, deposits, withdrawals, last_version, last_type, updated_at)
			SELECT e.stream_id,
			       sum(CASE e.event_type WHEN 'Deposited' THEN (e.data ->> 'amount')::numeric
			                             WHEN 'Withdrawn' THEN -(e.data ->> 'amount')::numeric ELSE 0 END),
			       count(*) FILTER (WHERE e.event_type = 'Deposited'),
			       count(*) FILTER (WHERE e.event_type = 'Withdrawn'),
			       max(e.stream_version),
			       (array_agg(e.event_type ORDER BY e.stream_version DESC))[1],
			       max(e.recorded_at)
			  FROM unnest(events) AS e
			 GROUP BY e.stream_id
			ON CONFLICT (account) DO UPDATE
			   SET balance = b.balance + excluded.balance, deposits = b.deposits + excluded.deposits,
			       withdrawals = b.withdrawals + excluded.withdrawals, last_version = excluded.last_version,
			       last_type = excluded.last_type, updated_at = excluded.updated_at
			 WHERE b.last_version < excluded.last_version;
			INSERT INTO s.type_counts AS c (event_type, n, first_position, last_position)
			SELECT e.event_type, count(*), min(e.global_position), max(e.global_position)
			  FROM unnest(events) AS e
			 GROUP BY e.event_type
			ON CONFLICT (event_type) DO UPDATE
			   SET n = c.n + excluded.n, first_position = least(c.first_position, excluded.first_position),
			       last_position = greatest(c.last_position, excluded.last_position);
		$fn$;`)
	f.grantOwner(t, "s")
	f.register(t, projection{name: "ledger", handler: "s.ledger(annals.event[])",
		tables: []string{"s.balances", "s.type_counts"}, categories: []string{"acct"}})
}

func ledgerDump(t testing.TB, f fixture) []string {
	t.Helper()
	return append(
		dump(t, f, "SELECT b.account, b.balance, b.deposits, b.withdrawals, b.last_version, b.last_type, b.updated_at FROM s.balances AS b ORDER BY 1"),
		dump(t, f, "SELECT c.event_type, c.n, c.first_position, c.last_position FROM s.type_counts AS c ORDER BY 1")...)
}

func TestRebuildEqualsLiveTablesAndIsIdempotent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	createLedger(t, f)

	// A varied history: several streams, batch sizes, types, a category the projection ignores,
	// and a transaction appending to two streams.
	types := []string{"Deposited", "Withdrawn", "Deposited", "Renamed"}
	var acctEvents int64
	for i := range 60 {
		batch := make([]annals.EventData, 1+i%5)
		for j := range batch {
			typ := types[(i+j)%len(types)]
			batch[j] = ev(typ, map[string]any{"amount": fmt.Sprintf("%d.%02d", 1+i*j%97, (i+j)%100)})
		}
		stream := fmt.Sprintf("acct-%d", i%7)
		if i%6 == 5 {
			stream = fmt.Sprintf("audit-%d", i%3)
		} else {
			acctEvents += int64(len(batch))
		}
		f.append(t, stream, batch...)
	}
	err := pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := f.store.AppendTx(f.ctx, tx, "acct-1", annals.Any, ev("Withdrawn", map[string]any{"amount": "3.50"})); err != nil {
			return err
		}
		_, err := f.store.AppendTx(f.ctx, tx, "acct-9", annals.Any, ev("Deposited", map[string]any{"amount": "10"}), ev("Renamed", nil))
		return err
	})
	require.NoError(t, err)
	acctEvents += 3

	live := ledgerDump(t, f)
	require.Len(t, live, 8+3, "8 accounts, 3 event types")

	// Small batches cut the history in many places; the result must not depend on where.
	for _, batchSize := range []int{1, 3, 5000} {
		applied := scalar[int64](t, f, "SELECT annals.rebuild_projection('ledger', $1)", batchSize)
		require.Equal(t, acctEvents, applied, "batch size %d: only the projection's category is replayed", batchSize)
		require.Equal(t, live, ledgerDump(t, f), "batch size %d: rebuilt tables equal the live ones", batchSize)
	}
	// Through the Go API, twice: identical.
	n, err := f.store.RebuildProjection(f.ctx, "ledger", nil, 0)
	require.NoError(t, err)
	require.Equal(t, acctEvents, n)
	require.Equal(t, live, ledgerDump(t, f))
	n, err = f.store.RebuildProjection(f.ctx, "ledger", nil, 0)
	require.NoError(t, err)
	require.Equal(t, acctEvents, n)
	require.Equal(t, live, ledgerDump(t, f), "rebuilding twice gives identical tables")

	// Live appends after a rebuild keep the tables equal to a rebuild.
	f.append(t, "acct-2", ev("Deposited", map[string]any{"amount": "1"}), ev("Withdrawn", map[string]any{"amount": "2"}))
	live = ledgerDump(t, f)
	_, err = f.store.RebuildProjection(f.ctx, "ledger", nil, 0)
	require.NoError(t, err)
	require.Equal(t, live, ledgerDump(t, f))

	st, err := f.store.Projections(f.ctx)
	require.NoError(t, err)
	require.Len(t, st, 1)
	require.Equal(t, "active", st[0].State)
	require.NotNil(t, st[0].RebuiltAt)
	require.Equal(t, []string{"s.balances", "s.type_counts"}, st[0].Tables)
	require.Equal(t, []string{"acct"}, st[0].Categories)
	require.Nil(t, st[0].EventTypes)
	require.Nil(t, st[0].RebuildDone, "no rebuild running")
	require.Equal(t, acctEvents+2, scalar[int64](t, f, "SELECT p.rebuilt_events FROM annals.projections AS p WHERE p.projection_name = 'ledger'"))

	// Errors.
	_, err = f.store.RebuildProjection(f.ctx, "nope", nil, 0)
	require.ErrorIs(t, err, annals.ErrNotFound)
	_, err = f.pool.Exec(f.ctx, "SELECT annals.rebuild_projection('ledger', 0)")
	requireInvalid(t, err, "batch_size")
}

// A rebuild over 30k events takes ~2.5 s (the handler sleeps 80 µs per event while it runs in a
// rebuild). Meanwhile appends keep succeeding, a reader sees the old table until the switch,
// progress shows in annals.projections and through the Go callback, and afterwards the table
// equals a full replay, the events appended during the rebuild included.
func TestRebuildDuringAppends(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `
		CREATE SCHEMA s;
		CREATE TABLE s.counts (stream_id text PRIMARY KEY, events bigint NOT NULL, last_version bigint NOT NULL);
		CREATE FUNCTION s.count_events(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			SELECT pg_sleep(cardinality(events) * 0.00008) WHERE current_setting('application_name') LIKE 'annals rebuild %';
			INSERT INTO s.counts AS c (stream_id, events, last_version)
			SELECT e.stream_id, count(*), max(e.stream_version) FROM unnest(events) AS e GROUP BY e.stream_id
			ON CONFLICT (stream_id) DO UPDATE
			   SET events = c.events + excluded.events, last_version = greatest(c.last_version, excluded.last_version);
		$fn$;`)
	f.grantOwner(t, "s")
	f.register(t, projection{name: "counts", handler: "s.count_events(annals.event[])",
		tables: []string{"s.counts"}, categories: []string{"acct"}})

	// 30k events of history, applied inline as they are appended, plus events of other categories.
	const streams, perStream = 60, 500
	batch := make([]map[string]any, perStream)
	for i := range batch {
		batch[i] = map[string]any{"type": "Ticked", "data": map[string]any{"i": i}}
	}
	for i := range streams {
		f.appendJSON(t, fmt.Sprintf("acct-%d", i), batch)
		if i%10 == 0 {
			f.appendJSON(t, fmt.Sprintf("other-%d", i), batch[:50])
		}
	}
	// A marker row the handler never writes: present means "the old table", the rebuild deletes it.
	f.exec(t, "INSERT INTO s.counts VALUES ('$marker', 0, 0)")
	oldState := scalar[string](t, f, "SELECT md5(string_agg(c.stream_id || ':' || c.events || ':' || c.last_version, ',' ORDER BY c.stream_id)) FROM s.counts AS c")
	// mismatchSQL compares the table with a replay of the events in one snapshot (one statement).
	const mismatchSQL = `
		WITH replay AS (SELECT e.stream_id, count(*) AS events, max(e.stream_version) AS last_version
		                  FROM annals_internal.events AS e WHERE e.category = 'acct' GROUP BY e.stream_id),
		     live AS (SELECT c.stream_id, c.events, c.last_version FROM s.counts AS c WHERE c.stream_id <> '$marker')
		SELECT (SELECT count(*) FROM ((SELECT * FROM replay EXCEPT SELECT * FROM live)
		                              UNION ALL (SELECT * FROM live EXCEPT SELECT * FROM replay)) AS d)`
	require.Zero(t, scalar[int64](t, f, mismatchSQL), "the inline projection kept up with the history")

	var (
		wg          sync.WaitGroup
		errs        = make(chan error, 16)
		stop        = make(chan struct{})
		rebuilding  = make(chan struct{}) // closed when annals.projections first shows the rebuild
		rebuildDone atomic.Bool
		mu          sync.Mutex
		lastSeenAt  time.Time // last time the poller saw state 'rebuilding'
		samples     [][2]int64
		callbacks   [][2]int64
	)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}

	// Progress poller, on its own connection.
	wg.Add(1)
	go func() {
		defer wg.Done()
		once := sync.Once{}
		for !stopped() {
			var state string
			var done, total *int64
			err := f.pool.QueryRow(f.ctx, `SELECT p.state, p.rebuild_done, p.rebuild_total FROM annals.projections AS p
				WHERE p.projection_name = 'counts'`).Scan(&state, &done, &total)
			if err != nil {
				fail(err)
				return
			}
			if state == "rebuilding" {
				if done == nil || total == nil {
					fail(errors.New("state rebuilding without progress"))
					return
				}
				mu.Lock()
				samples = append(samples, [2]int64{*done, *total})
				lastSeenAt = time.Now()
				mu.Unlock()
				once.Do(func() { close(rebuilding) })
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()

	// Reader: every snapshot shows either the old table (marker, old content) or one that equals
	// the replay of the events in that same snapshot; never something in between.
	var oldReads, oldReadsWhileRebuilding, newReads atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stopped() {
			var marker bool
			var state string
			var mismatch int64
			err := f.pool.QueryRow(f.ctx, `SELECT EXISTS (SELECT FROM s.counts WHERE stream_id = '$marker'),
				(SELECT md5(string_agg(c.stream_id || ':' || c.events || ':' || c.last_version, ',' ORDER BY c.stream_id)) FROM s.counts AS c),
				(`+mismatchSQL+`)`).Scan(&marker, &state, &mismatch)
			if err != nil {
				fail(err)
				return
			}
			switch {
			case marker && state != oldState:
				fail(errors.New("a reader saw the old table changed during the rebuild"))
				return
			case marker:
				oldReads.Add(1)
				if !rebuildDone.Load() {
					select {
					case <-rebuilding:
						oldReadsWhileRebuilding.Add(1)
					default:
					}
				}
			case mismatch != 0:
				fail(fmt.Errorf("a reader saw a table differing from the replay in %d rows", mismatch))
				return
			default:
				newReads.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// Writers start once the rebuild is visibly running; each append records when it ended.
	type appendSpan struct{ start, end time.Time }
	var spansMu sync.Mutex
	var spans []appendSpan
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-rebuilding:
			case <-stop:
				return
			}
			for i := 0; !stopped(); i++ {
				start := time.Now()
				stream := fmt.Sprintf("acct-w%d", w)
				if i%4 == 3 {
					stream = fmt.Sprintf("acct-%d", i%streams) // also streams the rebuild is replaying
				}
				if _, err := f.store.Append(f.ctx, stream, annals.Any, evs("Ticked", 1+i%3)...); err != nil {
					fail(err)
					return
				}
				spansMu.Lock()
				spans = append(spans, appendSpan{start, time.Now()})
				spansMu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}

	rebuildStart := time.Now()
	applied, err := f.store.RebuildProjection(f.ctx, "counts", func(done, total int64) {
		mu.Lock()
		callbacks = append(callbacks, [2]int64{done, total})
		mu.Unlock()
	}, 100*time.Millisecond)
	rebuildEnd := time.Now()
	rebuildDone.Store(true)
	// A read after the switch (the reader may be slow to come round on a busy machine).
	eventually(t, 20*time.Second, "a read of the rebuilt table", func() bool { return err != nil || newReads.Load() > 0 })
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		require.NoError(t, e)
	}
	require.NoError(t, err)

	// Afterwards: exactly a full replay, including everything appended during the rebuild.
	require.Zero(t, scalar[int64](t, f, mismatchSQL), "the rebuilt table equals a full replay")
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM s.counts WHERE stream_id = '$marker'"))
	acct := scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events WHERE category = 'acct'")
	require.Equal(t, acct, scalar[int64](t, f, "SELECT sum(events)::bigint FROM s.counts"))
	require.GreaterOrEqual(t, applied, int64(streams*perStream))

	mu.Lock()
	defer mu.Unlock()
	spansMu.Lock()
	defer spansMu.Unlock()
	// Appends were not blocked for the rebuild's duration: several began after it started and
	// completed while annals.projections still showed it running.
	during := 0
	var maxLatency time.Duration
	for _, s := range spans {
		if s.start.After(rebuildStart) && s.end.Before(lastSeenAt) {
			during++
		}
		maxLatency = max(maxLatency, s.end.Sub(s.start))
	}
	t.Logf("rebuild of %d events took %v; %d appends in all, %d completed while it ran, slowest %v; reads: %d old (%d during), %d new; %d progress samples, %d callbacks",
		applied, rebuildEnd.Sub(rebuildStart), len(spans), during, maxLatency, oldReads.Load(), oldReadsWhileRebuilding.Load(), newReads.Load(), len(samples), len(callbacks))
	require.GreaterOrEqual(t, during, 5, "appends kept completing during the rebuild")
	require.GreaterOrEqual(t, oldReadsWhileRebuilding.Load(), int64(3), "the reader saw the old table while the rebuild ran")
	require.Positive(t, newReads.Load(), "the reader saw the new table after the switch")

	// Progress in annals.projections: the total counted at the start, done growing.
	require.GreaterOrEqual(t, len(samples), 3)
	for i, s := range samples {
		require.GreaterOrEqual(t, s[1], int64(streams*perStream), "rebuild_total")
		require.LessOrEqual(t, s[0], s[1])
		if i > 0 {
			require.GreaterOrEqual(t, s[0], samples[i-1][0], "rebuild_done never goes back")
		}
	}
	require.Greater(t, samples[len(samples)-1][0], samples[0][0], "rebuild_done grows")
	// And through the callback, ending with (applied, applied).
	require.GreaterOrEqual(t, len(callbacks), 3)
	for i := 1; i < len(callbacks); i++ {
		require.GreaterOrEqual(t, callbacks[i][0], callbacks[i-1][0])
	}
	require.Less(t, callbacks[0][0], callbacks[0][1], "a callback came while the rebuild was under way")
	require.Equal(t, [2]int64{applied, applied}, callbacks[len(callbacks)-1])

	// Back to normal: the state is active, no rebuild shows.
	st := scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = 'counts'")
	require.Equal(t, "active", st)
}

// Progress identifies the projection in application_name, which PostgreSQL cuts at 63 bytes and
// strips of non-ASCII: a long or non-ASCII name must still show its own progress, and a rebuild
// in another database of the cluster must not show up here. The handler waits at a gate before
// each batch of the rebuild, so the test sees every step whatever the machine's load.
func TestRebuildProgressWithLongNameAndOtherDatabases(t *testing.T) {
	t.Parallel()
	const name = "stock_levels_per_warehouse_and_item_über_alles_123456789" // 57 bytes
	mk := func() fixture {
		f := setup(t)
		f.exec(t, `
			CREATE SCHEMA s;
			CREATE TABLE s.t (stream_id text PRIMARY KEY, n bigint NOT NULL);
			CREATE TABLE s.gate (n bigint NOT NULL);
			INSERT INTO s.gate VALUES (0);
			CREATE SEQUENCE s.batches;
			CREATE FUNCTION s.h(events annals.event[]) RETURNS void LANGUAGE plpgsql AS $fn$
			DECLARE
				k bigint;
			BEGIN
				IF current_setting('application_name') LIKE 'annals rebuild %' THEN
					k := nextval('s.batches');
					WHILE (SELECT g.n FROM s.gate AS g) < k LOOP
						PERFORM pg_sleep(0.01);
					END LOOP;
				END IF;
				INSERT INTO s.t AS t SELECT e.stream_id, count(*) FROM unnest(events) AS e GROUP BY 1
				ON CONFLICT (stream_id) DO UPDATE SET n = t.n + excluded.n;
			END
			$fn$;`)
		f.grantOwner(t, "s")
		f.register(t, projection{name: name, handler: "s.h(annals.event[])", tables: []string{"s.t"}})
		f.register(t, projection{name: name[:20], handler: "s.h(annals.event[])", tables: []string{"s.t"}}.withTable(t, f, "s.t2"))
		for i := range 40 {
			f.append(t, fmt.Sprintf("acct-%d", i%4), ev("Ticked", nil))
		}
		return f
	}
	f, other := mk(), mk()

	done := make(chan error, 1)
	go func() {
		_, err := f.pool.Exec(f.ctx, "SELECT annals.rebuild_projection($1, 2)", name) // 20 batches of 2
		done <- err
	}()
	type row struct {
		Name  string `db:"projection_name"`
		State string `db:"state"`
		Done  *int64 `db:"rebuild_done"`
		Total *int64 `db:"rebuild_total"`
	}
	status := func(f fixture) map[string]row {
		rows, err := f.pool.Query(f.ctx, "SELECT p.projection_name, p.state, p.rebuild_done, p.rebuild_total FROM annals.projections AS p")
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
		require.NoError(t, err)
		m := map[string]row{}
		for _, r := range out {
			m[r.Name] = r
		}
		return m
	}
	for batch := int64(0); batch <= 2; batch++ {
		f.exec(t, "UPDATE s.gate SET n = $1", batch) // lets batches up to this one through
		eventually(t, 20*time.Second, fmt.Sprintf("progress %d/40", 2*batch), func() bool {
			select {
			case err := <-done:
				t.Fatalf("the rebuild ended early: %v", err)
			default:
			}
			r := status(f)[name]
			return r.State == "rebuilding" && r.Done != nil && *r.Done == 2*batch
		})
		m := status(f)
		require.EqualValues(t, 40, *m[name].Total)
		require.Equal(t, "active", m[name[:20]].State, "a projection whose name is a prefix of this one is not rebuilding")
		require.Equal(t, "active", status(other)[name].State, "nor is the same projection in another database")
	}
	f.exec(t, "UPDATE s.gate SET n = 1000")
	require.NoError(t, <-done)
	require.Equal(t, "active", status(f)[name].State)
	require.Equal(t, []string{"acct-0 10", "acct-1 10", "acct-2 10", "acct-3 10"}, dump(t, f, "SELECT t.stream_id, t.n FROM s.t AS t ORDER BY 1"))
}

// withTable returns p owning a new table like s.t (a table belongs to one projection only).
func (p projection) withTable(t testing.TB, f fixture, table string) projection {
	t.Helper()
	f.exec(t, fmt.Sprintf("CREATE TABLE %[1]s (LIKE s.t INCLUDING ALL); GRANT SELECT, INSERT, UPDATE, DELETE ON %[1]s TO annals_owner", table))
	p.tables = []string{table}
	return p
}

// A rebuild that fails (here: statement_timeout) releases the projection: appends apply it inline
// again and another rebuild repairs it. While a rebuild runs, inline dispatch skips the projection
// and leaves those events to the rebuild; when the rebuild fails they are in no table, so the
// skipping appends record themselves and annals.projections says 'stale' until a rebuild succeeds.
func TestFailedRebuildReleasesTheProjection(t *testing.T) {
	t.Parallel()
	f := setup(t)
	slowCounts(t, f, "inline", 0.2)
	for range 10 {
		f.append(t, "acct-1", ev("Ticked", nil))
	}
	conn, err := f.pool.Acquire(f.ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(f.ctx, "SET statement_timeout = '1s'")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(f.ctx, "SELECT annals.rebuild_projection('counts', 1)") // 10 × 0.2 s: times out
		done <- err
	}()
	eventually(t, 10*time.Second, "the rebuild", func() bool {
		return scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = 'counts'") == "rebuilding"
	})
	f.append(t, "acct-1", ev("Ticked", nil)) // skipped by dispatch: the rebuild owns the projection
	require.Equal(t, "57014", pgCode(t, <-done).Code)
	_, err = conn.Exec(f.ctx, "RESET statement_timeout")
	require.NoError(t, err)
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM pg_locks AS l WHERE l.locktype = 'advisory' AND l.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())"), "no lock left behind")
	require.EqualValues(t, 10, scalar[int64](t, f, "SELECT c.events FROM s.counts AS c WHERE c.stream_id = 'acct-1'"),
		"the skipped event is in no table")
	require.Equal(t, "stale", scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = 'counts'"),
		"a projection that missed events says so")

	// The same connection's next append applies the projection inline again.
	_, err = conn.Exec(f.ctx, `SELECT r.stream_version FROM annals.append_events('acct-2', NULL, '[{"type": "Ticked"}]') AS r`)
	require.NoError(t, err)
	require.EqualValues(t, 1, scalar[int64](t, f, "SELECT c.events FROM s.counts AS c WHERE c.stream_id = 'acct-2'"))
	// A rebuild that completes repairs everything.
	f.exec(t, "CREATE OR REPLACE FUNCTION s.count_events(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$"+`
		INSERT INTO s.counts AS c (stream_id, events, last_version)
		SELECT e.stream_id, count(*), max(e.stream_version) FROM unnest(events) AS e GROUP BY e.stream_id
		ON CONFLICT (stream_id) DO UPDATE SET events = c.events + excluded.events, last_version = greatest(c.last_version, excluded.last_version)
		$fn$`)
	f.exec(t, "SELECT annals.rebuild_projection('counts')")
	require.Zero(t, countsMismatch(t, f))
	require.Equal(t, "active", scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = 'counts'"))
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.projection_skips"), "a successful rebuild clears the skips")
}

// At commit PostgreSQL releases a transaction's table locks before its advisory locks. Appends
// blocked by the rebuild's final SHARE lock go on at once: they must find the projection free
// and apply it themselves, or their events are in no table. Many short rebuilds under steady
// appends hit that moment.
func TestRebuildBoundaryDoesNotDropAppends(t *testing.T) {
	t.Parallel()
	f := setup(t)
	slowCounts(t, f, "inline", 0)
	for i := range 8 {
		f.append(t, fmt.Sprintf("acct-%d", i), evs("Ticked", 50)...)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := f.store.Append(f.ctx, fmt.Sprintf("acct-w%d", w), annals.Any, ev("Ticked", nil)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for round := range 30 {
		// A longer attempt at the last step's lock than the default 50 ms: on a starved machine
		// an append can take longer than that, and six appenders flat out would then keep the
		// rebuild from finishing (README, "Rebuilds without downtime"). This test is about
		// where the rebuild ends, not how fast it gets there.
		_, err := f.pool.Exec(f.ctx, `BEGIN; SET LOCAL annals.rebuild_lock_timeout = '2s';
			SELECT annals.rebuild_projection('counts', 100); COMMIT`)
		require.NoError(t, err)
		if m := countsMismatch(t, f); m != 0 {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("round %d: the table differs from a replay in %d rows right after the rebuild (%d once appends stopped)",
				round, m, countsMismatch(t, f))
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Zero(t, countsMismatch(t, f))
}

// slowCounts registers inline (or async) projection "counts" over category acct whose handler
// sleeps perEvent seconds per event, but only inside a rebuild.
func slowCounts(t testing.TB, f fixture, mode string, perEvent float64) {
	t.Helper()
	f.exec(t, fmt.Sprintf(`
		CREATE SCHEMA s;
		CREATE TABLE s.counts (stream_id text PRIMARY KEY, events bigint NOT NULL, last_version bigint NOT NULL);
		CREATE FUNCTION s.count_events(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			SELECT pg_sleep(cardinality(events) * %g) WHERE current_setting('application_name') LIKE 'annals rebuild %%';
			INSERT INTO s.counts AS c (stream_id, events, last_version)
			SELECT e.stream_id, count(*), max(e.stream_version) FROM unnest(events) AS e GROUP BY e.stream_id
			ON CONFLICT (stream_id) DO UPDATE
			   SET events = c.events + excluded.events, last_version = greatest(c.last_version, excluded.last_version);
		$fn$;`, perEvent))
	f.grantOwner(t, "s")
	f.register(t, projection{name: "counts", handler: "s.count_events(annals.event[])",
		tables: []string{"s.counts"}, categories: []string{"acct"}, mode: mode})
}

// countsMismatch is how many rows of s.counts differ from a replay of the acct events.
func countsMismatch(t testing.TB, f fixture) int64 {
	t.Helper()
	return scalar[int64](t, f, `
		WITH replay AS (SELECT e.stream_id, count(*) AS events, max(e.stream_version) AS last_version
		                  FROM annals_internal.events AS e WHERE e.category = 'acct' GROUP BY e.stream_id),
		     live AS (SELECT c.stream_id, c.events, c.last_version FROM s.counts AS c)
		SELECT count(*) FROM ((SELECT * FROM replay EXCEPT SELECT * FROM live)
		                      UNION ALL (SELECT * FROM live EXCEPT SELECT * FROM replay)) AS d`)
}

// startRebuild runs annals.rebuild_projection in the background and waits until
// annals.projections shows it; the returned channel yields its result.
func startRebuild(t testing.TB, f fixture, name string, batchSize int) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := f.pool.Exec(f.ctx, "SELECT annals.rebuild_projection($1, $2)", name, batchSize)
		done <- err
	}()
	eventually(t, 20*time.Second, "the rebuild to start", func() bool {
		select {
		case err := <-done:
			done <- err
			return true
		default:
		}
		return scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = $1", name) == "rebuilding"
	})
	return done
}

// Transaction ids are cluster-wide: a write transaction left open in another database must not
// push the rebuild's work into its final step, which stops appends.
func TestRebuildIsNotHeldBackByAnOlderTransactionElsewhere(t *testing.T) {
	t.Parallel()
	f, elsewhere := setup(t), setup(t)
	slowCounts(t, f, "inline", 0.0003)

	older, err := elsewhere.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer older.Rollback(f.ctx) //nolint:errcheck
	_, err = older.Exec(f.ctx, "SELECT pg_current_xact_id()")
	require.NoError(t, err)

	// 2000 events younger than that transaction: ~0.6 s of rebuild.
	batch := make([]map[string]any, 200)
	for i := range batch {
		batch[i] = map[string]any{"type": "Ticked"}
	}
	for i := range 10 {
		f.appendJSON(t, fmt.Sprintf("acct-%d", i), batch)
	}
	done := startRebuild(t, f, "counts", 100)
	var completed int
	var slowest time.Duration
	for rebuilding := true; rebuilding; {
		select {
		case err := <-done:
			require.NoError(t, err)
			rebuilding = false
		default:
			start := time.Now()
			f.append(t, "acct-live", ev("Ticked", nil))
			slowest = max(slowest, time.Since(start))
			if scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = 'counts'") == "rebuilding" {
				completed++ // and the rebuild is still running after it
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("%d appends completed while the rebuild ran; slowest %v", completed, slowest)
	require.GreaterOrEqual(t, completed, 5, "appends kept completing during the rebuild")
	require.Zero(t, countsMismatch(t, f))
	require.NoError(t, older.Rollback(f.ctx))
}

// A transaction that appends while the rebuild runs and commits after the rebuild has passed its
// transaction id (younger transactions committed first) is still applied, exactly once.
func TestRebuildAppliesTransactionsThatCommitBehindItsPosition(t *testing.T) {
	t.Parallel()
	f := setup(t)
	slowCounts(t, f, "inline", 0.05)
	for i := range 4 {
		f.appendJSON(t, fmt.Sprintf("acct-%d", i), []map[string]any{{"type": "Ticked"}, {"type": "Ticked"}, {"type": "Ticked"}, {"type": "Ticked"}, {"type": "Ticked"}})
	}
	done := startRebuild(t, f, "counts", 2) // 20 events: ~1 s

	// A appends first (older id) and stays open; B appends after it and commits.
	a, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer a.Rollback(f.ctx) //nolint:errcheck
	_, err = f.store.AppendTx(f.ctx, a, "acct-a", annals.NoStream, evs("Ticked", 3)...)
	require.NoError(t, err)
	f.append(t, "acct-b", evs("Ticked", 2)...)

	// The rebuild replays B, then waits at its final step for A (which holds the events table).
	eventually(t, 20*time.Second, "the rebuild to wait for A", func() bool { return rebuildWaiting(t, f) })
	require.NoError(t, a.Commit(f.ctx))
	require.NoError(t, <-done)
	require.Zero(t, countsMismatch(t, f), "A's events are applied once, B's too")
	require.EqualValues(t, 3, scalar[int64](t, f, "SELECT c.events FROM s.counts AS c WHERE c.stream_id = 'acct-a'"))
}

// An async projection's checkpoint is a gap-free feed position: a rebuild must not move it past a
// transaction that is still running and appends after the rebuild.
func TestAsyncRebuildDoesNotSkipOlderTransactions(t *testing.T) {
	t.Parallel()
	f := setup(t)
	slowCounts(t, f, "async", 0)
	for i := range 5 {
		f.append(t, fmt.Sprintf("acct-%d", i), evs("Ticked", 2)...)
	}
	drainAsync(t, f)

	older, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer older.Rollback(f.ctx)                               //nolint:errcheck
	_, err = older.Exec(f.ctx, "SELECT pg_current_xact_id()") // older than what follows
	require.NoError(t, err)
	f.append(t, "acct-young", evs("Ticked", 3)...)

	n, err := f.store.RebuildProjection(f.ctx, "counts", nil, 0)
	require.NoError(t, err)
	require.EqualValues(t, 10, n, "the rebuild stops at the running older transaction")

	_, err = f.store.AppendTx(f.ctx, older, "acct-old", annals.NoStream, evs("Ticked", 4)...)
	require.NoError(t, err)
	require.NoError(t, older.Commit(f.ctx))
	drainAsync(t, f)
	require.Zero(t, countsMismatch(t, f), "the older transaction's events are applied, exactly once")
}

// drainAsync runs annals.run_async_projections until no projection is behind.
func drainAsync(t testing.TB, f fixture) {
	t.Helper()
	eventually(t, 30*time.Second, "async projections to catch up", func() bool {
		_, err := f.store.RunAsyncProjections(f.ctx, 0)
		require.NoError(t, err)
		return scalar[int64](t, f, "SELECT coalesce(sum(p.events_behind), 0)::bigint FROM annals.projections AS p") == 0
	})
}

// A registry change to a projection while it is being rebuilt queues behind the rebuild (or the
// rebuild behind it) instead of deadlocking. The registry change locks the projection's row and
// then, to regenerate the dispatch, the events table; the rebuild's last step must take them in
// the same order.
func TestRegistryChangeDuringRebuildDoesNotDeadlock(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.createCallLog(t)
	f.logProjection(t, "p", nil, nil)
	f.append(t, "acct-1", evs("X", 3)...)

	// The first half of a registry change: the projection's row is locked.
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(f.ctx, "SELECT FROM annals_internal.projections WHERE projection_name = 'p' FOR UPDATE")
	require.NoError(t, err)

	rebuilt := make(chan error, 1)
	go func() {
		_, err := f.pool.Exec(f.ctx, "SELECT annals.rebuild_projection('p')")
		rebuilt <- err
	}()
	eventually(t, 10*time.Second, "the rebuild to wait for the projection's row", func() bool {
		return waitingOnLock(t, f, "rebuild_projection('p')") == 1
	})
	// The second half: the change regenerates the dispatch, which locks the events table.
	_, err = tx.Exec(f.ctx, "SELECT annals.set_projection_enabled('p', false)")
	require.NoError(t, err, "no deadlock with the waiting rebuild")
	require.NoError(t, tx.Commit(f.ctx))
	require.NoError(t, <-rebuilt)
}

// Dropping a projection while it is rebuilt and an append skips it: the append must not wait for
// the drop (which waits for the append's hold on the events table), so noting a skip takes no
// lock on the registry.
func TestDropDuringRebuildWithSkippingAppend(t *testing.T) {
	t.Parallel()
	f := setup(t)
	slowCounts(t, f, "inline", 0.01)
	f.append(t, "acct-1", evs("Ticked", 100)...)
	rebuilt := startRebuild(t, f, "counts", 10) // ~1 s of handler sleeps

	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(f.ctx, "SELECT FROM annals_internal.projections WHERE projection_name = 'counts' FOR UPDATE")
	require.NoError(t, err)

	appended := make(chan error, 1)
	go func() {
		_, err := f.store.Append(f.ctx, "acct-2", annals.Any, ev("Ticked", nil))
		appended <- err
	}()
	// It skips the projection and returns, or it waits on a lock: on the registry row.
	var appendErr error
	eventually(t, 30*time.Second, "the skipping append to finish", func() bool {
		select {
		case appendErr = <-appended:
			return true
		default:
		}
		require.Zero(t, waitingOnLock(t, f, "append_events"), "the skipping append waits for the projection's registry row")
		return false
	})
	require.NoError(t, appendErr)
	require.EqualValues(t, 1, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.projection_skips WHERE projection_name = 'counts'"),
		"the append skipped the projection under rebuild")
	_, err = tx.Exec(f.ctx, "SELECT annals.drop_projection('counts')")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(f.ctx))
	require.NoError(t, <-rebuilt)
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.projection_skips"), "the dropped projection leaves no skips")
}

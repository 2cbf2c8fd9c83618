package replicas_test

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// Reads served by the standby: a stream, stream info, the feed; the Go client reads from it by
// default and from the primary when asked.
func TestStandbyServesReads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPair(t))
	store := annals.New(e.primary, annals.ClientOptions{Replicas: []*pgxpool.Pool{e.replay}})
	res, err := store.Append(e.ctx, "acct-1", annals.NoStream, annals.EventData{Type: "Opened", Data: map[string]any{"n": 1}})
	require.NoError(t, err)

	ctx := annals.WithConsistency(e.ctx, annals.ReadYourWrites(res.TransactionID))
	var got []annals.RecordedEvent
	for ev, err := range store.ReadStream(ctx, "acct-1", annals.ReadOptions{}) {
		require.NoError(t, err)
		got = append(got, ev)
	}
	require.Len(t, got, 1)
	require.Equal(t, res.EventIDs[0], got[0].EventID)
	info, err := store.StreamInfo(ctx, "acct-1")
	require.NoError(t, err)
	require.EqualValues(t, 1, info.StreamVersion)
	stats := store.ReplicaStats()
	require.Len(t, stats.Replicas, 1)
	require.EqualValues(t, 2, stats.Replicas[0].Reads, "both reads went to the standby")

	// The standby really is where they ran: it is in recovery.
	require.True(t, scalar[bool](t, e.ctx, store.ReadPool(ctx), "SELECT pg_is_in_recovery()"))
	require.False(t, scalar[bool](t, e.ctx, store.ReadPool(annals.WithConsistency(e.ctx, annals.OnPrimary)), "SELECT pg_is_in_recovery()"))

	// The feed, after replay.
	replayed(t, e)
	page, err := store.ReadAll(e.ctx, annals.Checkpoint{}, annals.FeedOptions{})
	require.NoError(t, err)
	require.Len(t, page, 1)
}

// A write on a standby fails with 25006, which the Go client maps to ErrReadOnlyServer with a
// message that says to use the primary.
func TestStandbyRefusesWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPair(t))
	wrong := annals.New(e.replay, annals.ClientOptions{}) // a standby given as the primary: a configuration mistake
	_, err := wrong.Append(e.ctx, "acct-1", annals.Any, annals.EventData{Type: "Opened"})
	require.ErrorIs(t, err, annals.ErrReadOnlyServer)
	require.Contains(t, err.Error(), "send writes to the primary")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "25006", pgErr.Code)

	for _, sql := range []string{
		`SELECT annals.append_events('acct-1', NULL, '[{"type":"Opened","data":{}}]')`,
		"SELECT annals.create_subscription('s')",
	} {
		_, err := e.replay.Exec(e.ctx, sql)
		require.ErrorAs(t, err, &pgErr, sql)
		require.Equal(t, "25006", pgErr.Code, sql)
		require.ErrorIs(t, annals.MapError(err), annals.ErrReadOnlyServer, sql)
	}
}

// wait_for on the standby: false while the commit is not replayed (replay paused), true once it is.
// wait_for_projection on the standby follows the async runner on the primary.
func TestWaitForOnStandby(t *testing.T) {
	t.Parallel()
	p := ownPair(t) // pauses replay
	e := newEnv(t, p)
	_, err := e.primary.Exec(e.ctx, `
		CREATE SCHEMA s;
		CREATE TABLE s.seen (global_position bigint PRIMARY KEY);
		CREATE FUNCTION s.apply(events annals.event[]) RETURNS void LANGUAGE sql
			AS 'INSERT INTO s.seen SELECT e.global_position FROM unnest(events) AS e';
		GRANT USAGE ON SCHEMA s TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON s.seen TO annals_owner;
		SELECT annals.register_projection('async_acct', 's.apply(annals.event[])', '{s.seen}', mode => 'async');`)
	require.NoError(t, err)
	replayed(t, e)

	_, err = e.replay.Exec(e.ctx, "SELECT pg_wal_replay_pause()")
	require.NoError(t, err)
	a := appendN(t, e.ctx, e.primary, "acct-1", 2)
	// An id the standby has not seen is not an error there: it may be replayed yet.
	require.False(t, scalar[bool](t, e.ctx, e.replay, "SELECT annals.wait_for($1::xid8, '0')", a.xid))
	require.False(t, scalar[bool](t, e.ctx, e.replay, "SELECT annals.wait_for($1::xid8, '50 ms')", a.xid))
	require.False(t, scalar[bool](t, e.ctx, e.replay, "SELECT annals.wait_for_projection('async_acct', $1::xid8, '0')", a.xid))

	errs := make(chan error, 2)
	oks := make(chan bool, 2)
	go func() {
		var ok bool
		err := e.replay.QueryRow(e.ctx, "SELECT annals.wait_for($1::xid8, '30 s')", a.xid).Scan(&ok)
		errs <- err
		oks <- ok
	}()
	store := annals.New(e.primary, annals.ClientOptions{Replicas: []*pgxpool.Pool{e.replay}})
	go func() {
		ok, err := store.WaitForProjection(e.ctx, "async_acct", a.xid, waitTimeout)
		errs <- err
		oks <- ok
	}()
	time.Sleep(50 * time.Millisecond) // both are waiting (not asserted: either order passes)
	_, err = e.replay.Exec(e.ctx, "SELECT pg_wal_replay_resume()")
	require.NoError(t, err)
	require.NoError(t, <-errs)
	require.True(t, <-oks, "wait_for returns once the commit is replayed")

	// The projection catches up on the primary; the standby's wait sees its checkpoint replayed.
	require.Eventually(t, func() bool {
		n, err := store.RunAsyncProjections(e.ctx, 100)
		require.NoError(t, err)
		return n > 0
	}, waitTimeout, 10*time.Millisecond)
	require.NoError(t, <-errs)
	require.True(t, <-oks, "wait_for_projection returns once the checkpoint is replayed")
	require.Equal(t, 2, scalar[int](t, e.ctx, e.replay, "SELECT count(*)::int FROM s.seen"))
}

// The gap-free feed read on the standby, under the primary's interleaving: an older transaction
// that commits after a younger one is held back by the barrier on the standby too, then delivered
// first, each event once.
func TestStandbyFeedOlderTransactionCommittingLate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPair(t))
	txA, err := e.primary.Begin(e.ctx)
	require.NoError(t, err)
	defer txA.Rollback(e.ctx) //nolint:errcheck
	a1 := appendN(t, e.ctx, txA, "a-1", 1)
	txB, err := e.primary.Begin(e.ctx)
	require.NoError(t, err)
	b1 := appendN(t, e.ctx, txB, "b-1", 2)
	require.Greater(t, b1.xid, a1.xid)
	require.NoError(t, txB.Commit(e.ctx))

	// B is replayed and visible on the standby (its stream shows it), but the feed holds it back.
	require.True(t, scalar[bool](t, e.ctx, e.replay, "SELECT annals.wait_for($1::xid8, '30 s')", b1.xid))
	require.EqualValues(t, 2, scalar[int64](t, e.ctx, e.replay, "SELECT s.stream_version FROM annals.stream_info('b-1') AS s"))
	replayed(t, e)
	require.Empty(t, readFeed(t, e.ctx, e.replay, feedRow{}, 10), "nothing passes the barrier on the standby while A is open")

	a2 := appendN(t, e.ctx, txA, "a-2", 1)
	require.NoError(t, txA.Commit(e.ctx))
	require.True(t, scalar[bool](t, e.ctx, e.replay, "SELECT annals.wait_for($1::xid8, '30 s')", a1.xid))
	var got []feedRow
	require.Eventually(t, func() bool {
		got = readFeed(t, e.ctx, e.replay, feedRow{}, 1)
		return len(got) == 4
	}, waitTimeout, 10*time.Millisecond)
	require.Equal(t, []feedRow{{a1.xid, a1.position}, {a1.xid, a2.position}, {b1.xid, b1.position - 1}, {b1.xid, b1.position}}, got)
}

// A rolled-back append holds the standby's barrier only while it is open.
func TestStandbyFeedRolledBackAppendLeavesNoStall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPair(t))
	tx, err := e.primary.Begin(e.ctx)
	require.NoError(t, err)
	appendN(t, e.ctx, tx, "x-1", 3)
	b := appendN(t, e.ctx, e.primary, "b-1", 1)
	replayed(t, e)
	require.Empty(t, readFeed(t, e.ctx, e.replay, feedRow{}, 10))
	require.NoError(t, tx.Rollback(e.ctx))
	require.Eventually(t, func() bool {
		return len(readFeed(t, e.ctx, e.replay, feedRow{}, 10)) == 1
	}, waitTimeout, 10*time.Millisecond)
	require.Equal(t, []feedRow{{b.xid, b.position}}, readFeed(t, e.ctx, e.replay, feedRow{}, 10))
}

// Concurrent writers, some rolling back, some holding their transaction open a while, while a
// reader follows the feed on the standby with a checkpoint: it gets every committed event exactly
// once, in the same order as the primary's feed.
func TestStandbyFeedStressWritersRollbacksAndReaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPair(t))
	const writers, rounds = 4, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := 0
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range rounds {
				tx, err := e.primary.Begin(e.ctx)
				if err != nil {
					t.Error(err)
					return
				}
				n := 1 + rng.IntN(3)
				if _, err := tx.Exec(e.ctx, "SELECT annals.append_events($1, NULL, $2::jsonb)",
					fmt.Sprintf("s%d-%d", w, rng.IntN(5)), eventJSON("Happened", n)); err != nil {
					t.Error(err)
					_ = tx.Rollback(e.ctx)
					return
				}
				if rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
				}
				if i%5 == 4 {
					_ = tx.Rollback(e.ctx)
					continue
				}
				if err := tx.Commit(e.ctx); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				committed += n
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// The reader follows the standby's feed while the writers run.
	var seen []feedRow
	cp := feedRow{}
	finished := false
	deadline := time.Now().Add(2 * waitTimeout)
	for time.Now().Before(deadline) {
		page := readFeed(t, e.ctx, e.replay, cp, 7)
		seen = append(seen, page...)
		if len(page) > 0 {
			cp = page[len(page)-1]
		}
		if finished {
			mu.Lock()
			all := committed
			mu.Unlock()
			if len(seen) >= all {
				break
			}
		}
		select {
		case <-done:
			finished = true
		case <-time.After(2 * time.Millisecond):
		}
	}
	require.True(t, finished)
	require.Len(t, seen, committed)
	primaryFeed := readFeed(t, e.ctx, e.primary, feedRow{}, 1000)
	require.Equal(t, primaryFeed, seen, "the standby's feed is the primary's, each event once, same order")
	require.True(t, sort.SliceIsSorted(seen, func(i, j int) bool {
		return seen[i].xid < seen[j].xid || seen[i].xid == seen[j].xid && seen[i].pos < seen[j].pos
	}))
}

// Write on the primary, read your write through the standby, many times over many streams: never
// a stale read. The extra cost over a primary read is logged (no timing assertion).
func TestReadYourWritesAcrossPrimaryAndStandby(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPair(t))
	store := annals.New(e.primary, annals.ClientOptions{Replicas: []*pgxpool.Pool{e.replay}, Replica: annals.ReplicaOptions{WaitBound: 10 * time.Second}})
	const streams, rounds = 20, 10
	var rywTotal, primaryTotal time.Duration
	for r := range rounds {
		for s := range streams {
			id := fmt.Sprintf("acct-%d", s)
			res, err := store.Append(e.ctx, id, annals.Exact(int64(r)), annals.EventData{Type: "Deposited", Data: map[string]any{"r": r}})
			require.NoError(t, err)
			start := time.Now()
			info, err := store.StreamInfo(annals.WithConsistency(e.ctx, annals.ReadYourWrites(res.TransactionID)), id)
			rywTotal += time.Since(start)
			require.NoError(t, err)
			require.Equal(t, res.StreamVersion, info.StreamVersion, "a stale read of %s", id)
			start = time.Now()
			_, err = store.StreamInfo(annals.WithConsistency(e.ctx, annals.OnPrimary), id)
			primaryTotal += time.Since(start)
			require.NoError(t, err)
		}
	}
	stats := store.ReplicaStats()
	require.EqualValues(t, streams*rounds, stats.Replicas[0].Reads, "every read-your-writes read was served by the standby")
	require.Zero(t, stats.WaitFallbacks)
	t.Logf("mean read-your-writes read on the standby %s, mean primary read %s",
		rywTotal/time.Duration(streams*rounds), primaryTotal/time.Duration(streams*rounds))
}

// A replica that stops is skipped: reads keep working from the primary, with a log line and the
// replica counted down; a paused (lagging) replica is skipped too, and a read-your-writes read
// that cannot wait for it goes to the primary.
func TestStoppedOrLaggingReplicaIsSkipped(t *testing.T) {
	t.Parallel()
	p := ownPair(t)
	e := newEnv(t, p)
	var logs logBuffer
	store := annals.New(e.primary, annals.ClientOptions{Replicas: []*pgxpool.Pool{e.replay}, Replica: annals.ReplicaOptions{
		MaxLag: 200 * time.Millisecond, WaitBound: 100 * time.Millisecond, ProbeInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}})
	res, err := store.Append(e.ctx, "acct-1", annals.NoStream, annals.EventData{Type: "Opened"})
	require.NoError(t, err)
	info, err := store.StreamInfo(annals.WithConsistency(e.ctx, annals.ReadYourWrites(res.TransactionID)), "acct-1")
	require.NoError(t, err)
	require.EqualValues(t, 1, info.StreamVersion)
	require.EqualValues(t, 1, store.ReplicaStats().Replicas[0].Reads)

	// Lagging: replay paused while the primary commits.
	_, err = e.replay.Exec(e.ctx, "SELECT pg_wal_replay_pause()")
	require.NoError(t, err)
	res, err = store.Append(e.ctx, "acct-1", annals.Exact(1), annals.EventData{Type: "Deposited"})
	require.NoError(t, err)
	info, err = store.StreamInfo(annals.WithConsistency(e.ctx, annals.ReadYourWrites(res.TransactionID)), "acct-1")
	require.NoError(t, err)
	require.EqualValues(t, 2, info.StreamVersion, "the wait timed out and the primary answered")
	require.EqualValues(t, 1, store.ReplicaStats().WaitFallbacks)
	require.Eventually(t, func() bool {
		_, _ = store.StreamInfo(e.ctx, "acct-1") // reads start the probes
		return store.ReplicaStats().Replicas[0].Lagging
	}, waitTimeout, 20*time.Millisecond)
	info, err = store.StreamInfo(e.ctx, "acct-1")
	require.NoError(t, err)
	require.EqualValues(t, 2, info.StreamVersion, "an eventual read skips the lagging replica")
	// The probe logs right after it publishes the state the loop above saw.
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "replica lagging beyond MaxLag") }, waitTimeout, 10*time.Millisecond, logs.String())
	_, err = e.replay.Exec(e.ctx, "SELECT pg_wal_replay_resume()")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, _ = store.StreamInfo(e.ctx, "acct-1")
		return !store.ReplicaStats().Replicas[0].Lagging
	}, waitTimeout, 20*time.Millisecond)
	// The probe logs right after it publishes the state the loop above saw.
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "replica caught up") }, waitTimeout, 10*time.Millisecond, logs.String())

	// Down: the standby stops. Every kind of read keeps working, from the primary.
	require.NoError(t, p.standby.Stop())
	before := store.ReplicaStats().PrimaryFallbacks
	for range 3 {
		info, err = store.StreamInfo(e.ctx, "acct-1")
		require.NoError(t, err)
		require.EqualValues(t, 2, info.StreamVersion)
		n := 0
		for _, err := range store.ReadStream(e.ctx, "acct-1", annals.ReadOptions{}) {
			require.NoError(t, err)
			n++
		}
		require.Equal(t, 2, n)
		_, err = store.ReadAll(annals.WithConsistency(e.ctx, annals.ReadYourWrites(res.TransactionID)), annals.Checkpoint{}, annals.FeedOptions{})
		require.NoError(t, err)
		ok, err := store.WaitFor(e.ctx, res.TransactionID, time.Second)
		require.NoError(t, err)
		require.True(t, ok)
	}
	stats := store.ReplicaStats()
	require.True(t, stats.Replicas[0].Down)
	require.Greater(t, stats.PrimaryFallbacks, before)
	require.Greater(t, stats.Replicas[0].Skips, uint64(0))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "replica down") }, waitTimeout, 10*time.Millisecond, logs.String())
	t.Logf("stats: %+v", stats)
}

// What a wait inside one SQL statement holds on a standby: its statement's snapshot. A cleanup
// record replayed meanwhile that conflicts with it (here: VACUUM of rows updated after the wait
// started) makes the replay wait for the statement (up to max_standby_streaming_delay), so a
// commit after that record is not seen before the wait times out: the waiter holds up its own
// replay. The Go client asks with timeout 0 in separate statements and holds nothing between
// asks, so the same replay goes through while it waits.
func TestLongSQLWaitOnStandbyHoldsUpReplayButClientWaitDoesNot(t *testing.T) {
	t.Parallel()
	p := ownPair(t) // its replay gets stuck on purpose, and its transaction ids are counted
	e := newEnv(t, p)
	_, err := e.primary.Exec(e.ctx, `CREATE TABLE public.churn (id int PRIMARY KEY, n int) WITH (autovacuum_enabled = off);
		INSERT INTO public.churn VALUES (1, 0)`)
	require.NoError(t, err)
	replayed(t, e)
	current := func() uint64 {
		return scalar[uint64](t, e.ctx, e.primary, "SELECT pg_current_xact_id()::text::bigint")
	}
	// The waits below wait for an id the primary has not given out yet (a standby waits for an id
	// it has not seen). In between, the primary updates a row and vacuums it: a cleanup record
	// whose horizon is newer than the waiting statement's snapshot. Then it burns ids so that
	// the append gets exactly the id waited for.
	cleanupThenAppend := func(target uint64) {
		for range 5 {
			_, err := e.primary.Exec(e.ctx, "UPDATE public.churn SET n = n + 1 WHERE id = 1")
			require.NoError(t, err)
		}
		_, err := e.primary.Exec(e.ctx, "VACUUM public.churn")
		require.NoError(t, err)
		for current()+1 < target {
		}
		require.Equal(t, target, appendN(t, e.ctx, e.primary, "acct-1", 1).xid)
	}
	waiting := func() bool {
		return scalar[int](t, e.ctx, e.replay, `SELECT count(*)::int FROM pg_stat_activity
			WHERE query LIKE 'SELECT annals.wait_for(%' AND state = 'active'`) == 1
	}
	type result struct {
		ok  bool
		err error
	}

	// 1. One SQL statement waiting across the cleanup: the commit is made, but not replayed
	// before the wait gives up.
	target := current() + 20
	sqlWait := make(chan result, 1)
	go func() {
		var ok bool
		err := e.replay.QueryRow(e.ctx, "SELECT annals.wait_for($1::xid8, '3 s')", target).Scan(&ok)
		sqlWait <- result{ok, err}
	}()
	require.Eventually(t, waiting, waitTimeout, 5*time.Millisecond)
	cleanupThenAppend(target)
	r := <-sqlWait
	require.NoError(t, r.err)
	require.False(t, r.ok, "the commit's replay waited behind the cleanup record that conflicts with the waiting statement")
	// Once that statement ended, the replay went on.
	start := time.Now()
	require.True(t, scalar[bool](t, e.ctx, e.replay, "SELECT annals.wait_for($1::xid8, '30 s')", target))
	t.Logf("replayed %s after the SQL wait ended", time.Since(start))

	// 2. The Go client waiting across the same kind of cleanup sees the commit.
	store := annals.New(e.primary, annals.ClientOptions{Replicas: []*pgxpool.Pool{e.replay}})
	target = current() + 20
	clientWait := make(chan result, 1)
	go func() {
		ok, err := store.WaitFor(e.ctx, target, waitTimeout)
		clientWait <- result{ok, err}
	}()
	time.Sleep(100 * time.Millisecond) // let it start asking (it passes either way; this makes it mean something)
	cleanupThenAppend(target)
	start = time.Now()
	r = <-clientWait
	t.Logf("the client's wait ended %s after the commit", time.Since(start))
	require.NoError(t, r.err)
	require.True(t, r.ok)
	require.EqualValues(t, 1, store.ReplicaStats().Replicas[0].Reads, "it waited on the standby")
}

// Reads through one WithConsistency context stick to one replica; reads without one are spread
// round robin. Two pools on the one standby stand for two replicas.
func TestReadsThroughOneContextStickToOneReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPair(t))
	second := newPool(t, e.pair.standby.URL(e.db))
	store := annals.New(e.primary, annals.ClientOptions{Replicas: []*pgxpool.Pool{e.replay, second}})
	res, err := store.Append(e.ctx, "acct-1", annals.NoStream, annals.EventData{Type: "Opened"})
	require.NoError(t, err)

	ctx := annals.WithConsistency(e.ctx, annals.ReadYourWrites(res.TransactionID))
	for range 6 {
		info, err := store.StreamInfo(ctx, "acct-1")
		require.NoError(t, err)
		require.EqualValues(t, 1, info.StreamVersion)
	}
	st := store.ReplicaStats()
	require.ElementsMatch(t, []uint64{0, 6}, []uint64{st.Replicas[0].Reads, st.Replicas[1].Reads}, "one replica served them all")

	replayed(t, e)
	for range 6 {
		_, err := store.StreamInfo(e.ctx, "acct-1")
		require.NoError(t, err)
	}
	st2 := store.ReplicaStats()
	require.EqualValues(t, 3, st2.Replicas[0].Reads-st.Replicas[0].Reads, "without a context of its own, round robin")
	require.EqualValues(t, 3, st2.Replicas[1].Reads-st.Replicas[1].Reads)
}

// On a standby, a transaction still open on the primary, with an older one open too and a younger
// one committed, lies between the standby snapshot's xmin and xmax, and the standby keeps it in a
// part of the snapshot pg_current_snapshot() does not show: wait_for must still say it is not
// visible there (a stale read-your-writes read otherwise), and say it is once its commit replays.
func TestWaitForOnStandbyWithOlderAndYoungerTransactions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPair(t))
	older, err := e.primary.Begin(e.ctx)
	require.NoError(t, err)
	defer older.Rollback(e.ctx) //nolint:errcheck
	appendN(t, e.ctx, older, "w-1", 1)
	mine, err := e.primary.Begin(e.ctx)
	require.NoError(t, err)
	defer mine.Rollback(e.ctx) //nolint:errcheck
	x := appendN(t, e.ctx, mine, "x-1", 1)
	y := appendN(t, e.ctx, e.primary, "y-1", 1)
	require.Greater(t, y.xid, x.xid)
	require.True(t, scalar[bool](t, e.ctx, e.replay, "SELECT annals.wait_for($1::xid8, '30 s')", y.xid))

	require.False(t, scalar[bool](t, e.ctx, e.replay, "SELECT annals.wait_for($1::xid8, '0')", x.xid),
		"an open transaction between the standby snapshot's xmin and xmax is not visible")
	store := annals.New(e.primary, annals.ClientOptions{Replicas: []*pgxpool.Pool{e.replay},
		Replica: annals.ReplicaOptions{WaitBound: 50 * time.Millisecond}})
	_, err = store.StreamInfo(annals.WithConsistency(e.ctx, annals.ReadYourWrites(x.xid)), "x-1")
	require.ErrorIs(t, err, annals.ErrStreamNotFound, "not committed anywhere yet: the primary answers, not found")
	require.Zero(t, store.ReplicaStats().Replicas[0].Reads, "the standby was not trusted with it")

	require.NoError(t, mine.Commit(e.ctx))
	require.True(t, scalar[bool](t, e.ctx, e.replay, "SELECT annals.wait_for($1::xid8, '30 s')", x.xid))
	require.EqualValues(t, 1, scalar[int64](t, e.ctx, e.replay, "SELECT s.stream_version FROM annals.stream_info('x-1') AS s"))
}

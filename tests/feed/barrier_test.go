package feed_test

import (
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// An older transaction that commits after a younger one: a sequence-based feed would skip it.
func TestFeedOlderTransactionCommittingLateIsDeliveredFirstExactlyOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	connA, connB := e.conn(t), e.conn(t)

	txA, err := connA.Begin(e.ctx)
	require.NoError(t, err)
	defer txA.Rollback(e.ctx) //nolint:errcheck
	// A appends first, so it holds the older transaction id.
	a1 := appendEvents(t, txA, "a-1", "Happened", 1)

	txB, err := connB.Begin(e.ctx)
	require.NoError(t, err)
	b1 := appendEvents(t, txB, "b-1", "Happened", 2)
	require.Greater(t, b1.TransactionID, a1.TransactionID, "B is the younger transaction")
	require.Greater(t, b1.Position, a1.Position)
	require.NoError(t, txB.Commit(e.ctx))

	// B is committed (its stream shows it) but the feed holds it back while A is open: A's
	// events, when they commit, must come first.
	var bVersion int64
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT s.stream_version FROM annals.stream_info('b-1') AS s").Scan(&bVersion))
	require.EqualValues(t, 2, bVersion)
	for range 3 {
		require.Empty(t, readAll(t, e.pool, annals.Checkpoint{}, 10), "nothing passes the barrier while A is open")
		page, err := e.store.ReadAll(e.ctx, annals.Checkpoint{}, annals.FeedOptions{MaxCount: 10})
		require.NoError(t, err)
		require.Empty(t, page)
	}
	require.LessOrEqual(t, barrier(t, e), a1.TransactionID, "the barrier sits at or below A")

	a2 := appendEvents(t, txA, "a-2", "Happened", 1)
	require.Equal(t, a1.TransactionID, a2.TransactionID)
	require.Greater(t, a2.Position, b1.Position, "A's second event has a later position than B's")
	require.NoError(t, txA.Commit(e.ctx))

	// Pages of one event: the checkpoint advances across pages; A's events come first (in
	// position order), then B's; each exactly once.
	got := drain(t, e.pool, annals.Checkpoint{}, 1, 4)
	require.Equal(t, concat(a1.IDs, a2.IDs, b1.IDs), ids(got))
	require.Equal(t, a1.TransactionID, got[0].TransactionID)
	require.Equal(t, a1.TransactionID, got[1].TransactionID)
	require.Equal(t, b1.TransactionID, got[2].TransactionID)

	// The same through the Go API, with pages of three.
	goPages := drainWith(t, annals.Checkpoint{}, 3, 4, func(cp annals.Checkpoint) []annals.RecordedEvent {
		page, err := e.store.ReadAll(e.ctx, cp, annals.FeedOptions{MaxCount: 3})
		require.NoError(t, err)
		return page
	})
	require.Equal(t, ids(got), ids(goPages))

	// A consumer that stopped at the last checkpoint gets only what comes next.
	c1 := appendEvents(t, e.pool, "c-1", "Happened", 1)
	next := drain(t, e.pool, got[3].Checkpoint(), 10, 1)
	require.Equal(t, c1.IDs, ids(next))
}

// A rolled-back append holds the barrier only while it is open, and leaves no stall behind.
func TestFeedRolledBackAppendLeavesNoStall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	connR := e.conn(t)

	txR, err := connR.Begin(e.ctx)
	require.NoError(t, err)
	r := appendEvents(t, txR, "r-1", "Doomed", 3)
	c1 := appendEvents(t, e.pool, "c-1", "Kept", 1)
	require.Greater(t, c1.TransactionID, r.TransactionID)
	require.Empty(t, readAll(t, e.pool, annals.Checkpoint{}, 10), "the open transaction holds the barrier")
	require.NoError(t, txR.Rollback(e.ctx))

	got := drain(t, e.pool, annals.Checkpoint{}, 10, 1)
	require.Equal(t, c1.IDs, ids(got))
	require.Greater(t, got[0].GlobalPosition, r.Position, "the rolled-back positions are a gap, not a stall")

	c2 := appendEvents(t, e.pool, "c-2", "Kept", 2)
	c3 := appendEvents(t, e.pool, "r-1", "Kept", 1) // the stream the rollback touched starts over
	require.EqualValues(t, 1, c3.StreamVersion)
	more := drain(t, e.pool, got[0].Checkpoint(), 10, 3)
	require.Equal(t, concat(c2.IDs, c3.IDs), ids(more))
}

// A transaction that took its id before a younger one appended to the same stream must not
// append after it (the feed would deliver the stream out of version order): 40001, retry.
func TestFeedEarlyTransactionIDAppendIsRefusedWith40001(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	connA := e.conn(t)
	seed := appendEvents(t, e.pool, "s-1", "Seeded", 1)

	txA, err := connA.Begin(e.ctx)
	require.NoError(t, err)
	defer txA.Rollback(e.ctx) //nolint:errcheck
	var xidA uint64
	require.NoError(t, txA.QueryRow(e.ctx, "SELECT pg_catalog.pg_current_xact_id()").Scan(&xidA))

	b := appendEvents(t, e.pool, "s-1", "Younger", 1) // commits with a younger id
	require.Greater(t, b.TransactionID, xidA)

	_, err = e.store.AppendTx(e.ctx, txA, "s-1", annals.Any, annals.EventData{Type: "Older"})
	pgErr := requirePgCode(t, err, "40001")
	require.True(t, annals.IsRetryable(err), "40001 is retryable: %v", err)
	require.Equal(t, "s-1", detailOf(t, pgErr)["stream_id"])
	require.NoError(t, txA.Rollback(e.ctx))

	// The retry in a fresh transaction lands after B, and the feed keeps version order.
	retry := appendEvents(t, e.pool, "s-1", "Older", 1)
	require.EqualValues(t, 3, retry.StreamVersion)
	got := drain(t, e.pool, annals.Checkpoint{}, 2, 3)
	require.Equal(t, concat(seed.IDs, b.IDs, retry.IDs), ids(got))
	for i, ev := range got {
		require.EqualValues(t, i+1, ev.StreamVersion)
	}
}

// The same rule when the younger appender is still open as the older transaction arrives: the
// older one waits on the stream's lock, then is refused if the younger committed, and goes
// ahead if it rolled back.
func TestFeedEarlyTransactionIDWaitsForYoungerAppender(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	for _, commitB := range []bool{true, false} {
		connA, connB := e.conn(t), e.conn(t)
		stream := "w-" + uuid.NewString()[:8]
		appendEvents(t, e.pool, stream, "Seeded", 1)

		txA, err := connA.Begin(e.ctx)
		require.NoError(t, err)
		_, err = txA.Exec(e.ctx, "SELECT pg_catalog.pg_current_xact_id()")
		require.NoError(t, err)
		txB, err := connB.Begin(e.ctx)
		require.NoError(t, err)
		appendEvents(t, txB, stream, "Younger", 1)

		done := make(chan error, 1)
		go func() {
			_, err := tryAppend(e.ctx, txA, stream, "Older", 1)
			done <- err
		}()
		waitUntilBlocked(t, e.pool, connA.Conn().PgConn().PID())
		if commitB {
			require.NoError(t, txB.Commit(e.ctx))
		} else {
			require.NoError(t, txB.Rollback(e.ctx))
		}
		err = <-done
		if commitB {
			requirePgCode(t, err, "40001")
			require.NoError(t, txA.Rollback(e.ctx))
		} else {
			require.NoError(t, err, "with the younger appender rolled back, the older one goes ahead")
			require.NoError(t, txA.Commit(e.ctx))
		}
		var version int64
		require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT s.stream_version FROM annals.stream_info($1) AS s", stream).Scan(&version))
		require.EqualValues(t, 2, version)
	}
}

// Global positions above 2^31 (and 2^32) survive every layer: SQL, the Go API, checkpoints,
// category reads and acknowledgements.
func TestFeedPositionsAbove2To31(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.pool.Exec(e.ctx, "SELECT pg_catalog.setval('annals_internal.global_position_seq', 3000000000)")
	require.NoError(t, err)

	a := appendEvents(t, e.pool, "big-1", "Big", 3)
	b := appendEvents(t, e.pool, "big-2", "Big", 2)
	require.EqualValues(t, 3000000003, a.Position)
	require.EqualValues(t, 3000000005, b.Position)

	all := drain(t, e.pool, annals.Checkpoint{}, 2, 5)
	require.Equal(t, concat(a.IDs, b.IDs), ids(all))
	for _, ev := range all {
		require.Greater(t, ev.GlobalPosition, int64(1)<<31)
	}

	after := all[2].Checkpoint()
	require.Greater(t, after.GlobalPosition, int64(1)<<31)
	require.Equal(t, b.IDs, ids(readAll(t, e.pool, after, 10)))
	page, err := e.store.ReadAll(e.ctx, after, annals.FeedOptions{MaxCount: 1})
	require.NoError(t, err)
	require.Equal(t, b.IDs[:1], ids(page))
	cat := collectEvents(t, e.pool, "SELECT "+eventColumns+" FROM annals.read_category('big', $1, $2, 10) AS e",
		after.TransactionID, after.GlobalPosition)
	require.Equal(t, b.IDs, ids(cat))
	goCat, err := e.store.ReadCategory(e.ctx, "big", all[0].Checkpoint(), annals.FeedOptions{MaxCount: 10})
	require.NoError(t, err)
	require.Equal(t, ids(all[1:]), ids(goCat))

	// Beyond 2^32 as well.
	_, err = e.pool.Exec(e.ctx, "SELECT pg_catalog.setval('annals_internal.global_position_seq', 1099511627776)")
	require.NoError(t, err)
	c := appendEvents(t, e.pool, "big-1", "Bigger", 1)
	require.EqualValues(t, int64(1)<<40+1, c.Position)
	require.Equal(t, c.IDs, ids(drain(t, e.pool, all[4].Checkpoint(), 10, 1)))

	// A subscription checkpoint holds such positions too.
	_, err = e.store.CreateSubscription(e.ctx, "big", annals.SubscriptionOptions{})
	require.NoError(t, err)
	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	batch := collectEvents(t, tx, "SELECT "+eventColumns+" FROM annals.read_subscription('big', 0, 10) AS e")
	require.Len(t, batch, 6)
	last := batch[5].Checkpoint()
	_, err = tx.Exec(e.ctx, "SELECT annals.ack_subscription('big', 0, '0', 0, $1, $2)", last.TransactionID, last.GlobalPosition)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(e.ctx))
	cp, err := e.store.SubscriptionCheckpoint(e.ctx, "big", 0)
	require.NoError(t, err)
	require.Equal(t, last, cp)
}

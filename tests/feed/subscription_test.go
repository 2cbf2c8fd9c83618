package feed_test

import (
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// readSubscription is one annals.read_subscription call in db (usually the consumer's transaction).
func readSubscription(t *testing.T, db queryer, name string, member, maxCount int) []annals.RecordedEvent {
	t.Helper()
	return collectEvents(t, db, "SELECT "+eventColumns+" FROM annals.read_subscription($1, $2, $3) AS e", name, member, maxCount)
}

// ack calls annals.ack_subscription.
func ack(e env, db queryer, name string, member int, from, to annals.Checkpoint, consumer *string) error {
	_, err := db.Exec(e.ctx, "SELECT annals.ack_subscription($1, $2, $3, $4, $5, $6, $7)",
		name, member, from.TransactionID, from.GlobalPosition, to.TransactionID, to.GlobalPosition, consumer)
	return err
}

// consumeAll reads and acknowledges a subscription member in transactions of pageSize until it
// has want events; it returns them.
func consumeAll(t *testing.T, e env, name string, member, pageSize, want int) []annals.RecordedEvent {
	t.Helper()
	var out []annals.RecordedEvent
	deadline := time.Now().Add(waitTimeout)
	for len(out) < want {
		tx, err := e.pool.Begin(e.ctx)
		require.NoError(t, err)
		batch := readSubscription(t, tx, name, member, pageSize)
		var cp annals.Checkpoint // read after the batch: read_subscription locked it
		require.NoError(t, tx.QueryRow(e.ctx, "SELECT c.transaction_id, c.global_position FROM annals.subscription_checkpoint($1, $2) AS c",
			name, member).Scan(&cp.TransactionID, &cp.GlobalPosition))
		if len(batch) > 0 {
			require.NoError(t, ack(e, tx, name, member, cp, batch[len(batch)-1].Checkpoint(), nil))
		}
		require.NoError(t, tx.Commit(e.ctx))
		out = append(out, batch...)
		if len(batch) == 0 {
			require.True(t, time.Now().Before(deadline), "subscription %s stalled at %d of %d", name, len(out), want)
			time.Sleep(10 * time.Millisecond)
		}
	}
	require.Len(t, out, want)
	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	defer tx.Rollback(e.ctx) //nolint:errcheck
	require.Empty(t, readSubscription(t, tx, name, member, 1000), "more events than expected")
	return out
}

func ptr[T any](v T) *T { return &v }

func TestSubscriptionFromBeginningAndFromNow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	old := appendEvents(t, e.pool, "acct-1", "Opened", 3)
	drain(t, e.pool, annals.Checkpoint{}, 100, 3) // "now" is the barrier: let it pass the old events

	created, err := e.store.CreateSubscription(e.ctx, "from-start", annals.SubscriptionOptions{})
	require.NoError(t, err)
	require.True(t, created)
	created, err = e.store.CreateSubscription(e.ctx, "from-now", annals.SubscriptionOptions{FromNow: true})
	require.NoError(t, err)
	require.True(t, created)

	fresh := appendEvents(t, e.pool, "acct-1", "Deposited", 2)
	require.Equal(t, concat(old.IDs, fresh.IDs), ids(consumeAll(t, e, "from-start", 0, 2, 5)))
	require.Equal(t, fresh.IDs, ids(consumeAll(t, e, "from-now", 0, 2, 2)), "from now skips what existed")

	// Idempotent create; other settings are refused.
	created, err = e.store.CreateSubscription(e.ctx, "from-now", annals.SubscriptionOptions{FromNow: true})
	require.NoError(t, err)
	require.False(t, created)
	var again bool
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals.create_subscription('from-start')").Scan(&again))
	require.False(t, again)
	for _, opts := range []annals.SubscriptionOptions{
		{EventTypes: []string{"Opened"}}, {Categories: []string{"acct"}}, {GroupSize: 2},
	} {
		_, err = e.store.CreateSubscription(e.ctx, "from-start", opts)
		require.ErrorIs(t, err, annals.ErrInvalidArgument, "%+v", opts)
	}
	_, err = e.store.CreateSubscription(e.ctx, "", annals.SubscriptionOptions{})
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, err = e.pool.Exec(e.ctx, "SELECT annals.create_subscription('x', 'yesterday')")
	requirePgCode(t, err, "ST422")

	require.NoError(t, e.store.DropSubscription(e.ctx, "from-now"))
	_, err = e.store.SubscriptionCheckpoint(e.ctx, "from-now", 0)
	require.ErrorIs(t, err, annals.ErrNotFound, "its checkpoints went with it")
	// Dropping what does not exist is ST404 with the name in the DETAIL and a hint, not a quiet false.
	err = e.store.DropSubscription(e.ctx, "from-now")
	require.ErrorIs(t, err, annals.ErrNotFound)
	pgErr := requirePgCode(t, err, "ST404")
	require.JSONEq(t, `{"subscription": "from-now"}`, pgErr.Detail)
	require.NotEmpty(t, pgErr.Hint)
	_, err = e.pool.Exec(e.ctx, "SELECT annals.drop_subscription('nosuch')")
	requirePgCode(t, err, "ST404")
	require.ErrorIs(t, e.store.DropSubscription(e.ctx, "$projection:x"), annals.ErrReserved)
}

func TestSubscriptionFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.store.CreateSubscription(e.ctx, "types", annals.SubscriptionOptions{EventTypes: []string{"Shipped", "Returned"}})
	require.NoError(t, err)
	_, err = e.store.CreateSubscription(e.ctx, "cats", annals.SubscriptionOptions{Categories: []string{"parcel"}})
	require.NoError(t, err)
	_, err = e.store.CreateSubscription(e.ctx, "both", annals.SubscriptionOptions{
		EventTypes: []string{"Shipped"}, Categories: []string{"parcel"}})
	require.NoError(t, err)

	p1 := appendEvents(t, e.pool, "parcel-1", "Shipped", 1)
	p2 := appendEvents(t, e.pool, "parcel-1", "Delivered", 1)
	l1 := appendEvents(t, e.pool, "letter-1", "Shipped", 1)
	l2 := appendEvents(t, e.pool, "letter-1", "Returned", 1)
	p3 := appendEvents(t, e.pool, "parcel-2", "Returned", 1)

	require.Equal(t, concat(p1.IDs, l1.IDs, l2.IDs, p3.IDs), ids(consumeAll(t, e, "types", 0, 10, 4)))
	require.Equal(t, concat(p1.IDs, p2.IDs, p3.IDs), ids(consumeAll(t, e, "cats", 0, 10, 3)))
	require.Equal(t, p1.IDs, ids(consumeAll(t, e, "both", 0, 10, 1)))
}

// A member whose filter matches nothing below the barrier moves up to it, so the next read does
// not scan the same stretch of the feed again; a later matching event still arrives.
func TestSubscriptionIdleReadAdvancesToBarrier(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.store.CreateSubscription(e.ctx, "rare", annals.SubscriptionOptions{EventTypes: []string{"Rare"}})
	require.NoError(t, err)
	noise := appendEvents(t, e.pool, "noise-1", "Common", 20)
	drain(t, e.pool, annals.Checkpoint{}, 100, 20) // the noise is below the barrier now

	require.Empty(t, readSubscription(t, e.pool, "rare", 0, 10))
	cp, err := e.store.SubscriptionCheckpoint(e.ctx, "rare", 0)
	require.NoError(t, err)
	require.Zero(t, cp.GlobalPosition, "an idle move lands on the barrier itself")
	require.True(t, cp.TransactionID > noise.TransactionID,
		"checkpoint %+v is past the noise (transaction %d)", cp, noise.TransactionID)

	rare := appendEvents(t, e.pool, "signal-1", "Rare", 1)
	require.Equal(t, rare.IDs, ids(consumeAll(t, e, "rare", 0, 10, 1)))
}

// The acknowledgement is a compare-and-set: a stale expectation is refused (ST411, which the Go
// package maps to ErrCheckpointConflict), a backwards move is invalid (ST422).
func TestSubscriptionAckIsCompareAndSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.store.CreateSubscription(e.ctx, "cas", annals.SubscriptionOptions{})
	require.NoError(t, err)
	appendEvents(t, e.pool, "cas-1", "Happened", 4)
	evs := drain(t, e.pool, annals.Checkpoint{}, 10, 4)
	zero := annals.Checkpoint{}

	require.NoError(t, ack(e, e.pool, "cas", 0, zero, evs[1].Checkpoint(), nil))
	cp, err := e.store.SubscriptionCheckpoint(e.ctx, "cas", 0)
	require.NoError(t, err)
	require.Equal(t, evs[1].Checkpoint(), cp)

	// A consumer that read from the old checkpoint lost the race.
	err = ack(e, e.pool, "cas", 0, zero, evs[3].Checkpoint(), nil)
	pgErr := requirePgCode(t, err, "ST411")
	d := detailOf(t, pgErr)
	require.Equal(t, "cas", d["subscription"])
	require.ErrorIs(t, annals.MapError(err), annals.ErrCheckpointConflict)
	require.NotEmpty(t, d["actual"])

	// Backwards, or not forwards, is invalid.
	err = ack(e, e.pool, "cas", 0, evs[1].Checkpoint(), evs[0].Checkpoint(), nil)
	requirePgCode(t, err, "ST422")
	err = ack(e, e.pool, "cas", 0, evs[1].Checkpoint(), evs[1].Checkpoint(), nil)
	requirePgCode(t, err, "ST422")

	cp, err = e.store.SubscriptionCheckpoint(e.ctx, "cas", 0)
	require.NoError(t, err)
	require.Equal(t, evs[1].Checkpoint(), cp, "failed acknowledgements change nothing")

	// Member out of range, unknown subscription.
	err = ack(e, e.pool, "cas", 1, evs[1].Checkpoint(), evs[2].Checkpoint(), nil)
	requirePgCode(t, err, "ST422")
	err = ack(e, e.pool, "nosuch", 0, zero, evs[2].Checkpoint(), nil)
	requirePgCode(t, err, "ST404")
	_, err = e.store.SubscriptionCheckpoint(e.ctx, "nosuch", 0)
	require.ErrorIs(t, err, annals.ErrNotFound)
	_, err = e.store.ResetSubscription(e.ctx, "nosuch", zero, -1)
	require.ErrorIs(t, err, annals.ErrNotFound)
	_, err = e.pool.Exec(e.ctx, "SELECT count(*) FROM annals.read_subscription('nosuch')")
	requirePgCode(t, err, "ST404")
	_, err = e.store.SubscriptionCheckpoint(e.ctx, "cas", 5)
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
}

// Two consumers in two transactions: the second read waits on the first's lock on the
// checkpoint, then gets the next events, never the same ones.
func TestSubscriptionCompetingConsumersNeverShareEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.store.CreateSubscription(e.ctx, "race", annals.SubscriptionOptions{})
	require.NoError(t, err)
	first := appendEvents(t, e.pool, "race-1", "Happened", 3)
	second := appendEvents(t, e.pool, "race-2", "Happened", 3)
	drain(t, e.pool, annals.Checkpoint{}, 10, 6)

	conn1, conn2 := e.conn(t), e.conn(t)
	tx1, err := conn1.Begin(e.ctx)
	require.NoError(t, err)
	defer tx1.Rollback(e.ctx) //nolint:errcheck
	batch1 := readSubscription(t, tx1, "race", 0, 3)
	require.Equal(t, first.IDs, ids(batch1))

	tx2, err := conn2.Begin(e.ctx)
	require.NoError(t, err)
	defer tx2.Rollback(e.ctx) //nolint:errcheck
	got2 := make(chan []annals.RecordedEvent, 1)
	errs := make(chan error, 1)
	go func() {
		evs, err := queryEvents(e.ctx, tx2, "SELECT "+eventColumns+" FROM annals.read_subscription('race', 0, 3) AS e")
		errs <- err
		got2 <- evs
	}()
	waitUntilBlocked(t, e.pool, conn2.Conn().PgConn().PID())

	require.NoError(t, ack(e, tx1, "race", 0, annals.Checkpoint{}, batch1[2].Checkpoint(), nil))
	require.NoError(t, tx1.Commit(e.ctx))

	require.NoError(t, <-errs)
	batch2 := <-got2
	require.Equal(t, second.IDs, ids(batch2), "the second consumer continues after the first's acknowledgement")
	require.NoError(t, ack(e, tx2, "race", 0, batch1[2].Checkpoint(), batch2[2].Checkpoint(), nil))
	require.NoError(t, tx2.Commit(e.ctx))

	// A consumer that skipped the lock (or read before the other acknowledged) cannot ack over it.
	err = ack(e, e.pool, "race", 0, annals.Checkpoint{}, batch1[2].Checkpoint(), nil)
	requirePgCode(t, err, "ST411")
}

func TestSubscriptionLeases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.store.CreateSubscription(e.ctx, "leased", annals.SubscriptionOptions{GroupSize: 2})
	require.NoError(t, err)
	appendEvents(t, e.pool, "lease-1", "Happened", 3)

	acquire := func(consumer string, seconds int) (bool, time.Time) {
		var held bool
		var at time.Time
		require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals.acquire_lease('leased', 0, $1, $2), clock_timestamp()",
			consumer, seconds).Scan(&held, &at))
		return held, at
	}
	status := func(member int) annals.SubscriptionStatus {
		st, err := e.store.SubscriptionStatus(e.ctx, "leased")
		require.NoError(t, err)
		require.Len(t, st, 2)
		return st[member]
	}
	var expires time.Time
	leaseExpiry := func() time.Time {
		require.NoError(t, e.pool.QueryRow(e.ctx,
			"SELECT s.lease_expires_at FROM annals.subscription_status AS s WHERE s.subscription_name = 'leased' AND s.member = 0").Scan(&expires))
		return expires
	}

	held, _ := acquire("c1", 30)
	require.True(t, held)
	require.Equal(t, "c1", *status(0).LeaseHolder)
	require.True(t, status(0).LeaseActive)
	require.Nil(t, status(1).LeaseHolder, "members are leased separately")
	before := leaseExpiry()
	held, _ = acquire("c1", 60) // renew
	require.True(t, held)
	require.True(t, leaseExpiry().After(before), "renewing extends the lease")
	held, _ = acquire("c2", 30)
	require.False(t, held, "another consumer is refused while the lease is valid")
	var c2Member1 bool
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals.acquire_lease('leased', 1, 'c2')").Scan(&c2Member1))
	require.True(t, c2Member1)

	// While c1 holds member 0, nobody else can acknowledge it.
	evs := drain(t, e.pool, annals.Checkpoint{}, 10, 3)
	for _, consumer := range []*string{nil, ptr("c2")} {
		err := ack(e, e.pool, "leased", 0, annals.Checkpoint{}, evs[0].Checkpoint(), consumer)
		pgErr := requirePgCode(t, err, "ST423") // the Go package maps ST423 to ErrLeaseHeld
		require.Equal(t, "c1", detailOf(t, pgErr)["lease_holder"])
	}
	require.NoError(t, ack(e, e.pool, "leased", 0, annals.Checkpoint{}, evs[0].Checkpoint(), ptr("c1")))

	// A dead consumer's lease expires: c1 renews for one second and goes away; c2 takes over, and
	// never before the expiry.
	held, _ = acquire("c1", 1)
	require.True(t, held)
	expiry := leaseExpiry()
	eventually(t, func() bool {
		held, at := acquire("c2", 30)
		if held {
			require.False(t, at.Before(expiry), "c2 got the lease at %v, before it expired at %v", at, expiry)
		}
		return held
	}, "c2 never took over the expired lease")
	require.Equal(t, "c2", *status(0).LeaseHolder)
	err = ack(e, e.pool, "leased", 0, evs[0].Checkpoint(), evs[1].Checkpoint(), ptr("c1"))
	requirePgCode(t, err, "ST423")
	require.NoError(t, ack(e, e.pool, "leased", 0, evs[0].Checkpoint(), evs[1].Checkpoint(), ptr("c2")))

	// Release: only by the holder.
	var released bool
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals.release_lease('leased', 0, 'c1')").Scan(&released))
	require.False(t, released)
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals.release_lease('leased', 0, 'c2')").Scan(&released))
	require.True(t, released)
	require.Nil(t, status(0).LeaseHolder)
	held, _ = acquire("c3", 30)
	require.True(t, held)

	for _, bad := range []string{
		"SELECT annals.acquire_lease('leased', 0, '')",
		"SELECT annals.acquire_lease('leased', 0, 'c4', 0)",
		"SELECT annals.acquire_lease('leased', 2, 'c4')",
	} {
		_, err := e.pool.Exec(e.ctx, bad)
		requirePgCode(t, err, "ST422")
	}
	_, err = e.pool.Exec(e.ctx, "SELECT annals.acquire_lease('nosuch', 0, 'c4')")
	requirePgCode(t, err, "ST404")
}

func TestSubscriptionResetReplays(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.store.CreateSubscription(e.ctx, "replay", annals.SubscriptionOptions{GroupSize: 2})
	require.NoError(t, err)
	var all []uuid.UUID
	for i := range 6 {
		all = append(all, appendEvents(t, e.pool, "replay-"+string(rune('a'+i)), "Happened", 2).IDs...)
	}
	drain(t, e.pool, annals.Checkpoint{}, 100, len(all))
	share := func(member int) int {
		var n int
		require.NoError(t, e.pool.QueryRow(e.ctx,
			"SELECT count(*) FROM annals.read_category('replay', '0', 0, 1000, $1, 2)", member).Scan(&n))
		return n
	}
	n0, n1 := share(0), share(1)
	require.Equal(t, len(all), n0+n1)
	first := append(consumeAll(t, e, "replay", 0, 3, n0), consumeAll(t, e, "replay", 1, 3, n1)...)
	require.ElementsMatch(t, all, ids(first))

	// Back to the beginning for every member (the SQL default), then for one member only.
	var moved int
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals.reset_subscription('replay')").Scan(&moved))
	require.Equal(t, 2, moved)
	again := append(consumeAll(t, e, "replay", 0, 100, n0), consumeAll(t, e, "replay", 1, 100, n1)...)
	require.Equal(t, ids(first), ids(again), "a reset replays the same events in the same order")

	moved, err = e.store.ResetSubscription(e.ctx, "replay", annals.Checkpoint{}, 1)
	require.NoError(t, err)
	require.Equal(t, 1, moved)
	require.Equal(t, ids(first[n0:]), ids(consumeAll(t, e, "replay", 1, 100, n1)))
	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	require.Empty(t, readSubscription(t, tx, "replay", 0, 100), "member 0 was not reset")
	require.NoError(t, tx.Rollback(e.ctx))
}

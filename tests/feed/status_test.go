package feed_test

import (
	"context"
	"fmt"
	"github.com/jackc/pgx/v5/pgconn"
	"os"
	"strconv"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// feedBlockerRow is the annals.feed_blocker view.
type feedBlockerRow struct {
	Kind          string        `db:"kind"`
	PID           *int32        `db:"pid"`
	TransactionID string        `db:"transaction_id"`
	StartedAt     time.Time     `db:"started_at"`
	Age           time.Duration `db:"age"`
	State         *string       `db:"state"`
	Query         *string       `db:"query"`
}

func feedBlocker(t *testing.T, e env) []feedBlockerRow {
	t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT b.kind, b.pid, b.transaction_id, b.started_at, b.age, b.state, b.query
		FROM annals.feed_blocker AS b`)
	require.NoError(t, err)
	var out []feedBlockerRow
	for rows.Next() {
		var r feedBlockerRow
		require.NoError(t, rows.Scan(&r.Kind, &r.PID, &r.TransactionID, &r.StartedAt, &r.Age, &r.State, &r.Query))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// The blocker is cluster-wide: while this test's transaction is open, an older one elsewhere
// (another test's CREATE DATABASE) may be shown first, so the test waits for its own.
func TestFeedBlockerShowsTheOpenTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	connA, connR := e.conn(t), e.conn(t)
	pidA, pidR := int32(connA.Conn().PgConn().PID()), int32(connR.Conn().PgConn().PID())

	// A transaction without an id (read only) never blocks the feed.
	txR, err := connR.Begin(e.ctx)
	require.NoError(t, err)
	defer txR.Rollback(e.ctx) //nolint:errcheck
	_, err = txR.Exec(e.ctx, "SELECT count(*) FROM annals.read_all()")
	require.NoError(t, err)

	txA, err := connA.Begin(e.ctx)
	require.NoError(t, err)
	defer txA.Rollback(e.ctx) //nolint:errcheck
	a := appendEvents(t, txA, "blk-1", "Held", 1)
	later := appendEvents(t, e.pool, "blk-2", "Waiting", 1)

	var shown feedBlockerRow
	eventually(t, func() bool {
		rows := feedBlocker(t, e)
		for _, r := range rows {
			require.False(t, r.PID != nil && *r.PID == pidR, "a transaction without an id is not a blocker")
		}
		if len(rows) == 1 && rows[0].PID != nil && *rows[0].PID == pidA {
			shown = rows[0]
			return true
		}
		return false
	}, "feed_blocker never showed the open transaction (pid %d)", pidA)
	require.Equal(t, "backend", shown.Kind)
	require.Equal(t, strconv.FormatUint(a.TransactionID, 10), shown.TransactionID)
	require.NotNil(t, shown.State)
	require.Equal(t, "idle in transaction", *shown.State)
	require.NotNil(t, shown.Query)
	require.Contains(t, *shown.Query, "append_events")
	require.Positive(t, shown.Age)
	require.LessOrEqual(t, barrier(t, e), a.TransactionID, "the blocker holds the barrier")
	require.Empty(t, readAll(t, e.pool, annals.Checkpoint{}, 10))

	require.NoError(t, txA.Commit(e.ctx))
	for _, r := range feedBlocker(t, e) {
		require.False(t, r.PID != nil && (*r.PID == pidA || *r.PID == pidR), "the finished transaction is no longer shown: %+v", r)
	}
	require.Equal(t, concat(a.IDs, later.IDs), ids(drain(t, e.pool, annals.Checkpoint{}, 10, 2)))
}

func TestFeedBlockerShowsAPreparedTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var maxPrepared string
	require.NoError(t, e.pool.QueryRow(e.ctx, "SHOW max_prepared_transactions").Scan(&maxPrepared))
	if maxPrepared == "0" {
		const why = "max_prepared_transactions is 0 on this server, so no transaction can be prepared; " +
			"set it above 0 (a restart is needed; .ci/run does it) to run this case"
		if os.Getenv("CI") != "" {
			t.Fatal(why + " (CI is set: not skipping)")
		}
		t.Skip(why)
	}

	gid := "annals-feed-test-" + uuid.NewString()
	conn := e.conn(t)
	t.Cleanup(func() { // never leave a prepared transaction behind: it would stall every feed
		_, _ = e.pool.Exec(t.Context(), fmt.Sprintf("ROLLBACK PREPARED '%s'", gid))
	})

	// PostgreSQL cannot prepare a transaction that notified, so two-phase commit needs notify off.
	_, err := conn.Exec(e.ctx, "BEGIN")
	require.NoError(t, err)
	appendEvents(t, conn, "prep-0", "Prepared", 1)
	_, err = conn.Exec(e.ctx, fmt.Sprintf("PREPARE TRANSACTION '%s'", gid))
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "0A000", pgErr.Code, pgErr.Message)
	_, err = conn.Exec(e.ctx, "ROLLBACK")
	require.NoError(t, err)
	_, err = e.pool.Exec(e.ctx, "SELECT annals.configure(notify => false)")
	require.NoError(t, err)

	_, err = conn.Exec(e.ctx, "BEGIN")
	require.NoError(t, err)
	p := appendEvents(t, conn, "prep-1", "Prepared", 1)
	_, err = conn.Exec(e.ctx, fmt.Sprintf("PREPARE TRANSACTION '%s'", gid))
	require.NoError(t, err)

	eventually(t, func() bool {
		rows := feedBlocker(t, e)
		return len(rows) == 1 && rows[0].Kind == "prepared transaction" && rows[0].Query != nil && *rows[0].Query == gid
	}, "feed_blocker never showed the prepared transaction %s", gid)
	require.Equal(t, strconv.FormatUint(p.TransactionID, 10), feedBlocker(t, e)[0].TransactionID)

	_, err = e.pool.Exec(e.ctx, fmt.Sprintf("COMMIT PREPARED '%s'", gid))
	require.NoError(t, err)
	require.Equal(t, p.IDs, ids(drain(t, e.pool, annals.Checkpoint{}, 10, 1)))
}

// subscription_status shows the lag in events and time, and both fall to zero once the
// subscriber caught up; the Go status and feed head agree.
func TestSubscriptionStatusShowsLag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.store.CreateSubscription(e.ctx, "lag", annals.SubscriptionOptions{})
	require.NoError(t, err)
	_, err = e.store.CreateSubscription(e.ctx, "lag-cat", annals.SubscriptionOptions{Categories: []string{"lagging"}, GroupSize: 2})
	require.NoError(t, err)
	appendEvents(t, e.pool, "lagging-1", "Happened", 3)
	appendEvents(t, e.pool, "other-1", "Happened", 2)
	time.Sleep(20 * time.Millisecond)

	st, err := e.store.SubscriptionStatus(e.ctx, "lag")
	require.NoError(t, err)
	require.Len(t, st, 1)
	require.EqualValues(t, 5, st[0].EventsBehind)
	require.False(t, st[0].Capped)
	require.GreaterOrEqual(t, st[0].TimeBehind, 20*time.Millisecond)
	require.Equal(t, annals.Checkpoint{}, st[0].Checkpoint)
	catSt, err := e.store.SubscriptionStatus(e.ctx, "lag-cat")
	require.NoError(t, err)
	require.Len(t, catSt, 2)
	require.EqualValues(t, 3, catSt[0].EventsBehind+catSt[1].EventsBehind, "filters apply, members split")

	s := &annals.Subscriber{Client: e.store, Name: "lag", Handler: applierNoop, PollInterval: 50 * time.Millisecond,
		DisableListen: true}
	start(t, s)
	eventually(t, func() bool { return s.Stats().Processed == 5 }, "the subscriber never caught up")

	head, err := e.store.FeedHead(e.ctx)
	require.NoError(t, err)
	st, err = e.store.SubscriptionStatus(e.ctx, "lag")
	require.NoError(t, err)
	require.Zero(t, st[0].EventsBehind)
	require.Zero(t, st[0].TimeBehind)
	// Caught up: the checkpoint is at the last event the subscriber processed, or past it once an
	// idle read moved it up to the barrier; never behind it, and never past the head's barrier.
	last := s.Stats().Checkpoint
	require.Equal(t, head.LastPosition, last.GlobalPosition, "the subscriber's last batch ended at the feed head")
	require.True(t, st[0].Checkpoint == last || st[0].Checkpoint.After(last),
		"checkpoint %+v is behind the last processed event %+v", st[0].Checkpoint, last)
	if st[0].Checkpoint != last {
		require.Zero(t, st[0].Checkpoint.GlobalPosition, "an idle move lands on a barrier, position 0")
	}
	require.True(t, st[0].LeaseActive)

	var behind int64
	var timeBehind time.Duration
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT s.events_behind, s.time_behind FROM annals.subscription_status AS s
		WHERE s.subscription_name = 'lag'`).Scan(&behind, &timeBehind))
	require.Zero(t, behind)
	require.Zero(t, timeBehind, "the view itself says zero, not NULL")
}

var applierNoop annals.HandlerFunc = func(_ context.Context, _ pgx.Tx, _ annals.RecordedEvent) error { return nil }

package projections_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// M7: a rebuild's last step must not stop the store. Before it asks for SHARE on the events
// table it waits, without holding or queueing for any lock, until the transactions holding a
// conflicting lock have ended; it asks with a short lock_timeout and goes back to waiting when
// that runs out. These tests hold such a lock open in another session and append meanwhile.
// They assert structure only (every append succeeds within a generous statement_timeout while the
// blocker is open and the rebuild has not returned); the slowest append is logged, never asserted.

// rebuildWaiting reports whether a rebuild in this database has reached its last step and is
// waiting there: for the sessions that hold the events table (application_name says "wait"), or
// queued for a lock, as the rebuild did before M7.
func rebuildWaiting(t testing.TB, f fixture) bool {
	t.Helper()
	return scalar[bool](t, f, `SELECT EXISTS (SELECT FROM pg_stat_activity AS a
		WHERE a.datname = current_database() AND a.application_name LIKE 'annals rebuild %'
		  AND (a.wait_event_type = 'Lock' OR a.application_name ~ '^annals rebuild [0-9a-f]+ \d+/\d+ wait '))`)
}

// appendsWhileTheRebuildWaits rebuilds "counts" while blocker (a transaction that hold has set up
// and left idle) stays open, and checks that 20 appends from another session go through
// meanwhile. Then it ends the blocker and checks the rebuilt table.
func appendsWhileTheRebuildWaits(t *testing.T, hold func(t *testing.T, f fixture, blocker pgx.Tx)) {
	f := setup(t)
	slowCounts(t, f, "inline", 0.0001)
	batch := make([]map[string]any, 50)
	for i := range batch {
		batch[i] = map[string]any{"type": "Ticked"}
	}
	for i := range 12 {
		f.appendJSON(t, fmt.Sprintf("acct-%d", i), batch)
		f.appendJSON(t, fmt.Sprintf("other-%d", i), batch[:5])
	}

	blocker, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = blocker.Rollback(context.Background()) }()
	hold(t, f, blocker)

	done := startRebuild(t, f, "counts", 100)
	eventually(t, 30*time.Second, "the rebuild to wait at its last step", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the rebuild returned while the blocker was open: %v", err)
		default:
		}
		return rebuildWaiting(t, f)
	})

	conn, err := f.pool.Acquire(f.ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(f.ctx, "SET statement_timeout = '5s'")
	require.NoError(t, err)
	defer func() { _, _ = conn.Exec(context.Background(), "RESET statement_timeout") }()
	var slowest time.Duration
	for i := range 20 {
		stream := fmt.Sprintf("acct-live-%d", i%3) // the projection's category: skipped, left to the rebuild
		if i%2 == 1 {
			stream = fmt.Sprintf("other-live-%d", i%3)
		}
		start := time.Now()
		_, err := conn.Exec(f.ctx, `SELECT r.stream_version FROM annals.append_events($1, NULL, '[{"type": "Ticked"}]') AS r`, stream)
		require.NoError(t, err, "append %d to %s while the rebuild waits", i, stream)
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("20 appends while the rebuild waited at its last step; slowest %v", slowest)

	// The blocker appends to the projection's category now: dispatch skips it (the rebuild owns
	// the projection), so the rebuild must apply it once the blocker commits. (Before M7 this
	// append deadlocked with a rebuild that held SHARE on the parent table and waited for a
	// partition.)
	_, err = blocker.Exec(f.ctx, `SELECT r.stream_version FROM annals.append_events('acct-blocker', NULL, '[{"type": "Ticked"}, {"type": "Ticked"}]') AS r`)
	require.NoError(t, err)

	// Still: the blocker open, the rebuild waiting.
	_, err = blocker.Exec(f.ctx, "SELECT 1")
	require.NoError(t, err, "the blocker is still open")
	select {
	case err := <-done:
		t.Fatalf("the rebuild returned while the blocker was open: %v", err)
	default:
	}
	// Between two of its short lock attempts the rebuild is briefly neither queued nor marked
	// waiting: sample until it shows again.
	eventually(t, 10*time.Second, "the rebuild to still wait for the blocker", func() bool { return rebuildWaiting(t, f) })

	require.NoError(t, blocker.Commit(f.ctx))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("the rebuild did not finish after the blocker committed")
	}
	require.Zero(t, countsMismatch(t, f), "the rebuilt table equals a full replay")
	require.EqualValues(t, 2, scalar[int64](t, f, "SELECT c.events FROM s.counts AS c WHERE c.stream_id = 'acct-blocker'"),
		"the blocker's skipped events are applied, once")
	require.EqualValues(t, 10, scalar[int64](t, f, "SELECT sum(c.events)::bigint FROM s.counts AS c WHERE c.stream_id LIKE 'acct-live-%'"),
		"the appends made during the wait are applied, once")
	require.Equal(t, "active", scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = 'counts'"))
}

// An append to an unrelated category left idle in transaction holds RowExclusiveLock on the
// events table until it ends. Before M7 the rebuild queued for SHARE behind it, and every append
// in the store queued behind the rebuild.
func TestRebuildWaitingForAnIdleAppendDoesNotStallAppends(t *testing.T) {
	t.Parallel()
	appendsWhileTheRebuildWaits(t, func(t *testing.T, f fixture, blocker pgx.Tx) {
		_, err := blocker.Exec(f.ctx, `SELECT r.stream_version FROM annals.append_events('audit-idle', NULL, '[{"type": "Noted"}]') AS r`)
		require.NoError(t, err)
	})
}

// An open ANALYZE of one partition holds ShareUpdateExclusiveLock on it, as autovacuum does.
// Before M7 the rebuild got SHARE on the parent table, then waited for that partition holding
// it, and every append waited for the rebuild.
func TestRebuildWaitingForAnAnalyzeDoesNotStallAppends(t *testing.T) {
	t.Parallel()
	appendsWhileTheRebuildWaits(t, func(t *testing.T, f fixture, blocker pgx.Tx) {
		_, err := blocker.Exec(f.ctx, "ANALYZE annals_internal.events_p0")
		require.NoError(t, err)
	})
}

// A transaction that holds the events table and then waits for something the rebuild holds (here
// the projection's registry row, as a registry change would lock it) is a deadlock. A rebuild
// that waits by polling is invisible to PostgreSQL's deadlock detector, so it must notice and
// let the detector end one side, as it did when it simply queued for the lock; it must not wait
// forever.
func TestRebuildWaitingForATransactionThatWaitsForItIsADeadlock(t *testing.T) {
	t.Parallel()
	f := setup(t)
	slowCounts(t, f, "inline", 0)
	f.append(t, "acct-1", evs("Ticked", 20)...)

	a, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = a.Rollback(context.Background()) }()
	_, err = a.Exec(f.ctx, `SELECT r.stream_version FROM annals.append_events('audit-a', NULL, '[{"type": "Noted"}]') AS r`)
	require.NoError(t, err)

	done := startRebuild(t, f, "counts", 100)
	eventually(t, 30*time.Second, "the rebuild to wait for A", func() bool { return rebuildWaiting(t, f) })

	locked := make(chan error, 1)
	go func() {
		_, err := a.Exec(f.ctx, "SELECT FROM annals_internal.projections WHERE projection_name = 'counts' FOR UPDATE")
		locked <- err
	}()
	var rebuildErr, lockErr error
	for got := 0; got < 2; {
		select {
		case rebuildErr = <-done:
			got++
			if rebuildErr != nil {
				require.Equal(t, "40P01", pgCode(t, rebuildErr).Code, "the rebuild fails as a deadlock victim, if at all")
			}
		case lockErr = <-locked:
			got++
			if lockErr != nil {
				require.Equal(t, "40P01", pgCode(t, lockErr).Code, "A fails as a deadlock victim, if at all")
				require.NoError(t, a.Rollback(f.ctx))
			} else {
				require.NoError(t, a.Commit(f.ctx))
			}
		case <-time.After(60 * time.Second):
			t.Fatal("neither side of the deadlock ended")
		}
	}
	require.True(t, (rebuildErr == nil) != (lockErr == nil), "exactly one side is the victim: rebuild %v, A %v", rebuildErr, lockErr)
	t.Logf("deadlock victim: rebuild %v, A %v", rebuildErr, lockErr)
	if rebuildErr == nil {
		require.Zero(t, countsMismatch(t, f))
	}
}

// annals.rebuild_lock_timeout sets how long the last step asks for the lock at a time; a value
// that is not a duration fails the rebuild at once (ST422), before any replay.
func TestRebuildLockTimeoutSetting(t *testing.T) {
	t.Parallel()
	f := setup(t)
	slowCounts(t, f, "inline", 0)
	f.append(t, "acct-1", evs("Ticked", 3)...)
	conn, err := f.pool.Acquire(f.ctx)
	require.NoError(t, err)
	defer conn.Release()
	for _, bad := range []string{"soon", "0", "-1s", "2h"} {
		_, err = conn.Exec(f.ctx, "SELECT set_config('annals.rebuild_lock_timeout', $1, false)", bad)
		require.NoError(t, err)
		_, err = conn.Exec(f.ctx, "SELECT annals.rebuild_projection('counts')")
		requireInvalid(t, err, "annals.rebuild_lock_timeout")
	}
	for _, good := range []string{"200ms", "1s", " 5 ms ", ""} {
		_, err = conn.Exec(f.ctx, "SELECT set_config('annals.rebuild_lock_timeout', $1, false)", good)
		require.NoError(t, err)
		var n int64
		require.NoError(t, conn.QueryRow(f.ctx, "SELECT annals.rebuild_projection('counts')").Scan(&n), "setting %q", good)
		require.EqualValues(t, 3, n)
	}
	// Inside one transaction, so a setting left behind would still show.
	tx, err := conn.Begin(f.ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(f.ctx, "SET LOCAL lock_timeout = '7s'")
	require.NoError(t, err)
	_, err = tx.Exec(f.ctx, "SELECT annals.rebuild_projection('counts')")
	require.NoError(t, err)
	var lt string
	require.NoError(t, tx.QueryRow(f.ctx, "SHOW lock_timeout").Scan(&lt))
	require.Equal(t, "7s", lt, "the caller's lock_timeout is back after the rebuild")
	require.NoError(t, tx.Commit(f.ctx))
	_, err = conn.Exec(f.ctx, "RESET lock_timeout; RESET annals.rebuild_lock_timeout")
	require.NoError(t, err)
}

package replicas_test

import (
	"errors"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// wait_for returns as soon as a transaction that was running when it started commits: each check
// runs under a fresh snapshot, although the calling statement's stays held.
func TestWaitForSeesACommitWhileWaiting(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := annalstest.NewDB(t)

	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	a := appendN(t, ctx, tx, "acct-1", 1)

	// Not visible yet, to a check (timeout 0) or a short wait.
	require.False(t, scalar[bool](t, ctx, pool, "SELECT annals.wait_for($1::xid8, '0')", a.xid))
	require.False(t, scalar[bool](t, ctx, pool, "SELECT annals.wait_for($1::xid8, '20 ms')", a.xid))
	// The appending transaction itself sees its writes.
	require.True(t, scalar[bool](t, ctx, tx, "SELECT annals.wait_for($1::xid8, '0')", a.xid))

	done := make(chan bool, 1)
	errs := make(chan error, 1)
	go func() {
		var ok bool
		err := pool.QueryRow(ctx, "SELECT annals.wait_for($1::xid8, '30 s')", a.xid).Scan(&ok)
		errs <- err
		done <- ok
	}()
	// The waiter is inside annals.wait_for before the commit.
	require.Eventually(t, func() bool {
		return scalar[int](t, ctx, pool, `SELECT count(*)::int FROM pg_stat_activity
			WHERE query LIKE 'SELECT annals.wait_for(%' AND state = 'active'`) == 1
	}, waitTimeout, 5*time.Millisecond)
	require.NoError(t, tx.Commit(ctx))
	start := time.Now()
	require.NoError(t, <-errs)
	require.True(t, <-done)
	t.Logf("wait_for returned %s after the commit", time.Since(start))

	// Through the Go client too (it asks with timeout 0 and sleeps in between).
	store := annals.New(pool, annals.ClientOptions{})
	ok, err := store.WaitFor(ctx, a.xid, time.Second)
	require.NoError(t, err)
	require.True(t, ok)
}

// A rolled-back transaction has no effects to wait for: wait_for returns true at once.
func TestWaitForRolledBackTransactionIsTrue(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := annalstest.NewDB(t)
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	a := appendN(t, ctx, tx, "acct-1", 1)
	require.NoError(t, tx.Rollback(ctx))
	require.True(t, scalar[bool](t, ctx, pool, "SELECT annals.wait_for($1::xid8, '0')", a.xid))
}

// In REPEATABLE READ the snapshot is fixed: wait_for checks once and does not wait.
func TestWaitForInRepeatableReadChecksOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := annalstest.NewDB(t)
	open, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer open.Rollback(ctx) //nolint:errcheck
	a := appendN(t, ctx, open, "acct-1", 1)

	rr, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	require.NoError(t, err)
	defer rr.Rollback(ctx) //nolint:errcheck
	start := time.Now()
	require.False(t, scalar[bool](t, ctx, rr, "SELECT annals.wait_for($1::xid8, '1 hour')", a.xid))
	t.Logf("returned after %s", time.Since(start))
}

func TestWaitForRejectsBadArguments(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := annalstest.NewDB(t)
	store := annals.New(pool, annals.ClientOptions{})
	a := appendN(t, ctx, pool, "acct-1", 1)

	for _, c := range []struct {
		name, sql, argument string
		args                []any
	}{
		{"null id", "SELECT annals.wait_for(NULL)", "transaction_id", nil},
		{"future id", "SELECT annals.wait_for($1::xid8, '0')", "transaction_id", []any{a.xid + 1_000_000}},
		{"negative timeout", "SELECT annals.wait_for($1::xid8, '-1 s')", "timeout", []any{a.xid}},
		{"null timeout", "SELECT annals.wait_for($1::xid8, NULL)", "timeout", []any{a.xid}},
		{"projection null id", "SELECT annals.wait_for_projection('p', NULL)", "transaction_id", nil},
		{"projection null name", "SELECT annals.wait_for_projection(NULL, $1::xid8)", "name", []any{a.xid}},
	} {
		if c.name == "projection null id" {
			_, err := pool.Exec(ctx, `CREATE TABLE public.t (n int);
				CREATE FUNCTION public.h(annals.event[]) RETURNS void LANGUAGE sql AS 'SELECT';
				GRANT SELECT, INSERT, UPDATE, DELETE ON public.t TO annals_owner;
				SELECT annals.register_projection('p', 'public.h(annals.event[])', '{public.t}')`)
			require.NoError(t, err)
		}
		_, err := pool.Exec(ctx, c.sql, c.args...)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, c.name)
		require.Equal(t, "ST422", pgErr.Code, c.name)
		var inv *annals.InvalidArgumentError
		require.ErrorAs(t, annals.MapError(err), &inv, c.name)
		require.Equal(t, c.argument, inv.Argument, c.name)
	}

	_, err := pool.Exec(ctx, "SELECT annals.wait_for_projection('nope', $1::xid8)", a.xid)
	require.ErrorIs(t, annals.MapError(err), annals.ErrNotFound)
	_, err = store.WaitForProjection(ctx, "nope", a.xid, time.Second)
	require.ErrorIs(t, err, annals.ErrNotFound)
	require.Contains(t, err.Error(), `projection 'nope' does not exist`)

	_, err = store.WaitFor(ctx, a.xid+1_000_000, time.Second)
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, err = store.WaitFor(ctx, 0, time.Second)
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, err = store.WaitFor(ctx, a.xid, -time.Second)
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
}

// An async projection: wait_for_projection is false until run_async_projections has passed the
// transaction's events, then true; a transaction with no event the projection selects needs
// nothing from it; an inline projection only needs the transaction visible.
func TestWaitForProjection(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := annalstest.NewDB(t)
	store := annals.New(pool, annals.ClientOptions{})
	_, err := pool.Exec(ctx, `
		CREATE SCHEMA s;
		CREATE TABLE s.seen (global_position bigint PRIMARY KEY);
		CREATE FUNCTION s.apply(events annals.event[]) RETURNS void LANGUAGE sql
			AS 'INSERT INTO s.seen SELECT e.global_position FROM unnest(events) AS e';
		GRANT USAGE ON SCHEMA s TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON s.seen TO annals_owner;
		CREATE TABLE s.inline_seen (global_position bigint PRIMARY KEY);
		CREATE FUNCTION s.apply_inline(events annals.event[]) RETURNS void LANGUAGE sql
			AS 'INSERT INTO s.inline_seen SELECT e.global_position FROM unnest(events) AS e';
		GRANT SELECT, INSERT, UPDATE, DELETE ON s.inline_seen TO annals_owner;
		SELECT annals.register_projection('async_acct', 's.apply(annals.event[])', '{s.seen}', categories => '{acct}', mode => 'async');
		SELECT annals.register_projection('inline_acct', 's.apply_inline(annals.event[])', '{s.inline_seen}', categories => '{acct}');`)
	require.NoError(t, err)

	a := appendN(t, ctx, pool, "acct-1", 3)
	other := appendN(t, ctx, pool, "other-1", 1)
	require.False(t, scalar[bool](t, ctx, pool, "SELECT annals.wait_for_projection('async_acct', $1::xid8, '0')", a.xid))
	require.True(t, scalar[bool](t, ctx, pool, "SELECT annals.wait_for_projection('inline_acct', $1::xid8, '0')", a.xid))
	require.True(t, scalar[bool](t, ctx, pool, "SELECT annals.wait_for_projection('async_acct', $1::xid8, '0')", other.xid),
		"no event of that transaction is the projection's")

	// A batch of 2 stops inside the transaction: not passed yet.
	require.Eventually(t, func() bool {
		n, err := store.RunAsyncProjections(ctx, 2)
		require.NoError(t, err)
		return n == 2
	}, waitTimeout, 10*time.Millisecond)
	require.False(t, scalar[bool](t, ctx, pool, "SELECT annals.wait_for_projection('async_acct', $1::xid8, '0')", a.xid))

	errs := make(chan error, 1)
	oks := make(chan bool, 1)
	go func() {
		ok, err := store.WaitForProjection(ctx, "async_acct", a.xid, waitTimeout)
		errs <- err
		oks <- ok
	}()
	_, err = store.RunAsyncProjections(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, <-errs)
	require.True(t, <-oks)
	require.Equal(t, 3, scalar[int](t, ctx, pool, "SELECT count(*)::int FROM s.seen"), "the projection's table has the events")

	// The SQL wait wakes on the runner's commit too.
	b := appendN(t, ctx, pool, "acct-2", 1)
	go func() {
		var ok bool
		err := pool.QueryRow(ctx, "SELECT annals.wait_for_projection('async_acct', $1::xid8, '30 s')", b.xid).Scan(&ok)
		errs <- err
		oks <- ok
	}()
	require.Eventually(t, func() bool {
		n, err := store.RunAsyncProjections(ctx, 100)
		require.NoError(t, err)
		return n == 1
	}, waitTimeout, 10*time.Millisecond)
	require.NoError(t, <-errs)
	require.True(t, <-oks)
}

// The Go client's error for a write refused by a standby, from the SQLSTATE alone.
func TestReadOnlyServerErrorSaysUseThePrimary(t *testing.T) {
	t.Parallel()
	err := annals.MapError(&pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"})
	require.ErrorIs(t, err, annals.ErrReadOnlyServer)
	require.Contains(t, err.Error(), "send writes to the primary")
	require.True(t, errors.Is(annals.Kind(err), annals.ErrReadOnlyServer))
}

// wait_for_projection returns within the batch of the async runner that passes the token's
// transaction: while the runner moves in small batches (as the worker does), a SQL waiter and a
// Go waiter are still waiting after every batch before it, and both return true after that batch
// with no further batch run. No timing: each batch is followed by a look at the waiters.
func TestWaitForProjectionReturnsWithTheBatchThatPassesTheToken(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := annalstest.NewDB(t)
	store := annals.New(pool, annals.ClientOptions{})
	_, err := pool.Exec(ctx, `
		CREATE SCHEMA s;
		CREATE TABLE s.seen (global_position bigint PRIMARY KEY);
		CREATE FUNCTION s.apply(events annals.event[]) RETURNS void LANGUAGE sql
			AS 'INSERT INTO s.seen SELECT e.global_position FROM unnest(events) AS e';
		GRANT USAGE ON SCHEMA s TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON s.seen TO annals_owner;
		SELECT annals.register_projection('async_acct', 's.apply(annals.event[])', '{s.seen}', categories => '{acct}', mode => 'async');`)
	require.NoError(t, err)

	// 3 of the projection's events before the token's transaction, 5 in it, others around them
	// that the projection does not select, 2 after it: with batches of 2 events, the 4th batch
	// that applies events passes the transaction (events 7 and 8).
	appendN(t, ctx, pool, "acct-1", 3)
	appendN(t, ctx, pool, "other-1", 2)
	token := appendN(t, ctx, pool, "acct-2", 5)
	appendN(t, ctx, pool, "other-2", 1)
	appendN(t, ctx, pool, "acct-3", 2)
	const before, inToken, batch = 3, 5, 2

	// The SQL waiter, on a connection whose pid we know, and the Go client's (polling) waiter.
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	pid := conn.Conn().PgConn().PID()
	type result struct {
		ok  bool
		err error
	}
	sqlDone, goDone := make(chan result, 1), make(chan result, 1)
	go func() {
		var r result
		r.err = conn.QueryRow(ctx, "SELECT annals.wait_for_projection('async_acct', $1::xid8, '10 min')", token.xid).Scan(&r.ok)
		sqlDone <- r
	}()
	go func() {
		var r result
		r.ok, r.err = store.WaitForProjection(ctx, "async_acct", token.xid, 10*time.Minute)
		goDone <- r
	}()
	// The SQL waiter is inside its loop before the first batch runs.
	require.Eventually(t, func() bool {
		return scalar[bool](t, ctx, pool, `SELECT EXISTS (SELECT FROM pg_stat_activity AS a
			WHERE a.pid = $1 AND a.state = 'active' AND a.query LIKE '%wait_for_projection%')`, pid)
	}, waitTimeout, 5*time.Millisecond)

	applied, batches, short := 0, 0, false
	for applied < before+inToken {
		select {
		case r := <-sqlDone:
			t.Fatalf("the SQL wait returned %v, %v after %d events in %d batches, before the batch that passes the token", r.ok, r.err, applied, batches)
		case r := <-goDone:
			t.Fatalf("WaitForProjection returned %v, %v after %d events in %d batches, before the batch that passes the token", r.ok, r.err, applied, batches)
		default:
		}
		n, err := store.RunAsyncProjections(ctx, batch)
		require.NoError(t, err)
		if n == 0 { // the feed barrier held by another test's transaction: run again
			continue
		}
		applied += int(n)
		batches++
		short = short || n < batch
	}
	if !short { // a short batch (another test's transaction holding the barrier) shifts them
		require.Equal(t, (before+inToken)/batch, batches)
	}
	// No further batch runs: both waiters return true now, from the batch just committed.
	for _, done := range []chan result{sqlDone, goDone} {
		select {
		case r := <-done:
			require.NoError(t, r.err)
			require.True(t, r.ok)
		case <-time.After(waitTimeout):
			t.Fatalf("a waiter did not return after the batch that passed the token")
		}
	}
	require.Equal(t, applied, scalar[int](t, ctx, pool, "SELECT count(*)::int FROM s.seen"),
		"no batch ran after the one that passed the token")
	require.Less(t, applied, before+inToken+2, "the events after the token's transaction were not all applied")
}

package tests

import (
	"errors"
	"sync"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// race runs fn in n goroutines released at the same moment and returns their errors.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func TestConcurrentNoStreamAppends(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{AppendAttempts: 1}) // a spurious failure must show, not be retried away
	s := stream("race")

	const racers = 50
	batches := make([][]annals.EventData, racers)
	for i := range batches {
		batches[i] = events(t, "Created", 2)
	}
	errs := race(racers, func(i int) error {
		_, err := f.store.Append(f.ctx, s, annals.NoStream, batches[i]...)
		return err
	})

	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two racers won: %d and %d", winner, i)
			winner = i
			continue
		}
		var wev *annals.WrongExpectedVersionError
		require.ErrorAs(t, err, &wev, "racer %d", i)
		require.EqualValues(t, 2, wev.Actual)
		require.Equal(t, annals.NoStream, wev.Expected)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "ST409", pgErr.Code, "never a raw 23505 or a 40001")
	}
	require.NotEqual(t, -1, winner, "exactly one racer wins")

	got := f.readAll(t, s)
	require.Len(t, got, 2)
	require.Equal(t, batches[winner][0].ID, got[0].EventID)
	require.Equal(t, batches[winner][1].ID, got[1].EventID)
}

func TestConcurrentAnyAppends(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{AppendAttempts: 1})
	s := stream("race")

	const racers, perBatch = 32, 5
	batches := make([][]annals.EventData, racers)
	for i := range batches {
		batches[i] = events(t, "Added", perBatch)
	}
	results := make([]annals.AppendResult, racers)
	errs := race(racers, func(i int) error {
		var err error
		results[i], err = f.store.Append(f.ctx, s, annals.Any, batches[i]...)
		return err
	})
	for i, err := range errs {
		require.NoError(t, err, "racer %d: concurrent single-statement appends never fail", i)
	}

	got := f.readAll(t, s)
	require.Len(t, got, racers*perBatch, "nothing lost")
	batchOf := map[uuid.UUID]int{}
	for i, b := range batches {
		for _, e := range b {
			batchOf[e.ID] = i
		}
	}
	for i, e := range got {
		require.EqualValues(t, i+1, e.StreamVersion, "versions are contiguous")
		if i == 0 {
			continue
		}
		prev := got[i-1]
		require.Greater(t, e.GlobalPosition, prev.GlobalPosition, "global positions increase with versions")
		require.GreaterOrEqual(t, e.TransactionID, prev.TransactionID, "transaction ids never decrease with versions")
	}
	// Every batch landed whole, in order, and its result names its own last event.
	for i, b := range batches {
		last := results[i].StreamVersion
		require.EqualValues(t, perBatch, len(results[i].EventIDs))
		for j, e := range b {
			stored := got[last-perBatch+int64(j)]
			require.Equal(t, e.ID, stored.EventID, "batch %d event %d", i, j)
			require.Equal(t, i, batchOf[stored.EventID])
			require.Equal(t, results[i].TransactionID, stored.TransactionID)
		}
		require.Equal(t, got[last-1].GlobalPosition, results[i].GlobalPosition)
	}
}

func TestConcurrentExactAppendsOnlyConflict(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{AppendAttempts: 1})
	s := stream("race")

	// Writers read the version, then append with it as expected; losers reload and try again.
	// The only failure anyone may see is the wrong expected version.
	const writers, appendsEach = 8, 6
	errs := race(writers, func(i int) error {
		for done := 0; done < appendsEach; {
			v := int64(0)
			info, err := f.store.StreamInfo(f.ctx, s)
			if err == nil {
				v = info.StreamVersion
			} else if !errors.Is(err, annals.ErrStreamNotFound) {
				return err
			}
			_, err = f.store.Append(f.ctx, s, annals.Exact(v), annals.EventData{Type: "Tick"})
			if errors.Is(err, annals.ErrWrongExpectedVersion) {
				continue
			}
			if err != nil {
				return err
			}
			done++
		}
		return nil
	})
	for i, err := range errs {
		require.NoError(t, err, "writer %d", i)
	}
	require.EqualValues(t, writers*appendsEach, f.version(t, s))
	require.EqualValues(t, writers*appendsEach, f.countRows(t, s))
}

func TestConcurrentAppendsFirstInTransaction(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("race")
	_, err := f.pool.Exec(f.ctx, "CREATE TABLE public.side (n int)")
	require.NoError(t, err)

	// A transaction whose first write is the append may write more afterwards: the advisory lock
	// keeps transaction ids in version order, so it never gets 40001.
	const racers = 16
	errs := race(racers, func(i int) error {
		return pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
			if _, err := f.store.AppendTx(f.ctx, tx, s, annals.Any, annals.EventData{Type: "InTx"}); err != nil {
				return err
			}
			_, err := tx.Exec(f.ctx, "INSERT INTO public.side VALUES ($1)", i)
			return err
		})
	})
	for i, err := range errs {
		require.NoError(t, err, "racer %d", i)
	}
	got := f.readAll(t, s)
	require.Len(t, got, racers)
	for i := 1; i < len(got); i++ {
		require.Greater(t, got[i].TransactionID, got[i-1].TransactionID)
	}
}

func TestOlderTransactionGets40001(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{AppendAttempts: 1})
	s := stream("xid")

	// Transaction A takes its id first (any write would do), then B appends to the stream and
	// commits, then A appends: A's id is older than the stream's last appender's.
	connA, err := f.pool.Acquire(f.ctx)
	require.NoError(t, err)
	defer connA.Release()
	txA, err := connA.Begin(f.ctx)
	require.NoError(t, err)
	defer txA.Rollback(f.ctx) //nolint:errcheck
	var xidA uint64
	require.NoError(t, txA.QueryRow(f.ctx, "SELECT pg_catalog.pg_current_xact_id()").Scan(&xidA))

	connB, err := f.pool.Acquire(f.ctx)
	require.NoError(t, err)
	txB, err := connB.Begin(f.ctx)
	require.NoError(t, err)
	resB, err := f.store.AppendTx(f.ctx, txB, s, annals.Any, annals.EventData{Type: "FromB"})
	require.NoError(t, err)
	require.NoError(t, txB.Commit(f.ctx))
	connB.Release()
	require.Greater(t, resB.TransactionID, xidA)

	batch := []annals.EventData{ev(t, "FromA", nil)}
	_, err = f.store.AppendTx(f.ctx, txA, s, annals.Any, batch...)
	require.True(t, annals.IsRetryable(err), "want a retryable error, got %v", err)
	pgErr := requirePgError(t, err, "40001")
	d := detailOf(t, pgErr)
	require.Equal(t, s, d["stream_id"])
	require.NoError(t, txA.Rollback(f.ctx))
	require.EqualValues(t, 1, f.countRows(t, s), "A wrote nothing")

	// The retry in a fresh transaction succeeds, with the same event ids.
	var res annals.AppendResult
	err = pgx.BeginFunc(f.ctx, connA, func(tx pgx.Tx) error {
		var err error
		res, err = f.store.AppendTx(f.ctx, tx, s, annals.Any, batch...)
		return err
	})
	require.NoError(t, err)
	require.EqualValues(t, 2, res.StreamVersion)
	require.Greater(t, res.TransactionID, resB.TransactionID)

	// A transaction that appended to this stream itself may append again (same id, not older).
	err = pgx.BeginFunc(f.ctx, connA, func(tx pgx.Tx) error {
		if _, err := f.store.AppendTx(f.ctx, tx, s, annals.Exact(2), annals.EventData{Type: "One"}); err != nil {
			return err
		}
		_, err := f.store.AppendTx(f.ctx, tx, s, annals.Exact(3), annals.EventData{Type: "Two"})
		return err
	})
	require.NoError(t, err)
	require.EqualValues(t, 4, f.version(t, s))
}

// TestConflictsFailFastWhileTheStreamIsLocked: while another transaction holds a stream's append
// lock, an append whose expected version is already wrong for good (0 on an existing stream, n on
// a stream beyond n) gets its ST409 at once, with the same SQLSTATE, message, DETAIL and HINT as
// under the lock; a resent stored batch still replays; an expected version that the pending
// commit may make right still waits. Both append functions.
func TestConflictsFailFastWhileTheStreamIsLocked(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const id1 = "0190a8f2-7c1e-7000-8000-0000000000b1"
	const id2 = "0190a8f2-7c1e-7000-8000-0000000000b2"

	calls := map[string]string{
		"append_events": `SELECT r.stream_version, r.global_position FROM annals.append_events($1, $2, $3::jsonb) AS r`,
		"append_event": `SELECT r.stream_version, r.global_position FROM annals.append_event($1, $2, $3::jsonb -> 0 ->> 'type',
			$3::jsonb -> 0 -> 'data', event_id => ($3::jsonb -> 0 ->> 'id')::uuid) AS r`,
	}
	for name, query := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := stream("failfast")
			stored := `[{"type":"A","id":"` + id1 + `","data":{"n":1}},{"type":"B","id":"` + id2 + `","data":{}}]`
			var firstV, firstP int64
			require.NoError(t, f.pool.QueryRow(f.ctx, calls["append_events"], s, 0, stored).Scan(&firstV, &firstP))

			holder, err := f.pool.Acquire(f.ctx)
			require.NoError(t, err)
			defer holder.Release()
			caller, err := f.pool.Acquire(f.ctx)
			require.NoError(t, err)
			defer caller.Release()
			_, err = caller.Exec(f.ctx, "SET lock_timeout = '300ms'")
			require.NoError(t, err)
			defer caller.Exec(f.ctx, "RESET lock_timeout") //nolint:errcheck

			call := func(expected any, batch string) (int64, int64, error) {
				var v, p int64
				err := caller.QueryRow(f.ctx, query, s, expected, batch).Scan(&v, &p)
				return v, p, err
			}
			lockedCall := func(expected any, batch string) (int64, int64, error) {
				tx, err := holder.Begin(f.ctx)
				require.NoError(t, err)
				defer tx.Rollback(f.ctx) //nolint:errcheck
				_, err = tx.Exec(f.ctx, "SELECT annals.append_events($1, NULL, '[{\"type\":\"Holder\"}]')", s)
				require.NoError(t, err)
				return call(expected, batch)
			}

			conflicts := []struct {
				expected any
				batch    string
			}{
				{0, `[{"type":"T"}]`},
				{1, `[{"type":"T"}]`},
				{0, `[{"type":"A","id":"` + id1 + `","data":{"n":2}}]`}, // ST412: the id with other content
				{1, `[{"type":"A","id":"` + id1 + `","data":{"n":1}}]`}, // ST412: the id at another position
			}
			for _, c := range conflicts {
				_, _, early := lockedCall(c.expected, c.batch)
				_, _, late := call(c.expected, c.batch)
				var earlyErr, lateErr *pgconn.PgError
				require.ErrorAs(t, early, &earlyErr, "%v %s", c.expected, c.batch)
				require.ErrorAs(t, late, &lateErr)
				require.Contains(t, []string{"ST409", "ST412"}, earlyErr.Code)
				require.Equal(t, []string{lateErr.Code, lateErr.Message, lateErr.Detail, lateErr.Hint},
					[]string{earlyErr.Code, earlyErr.Message, earlyErr.Detail, earlyErr.Hint})
			}

			if name == "append_events" {
				// The stored batch replays while the lock is held.
				v, p, err := lockedCall(0, stored)
				require.NoError(t, err)
				require.Equal(t, []int64{firstV, firstP}, []int64{v, p})
			}
			// The first event alone is a replay at expected 0 too.
			v, _, err := lockedCall(0, `[{"type":"A","id":"`+id1+`","data":{"n":1}}]`)
			require.NoError(t, err)
			require.EqualValues(t, 1, v)

			// Versions the pending commit may make right, and any/-1, wait for the lock.
			for _, expected := range []any{2, 3, -1, nil} {
				_, _, err := lockedCall(expected, `[{"type":"T"}]`)
				requirePgError(t, err, "55P03")
			}
			require.EqualValues(t, 2, f.countRows(t, s))
		})
	}
}

// TestWaitersFailWhenTheHolderCommits: appends waiting behind a stream's lock holder with the
// version the holder is about to move past all get their ST409 once it commits, with the new
// version as actual, and an append at that version then succeeds. (They wait with a shared lock
// that each drops at once, so they wake together; the hot-stream bench measures what that earns.)
func TestWaitersFailWhenTheHolderCommits(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("waiters")
	_, err := f.pool.Exec(f.ctx, `SELECT annals.append_events($1, 0, '[{"type":"A"}]')`, s)
	require.NoError(t, err)

	holder, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer holder.Rollback(f.ctx) //nolint:errcheck
	_, err = holder.Exec(f.ctx, `SELECT annals.append_events($1, 1, '[{"type":"Holder"}]')`, s)
	require.NoError(t, err)

	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := f.pool.Exec(f.ctx, `SELECT annals.append_events($1, 1, '[{"type":"Waiter"}]')`, s)
			errs <- err
		}()
	}
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT count(*) FROM pg_stat_activity AS a
			WHERE a.datname = current_database() AND a.wait_event_type = 'Lock' AND strpos(a.query, 'Waiter') > 0`).Scan(&n))
		return n == 3
	}, 30*time.Second, 10*time.Millisecond, "the three appends wait for the holder")
	require.NoError(t, holder.Commit(f.ctx))
	for range 3 {
		pgErr := requirePgError(t, <-errs, "ST409")
		require.JSONEq(t, `{"stream_id": "`+s+`", "expected": 1, "actual": 2}`, pgErr.Detail)
	}
	_, err = f.pool.Exec(f.ctx, `SELECT annals.append_events($1, 2, '[{"type":"B"}]')`, s)
	require.NoError(t, err)
	require.EqualValues(t, 3, f.countRows(t, s))
}

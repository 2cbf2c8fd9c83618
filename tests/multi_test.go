package tests

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestAppendMultiAllOrNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	a, b := stream("order"), stream("stock")

	res, err := f.store.AppendMulti(f.ctx,
		annals.StreamAppend{StreamID: a, Expected: annals.NoStream, Events: events(t, "Placed", 2)},
		annals.StreamAppend{StreamID: b, Expected: annals.Any, Events: events(t, "Reserved", 1)})
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.Equal(t, a, res[0].StreamID)
	require.EqualValues(t, 2, res[0].StreamVersion)
	require.Equal(t, b, res[1].StreamID)
	require.EqualValues(t, 1, res[1].StreamVersion)
	require.Equal(t, res[0].TransactionID, res[1].TransactionID, "one transaction")
	require.Len(t, res[0].EventIDs, 2)

	// The second append's expected version is wrong: nothing is written to either stream, and
	// the error names the failing stream.
	_, err = f.store.AppendMulti(f.ctx,
		annals.StreamAppend{StreamID: a, Expected: annals.Exact(2), Events: events(t, "Paid", 1)},
		annals.StreamAppend{StreamID: b, Expected: annals.Exact(7), Events: events(t, "Released", 1)})
	var wev *annals.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	require.Equal(t, b, wev.StreamID)
	require.EqualValues(t, 1, wev.Actual)
	pgErr := requirePgError(t, err, "ST409")
	require.Equal(t, b, detailOf(t, pgErr)["stream_id"])
	require.EqualValues(t, 2, f.version(t, a), "all or nothing: the first stream is untouched")
	require.EqualValues(t, 1, f.version(t, b))
}

func TestAppendMultiRetryIsAReplay(t *testing.T) {
	t.Parallel()
	f := setup(t)
	a, b := stream("order"), stream("stock")
	appends := []annals.StreamAppend{
		{StreamID: a, Expected: annals.NoStream, Events: events(t, "Placed", 1)},
		{StreamID: b, Expected: annals.NoStream, Events: events(t, "Reserved", 2)},
	}
	first, err := f.store.AppendMulti(f.ctx, appends...)
	require.NoError(t, err)
	again, err := f.store.AppendMulti(f.ctx, appends...)
	require.NoError(t, err, "resending the same ids is a replay")
	require.Equal(t, first, again)
	evs, _ := f.totals(t)
	require.EqualValues(t, 3, evs)

	// The same ids with other content: ST412 naming the stream.
	changed := append([]annals.EventData(nil), appends[1].Events...)
	changed[1].Data = map[string]any{"other": true}
	_, err = f.store.AppendMulti(f.ctx, appends[0], annals.StreamAppend{StreamID: b, Expected: annals.NoStream, Events: changed})
	var idc *annals.EventIDConflictError
	require.ErrorAs(t, err, &idc)
	require.Equal(t, b, idc.StreamID)
}

func TestAppendMultiInvalid(t *testing.T) {
	t.Parallel()
	f := setup(t)
	cases := []struct {
		name, appends, argument string
	}{
		{"null", `null`, "appends"},
		{"object", `{}`, "appends"},
		{"empty", `[]`, "appends"},
		{"element not object", `[1]`, "appends[0]"},
		{"unknown key", `[{"stream_id":"a-1","events":[],"x":1}]`, "appends[0]"},
		{"no stream id", `[{"events":[]}]`, "appends[0].stream_id"},
		{"bad stream id", `[{"stream_id":" a","events":[]}]`, "appends[0].stream_id"},
		{"bad expected", `[{"stream_id":"a-1","expected_version":-2,"events":[]}]`, "appends[0].expected_version"},
		{"fractional expected", `[{"stream_id":"a-1","expected_version":1.5,"events":[]}]`, "appends[0].expected_version"},
		{"no events", `[{"stream_id":"a-1"}]`, "appends[0].events"},
		{"duplicate stream", `[{"stream_id":"a-1","events":[]},{"stream_id":"a-1","events":[]}]`, "appends[1].stream_id"},
		{"bad event", `[{"stream_id":"a-1","events":[]},{"stream_id":"b-1","events":[{"type":"","data":{}}]}]`, "appends[1].events[0].type"},
		{"bad tags", `[{"stream_id":"a-1","events":[{"type":"X","data":{},"tags":"t"}]}]`, "appends[0].events[0].tags"},
		{"bad tag", `[{"stream_id":"a-1","events":[{"type":"X","data":{},"tags":["ok", ""]}]}]`, "appends[0].events[0].tags"},
	}
	for _, c := range cases {
		_, err := f.pool.Exec(f.ctx, "SELECT * FROM annals.append_multi($1::jsonb)", c.appends)
		pgErr := requirePgError(t, err, "ST422")
		require.Equal(t, c.argument, detailOf(t, pgErr)["argument"], c.name)
	}
	_, err := f.pool.Exec(f.ctx, `SELECT * FROM annals.append_multi('[{"stream_id":"$x","events":[]}]')`)
	requirePgError(t, err, "ST403")
	_, err = f.pool.Exec(f.ctx, `SELECT annals.configure(max_batch_events => 2)`)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, `SELECT * FROM annals.append_multi('[{"stream_id":"a-1","events":[{"type":"X"},{"type":"X"},{"type":"X"}]}]')`)
	pgErr := requirePgError(t, err, "ST413")
	require.Equal(t, "a-1", detailOf(t, pgErr)["stream_id"])
	_, err = f.pool.Exec(f.ctx, `SELECT * FROM annals.append_multi('[{"stream_id":"a-1","events":[]},{"stream_id":"b-1","events":[]},{"stream_id":"c-1","events":[]}]')`)
	requirePgError(t, err, "ST413")

	_, err = f.store.AppendMulti(f.ctx)
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, err = f.store.AppendMulti(f.ctx, annals.StreamAppend{StreamID: "a-1", Events: []annals.EventData{{Type: "X", Tags: []string{""}}}})
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
}

// TestAppendMultiStress runs many clients over a few streams, each appending to a random subset
// in a random order, mostly at the version it last saw. No append may fail with anything but a
// version conflict (no 40001, no deadlock), and the stored history must be exactly the successful
// appends: every success's events at the versions it was told, every failure's events nowhere,
// no version twice or missing.
func TestAppendMultiStress(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{AppendAttempts: 1}) // a spurious failure must show, not be retried away
	const nStreams, clients, rounds = 5, 16, 25
	streams := make([]string, nStreams)
	for i := range streams {
		streams[i] = stream("stress")
	}

	type placed struct {
		stream  string
		ids     []uuid.UUID
		version int64 // the stream's version after this append
	}
	var mu sync.Mutex
	var won []placed
	var lost []uuid.UUID
	var conflicts int
	known := make([]int64, nStreams) // last seen versions, racy on purpose (guarded by mu)

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(c), 42))
			for range rounds {
				perm := rnd.Perm(nStreams)[:1+rnd.IntN(nStreams)]
				appends := make([]annals.StreamAppend, len(perm))
				mu.Lock()
				for i, s := range perm {
					exp := annals.Exact(known[s])
					if known[s] == 0 {
						exp = annals.NoStream
					}
					if rnd.IntN(3) == 0 {
						exp = annals.Any
					}
					appends[i] = annals.StreamAppend{StreamID: streams[s], Expected: exp, Events: events(t, "Tick", 1+rnd.IntN(3))}
				}
				mu.Unlock()
				res, err := f.store.AppendMulti(f.ctx, appends...)
				mu.Lock()
				if err == nil {
					for i, r := range res {
						won = append(won, placed{r.StreamID, r.EventIDs, r.StreamVersion})
						if r.StreamVersion > known[perm[i]] {
							known[perm[i]] = r.StreamVersion
						}
					}
				} else {
					var pgErr *pgconn.PgError
					if !errors.Is(err, annals.ErrWrongExpectedVersion) || !errors.As(err, &pgErr) || pgErr.Code != "ST409" {
						mu.Unlock()
						errs <- err
						return
					}
					conflicts++
					for _, a := range appends {
						for _, e := range a.Events {
							lost = append(lost, e.ID)
						}
					}
					var wev *annals.WrongExpectedVersionError
					if errors.As(err, &wev) {
						for i, s := range streams {
							if s == wev.StreamID && wev.Actual > known[i] {
								known[i] = wev.Actual
							}
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "only ST409 may fail a multi-append")
	}
	t.Logf("%d appends won, %d lost on a version conflict", len(won), conflicts)
	require.NotZero(t, len(won))

	// Where each stored event must be, from the successes alone.
	want := map[string]map[int64]uuid.UUID{}
	for _, p := range won {
		if want[p.stream] == nil {
			want[p.stream] = map[int64]uuid.UUID{}
		}
		for i, id := range p.ids {
			v := p.version - int64(len(p.ids)) + 1 + int64(i)
			prev, dup := want[p.stream][v]
			require.False(t, dup, "version %d of %s given to two appends (%s, %s)", v, p.stream, prev, id)
			want[p.stream][v] = id
		}
	}
	lostSet := map[uuid.UUID]bool{}
	for _, id := range lost {
		lostSet[id] = true
	}
	for _, s := range streams {
		got := f.readAll(t, s)
		require.Len(t, got, len(want[s]), "stream %s: every version is one success's event", s)
		for _, e := range got {
			require.Equal(t, want[s][e.StreamVersion], e.EventID, "%s@%d", s, e.StreamVersion)
			require.False(t, lostSet[e.EventID], "a failed multi-append wrote %s", e.EventID)
		}
	}
}

// The 40001 that two appends in one transaction can meet: the transaction gets its id on the
// first stream, then waits for the second stream's lock, whose holder appends with a younger id
// and commits. Two append_events calls do meet it (the scenario is real); append_multi takes every
// lock before its transaction has an id, so it does not.
func TestAppendMultiNo40001AfterWaiting(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{AppendAttempts: 1})
	run := func(appendBoth func(a, b string) error) error {
		a, b := stream("x"), stream("y")
		holder, err := f.pool.Begin(f.ctx)
		require.NoError(t, err)
		defer holder.Rollback(f.ctx) //nolint:errcheck
		// Hold b's append lock (the key append_events uses) without a transaction id yet, as an
		// appender between its lock and its insert.
		_, err = holder.Exec(f.ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", b)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- appendBoth(a, b) }()
		waitForAdvisoryWaiter(t, f)
		_, err = f.store.AppendTx(f.ctx, holder, b, annals.Any, events(t, "Held", 1)...) // a younger id
		require.NoError(t, err)
		require.NoError(t, holder.Commit(f.ctx))
		return <-done
	}

	err := run(func(a, b string) error {
		tx, err := f.pool.Begin(f.ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(f.ctx) //nolint:errcheck
		if _, err := f.store.AppendTx(f.ctx, tx, a, annals.Any, events(t, "A", 1)...); err != nil {
			return err
		}
		if _, err := f.store.AppendTx(f.ctx, tx, b, annals.Any, events(t, "B", 1)...); err != nil {
			return err
		}
		return tx.Commit(f.ctx)
	})
	requirePgError(t, err, "40001")

	err = run(func(a, b string) error {
		_, err := f.store.AppendMulti(f.ctx,
			annals.StreamAppend{StreamID: a, Expected: annals.Any, Events: events(t, "A", 1)},
			annals.StreamAppend{StreamID: b, Expected: annals.Any, Events: events(t, "B", 1)})
		return err
	})
	require.NoError(t, err, "no 40001: the multi-append had no transaction id while it waited")
}

// waitForAdvisoryWaiter blocks until some backend of the test database waits for an advisory lock.
func waitForAdvisoryWaiter(t *testing.T, f fixture) {
	t.Helper()
	for i := 0; ; i++ {
		var n int
		require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT count(*) FROM pg_catalog.pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&n))
		if n > 0 {
			return
		}
		require.Less(t, i, 6000, "no backend waited for an advisory lock within a minute")
		_, err := f.pool.Exec(f.ctx, "SELECT pg_sleep(0.01)")
		require.NoError(t, err)
	}
}

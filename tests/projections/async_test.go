package projections_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/stretchr/testify/require"
)

// An async projection does nothing on append; annals.run_async_projections applies each event
// exactly once, even from two concurrent runners while appends go on; a failing event is parked
// and the projection moves past it.
func TestAsyncProjectionExactlyOnceWithDeadLetters(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.exec(t, `
		CREATE SCHEMA s;
		-- No unique key on purpose: a double application shows as a duplicate row.
		CREATE TABLE s.applied (global_position bigint NOT NULL, stream_id text NOT NULL, stream_version bigint NOT NULL,
		                        txid xid8 NOT NULL DEFAULT pg_current_xact_id());
		CREATE FUNCTION s.apply(events annals.event[]) RETURNS void LANGUAGE plpgsql AS $fn$
		BEGIN
			IF EXISTS (SELECT FROM unnest(events) AS e WHERE e.data ->> 'poison' = 'true') THEN
				RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'poison in batch';
			END IF;
			INSERT INTO s.applied (global_position, stream_id, stream_version)
			SELECT e.global_position, e.stream_id, e.stream_version FROM unnest(events) AS e;
		END
		$fn$;`)
	f.grantOwner(t, "s")
	f.register(t, projection{name: "feed_copy", handler: "s.apply(annals.event[])", tables: []string{"s.applied"},
		categories: []string{"acct"}, mode: "async"})

	// The dispatch trigger stays off: no inline projection exists.
	require.Equal(t, "D", scalar[string](t, f, `SELECT t.tgenabled::text FROM pg_trigger AS t
		WHERE t.tgrelid = 'annals_internal.events'::regclass AND t.tgname = 'events_dispatch_inline'`))

	var acct int64
	for i := range 30 {
		batch := evs("Ticked", 1+i%4)
		if i == 11 {
			batch[0] = ev("Ticked", map[string]any{"poison": true})
		}
		f.append(t, fmt.Sprintf("acct-%d", i%5), batch...)
		f.append(t, fmt.Sprintf("other-%d", i%3), ev("Ticked", nil)) // not this projection's category
		acct += int64(len(batch))
	}
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM s.applied"), "nothing happens on append")
	eventually(t, 30*time.Second, "the lag to show", func() bool {
		return scalar[int64](t, f, "SELECT p.events_behind FROM annals.projections AS p WHERE p.projection_name = 'feed_copy'") == acct
	})
	st, err := f.store.Projections(f.ctx)
	require.NoError(t, err)
	require.Len(t, st, 1)
	require.Equal(t, "async", st[0].Mode)
	require.Equal(t, "active", st[0].State)
	require.Equal(t, acct, st[0].EventsBehind)

	// Two runners, small batches, and a writer, all at once.
	var wg sync.WaitGroup
	var stop atomic.Bool
	var runs, processed atomic.Int64
	errs := make(chan error, 4)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				n, err := f.store.RunAsyncProjections(f.ctx, 7)
				if err != nil {
					errs <- err
					return
				}
				runs.Add(1)
				processed.Add(n)
				if n == 0 {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	var more atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 40 {
			if _, err := f.store.Append(f.ctx, fmt.Sprintf("acct-%d", i%7), annals.Any, evs("Ticked", 2)...); err != nil {
				errs <- err
				return
			}
			more.Add(2)
		}
	}()
	total := func() int64 { return acct + more.Load() }
	eventually(t, 30*time.Second, "the runners to catch up", func() bool {
		return more.Load() == 80 &&
			scalar[int64](t, f, "SELECT p.events_behind FROM annals.projections AS p WHERE p.projection_name = 'feed_copy'") == 0
	})
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d runs processed %d events", runs.Load(), processed.Load())
	require.Equal(t, total(), processed.Load(), "each event counted once by the runners, the parked one included")

	// Exactly once: every acct event but the poison one, no duplicates.
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM (SELECT global_position FROM s.applied GROUP BY 1 HAVING count(*) > 1) AS d"))
	require.Equal(t, total()-1, scalar[int64](t, f, "SELECT count(*) FROM s.applied"))
	require.Zero(t, scalar[int64](t, f, `SELECT count(*) FROM annals_internal.events AS e
		WHERE e.category = 'acct' AND e.data ->> 'poison' IS NULL
		  AND NOT EXISTS (SELECT FROM s.applied AS a WHERE a.global_position = e.global_position)`))
	// Concurrent runners never applied in parallel: both came through, batches split nowhere twice.
	require.Greater(t, runs.Load(), int64(4))

	// The poison event is parked under the projection's subscription; later events went through.
	var stream string
	var version int64
	var lastErr, status string
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT d.stream_id, d.stream_version, d.last_error, d.status
		FROM annals.dead_letters AS d WHERE d.subscription_name = '$projection:feed_copy'`).Scan(&stream, &version, &lastErr, &status))
	require.Equal(t, "acct-1", stream)
	require.Equal(t, "parked", status)
	require.Contains(t, lastErr, "poison in batch")
	require.Contains(t, lastErr, "P0001")
	var state, projErr string
	var deadLetters, behind int64
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT p.state, p.last_error, p.dead_letters, p.events_behind
		FROM annals.projections AS p WHERE p.projection_name = 'feed_copy'`).Scan(&state, &projErr, &deadLetters, &behind))
	require.Equal(t, "failing", state)
	require.Contains(t, projErr, fmt.Sprintf("%s@%d", stream, version))
	require.EqualValues(t, 1, deadLetters)
	require.Zero(t, behind)
	// The checkpoint is the last acct event.
	require.True(t, scalar[bool](t, f, `SELECT (p.checkpoint_transaction, p.checkpoint_position) =
		(SELECT e.transaction_id, e.global_position FROM annals_internal.events AS e WHERE e.category = 'acct'
		  ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1)
		FROM annals.projections AS p WHERE p.projection_name = 'feed_copy'`))

	// Running again does nothing; a disabled async projection waits, enabled it catches up.
	n, err := f.store.RunAsyncProjections(f.ctx, 0)
	require.NoError(t, err)
	require.Zero(t, n)
	f.exec(t, "SELECT annals.set_projection_enabled('feed_copy', false)")
	f.append(t, "acct-1", evs("Ticked", 3)...)
	n, err = f.store.RunAsyncProjections(f.ctx, 0)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, "disabled", scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = 'feed_copy'"))
	f.exec(t, "SELECT annals.set_projection_enabled('feed_copy', true)")
	drainAsync(t, f)
	require.Equal(t, total()+3-1, scalar[int64](t, f, "SELECT count(*) FROM s.applied"))

	// A rebuild replays everything (the poison event fails again: the handler rejects it in any
	// batch, so the rebuild fails and changes nothing but the state: stale, until a rebuild succeeds).
	_, err = f.store.RebuildProjection(f.ctx, "feed_copy", nil, 0)
	require.Equal(t, "P0001", pgCode(t, err).Code)
	require.Equal(t, total()+3-1, scalar[int64](t, f, "SELECT count(*) FROM s.applied"))
	require.Equal(t, "stale", scalar[string](t, f, "SELECT p.state FROM annals.projections AS p WHERE p.projection_name = 'feed_copy'"))
}

// Async projections run from the gap-free feed: a transaction that is still open holds them back,
// and its events, committed later with an older id, are applied in feed order, not skipped.
func TestAsyncProjectionWaitsForOlderTransactions(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.createCallLog(t)
	f.logProjectionMode(t, "async", "async", nil, nil)

	older, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer older.Rollback(f.ctx) //nolint:errcheck
	oldRes, err := f.store.AppendTx(f.ctx, older, "acct-old", annals.NoStream, ev("Opened", nil))
	require.NoError(t, err)
	youngRes := f.append(t, "acct-young", ev("Opened", nil))

	n, err := f.store.RunAsyncProjections(f.ctx, 0)
	require.NoError(t, err)
	require.Zero(t, n, "the younger event waits behind the open older transaction")
	require.NoError(t, older.Commit(f.ctx))
	drainAsync(t, f)

	var positions []int64
	for _, c := range f.calls(t) {
		positions = append(positions, c.Positions...)
	}
	require.Equal(t, []int64{oldRes.GlobalPosition, youngRes.GlobalPosition}, positions, "feed order: the older transaction first")
	require.Less(t, oldRes.TransactionID, youngRes.TransactionID)
	require.True(t, strings.EqualFold(scalar[string](t, f, "SELECT p.handler FROM annals.projections AS p"), "s.async_handler(annals.event[])"))
}

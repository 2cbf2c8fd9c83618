package feed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An appending transaction sends exactly one notification on annals_events, with an empty
// payload, however many events and append calls it made; configure(notify => false) stops them.
func TestNotifyOncePerAppendingTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	listener := e.dedicated(t, nil)
	_, err := listener.Exec(e.ctx, "LISTEN annals_events")
	require.NoError(t, err)

	// expect receives exactly n notifications: n arrive, then nothing more for a while.
	expect := func(n int, what string) {
		t.Helper()
		for i := range n {
			ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
			got, err := listener.WaitForNotification(ctx)
			cancel()
			require.NoError(t, err, "%s: notification %d of %d", what, i+1, n)
			require.Equal(t, "annals_events", got.Channel)
			require.Empty(t, got.Payload, "a notification never carries data")
		}
		ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
		defer cancel()
		extra, err := listener.WaitForNotification(ctx)
		require.True(t, errors.Is(err, context.DeadlineExceeded), "%s: unexpected notification %+v (err %v)", what, extra, err)
	}

	appendEvents(t, e.pool, "note-1", "One", 1)
	expect(1, "a single-event append")
	appendEvents(t, e.pool, "note-1", "Many", 100)
	expect(1, "a 100-event batch")

	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	for _, s := range []string{"note-1", "note-2", "note-3"} {
		appendEvents(t, tx, s, "InTx", 2)
	}
	require.NoError(t, tx.Commit(e.ctx))
	expect(1, "three appends in one transaction")

	tx, err = e.pool.Begin(e.ctx)
	require.NoError(t, err)
	appendEvents(t, tx, "note-4", "Doomed", 1)
	require.NoError(t, tx.Rollback(e.ctx))
	expect(0, "a rolled-back append")

	_, err = e.pool.Exec(e.ctx, "SELECT annals.configure(notify => false)")
	require.NoError(t, err)
	appendEvents(t, e.pool, "note-1", "Quiet", 1)
	appendEvents(t, e.pool, "note-5", "Quiet", 10)
	expect(0, "notify switched off")
	var enabled bool
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT s.notify FROM annals_internal.settings AS s").Scan(&enabled))
	require.False(t, enabled)

	var settings map[string]any
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals.configure(notify => true)").Scan(&settings))
	require.Equal(t, true, settings["notify"])
	appendEvents(t, e.pool, "note-1", "Loud", 1)
	expect(1, "notify switched back on")

	// configure without notify leaves the switch alone.
	_, err = e.pool.Exec(e.ctx, "SELECT annals.configure(max_batch_events => 5000)")
	require.NoError(t, err)
	appendEvents(t, e.pool, "note-1", "Loud", 1)
	expect(1, "other settings changed")

	// Only the owner switches it.
	tx, err = e.pool.Begin(e.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(e.ctx, "SET LOCAL ROLE annals_writer")
	require.NoError(t, err)
	_, err = tx.Exec(e.ctx, "SELECT annals.configure(notify => false)")
	requirePgCode(t, err, "42501")
	require.NoError(t, tx.Rollback(e.ctx))
}

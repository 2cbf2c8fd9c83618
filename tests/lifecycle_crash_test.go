package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgcluster"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// An immediate shutdown (a power cut) in the middle of apply_retention removes nothing: the call
// is one transaction, so crash recovery rolls back what it had deleted and logged so far.
func TestApplyRetentionCrashRemovesNothingHalfway(t *testing.T) {
	t.Parallel()
	c := pgcluster.ForTest(t, pgcluster.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	open := func() *pgxpool.Pool {
		pool, err := pgxpool.New(ctx, c.URL("postgres"))
		require.NoError(t, err)
		return pool
	}
	pool := open()
	_, err := annals.Migrate(ctx, pool)
	require.NoError(t, err)
	store := annals.New(pool, annals.ClientOptions{})
	const streams = 20
	for i := 0; i < streams; i++ {
		_, err := store.Append(ctx, fmt.Sprintf("crash-%02d", i), annals.NoStream, events(t, "Tick", 5)...)
		require.NoError(t, err)
	}
	_, err = store.SetRetention(ctx, annals.RetentionRule{Category: "crash", MaxCount: 1})
	require.NoError(t, err)

	// Hold a row lock on an event of the 11th stream: apply_retention removes the first ten
	// streams' events, then waits there, in the middle of its one transaction.
	blocker, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = blocker.Exec(ctx, "SELECT 1 FROM annals_internal.events WHERE stream_id = 'crash-10' AND stream_version = 1 FOR UPDATE")
	require.NoError(t, err)
	applied := make(chan error, 1)
	go func() {
		_, err := store.ApplyRetention(ctx, 0)
		applied <- err
	}()
	require.Eventually(t, func() bool {
		select {
		case err := <-applied:
			require.FailNow(t, "apply_retention returned before it reached the locked event", "%v", err)
		default:
		}
		var waiting bool
		// Not on blocker: a transaction sees one snapshot of pg_stat_activity for its whole life.
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
		    WHERE query LIKE '%apply_retention%' AND wait_event_type = 'Lock')`).Scan(&waiting)
		require.NoError(t, err)
		return waiting
	}, time.Minute, 20*time.Millisecond, "apply_retention waits on the locked event")

	require.NoError(t, c.Crash(ctx))
	require.Error(t, <-applied, "the call died with the server")
	_ = blocker.Rollback(ctx) // its connection died too; this hands it back so the pool can close
	pool.Close()
	require.NoError(t, c.Restart(ctx))

	pool = open()
	defer pool.Close()
	var events, logged, runs int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM annals_internal.events),
	    (SELECT count(*) FROM annals_internal.lifecycle_log WHERE operation = 'retention'),
	    (SELECT count(*) FROM annals_internal.retention_runs)`).Scan(&events, &logged, &runs))
	require.EqualValues(t, streams*5, events, "no event is gone")
	require.Zero(t, logged, "no removal is logged")
	require.Zero(t, runs)

	// And the next run does the whole job.
	n, err := annals.New(pool, annals.ClientOptions{}).ApplyRetention(ctx, 0)
	require.NoError(t, err)
	require.EqualValues(t, streams*4, n)
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM annals_internal.lifecycle_log WHERE operation = 'retention'").Scan(&logged))
	require.EqualValues(t, streams, logged)
}

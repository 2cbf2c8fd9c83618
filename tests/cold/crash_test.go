package cold

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgcluster"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// An immediate shutdown in the middle of moves loses and duplicates nothing: after recovery the
// feed and every stream read exactly as they did hot, and the moves finish from there.
func TestCrashDuringMoves(t *testing.T) {
	t.Parallel()
	cluster := pgcluster.ForTest(t, pgcluster.Options{})
	ctx := t.Context()
	url := cluster.URL("postgres")
	connect := func() *pgxpool.Pool {
		pool, err := pgxpool.New(ctx, url)
		require.NoError(t, err)
		return pool
	}
	pool := connect()
	_, err := annals.Migrate(ctx, pool)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `
		SELECT count(*) FROM generate_series(0, 399) AS s(i)
		 CROSS JOIN LATERAL annals.append_events('stock-' || s.i % 50, NULL,
		       (SELECT jsonb_agg(jsonb_build_object('type', 'ItemsReceived',
		                         'data', jsonb_build_object('sku', 'sku-' || s.i, 'n', k, 'note', 'crash test'),
		                         'metadata', jsonb_build_object('user', 'u' || k)))
		          FROM generate_series(1, 50) AS g(k))) AS r`)
	require.NoError(t, err)
	f := fixture{ctx: ctx, pool: pool, store: annals.New(pool, annals.ClientOptions{})}
	feed := func(f fixture) string {
		return rowsText(t, f.ctx, f.pool, "SELECT * FROM annals.read_all('0', 0, 1000000)")
	}
	streams := func(f fixture) string {
		return rowsText(t, f.ctx, f.pool, "SELECT r.* FROM generate_series(0, 49) AS s(i) CROSS JOIN LATERAL annals.read_stream('stock-' || s.i, NULL, 100000) AS r")
	}
	hotFeed, hotStreams := feed(f), streams(f)
	require.Equal(t, 20000, strings.Count(hotFeed, "\n")+1)

	// Moves in steps of 700, back to back; crash once two have committed, the third under way.
	var committed atomic.Int64
	done := make(chan error, 1)
	go func() {
		for {
			n, err := f.store.CompressEvents(context.Background(), 0, 700)
			if err != nil {
				done <- err
				return
			}
			if n == 0 {
				done <- nil
				return
			}
			committed.Add(1)
		}
	}()
	for committed.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, cluster.Crash(ctx))
	require.Error(t, <-done, "the mover's connection died with the server")
	pool.Close()
	require.NoError(t, cluster.Restart(ctx))

	pool = connect()
	defer pool.Close()
	f = fixture{ctx: ctx, pool: pool, store: annals.New(pool, annals.ClientOptions{})}
	st, err := f.store.StorageStats(ctx)
	require.NoError(t, err)
	t.Logf("after recovery: %d hot, %d cold (%d moves had committed)", st[0].Events, st[1].Events, committed.Load())
	require.EqualValues(t, 20000, st[0].Events+st[1].Events)
	require.Positive(t, st[1].Events)
	require.Zero(t, st[1].Events%700, "only whole moves survive")
	require.Equal(t, hotFeed, feed(f))
	require.Equal(t, hotStreams, streams(f))

	n, err := f.store.CompressEvents(ctx, 0, 1000000)
	require.NoError(t, err)
	require.Equal(t, st[0].Events, n)
	require.Equal(t, hotFeed, feed(f))
	require.Equal(t, hotStreams, streams(f))
}

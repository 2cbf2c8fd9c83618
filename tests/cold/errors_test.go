package cold

import (
	"errors"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Bad input: ST422; an unknown stream: ST404; a wrong expected version: ST409; the moves are the
// owner's alone (42501 for the application roles), the stats are readable by them.
func TestColdStorageErrorsAndPrivileges(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, err := f.store.Append(f.ctx, "stock-1", annals.NoStream, ev("ItemsReceived", 1), ev("ItemsReceived", 2))
	require.NoError(t, err)

	for _, c := range []struct{ sql, state string }{
		{"SELECT annals.compress_events(NULL)", "ST422"},
		{"SELECT annals.compress_events('-1 day')", "ST422"},
		{"SELECT annals.compress_events('1 day', 0)", "ST422"},
		{"SELECT annals.compress_events('1 day', NULL)", "ST422"},
		{"SELECT annals.archive_stream(NULL)", "ST422"},
		{"SELECT annals.archive_stream('')", "ST422"},
		{"SELECT annals.archive_stream('stock-1', 0)", "ST422"},
		{"SELECT annals.archive_stream('stock-1', -2)", "ST422"},
		{"SELECT annals.archive_stream('stock-404')", "ST404"},
		{"SELECT annals.archive_stream('stock-1', 1)", "ST409"},
	} {
		_, err := f.pool.Exec(f.ctx, c.sql)
		require.Equal(t, c.state, sqlState(err), "%s: %v", c.sql, err)
	}

	// The Go calls map them.
	_, err = f.store.ArchiveStream(f.ctx, "stock-404", annals.Any)
	require.ErrorIs(t, err, annals.ErrNotFound)
	_, err = f.store.ArchiveStream(f.ctx, "stock-1", annals.Exact(5))
	require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
	_, err = f.store.CompressEvents(f.ctx, -time.Hour, 10)
	require.ErrorIs(t, err, annals.ErrInvalidArgument)

	for _, role := range []string{"annals_writer", "annals_reader", "annals_bi"} {
		pool := loginRole(t, f, role)
		for _, sql := range []string{"SELECT annals.compress_events('0')", "SELECT annals.archive_stream('stock-1')"} {
			_, err := pool.Exec(f.ctx, sql)
			require.Equal(t, "42501", sqlState(err), "%s as %s", sql, role)
		}
		_, err := annals.New(pool, annals.ClientOptions{}).CompressEvents(f.ctx, 0, 10)
		require.ErrorIs(t, err, annals.ErrPermissionDenied)
		_, err = pool.Exec(f.ctx, "SELECT * FROM annals.storage_stats()")
		if role == "annals_bi" {
			require.Equal(t, "42501", sqlState(err))
		} else {
			require.NoError(t, err, role)
		}
		// No table privileges on the cold tier.
		_, err = pool.Exec(f.ctx, "SELECT count(*) FROM annals_internal.cold_segments")
		require.Equal(t, "42501", sqlState(err), role)
	}

	// Nothing moved by the failed calls; the owner's call works.
	owner := loginRole(t, f, "annals_owner")
	n, err := annals.New(owner, annals.ClientOptions{}).ArchiveStream(f.ctx, "stock-1", annals.Exact(2))
	require.NoError(t, err)
	require.EqualValues(t, 2, n)

	// The append-only guard still stops a plain DELETE, on hot and cold alike.
	_, err = f.store.Append(f.ctx, "stock-2", annals.NoStream, ev("ItemsReceived", 1))
	require.NoError(t, err)
	_, err = owner.Exec(f.ctx, "DELETE FROM annals_internal.events")
	require.Equal(t, "ST405", sqlState(err))
	_, err = owner.Exec(f.ctx, "DELETE FROM annals_internal.cold_segments")
	require.Equal(t, "ST405", sqlState(err))
	_, err = owner.Exec(f.ctx, "UPDATE annals_internal.cold_segments SET stream_id = 'x'")
	require.Equal(t, "ST405", sqlState(err))
	_, err = owner.Exec(f.ctx, "TRUNCATE annals_internal.cold_segments CASCADE")
	require.Equal(t, "ST405", sqlState(err))
}

// A stream with cold history takes appends as before: version checks, idempotent replay of the
// latest batch (itself cold), and reads of the whole stream.
func TestAppendToColdStream(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := "stock-1"
	first := []annals.EventData{ev("ItemsReceived", 1), ev("ItemsShipped", 2)}
	r1, err := f.store.Append(f.ctx, s, annals.NoStream, first...)
	require.NoError(t, err)
	last := []annals.EventData{ev("ItemsReceived", 3), ev("PriceSet", 4), ev("ItemsShipped", 5)}
	r2, err := f.store.Append(f.ctx, s, annals.Exact(2), last...)
	require.NoError(t, err)
	before := rowsText(t, f.ctx, f.pool, "SELECT * FROM annals.read_stream($1)", s)

	n, err := f.store.ArchiveStream(f.ctx, s, annals.Exact(5))
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events"))

	// Replays of both batches, now cold, return their original results and write nothing.
	again, err := f.store.Append(f.ctx, s, annals.Exact(2), last...)
	require.NoError(t, err)
	require.Equal(t, r2, again)
	again, err = f.store.Append(f.ctx, s, annals.NoStream, first...)
	require.NoError(t, err)
	require.Equal(t, r1, again)
	// A changed event under a stored id is still ST412, a stale version ST409.
	changed := last[1]
	changed.Data = map[string]any{"other": true}
	_, err = f.store.Append(f.ctx, s, annals.Exact(2), last[0], changed, last[2])
	require.ErrorIs(t, err, annals.ErrEventIDConflict)
	_, err = f.store.Append(f.ctx, s, annals.Exact(4), ev("ItemsReceived", 6))
	require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
	require.Equal(t, before, rowsText(t, f.ctx, f.pool, "SELECT * FROM annals.read_stream($1)", s))

	// New events go hot after the cold ones.
	r3, err := f.store.Append(f.ctx, s, annals.Exact(5), ev("ItemsReceived", 6))
	require.NoError(t, err)
	require.EqualValues(t, 6, r3.StreamVersion)
	got := collect(t, f.store.ReadStream(f.ctx, s, annals.ReadOptions{}))
	require.Len(t, got, 6)
	for i, e := range got {
		require.EqualValues(t, i+1, e.StreamVersion)
	}
	require.Equal(t, before, rowsText(t, f.ctx, f.pool, "SELECT * FROM annals.read_stream($1, NULL, 5)", s))
	require.EqualValues(t, 1, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events"))
}

// TestMovesAreLoggedAndNothingElseDeletes: a move logs the stretch of the feed (compress) or the
// stream range (archive) it takes out of the hot table before it deletes, and the history trigger
// lets out only what the same transaction logged; a session setting (how moves were first let
// through) opens nothing, for a superuser neither.
func TestMovesAreLoggedAndNothingElseDeletes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, err := f.store.Append(f.ctx, "stock-1", annals.NoStream, ev("ItemsReceived", 1), ev("ItemsShipped", 2))
	require.NoError(t, err)
	_, err = f.store.Append(f.ctx, "stock-2", annals.NoStream, ev("ItemsReceived", 3))
	require.NoError(t, err)

	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(f.ctx, "SELECT set_config('annals_internal.cold_move', 'on', true)")
	require.NoError(t, err)
	_, err = tx.Exec(f.ctx, "DELETE FROM annals_internal.events WHERE stream_id = 'stock-1'")
	require.Equal(t, "ST405", sqlState(err))
	require.NoError(t, tx.Rollback(f.ctx))

	waitBarrier(t, f)
	require.EqualValues(t, 2, scalar[int64](t, f, "SELECT annals.archive_stream('stock-1')"))
	require.EqualValues(t, 1, scalar[int64](t, f, "SELECT annals.compress_events('0 seconds')"))
	require.Equal(t, "archive stock-1 1..2 2|compress 1", scalar[string](t, f,
		`SELECT string_agg(concat_ws(' ', operation, stream_id, first_version || '..' || stream_version, event_count), '|' ORDER BY log_id)
		   FROM annals_internal.lifecycle_log WHERE operation IN ('archive', 'compress')`))
}

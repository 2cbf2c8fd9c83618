package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

var sentinels = []error{
	annals.ErrWrongExpectedVersion, annals.ErrEventIDConflict, annals.ErrStreamDeleted,
	annals.ErrTooLarge, annals.ErrInvalidArgument, annals.ErrReserved, annals.ErrAppendOnly,
	annals.ErrStreamNotFound, annals.ErrSchemaNotInstalled, annals.ErrSchemaTooNew,
}

// requireOnly asserts that err matches want and no other sentinel.
func requireOnly(t *testing.T, err, want error) {
	t.Helper()
	for _, s := range sentinels {
		if s == want {
			require.ErrorIs(t, err, s)
		} else {
			require.NotErrorIs(t, err, s)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, err := f.pool.Exec(f.ctx, "SELECT annals.configure(max_batch_events => 5)")
	require.NoError(t, err)

	// existing returns a stream holding one event with a known id.
	existing := func(t *testing.T) (string, annals.EventData) {
		t.Helper()
		s := stream("err")
		e := ev(t, "E", map[string]any{"v": 1})
		_, err := f.store.Append(f.ctx, s, annals.NoStream, e)
		require.NoError(t, err)
		return s, e
	}

	t.Run("ST409", func(t *testing.T) {
		t.Parallel()
		s, _ := existing(t)
		_, err := f.store.Append(f.ctx, s, annals.Exact(7), ev(t, "E", nil))
		requireOnly(t, err, annals.ErrWrongExpectedVersion)
		var typed *annals.WrongExpectedVersionError
		require.ErrorAs(t, err, &typed)
		require.Equal(t, annals.WrongExpectedVersionError{
			BaseError: typed.BaseError, StreamID: s, Expected: annals.Exact(7), Actual: 1}, *typed)
		require.Same(t, typed.PgErr, requirePgError(t, err, "ST409"))
		require.Equal(t, map[string]any{"stream_id": s, "expected": 7.0, "actual": 1.0}, detailOf(t, typed.PgErr))
		require.False(t, annals.IsRetryable(err))
	})

	t.Run("ST409 from delete_stream", func(t *testing.T) {
		t.Parallel()
		s := stream("err")
		_, err := f.store.DeleteStream(f.ctx, s, annals.Any, "")
		requireOnly(t, err, annals.ErrWrongExpectedVersion)
		var typed *annals.WrongExpectedVersionError
		require.ErrorAs(t, err, &typed)
		require.Equal(t, s, typed.StreamID)
		require.Equal(t, annals.Any, typed.Expected)
		require.Zero(t, typed.Actual)
		require.Equal(t, map[string]any{"stream_id": s, "expected": nil, "actual": 0.0},
			detailOf(t, requirePgError(t, err, "ST409")))
	})

	t.Run("ST412", func(t *testing.T) {
		t.Parallel()
		s, e := existing(t)
		e.Type = "Changed"
		_, err := f.store.Append(f.ctx, s, annals.NoStream, e)
		requireOnly(t, err, annals.ErrEventIDConflict)
		var typed *annals.EventIDConflictError
		require.ErrorAs(t, err, &typed)
		require.Equal(t, s, typed.StreamID)
		require.Equal(t, e.ID, typed.EventID)
		require.Equal(t, map[string]any{"stream_id": s, "event_id": e.ID.String()},
			detailOf(t, requirePgError(t, err, "ST412")))
	})

	t.Run("ST410", func(t *testing.T) {
		t.Parallel()
		s, _ := existing(t)
		v, err := f.store.DeleteStream(f.ctx, s, annals.Exact(1), "test")
		require.NoError(t, err)
		require.EqualValues(t, 1, v)
		_, again := f.store.DeleteStream(f.ctx, s, annals.Any, "")
		_, appendErr := f.store.Append(f.ctx, s, annals.Any, ev(t, "E", nil))
		_, emptyErr := f.store.Append(f.ctx, s, annals.Any)
		for _, err := range []error{again, appendErr, emptyErr} {
			requireOnly(t, err, annals.ErrStreamDeleted)
			var typed *annals.BaseError
			require.ErrorAs(t, err, &typed)
			require.Equal(t, annals.ErrStreamDeleted, typed.Kind)
			require.Equal(t, map[string]any{"stream_id": s}, detailOf(t, requirePgError(t, err, "ST410")))
		}
	})

	t.Run("ST413", func(t *testing.T) {
		t.Parallel()
		_, err := f.store.Append(f.ctx, stream("err"), annals.Any, events(t, "E", 6)...)
		requireOnly(t, err, annals.ErrTooLarge)
		var typed *annals.TooLargeError
		require.ErrorAs(t, err, &typed)
		require.Equal(t, "max_batch_events", typed.Setting)
		require.EqualValues(t, 5, typed.Limit)
		require.EqualValues(t, 6, typed.Actual)
		require.Equal(t, map[string]any{"setting": "max_batch_events", "limit": 5.0, "actual": 6.0},
			detailOf(t, requirePgError(t, err, "ST413")))
	})

	t.Run("ST422", func(t *testing.T) {
		t.Parallel()
		// Append would find this before the round trip (see below); reads leave it to the server.
		_, err := f.store.StreamInfo(f.ctx, "bad ")
		requireOnly(t, err, annals.ErrInvalidArgument)
		var typed *annals.InvalidArgumentError
		require.ErrorAs(t, err, &typed)
		require.Equal(t, "stream_id", typed.Argument)
		require.Equal(t, map[string]any{"argument": "stream_id", "reason": typed.Reason},
			detailOf(t, requirePgError(t, err, "ST422")))
	})

	t.Run("ST422 found by the client", func(t *testing.T) {
		t.Parallel()
		// Checks the client makes before any round trip give the same typed error, without a
		// *pgconn.PgError, and in the server's words.
		_, err := f.store.Append(f.ctx, "s-1", annals.Any, annals.EventData{Type: ""})
		requireOnly(t, err, annals.ErrInvalidArgument)
		var typed *annals.InvalidArgumentError
		require.ErrorAs(t, err, &typed)
		require.Equal(t, "events[0].type", typed.Argument)
		require.Nil(t, typed.PgErr)

		_, err = f.store.Append(f.ctx, "bad ", annals.Any, ev(t, "E", nil))
		requireOnly(t, err, annals.ErrInvalidArgument)
		require.ErrorAs(t, err, &typed)
		require.Nil(t, typed.PgErr)
		require.Equal(t, "stream_id", typed.Argument)
		_, err = f.store.StreamInfo(f.ctx, "bad ")
		var server *annals.InvalidArgumentError
		require.ErrorAs(t, err, &server)
		require.NotNil(t, server.PgErr)
		require.Equal(t, server.Reason, typed.Reason)
	})

	t.Run("ST403", func(t *testing.T) {
		t.Parallel()
		_, err := f.store.Append(f.ctx, "$system", annals.Any, ev(t, "E", nil))
		requireOnly(t, err, annals.ErrReserved)
		var typed *annals.BaseError
		require.ErrorAs(t, err, &typed)
		require.Equal(t, annals.ErrReserved, typed.Kind)
		require.Equal(t, map[string]any{"argument": "stream_id"}, detailOf(t, requirePgError(t, err, "ST403")))
	})

	t.Run("ST405", func(t *testing.T) {
		t.Parallel()
		// No API call changes history, so provoke it with raw SQL; the mapping of this code to
		// ErrAppendOnly is checked in the goapi package's own tests.
		s, e := existing(t)
		for _, tc := range []struct{ sql, table, op string }{
			{"UPDATE annals_internal.events SET data = '{}' WHERE stream_id = $1", "annals_internal.events_p", "UPDATE"},
			// A DELETE is checked once per statement: the table it named.
			{"DELETE FROM annals_internal.events WHERE stream_id = $1", "annals_internal.events", "DELETE"},
			{"TRUNCATE annals_internal.events", "annals_internal.events", "TRUNCATE"},
			{"DELETE FROM annals_internal.streams WHERE stream_id = $1", "annals_internal.streams", "DELETE"},
			{"TRUNCATE annals_internal.lifecycle_log", "annals_internal.lifecycle_log", "TRUNCATE"},
		} {
			var args []any
			if tc.op != "TRUNCATE" {
				args = []any{s}
			}
			_, err := f.pool.Exec(f.ctx, tc.sql, args...)
			d := detailOf(t, requirePgError(t, err, "ST405"))
			require.Equal(t, tc.op, d["operation"], tc.sql)
			require.Contains(t, d["table"], tc.table, tc.sql)
		}
		// Named directly, the partition holding the stream is the table.
		var part string
		require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT tableoid::regclass::text FROM annals_internal.events WHERE stream_id = $1 LIMIT 1", s).Scan(&part))
		_, err := f.pool.Exec(f.ctx, "DELETE FROM "+part+" WHERE stream_id = $1", s)
		d := detailOf(t, requirePgError(t, err, "ST405"))
		require.Equal(t, map[string]any{"table": part, "operation": "DELETE"}, d)
		got := f.readAll(t, s)
		require.Len(t, got, 1)
		require.Equal(t, e.ID, got[0].EventID)
		require.JSONEq(t, `{"v":1}`, string(got[0].Data))
	})

	t.Run("not found is not a database error", func(t *testing.T) {
		t.Parallel()
		_, err := f.store.StreamInfo(f.ctx, stream("missing"))
		requireOnly(t, err, annals.ErrStreamNotFound)
	})
}

func TestIsRetryable(t *testing.T) {
	t.Parallel()
	f := setup(t)

	require.False(t, annals.IsRetryable(nil))
	require.False(t, annals.IsRetryable(errors.New("plain")))
	require.False(t, annals.IsRetryable(context.DeadlineExceeded))

	// holdLock appends to s in a transaction it keeps open until the test ends, so the stream's
	// advisory lock stays taken.
	holdLock := func(t *testing.T, s string) {
		t.Helper()
		tx, err := f.pool.Begin(f.ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
		_, err = f.store.AppendTx(f.ctx, tx, s, annals.Any, ev(t, "Held", nil))
		require.NoError(t, err)
	}

	t.Run("55P03 lock not available", func(t *testing.T) {
		t.Parallel()
		s := stream("locked")
		holdLock(t, s)
		err := pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(f.ctx, "SET LOCAL lock_timeout = '20ms'"); err != nil {
				return err
			}
			_, err := f.store.AppendTx(f.ctx, tx, s, annals.Any, ev(t, "E", nil))
			return err
		})
		requirePgError(t, err, "55P03")
		require.True(t, annals.IsRetryable(err))
	})

	t.Run("40P01 deadlock", func(t *testing.T) {
		t.Parallel()
		// Two transactions append to the same two streams in opposite orders.
		a, b := stream("dead"), stream("dead")
		var (
			firstDone = make(chan struct{}, 2)
			errs      = make(chan error, 2)
		)
		run := func(first, second string) {
			errs <- pgx.BeginFunc(f.ctx, f.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(f.ctx, "SET LOCAL deadlock_timeout = '20ms'"); err != nil {
					return err
				}
				if _, err := f.store.AppendTx(f.ctx, tx, first, annals.Any, annals.EventData{Type: "E"}); err != nil {
					return err
				}
				firstDone <- struct{}{}
				for len(firstDone) < 2 { // wait until the other holds its first lock
					time.Sleep(time.Millisecond)
				}
				_, err := f.store.AppendTx(f.ctx, tx, second, annals.Any, annals.EventData{Type: "E"})
				return err
			})
		}
		go run(a, b)
		go run(b, a)
		var deadlocks int
		for range 2 {
			if err := <-errs; err != nil {
				requirePgError(t, err, "40P01")
				require.True(t, annals.IsRetryable(err))
				deadlocks++
			}
		}
		require.Equal(t, 1, deadlocks)
	})

	t.Run("Append retries until the lock frees", func(t *testing.T) {
		t.Parallel()
		// A client whose sessions time out on locks quickly: its Append meets 55P03 while another
		// transaction holds the stream, and retries (with the same ids) until it gets through.
		cfg := f.pool.Config().Copy()
		cfg.ConnConfig.RuntimeParams["lock_timeout"] = "10ms"
		cfg.MaxConns = 2
		impatient, err := pgxpool.NewWithConfig(f.ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(impatient.Close)
		s := stream("locked")

		tx, err := f.pool.Begin(f.ctx)
		require.NoError(t, err)
		_, err = f.store.AppendTx(f.ctx, tx, s, annals.Any, ev(t, "Held", nil))
		require.NoError(t, err)

		_, err = annals.New(impatient, annals.ClientOptions{AppendAttempts: 2}).Append(f.ctx, s, annals.Any, ev(t, "E", nil))
		require.True(t, annals.IsRetryable(err), "gives up after its attempts: %v", err)

		time.AfterFunc(60*time.Millisecond, func() { _ = tx.Commit(context.Background()) })
		res, err := annals.New(impatient, annals.ClientOptions{AppendAttempts: 50}).Append(f.ctx, s, annals.Exact(1), ev(t, "E", nil))
		require.NoError(t, err)
		require.EqualValues(t, 2, res.StreamVersion)
	})
}

// The ST409 hint fits the case: a missing stream is not a race to reload and retry.
func TestWrongExpectedVersionHintFitsTheCase(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("hint")
	hint := func(expected any) string {
		t.Helper()
		return requirePgError(t, f.appendSQL(s, expected, `[{"type": "A"}]`), "ST409").Hint
	}
	require.Equal(t, "The stream has no events: check the stream id, or create the stream with expected version 0 (no stream).", hint(-1))
	require.Equal(t, "The stream has no events: check the stream id, or create the stream with expected version 0 (no stream).", hint(3))
	require.NoError(t, f.appendSQL(s, 0, `[{"type": "A"}]`))
	require.Equal(t, "The stream already exists: load it and append at its version, or use another stream id.", hint(0))
	require.Equal(t, "Another append came first: load the stream again, decide again, and retry with its version.", hint(5))
}

// TestEveryAnnalsErrorSaysWhatToDo: the SQL HINT is the one source of advice (the CLI and the Go
// client add none), so every Annals code but ST422, whose message names the argument, carries one:
// the raiser's own words for its case, else the code's default.
func TestEveryAnnalsErrorSaysWhatToDo(t *testing.T) {
	t.Parallel()
	f := setup(t)
	raise := func(code string, hint any) *pgconn.PgError {
		t.Helper()
		_, err := f.pool.Exec(f.ctx, "SELECT annals_internal.raise_error($1, 'm', '{}', $2)", code, hint)
		return requirePgError(t, err, code)
	}
	for _, code := range []string{"ST403", "ST409", "ST410", "ST411", "ST412", "ST413", "ST423", "ST500"} {
		require.NotEmpty(t, raise(code, nil).Hint, "%s has no default hint", code)
		require.Equal(t, "own words", raise(code, "own words").Hint, "%s: the raiser's hint wins", code)
	}
	require.Empty(t, raise("ST422", nil).Hint, "ST422's message says it all")
}

package tests

import (
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/stretchr/testify/require"
)

func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	f := setup(t)

	// appended returns a stream holding `before` events, then batch appended with expected.
	appended := func(t *testing.T, before int, expected annals.ExpectedVersion, batch []annals.EventData) (string, annals.AppendResult) {
		t.Helper()
		s := stream("replay")
		if before > 0 {
			_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "Before", before)...)
			require.NoError(t, err)
		}
		res, err := f.store.Append(f.ctx, s, expected, batch...)
		require.NoError(t, err)
		return s, res
	}

	for _, tc := range []struct {
		name     string
		before   int
		expected annals.ExpectedVersion
	}{
		{"no stream", 0, annals.NoStream},
		{"exact", 2, annals.Exact(2)},
		{"stream exists", 2, annals.StreamExists},
		{"any", 2, annals.Any},
		{"any on a new stream", 0, annals.Any},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			batch := events(t, "E", 3)
			s, first := appended(t, tc.before, tc.expected, batch)
			for range 2 {
				again, err := f.store.Append(f.ctx, s, tc.expected, batch...)
				require.NoError(t, err)
				require.Equal(t, first, again, "a replay returns the original result")
			}
			require.EqualValues(t, tc.before+3, f.countRows(t, s), "a replay writes nothing")
			require.EqualValues(t, tc.before+3, f.version(t, s))
		})
	}

	t.Run("after the stream moved on", func(t *testing.T) {
		t.Parallel()
		batch := events(t, "E", 2)
		s, first := appended(t, 0, annals.NoStream, batch)
		_, err := f.store.Append(f.ctx, s, annals.Exact(2), events(t, "Later", 3)...)
		require.NoError(t, err)
		for _, exp := range []annals.ExpectedVersion{annals.NoStream, annals.Any} {
			again, err := f.store.Append(f.ctx, s, exp, batch...)
			require.NoError(t, err, "expected %v", exp)
			require.Equal(t, first, again)
		}
		require.EqualValues(t, 5, f.countRows(t, s))
	})

	t.Run("any replays a batch appended with an exact version", func(t *testing.T) {
		t.Parallel()
		batch := events(t, "E", 2)
		s, first := appended(t, 3, annals.Exact(3), batch)
		again, err := f.store.Append(f.ctx, s, annals.Any, batch...)
		require.NoError(t, err)
		require.Equal(t, first, again)
		require.EqualValues(t, 5, f.countRows(t, s))
	})

	t.Run("lost reply", func(t *testing.T) {
		t.Parallel()
		// The first attempt commits but its reply never arrives; the caller resends the identical
		// batch (same ids, same expected version) and gets the original result.
		s := stream("replay")
		batch := events(t, "Sent", 2)
		tx, err := f.pool.Begin(f.ctx)
		require.NoError(t, err)
		committed, err := f.store.AppendTx(f.ctx, tx, s, annals.NoStream, batch...)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(f.ctx))

		retried, err := f.store.Append(f.ctx, s, annals.NoStream, batch...)
		require.NoError(t, err)
		require.Equal(t, committed, retried)
		require.EqualValues(t, 2, f.countRows(t, s))
	})

	t.Run("raw SQL", func(t *testing.T) {
		t.Parallel()
		s := stream("replay")
		const batch = `[{"id":"0190a8f2-7c1e-7000-8000-0000000000a1","type":"T","data":{"a":1}},
		                {"id":"0190a8f2-7c1e-7000-8000-0000000000a2","type":"T","data":{"a":2},"metadata":{"m":1}}]`
		query := "SELECT r.stream_version, r.global_position, r.transaction_id FROM annals.append_events($1, 0, $2::jsonb) AS r"
		var v1, p1, v2, p2 int64
		var x1, x2 uint64
		require.NoError(t, f.pool.QueryRow(f.ctx, query, s, batch).Scan(&v1, &p1, &x1))
		require.NoError(t, f.pool.QueryRow(f.ctx, query, s, batch).Scan(&v2, &p2, &x2))
		require.Equal(t, []any{int64(2), p1, x1}, []any{v2, p2, x2})
		require.EqualValues(t, 2, f.countRows(t, s))
	})
}

func TestIdempotencyConflicts(t *testing.T) {
	t.Parallel()
	f := setup(t)

	// stored returns a stream holding batch, appended with NoStream.
	stored := func(t *testing.T, batch []annals.EventData) string {
		t.Helper()
		s := stream("conflict")
		_, err := f.store.Append(f.ctx, s, annals.NoStream, batch...)
		require.NoError(t, err)
		return s
	}

	t.Run("partial overlap", func(t *testing.T) {
		t.Parallel()
		batch := events(t, "E", 3)
		for _, tc := range []struct {
			name     string
			resend   []annals.EventData
			expected annals.ExpectedVersion
		}{
			{"stored prefix plus new, no stream", append(batch[:2:2], ev(t, "New", nil)), annals.NoStream},
			{"stored prefix plus new, any", append(batch[:2:2], ev(t, "New", nil)), annals.Any},
			{"new plus stored suffix, any", append([]annals.EventData{ev(t, "New", nil)}, batch[2]), annals.Any},
			{"stored prefix plus new, stream exists", append(batch[:2:2], ev(t, "New", nil)), annals.StreamExists},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := stored(t, batch)
				_, err := f.store.Append(f.ctx, s, tc.expected, tc.resend...)
				var wev *annals.WrongExpectedVersionError
				require.ErrorAs(t, err, &wev)
				require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
				require.Equal(t, s, wev.StreamID)
				require.EqualValues(t, 3, wev.Actual)
				requirePgError(t, err, "ST409")
				require.EqualValues(t, 3, f.countRows(t, s), "nothing written")
			})
		}
	})

	t.Run("same id, other content", func(t *testing.T) {
		t.Parallel()
		batch := events(t, "E", 2)
		changes := map[string]func(e *annals.EventData){
			"data":           func(e *annals.EventData) { e.Data = map[string]any{"n": 99} },
			"type":           func(e *annals.EventData) { e.Type = "Other" },
			"metadata":       func(e *annals.EventData) { e.Metadata = map[string]any{"actor": "x"} },
			"schema version": func(e *annals.EventData) { e.SchemaVersion = 2 },
		}
		for name, change := range changes {
			for _, exp := range []annals.ExpectedVersion{annals.NoStream, annals.Any} {
				t.Run(name+"/"+exp.String(), func(t *testing.T) {
					s := stored(t, batch)
					resend := append([]annals.EventData(nil), batch...)
					change(&resend[1])
					_, err := f.store.Append(f.ctx, s, exp, resend...)
					var conflict *annals.EventIDConflictError
					require.ErrorAs(t, err, &conflict)
					require.ErrorIs(t, err, annals.ErrEventIDConflict)
					require.Equal(t, s, conflict.StreamID)
					require.Equal(t, batch[1].ID, conflict.EventID)
					pgErr := requirePgError(t, err, "ST412")
					require.Equal(t, map[string]any{"stream_id": s, "event_id": batch[1].ID.String()}, detailOf(t, pgErr))
					require.EqualValues(t, 2, f.countRows(t, s))
				})
			}
		}
	})

	t.Run("same id, other content, next to new events", func(t *testing.T) {
		t.Parallel()
		batch := events(t, "E", 1)
		s := stored(t, batch)
		changed := batch[0]
		changed.Data = map[string]any{"changed": true}
		_, err := f.store.Append(f.ctx, s, annals.Any, ev(t, "New", nil), changed)
		var conflict *annals.EventIDConflictError
		require.ErrorAs(t, err, &conflict, "a changed id is ST412 even when the batch also holds new events")
		require.Equal(t, changed.ID, conflict.EventID)
		require.EqualValues(t, 1, f.countRows(t, s))
	})

	t.Run("same id at another position", func(t *testing.T) {
		t.Parallel()
		batch := events(t, "E", 3)
		for _, tc := range []struct {
			name     string
			resend   []annals.EventData
			expected annals.ExpectedVersion
			conflict int // index into batch of the id the error names
		}{
			{"shifted by an exact version", batch[1:2], annals.Exact(0), 1},
			{"first event resent as the next one", batch[:1], annals.Exact(3), 0},
			{"reordered, no stream", []annals.EventData{batch[1], batch[0], batch[2]}, annals.NoStream, 1},
			{"reordered, any", []annals.EventData{batch[2], batch[1]}, annals.Any, 2},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := stored(t, batch)
				_, err := f.store.Append(f.ctx, s, tc.expected, tc.resend...)
				var conflict *annals.EventIDConflictError
				require.ErrorAs(t, err, &conflict)
				require.Equal(t, batch[tc.conflict].ID, conflict.EventID)
				requirePgError(t, err, "ST412")
				require.EqualValues(t, 3, f.countRows(t, s))
			})
		}
	})

	t.Run("reordered next to a new event names a stored id", func(t *testing.T) {
		t.Parallel()
		batch := events(t, "E", 2)
		s := stored(t, batch)
		_, err := f.store.Append(f.ctx, s, annals.Any, ev(t, "New", nil), batch[1], batch[0])
		var conflict *annals.EventIDConflictError
		require.ErrorAs(t, err, &conflict)
		require.Contains(t, []any{batch[0].ID, batch[1].ID}, conflict.EventID)
		require.EqualValues(t, 2, f.countRows(t, s))
	})

	t.Run("ids are per stream", func(t *testing.T) {
		t.Parallel()
		batch := events(t, "E", 2)
		stored(t, batch)
		other := stream("conflict")
		res, err := f.store.Append(f.ctx, other, annals.NoStream, batch...)
		require.NoError(t, err, "(stream_id, event_id) is the unique key")
		require.EqualValues(t, 2, res.StreamVersion)
	})
}

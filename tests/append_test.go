package tests

import (
	"encoding/json"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestAppendExpectedVersion(t *testing.T) {
	t.Parallel()
	f := setup(t)

	// seeded returns a stream that already holds n events.
	seeded := func(t *testing.T, n int) string {
		t.Helper()
		s := stream("seeded")
		if n > 0 {
			res, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "Seeded", n)...)
			require.NoError(t, err)
			require.EqualValues(t, n, res.StreamVersion)
		}
		return s
	}

	success := []struct {
		name     string
		existing int
		expected annals.ExpectedVersion
	}{
		{"any on a new stream", 0, annals.Any},
		{"any on an existing stream", 3, annals.Any},
		{"no stream on a new stream", 0, annals.NoStream},
		{"exact 0 is no stream", 0, annals.Exact(0)},
		{"stream exists on an existing stream", 2, annals.StreamExists},
		{"exact at the current version", 4, annals.Exact(4)},
	}
	for _, tc := range success {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := seeded(t, tc.existing)
			res, err := f.store.Append(f.ctx, s, tc.expected, events(t, "Added", 2)...)
			require.NoError(t, err)
			require.EqualValues(t, tc.existing+2, res.StreamVersion)
			require.Len(t, res.EventIDs, 2)
			require.EqualValues(t, tc.existing+2, f.countRows(t, s))
		})
	}

	failure := []struct {
		name     string
		existing int
		expected annals.ExpectedVersion
	}{
		{"no stream on an existing stream", 1, annals.NoStream},
		{"stream exists on a new stream", 0, annals.StreamExists},
		{"exact behind the stream", 3, annals.Exact(2)},
		{"exact ahead of the stream", 3, annals.Exact(4)},
		{"exact on a new stream", 0, annals.Exact(1)},
	}
	for _, tc := range failure {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := seeded(t, tc.existing)
			_, err := f.store.Append(f.ctx, s, tc.expected, events(t, "Added", 2)...)
			require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
			var wev *annals.WrongExpectedVersionError
			require.ErrorAs(t, err, &wev)
			require.Equal(t, s, wev.StreamID)
			require.Equal(t, tc.expected, wev.Expected)
			require.EqualValues(t, tc.existing, wev.Actual)
			pgErr := requirePgError(t, err, "ST409")
			require.Equal(t, map[string]any{"stream_id": s, "expected": expectedJSON(tc.expected), "actual": float64(tc.existing)},
				detailOf(t, pgErr))
			require.EqualValues(t, tc.existing, f.countRows(t, s), "a failed append writes nothing")
			require.EqualValues(t, tc.existing, f.version(t, s))
		})
	}
}

func TestAppendWrongVersionTakesNoGlobalPosition(t *testing.T) {
	t.Parallel()
	f := setup(t) // alone in its database: nobody else takes positions
	s := stream("seq")

	first, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "A", 2)...)
	require.NoError(t, err)
	for range 3 {
		_, err = f.store.Append(f.ctx, s, annals.NoStream, events(t, "B", 2)...)
		require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
	}
	next, err := f.store.Append(f.ctx, s, annals.Exact(2), events(t, "C", 1)...)
	require.NoError(t, err)
	require.Equal(t, first.GlobalPosition+1, next.GlobalPosition,
		"the version is checked before any sequence value is taken")
}

func TestAppendEmptyBatch(t *testing.T) {
	t.Parallel()
	f := setup(t)

	t.Run("missing stream", func(t *testing.T) {
		t.Parallel()
		s := stream("empty")
		for _, exp := range []annals.ExpectedVersion{annals.Any, annals.NoStream} {
			res, err := f.store.Append(f.ctx, s, exp)
			require.NoError(t, err)
			require.Equal(t, annals.AppendResult{EventIDs: []uuid.UUID{}}, res)
		}
		_, err := f.store.Append(f.ctx, s, annals.StreamExists)
		require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
		_, err = f.store.Append(f.ctx, s, annals.Exact(1))
		require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
		_, err = f.store.StreamInfo(f.ctx, s)
		require.ErrorIs(t, err, annals.ErrStreamNotFound, "an empty append creates no stream")
	})

	t.Run("existing stream", func(t *testing.T) {
		t.Parallel()
		s := stream("empty")
		last, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "A", 3)...)
		require.NoError(t, err)
		for _, exp := range []annals.ExpectedVersion{annals.Any, annals.StreamExists, annals.Exact(3)} {
			res, err := f.store.Append(f.ctx, s, exp)
			require.NoError(t, err, "expected %v", exp)
			require.Equal(t, last.StreamVersion, res.StreamVersion)
			require.Equal(t, last.GlobalPosition, res.GlobalPosition, "the current last event's position")
			require.Equal(t, last.TransactionID, res.TransactionID)
			require.Empty(t, res.EventIDs)
		}
		for _, exp := range []annals.ExpectedVersion{annals.NoStream, annals.Exact(2)} {
			_, err := f.store.Append(f.ctx, s, exp)
			var wev *annals.WrongExpectedVersionError
			require.ErrorAs(t, err, &wev, "expected %v", exp)
			require.EqualValues(t, 3, wev.Actual)
		}
		require.EqualValues(t, 3, f.countRows(t, s))
	})

	t.Run("raw SQL", func(t *testing.T) {
		t.Parallel()
		var version int64
		var pos *int64
		require.NoError(t, f.pool.QueryRow(f.ctx,
			"SELECT r.stream_version, r.global_position FROM annals.append_events($1, NULL, '[]') AS r",
			stream("empty")).Scan(&version, &pos))
		require.Zero(t, version)
		require.Nil(t, pos)
	})
}

func TestAppendBatchIsAtomic(t *testing.T) {
	t.Parallel()
	f := setup(t)

	// Each bad batch has valid events around one the server rejects (the client's own checks
	// would not catch these).
	badBatches := map[string]func(t *testing.T) []annals.EventData{
		"invalid type": func(t *testing.T) []annals.EventData {
			return []annals.EventData{ev(t, "Good", nil), ev(t, " Bad", nil), ev(t, "Good", nil)}
		},
		"reserved type": func(t *testing.T) []annals.EventData {
			return []annals.EventData{ev(t, "Good", nil), ev(t, "Good", nil), ev(t, "$Bad", nil)}
		},
	}
	for name, batch := range badBatches {
		t.Run(name+" on a new stream", func(t *testing.T) {
			t.Parallel()
			s := stream("atomic")
			_, err := f.store.Append(f.ctx, s, annals.Any, batch(t)...)
			require.Error(t, err)
			_, err = f.store.StreamInfo(f.ctx, s)
			require.ErrorIs(t, err, annals.ErrStreamNotFound)
			require.Zero(t, f.countRows(t, s))
		})
		t.Run(name+" on an existing stream", func(t *testing.T) {
			t.Parallel()
			s := stream("atomic")
			_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "Seed", 2)...)
			require.NoError(t, err)
			_, err = f.store.Append(f.ctx, s, annals.Exact(2), batch(t)...)
			require.Error(t, err)
			require.EqualValues(t, 2, f.version(t, s))
			require.EqualValues(t, 2, f.countRows(t, s))
		})
	}

	t.Run("conflicting id after new events", func(t *testing.T) {
		t.Parallel()
		// The insert statement writes the new events before it meets the stored id; the error
		// must take them back.
		s := stream("atomic")
		stored := ev(t, "Stored", map[string]any{"v": 1})
		_, err := f.store.Append(f.ctx, s, annals.NoStream, stored)
		require.NoError(t, err)
		changed := stored
		changed.Data = map[string]any{"v": 2}
		_, err = f.store.Append(f.ctx, s, annals.Any, ev(t, "New", nil), ev(t, "New", nil), changed)
		require.ErrorIs(t, err, annals.ErrEventIDConflict)
		require.EqualValues(t, 1, f.version(t, s))
		require.EqualValues(t, 1, f.countRows(t, s))
	})
}

func TestAppendEventIDs(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("ids")
	given := uuid.MustParse("0190a8f2-7c1e-7000-8000-000000000001")

	res, err := f.store.Append(f.ctx, s, annals.NoStream,
		annals.EventData{Type: "Generated"},
		annals.EventData{ID: given, Type: "Given"},
		annals.EventData{Type: "Generated"})
	require.NoError(t, err)
	require.Len(t, res.EventIDs, 3)
	require.Equal(t, given, res.EventIDs[1])
	for _, i := range []int{0, 2} {
		require.Equal(t, uuid.Version(7), res.EventIDs[i].Version(), "generated ids are UUIDv7")
		require.Equal(t, uuid.RFC4122, res.EventIDs[i].Variant())
	}
	require.NotEqual(t, res.EventIDs[0], res.EventIDs[2])

	stored := f.readAll(t, s)
	require.Len(t, stored, 3)
	for i, e := range stored {
		require.Equal(t, res.EventIDs[i], e.EventID, "event %d", i)
	}
}

func TestAppendRoundTrip(t *testing.T) {
	t.Parallel()
	f := setup(t)

	t.Run("data and metadata", func(t *testing.T) {
		t.Parallel()
		s := stream("trip")
		type payload struct {
			SKU   string `json:"sku"`
			Count int    `json:"count"`
		}
		_, err := f.store.Append(f.ctx, s, annals.NoStream,
			annals.EventData{Type: "Struct", Data: payload{"A-1", 5},
				Metadata: map[string]any{"correlation_id": "c-1", "actor": "ann", "nested": map[string]any{"x": []int{1, 2}}}},
			annals.EventData{Type: "Raw", Data: json.RawMessage(` {"a": "é\u00e9", "n": 1.5, "z": null} `),
				Metadata: []byte(`{"causation_id":"c-0"}`)},
			annals.EventData{Type: "Nil"})
		require.NoError(t, err)
		got := f.readAll(t, s)
		require.Len(t, got, 3)
		require.JSONEq(t, `{"sku":"A-1","count":5}`, string(got[0].Data))
		require.JSONEq(t, `{"correlation_id":"c-1","actor":"ann","nested":{"x":[1,2]}}`, string(got[0].Metadata))
		require.JSONEq(t, `{"a":"éé","n":1.5,"z":null}`, string(got[1].Data))
		require.JSONEq(t, `{"causation_id":"c-0"}`, string(got[1].Metadata))
		require.JSONEq(t, `{}`, string(got[2].Data), "nil data is {}")
		require.JSONEq(t, `{}`, string(got[2].Metadata), "nil metadata is {}")
		require.Equal(t, []string{"Struct", "Raw", "Nil"}, []string{got[0].EventType, got[1].EventType, got[2].EventType})
		for i, e := range got {
			require.Equal(t, s, e.StreamID)
			require.EqualValues(t, i+1, e.StreamVersion)
		}
	})

	t.Run("schema version", func(t *testing.T) {
		t.Parallel()
		s := stream("trip")
		_, err := f.store.Append(f.ctx, s, annals.NoStream,
			annals.EventData{Type: "V0"},
			annals.EventData{Type: "V1", SchemaVersion: 1},
			annals.EventData{Type: "V3", SchemaVersion: 3})
		require.NoError(t, err)
		got := f.readAll(t, s)
		require.Equal(t, []int{1, 1, 3}, []int{got[0].SchemaVersion, got[1].SchemaVersion, got[2].SchemaVersion})

		require.NoError(t, f.appendSQL(s, nil, `[{"type":"Sql","schema_version":7},{"type":"Sql","schema_version":null}]`))
		got = f.readAll(t, s)
		require.Equal(t, 7, got[3].SchemaVersion)
		require.Equal(t, 1, got[4].SchemaVersion)
	})
}

func TestAppendResultAndPositions(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("pos")

	first, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "A", 4)...)
	require.NoError(t, err)
	second, err := f.store.Append(f.ctx, s, annals.Exact(4), events(t, "B", 3)...)
	require.NoError(t, err)
	require.EqualValues(t, 4, first.StreamVersion)
	require.EqualValues(t, 7, second.StreamVersion)
	require.Greater(t, second.TransactionID, first.TransactionID)

	got := f.readAll(t, s)
	require.Len(t, got, 7)
	for i, e := range got {
		want := first
		if i >= 4 {
			want = second
		}
		require.Equal(t, want.TransactionID, e.TransactionID, "event %d: one transaction id per append", i)
		if i > 0 {
			require.Greater(t, e.GlobalPosition, got[i-1].GlobalPosition, "positions increase with versions")
			require.False(t, e.RecordedAt.Before(got[i-1].RecordedAt), "recorded_at never decreases")
		}
	}
	for _, batch := range [][]annals.RecordedEvent{got[:4], got[4:]} {
		for _, e := range batch {
			require.True(t, e.RecordedAt.Equal(batch[0].RecordedAt), "recorded_at is the same for one append")
		}
	}
	require.Equal(t, got[3].GlobalPosition, first.GlobalPosition, "the result describes the last event")
	require.Equal(t, got[6].GlobalPosition, second.GlobalPosition)
}

func TestAppendTx(t *testing.T) {
	t.Parallel()
	f := setup(t)

	t.Run("rolls back with the caller", func(t *testing.T) {
		t.Parallel()
		s := stream("tx")
		tx, err := f.pool.Begin(f.ctx)
		require.NoError(t, err)
		res, err := f.store.AppendTx(f.ctx, tx, s, annals.NoStream, events(t, "A", 2)...)
		require.NoError(t, err)
		require.EqualValues(t, 2, res.StreamVersion)
		require.Len(t, collect(t, f.store.ReadStreamTx(f.ctx, tx, s, annals.ReadOptions{})), 2,
			"the transaction sees its own events")
		require.NoError(t, tx.Rollback(f.ctx))
		require.Zero(t, f.countRows(t, s))
		_, err = f.store.StreamInfo(f.ctx, s)
		require.ErrorIs(t, err, annals.ErrStreamNotFound)
	})

	t.Run("commits with the caller", func(t *testing.T) {
		t.Parallel()
		s := stream("tx")
		tx, err := f.pool.Begin(f.ctx)
		require.NoError(t, err)
		defer tx.Rollback(f.ctx) //nolint:errcheck
		_, err = f.store.AppendTx(f.ctx, tx, s, annals.NoStream, events(t, "A", 1)...)
		require.NoError(t, err)
		_, err = f.store.AppendTx(f.ctx, tx, s, annals.Exact(1), events(t, "B", 1)...)
		require.NoError(t, err, "two appends in one transaction")
		require.Zero(t, f.countRows(t, s), "not visible before commit")
		require.NoError(t, tx.Commit(f.ctx))
		require.EqualValues(t, 2, f.countRows(t, s))
	})

	t.Run("errors are typed", func(t *testing.T) {
		t.Parallel()
		s := stream("tx")
		tx, err := f.pool.Begin(f.ctx)
		require.NoError(t, err)
		defer tx.Rollback(f.ctx) //nolint:errcheck
		_, err = f.store.AppendTx(f.ctx, tx, s, annals.StreamExists, events(t, "A", 1)...)
		require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
		requirePgError(t, err, "ST409")
	})
}

// expectedJSON is how DETAIL spells an expected version: null for any, else the number.
func expectedJSON(e annals.ExpectedVersion) any {
	if e.IsAny() {
		return nil
	}
	v, _ := e.Version()
	return float64(v)
}

// nil data or metadata means {}, also when the nil is typed (a nil map or pointer encodes as
// JSON null).
func TestAppendNilPayloadsAreEmptyObjects(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("nil")
	var m map[string]any
	var p *struct{ A int }
	_, err := f.store.Append(f.ctx, s, annals.NoStream,
		annals.EventData{Type: "Untyped"},
		annals.EventData{Type: "TypedNilMap", Data: m, Metadata: m},
		annals.EventData{Type: "TypedNilPointer", Data: p})
	require.NoError(t, err)
	for ev, err := range f.store.ReadStream(f.ctx, s, annals.ReadOptions{}) {
		require.NoError(t, err)
		require.JSONEq(t, `{}`, string(ev.Data), ev.EventType)
		require.JSONEq(t, `{}`, string(ev.Metadata), ev.EventType)
	}
}

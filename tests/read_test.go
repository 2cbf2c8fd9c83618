package tests

import (
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/stretchr/testify/require"
)

// versions lists the stream versions of events, in the order read.
func versions(evs []annals.RecordedEvent) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.StreamVersion)
	}
	return out
}

// span returns the versions from..to inclusive, counting down when to < from.
func span(from, to int64) []int64 {
	var out []int64
	if from <= to {
		for v := from; v <= to; v++ {
			out = append(out, v)
		}
	} else {
		for v := from; v >= to; v-- {
			out = append(out, v)
		}
	}
	return out
}

func TestReadStreamPaging(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{ReadPageSize: 3})
	s10, s9 := stream("read"), stream("read")
	_, err := f.store.Append(f.ctx, s10, annals.NoStream, events(t, "E", 10)...)
	require.NoError(t, err)
	_, err = f.store.Append(f.ctx, s9, annals.NoStream, events(t, "E", 9)...)
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		stream string
		opts   annals.ReadOptions
		want   []int64
	}{
		{"whole stream over four pages", s10, annals.ReadOptions{}, span(1, 10)},
		{"whole stream filling its last page", s9, annals.ReadOptions{}, span(1, 9)},
		{"limit inside the first page", s10, annals.ReadOptions{Limit: 2}, span(1, 2)},
		{"limit at a page boundary", s10, annals.ReadOptions{Limit: 6}, span(1, 6)},
		{"limit across a page boundary", s10, annals.ReadOptions{Limit: 7}, span(1, 7)},
		{"limit beyond the end", s10, annals.ReadOptions{Limit: 50}, span(1, 10)},
		{"from", s10, annals.ReadOptions{From: 5}, span(5, 10)},
		{"from the last event", s10, annals.ReadOptions{From: 10}, []int64{10}},
		{"from beyond the end", s10, annals.ReadOptions{From: 11}, nil},
		{"from with limit", s10, annals.ReadOptions{From: 4, Limit: 4}, span(4, 7)},
		{"backwards", s10, annals.ReadOptions{Backwards: true}, span(10, 1)},
		{"backwards filling its last page", s9, annals.ReadOptions{Backwards: true}, span(9, 1)},
		{"backwards with limit", s10, annals.ReadOptions{Backwards: true, Limit: 4}, span(10, 7)},
		{"backwards from", s10, annals.ReadOptions{Backwards: true, From: 5}, span(5, 1)},
		{"backwards from the first event", s10, annals.ReadOptions{Backwards: true, From: 1}, []int64{1}},
		{"backwards from beyond the end", s10, annals.ReadOptions{Backwards: true, From: 99}, span(10, 1)},
		{"backwards from with limit", s10, annals.ReadOptions{Backwards: true, From: 8, Limit: 5}, span(8, 4)},
		{"missing stream", stream("missing"), annals.ReadOptions{}, nil},
		{"missing stream backwards", stream("missing"), annals.ReadOptions{Backwards: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := collect(t, f.store.ReadStream(f.ctx, tc.stream, tc.opts))
			require.Equal(t, tc.want, versions(got))
		})
	}

	t.Run("stopping early", func(t *testing.T) {
		t.Parallel()
		var seen []int64
		for e, err := range f.store.ReadStream(f.ctx, s10, annals.ReadOptions{}) {
			require.NoError(t, err)
			seen = append(seen, e.StreamVersion)
			if len(seen) == 4 {
				break
			}
		}
		require.Equal(t, span(1, 4), seen)
	})

	t.Run("page size one", func(t *testing.T) {
		t.Parallel()
		one := annals.New(f.pool, annals.ClientOptions{ReadPageSize: 1})
		require.Equal(t, span(1, 9), versions(collect(t, one.ReadStream(f.ctx, s9, annals.ReadOptions{}))))
		require.Equal(t, span(9, 1), versions(collect(t, one.ReadStream(f.ctx, s9, annals.ReadOptions{Backwards: true}))))
	})
}

func TestReadStreamFields(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("fields")
	res, err := f.store.Append(f.ctx, s, annals.NoStream,
		annals.EventData{Type: "Opened", SchemaVersion: 2, Data: map[string]int{"a": 1}, Metadata: map[string]string{"actor": "x"}})
	require.NoError(t, err)

	got := f.readAll(t, s)
	require.Len(t, got, 1)
	e := got[0]
	require.Equal(t, s, e.StreamID)
	require.EqualValues(t, 1, e.StreamVersion)
	require.Equal(t, res.GlobalPosition, e.GlobalPosition)
	require.Equal(t, res.EventIDs[0], e.EventID)
	require.Equal(t, "Opened", e.EventType)
	require.Equal(t, 2, e.SchemaVersion)
	require.JSONEq(t, `{"a":1}`, string(e.Data))
	require.JSONEq(t, `{"actor":"x"}`, string(e.Metadata))
	require.Equal(t, res.TransactionID, e.TransactionID)
	require.NotZero(t, e.TransactionID)
	require.WithinDuration(t, time.Now(), e.RecordedAt, time.Minute)
}

func TestReadStreamAsOf(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{ReadPageSize: 2})
	s := stream("asof")

	// now is the database's clock, so times compare with recorded_at on one clock.
	now := func(t *testing.T) time.Time {
		t.Helper()
		var ts time.Time
		require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT pg_catalog.clock_timestamp()").Scan(&ts))
		return ts
	}
	before := now(t)
	_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "A", 2)...)
	require.NoError(t, err)
	afterA := now(t)
	_, err = f.store.Append(f.ctx, s, annals.Exact(2), events(t, "B", 3)...)
	require.NoError(t, err)
	afterB := now(t)
	_, err = f.store.Append(f.ctx, s, annals.Exact(5), events(t, "C", 1)...)
	require.NoError(t, err)
	all := f.readAll(t, s)

	for _, tc := range []struct {
		name string
		asOf annals.AsOf
		want []int64
	}{
		{"version inside the stream", annals.AtVersion(3), span(1, 3)},
		{"version at a page boundary", annals.AtVersion(4), span(1, 4)},
		{"version 1", annals.AtVersion(1), []int64{1}},
		{"version 0", annals.AtVersion(0), nil},
		{"version beyond the end", annals.AtVersion(40), span(1, 6)},
		{"time before the stream", annals.AtTime(before), nil},
		{"time after the first append", annals.AtTime(afterA), span(1, 2)},
		{"time after the second append", annals.AtTime(afterB), span(1, 5)},
		{"time of an event is inclusive", annals.AtTime(all[4].RecordedAt), span(1, 5)},
		{"time just before an append", annals.AtTime(all[2].RecordedAt.Add(-time.Microsecond)), span(1, 2)},
		{"time now", annals.AtTime(time.Now().Add(time.Hour)), span(1, 6)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := collect(t, f.store.ReadStreamAsOf(f.ctx, s, tc.asOf))
			require.Equal(t, tc.want, versions(got))
			for i, e := range got {
				require.Equal(t, all[i].EventID, e.EventID)
			}
		})
	}

	t.Run("missing stream", func(t *testing.T) {
		t.Parallel()
		require.Empty(t, collect(t, f.store.ReadStreamAsOf(f.ctx, stream("missing"), annals.AtVersion(5))))
		require.Empty(t, collect(t, f.store.ReadStreamAsOf(f.ctx, stream("missing"), annals.AtTime(afterB))))
	})

	t.Run("unset or negative", func(t *testing.T) {
		t.Parallel()
		for _, asOf := range []annals.AsOf{{}, annals.AtVersion(-1)} {
			var errs []error
			for _, err := range f.store.ReadStreamAsOf(f.ctx, s, asOf) {
				errs = append(errs, err)
			}
			require.Len(t, errs, 1)
			require.ErrorIs(t, errs[0], annals.ErrInvalidArgument)
		}
	})

	t.Run("stream_version_at", func(t *testing.T) {
		t.Parallel()
		for ts, want := range map[time.Time]int64{before: 0, afterA: 2, afterB: 5, all[5].RecordedAt: 6} {
			var v int64
			require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT annals.stream_version_at($1, $2)", s, ts).Scan(&v))
			require.Equal(t, want, v, "at %v", ts)
		}
	})
}

func TestStreamInfo(t *testing.T) {
	t.Parallel()
	f := setup(t)

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		_, err := f.store.StreamInfo(f.ctx, stream("info"))
		require.ErrorIs(t, err, annals.ErrStreamNotFound)
		var n int
		require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM annals.stream_info($1)", stream("info")).Scan(&n))
		require.Zero(t, n, "no row for a stream without events")
	})

	t.Run("active", func(t *testing.T) {
		t.Parallel()
		s := stream("info")
		_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "A", 2)...)
		require.NoError(t, err)
		_, err = f.store.Append(f.ctx, s, annals.Exact(2), events(t, "B", 1)...)
		require.NoError(t, err)
		all := f.readAll(t, s)

		info, err := f.store.StreamInfo(f.ctx, s)
		require.NoError(t, err)
		require.Equal(t, s, info.StreamID)
		require.EqualValues(t, 3, info.StreamVersion)
		require.Equal(t, "active", info.State)
		require.True(t, info.CreatedAt.Equal(all[0].RecordedAt), "created with the first append")
		require.True(t, info.UpdatedAt.Equal(all[2].RecordedAt), "updated by the last append")
	})

	t.Run("deleted", func(t *testing.T) {
		t.Parallel()
		s := stream("info")
		_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "A", 3)...)
		require.NoError(t, err)
		before, err := f.store.StreamInfo(f.ctx, s)
		require.NoError(t, err)

		_, err = f.store.DeleteStream(f.ctx, s, annals.Exact(2), "")
		require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
		final, err := f.store.DeleteStream(f.ctx, s, annals.StreamExists, "closed by test")
		require.NoError(t, err)
		require.EqualValues(t, 3, final)

		info, err := f.store.StreamInfo(f.ctx, s)
		require.NoError(t, err)
		require.Equal(t, "deleted", info.State)
		require.EqualValues(t, 3, info.StreamVersion)
		require.True(t, info.CreatedAt.Equal(before.CreatedAt))
		require.False(t, info.UpdatedAt.Before(before.UpdatedAt))

		_, err = f.store.Append(f.ctx, s, annals.Any, ev(t, "Late", nil))
		require.ErrorIs(t, err, annals.ErrStreamDeleted)
		_, err = f.store.Append(f.ctx, s, annals.Exact(3), ev(t, "Late", nil))
		require.ErrorIs(t, err, annals.ErrStreamDeleted)
		require.Len(t, f.readAll(t, s), 3, "a deleted stream's events stay readable")

		var op, reason string
		var version int64
		require.NoError(t, f.pool.QueryRow(f.ctx,
			"SELECT operation, stream_version, reason FROM annals_internal.lifecycle_log WHERE stream_id = $1", s).
			Scan(&op, &version, &reason))
		require.Equal(t, []any{"delete", int64(3), "closed by test"}, []any{op, version, reason})
	})
}

package tests

import (
	"encoding/json"
	"strings"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// requireNothingWritten checks that the database holds no event, no stream and has handed out no
// global position.
func requireNothingWritten(t *testing.T, f fixture) {
	t.Helper()
	events, streams := f.totals(t)
	require.Zero(t, events)
	require.Zero(t, streams)
	var called bool
	require.NoError(t, f.pool.QueryRow(f.ctx,
		"SELECT is_called FROM annals_internal.global_position_seq").Scan(&called))
	require.False(t, called, "no global position was taken")
}

func TestValidationGoAPI(t *testing.T) {
	t.Parallel()
	f := setup(t)

	typed := func(typ string) []annals.EventData { return []annals.EventData{{Type: typ}} }
	withData := func(data any) []annals.EventData { return []annals.EventData{{Type: "T", Data: data}} }
	withMeta := func(meta any) []annals.EventData { return []annals.EventData{{Type: "T", Metadata: meta}} }
	dup := uuid.MustParse("0190a8f2-7c1e-7000-8000-00000000d0d0")

	cases := []struct {
		name     string
		stream   string
		expected annals.ExpectedVersion
		events   []annals.EventData
		reserved bool   // ErrReserved instead of ErrInvalidArgument
		argument string // the argument the error names
	}{
		{"empty stream id", "", annals.Any, typed("T"), false, "stream_id"},
		{"stream id with leading space", " s-1", annals.Any, typed("T"), false, "stream_id"},
		{"stream id with trailing space", "s-1 ", annals.Any, typed("T"), false, "stream_id"},
		{"stream id with a control character", "s-\x01", annals.Any, typed("T"), false, "stream_id"},
		{"stream id with a newline", "s-1\n2", annals.Any, typed("T"), false, "stream_id"},
		{"stream id over 512 bytes", strings.Repeat("x", 513), annals.Any, typed("T"), false, "stream_id"},
		{"stream id over 512 bytes in 257 characters", strings.Repeat("é", 257), annals.Any, typed("T"), false, "stream_id"},
		{"reserved stream id", "$all", annals.Any, typed("T"), true, "stream_id"},
		{"expected version -2", "s-1", annals.Exact(-2), typed("T"), false, "expected_version"},
		{"empty type", "s-1", annals.Any, typed(""), false, "events[0].type"},
		{"type with surrounding space", "s-1", annals.Any, typed(" T"), false, "events[0].type"},
		{"type with a control character", "s-1", annals.Any, typed("T\x7f"), false, "events[0].type"},
		{"type over 256 bytes", "s-1", annals.Any, typed(strings.Repeat("t", 257)), false, "events[0].type"},
		{"reserved type", "s-1", annals.Any, typed("$Deleted"), true, "events[0].type"},
		{"bad second event", "s-1", annals.Any, []annals.EventData{{Type: "T"}, {Type: "$T"}}, true, "events[1].type"},
		{"data array", "s-1", annals.Any, withData(json.RawMessage(`[1]`)), false, "events[0].data"},
		{"data string", "s-1", annals.Any, withData("text"), false, "events[0].data"},
		{"data number", "s-1", annals.Any, withData(42), false, "events[0].data"},
		{"data slice", "s-1", annals.Any, withData([]int{1}), false, "events[0].data"},
		{"data broken JSON", "s-1", annals.Any, withData([]byte(`{"a":`)), false, "events[0].data"},
		{"data not encodable", "s-1", annals.Any, withData(map[string]any{"f": func() {}}), false, "events[0].data"},
		{"metadata array", "s-1", annals.Any, withMeta([]string{"x"}), false, "events[0].metadata"},
		{"metadata string", "s-1", annals.Any, withMeta(json.RawMessage(`"m"`)), false, "events[0].metadata"},
		{"negative schema version", "s-1", annals.Any, []annals.EventData{{Type: "T", SchemaVersion: -1}}, false, "events[0].schema_version"},
		{"duplicate ids", "s-1", annals.Any, []annals.EventData{{ID: dup, Type: "T"}, {Type: "T"}, {ID: dup, Type: "T"}}, false, "events"},
	}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				_, err := f.store.Append(f.ctx, tc.stream, tc.expected, tc.events...)
				if tc.reserved {
					require.ErrorIs(t, err, annals.ErrReserved)
					require.NotErrorIs(t, err, annals.ErrInvalidArgument)
					pgErr := requirePgError(t, err, "ST403")
					require.Equal(t, map[string]any{"argument": tc.argument}, detailOf(t, pgErr))
					return
				}
				require.ErrorIs(t, err, annals.ErrInvalidArgument)
				var inv *annals.InvalidArgumentError
				require.ErrorAs(t, err, &inv)
				require.Equal(t, tc.argument, inv.Argument)
				require.NotEmpty(t, inv.Reason)
			})
		}
	})
	requireNothingWritten(t, f)

}

func TestValidationEdges(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, s := range []string{strings.Repeat("x", 512), strings.Repeat("é", 256), "a b", "ünïcode-☃", "no-category-dash-", "x$"} {
		_, err := f.store.Append(f.ctx, s, annals.NoStream, annals.EventData{Type: strings.Repeat("t", 256)},
			annals.EventData{Type: "Type With Spaces"})
		require.NoError(t, err, "stream id %q", s)
		require.EqualValues(t, 2, f.version(t, s))
	}
}

func TestValidationSQL(t *testing.T) {
	t.Parallel()
	f := setup(t)

	const id = "0190a8f2-7c1e-7000-8000-0000000000a1"
	cases := []struct {
		name     string
		stream   any
		expected any
		events   any
		code     string
		argument string
	}{
		{"null stream id", nil, nil, `[{"type":"T"}]`, "ST422", "stream_id"},
		{"empty stream id", "", nil, `[{"type":"T"}]`, "ST422", "stream_id"},
		{"whitespace stream id", "   ", nil, `[{"type":"T"}]`, "ST422", "stream_id"},
		{"control character in stream id", "a\tb", nil, `[{"type":"T"}]`, "ST422", "stream_id"},
		{"stream id over 512 bytes", strings.Repeat("s", 513), nil, `[{"type":"T"}]`, "ST422", "stream_id"},
		{"reserved stream id", "$s", nil, `[{"type":"T"}]`, "ST403", "stream_id"},
		{"expected -2", "s-1", -2, `[{"type":"T"}]`, "ST422", "expected_version"},
		{"null events", "s-1", nil, nil, "ST422", "events"},
		{"events an object", "s-1", nil, `{"type":"T"}`, "ST422", "events"},
		{"events a string", "s-1", nil, `"T"`, "ST422", "events"},
		{"events JSON null", "s-1", nil, `null`, "ST422", "events"},
		{"element a number", "s-1", nil, `[1]`, "ST422", "events[0]"},
		{"element null", "s-1", nil, `[{"type":"T"},null]`, "ST422", "events[1]"},
		{"element an array", "s-1", nil, `[[{"type":"T"}]]`, "ST422", "events[0]"},
		{"unknown key", "s-1", nil, `[{"type":"T","payload":{}}]`, "ST422", "events[0]"},
		{"missing type", "s-1", nil, `[{"data":{}}]`, "ST422", "events[0].type"},
		{"type a number", "s-1", nil, `[{"type":1}]`, "ST422", "events[0].type"},
		{"type null", "s-1", nil, `[{"type":null}]`, "ST422", "events[0].type"},
		{"empty type", "s-1", nil, `[{"type":""}]`, "ST422", "events[0].type"},
		{"type over 256 bytes", "s-1", nil, `[{"type":"` + strings.Repeat("t", 257) + `"}]`, "ST422", "events[0].type"},
		{"reserved type", "s-1", nil, `[{"type":"$T"}]`, "ST403", "events[0].type"},
		{"data an array", "s-1", nil, `[{"type":"T","data":[]}]`, "ST422", "events[0].data"},
		{"data a string", "s-1", nil, `[{"type":"T","data":"x"}]`, "ST422", "events[0].data"},
		{"data true", "s-1", nil, `[{"type":"T","data":true}]`, "ST422", "events[0].data"},
		{"metadata an array", "s-1", nil, `[{"type":"T","metadata":[]}]`, "ST422", "events[0].metadata"},
		{"metadata a number", "s-1", nil, `[{"type":"T","metadata":1}]`, "ST422", "events[0].metadata"},
		{"id not a uuid", "s-1", nil, `[{"type":"T","id":"not-a-uuid"}]`, "ST422", "events[0].id"},
		{"id too short", "s-1", nil, `[{"type":"T","id":"0190a8f2-7c1e-7000-8000-0000000000a"}]`, "ST422", "events[0].id"},
		{"id a number", "s-1", nil, `[{"type":"T","id":1}]`, "ST422", "events[0].id"},
		{"id in braces", "s-1", nil, `[{"type":"T","id":"{` + id + `}"}]`, "ST422", "events[0].id"},
		{"schema version 0", "s-1", nil, `[{"type":"T","schema_version":0}]`, "ST422", "events[0].schema_version"},
		{"schema version negative", "s-1", nil, `[{"type":"T","schema_version":-1}]`, "ST422", "events[0].schema_version"},
		{"schema version a string", "s-1", nil, `[{"type":"T","schema_version":"1"}]`, "ST422", "events[0].schema_version"},
		{"schema version a fraction", "s-1", nil, `[{"type":"T","schema_version":1.5}]`, "ST422", "events[0].schema_version"},
		{"schema version over int", "s-1", nil, `[{"type":"T","schema_version":9999999999}]`, "ST422", "events[0].schema_version"},
		{"duplicate ids", "s-1", nil, `[{"type":"T","id":"` + id + `"},{"type":"T","id":"` + id + `"}]`, "ST422", "events"},
		{"duplicate ids spelled differently", "s-1", nil,
			`[{"type":"T","id":"` + id + `"},{"type":"T","id":"` + strings.ToUpper(strings.ReplaceAll(id, "-", "")) + `"}]`, "ST422", "events"},
		{"first problem wins", "s-1", nil, `[{"type":"T"},{"type":""},{"type":"$T"}]`, "ST422", "events[1].type"},
	}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				err := f.appendSQL(tc.stream, tc.expected, tc.events)
				pgErr := requirePgError(t, err, tc.code)
				d := detailOf(t, pgErr)
				require.Equal(t, tc.argument, d["argument"])
				if tc.code == "ST422" {
					require.NotEmpty(t, d["reason"])
				}
			})
		}
	})
	requireNothingWritten(t, f)
}

func TestValidationReads(t *testing.T) {
	t.Parallel()
	f := setup(t)

	for _, tc := range []struct {
		name, query string
		args        []any
		code, arg   string
	}{
		{"read_stream empty id", "SELECT count(*) FROM annals.read_stream($1)", []any{""}, "ST422", "stream_id"},
		{"read_stream reserved id", "SELECT count(*) FROM annals.read_stream($1)", []any{"$x"}, "ST403", "stream_id"},
		{"read_stream from 0", "SELECT count(*) FROM annals.read_stream($1, 0)", []any{"s-1"}, "ST422", "from_version"},
		{"read_stream max_count 0", "SELECT count(*) FROM annals.read_stream($1, 1, 0)", []any{"s-1"}, "ST422", "max_count"},
		{"read_stream backwards null", "SELECT count(*) FROM annals.read_stream($1, 1, 10, NULL)", []any{"s-1"}, "ST422", "backwards"},
		{"as_of neither", "SELECT count(*) FROM annals.read_stream_as_of($1)", []any{"s-1"}, "ST422", "as_of_version"},
		{"as_of both", "SELECT count(*) FROM annals.read_stream_as_of($1, 1, now())", []any{"s-1"}, "ST422", "as_of_version"},
		{"as_of negative", "SELECT count(*) FROM annals.read_stream_as_of($1, -1)", []any{"s-1"}, "ST422", "as_of_version"},
		{"stream_info bad id", "SELECT count(*) FROM annals.stream_info($1)", []any{" x"}, "ST422", "stream_id"},
		{"delete_stream expected -2", "SELECT annals.delete_stream($1, -2)", []any{"s-1"}, "ST422", "expected_version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := f.pool.Exec(f.ctx, tc.query, tc.args...)
			pgErr := requirePgError(t, err, tc.code)
			require.Equal(t, tc.arg, detailOf(t, pgErr)["argument"])
		})
	}

	t.Run("Go API", func(t *testing.T) {
		t.Parallel()
		for _, e := range []error{
			func() error { _, err := f.store.StreamInfo(f.ctx, "bad\x01"); return err }(),
			func() error { _, err := f.store.DeleteStream(f.ctx, " x", annals.Any, ""); return err }(),
			func() error { _, err := f.store.DeleteStream(f.ctx, "x", annals.Exact(-5), ""); return err }(),
		} {
			require.ErrorIs(t, e, annals.ErrInvalidArgument)
		}
		for _, seq := range []func(func(annals.RecordedEvent, error) bool){
			f.store.ReadStream(f.ctx, "", annals.ReadOptions{}),
			f.store.ReadStream(f.ctx, "x ", annals.ReadOptions{}),
			f.store.ReadStreamAsOf(f.ctx, "x", annals.AsOf{}),
		} {
			var errs []error
			for _, err := range seq {
				errs = append(errs, err)
			}
			require.Len(t, errs, 1)
			require.ErrorIs(t, errs[0], annals.ErrInvalidArgument)
		}
		_, err := f.store.StreamInfo(f.ctx, "$x")
		require.ErrorIs(t, err, annals.ErrReserved)
	})
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	f := setup(t) // its own database: the limits set here must not leak into other tests

	var limits map[string]any
	require.NoError(t, f.pool.QueryRow(f.ctx,
		"SELECT annals.configure(max_event_bytes => 100, max_batch_events => 3, max_batch_bytes => 2000)").Scan(&limits))
	require.EqualValues(t, 100, limits["max_event_bytes"], "configure returns the limits in force")
	require.EqualValues(t, 3, limits["max_batch_events"])
	require.EqualValues(t, 2000, limits["max_batch_bytes"])

	// sized returns data whose JSON text, as PostgreSQL prints it, is exactly n bytes.
	sized := func(t *testing.T, n int) json.RawMessage {
		t.Helper()
		data := json.RawMessage(`{"p": "` + strings.Repeat("x", n-9) + `"}`)
		var got int
		require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT octet_length($1::jsonb::text)", string(data)).Scan(&got))
		require.Equal(t, n, got)
		return data
	}
	requireTooLarge := func(t *testing.T, err error, setting string, limit int64) *annals.TooLargeError {
		t.Helper()
		require.ErrorIs(t, err, annals.ErrTooLarge)
		var tl *annals.TooLargeError
		require.ErrorAs(t, err, &tl)
		require.Equal(t, setting, tl.Setting)
		require.Equal(t, limit, tl.Limit)
		require.Greater(t, tl.Actual, tl.Limit)
		pgErr := requirePgError(t, err, "ST413")
		d := detailOf(t, pgErr)
		require.EqualValues(t, limit, d["limit"])
		require.EqualValues(t, tl.Actual, d["actual"])
		return tl
	}

	t.Run("event data at the limit", func(t *testing.T) {
		t.Parallel()
		s := stream("big")
		_, err := f.store.Append(f.ctx, s, annals.NoStream, annals.EventData{Type: "T", Data: sized(t, 100)})
		require.NoError(t, err)
	})
	t.Run("event data over the limit", func(t *testing.T) {
		t.Parallel()
		s := stream("big")
		_, err := f.store.Append(f.ctx, s, annals.Any,
			annals.EventData{Type: "T"}, annals.EventData{Type: "T", Data: sized(t, 101)})
		tl := requireTooLarge(t, err, "max_event_bytes", 100)
		require.EqualValues(t, 101, tl.Actual)
		require.Zero(t, f.countRows(t, s))
	})
	t.Run("batch at the event count limit", func(t *testing.T) {
		t.Parallel()
		_, err := f.store.Append(f.ctx, stream("big"), annals.NoStream, events(t, "T", 3)...)
		require.NoError(t, err)
	})
	t.Run("batch over the event count limit", func(t *testing.T) {
		t.Parallel()
		s := stream("big")
		_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "T", 4)...)
		tl := requireTooLarge(t, err, "max_batch_events", 3)
		require.EqualValues(t, 4, tl.Actual)
		require.Zero(t, f.countRows(t, s))
	})
	t.Run("batch over the byte limit", func(t *testing.T) {
		t.Parallel()
		s := stream("big")
		batch := make([]annals.EventData, 3)
		for i := range batch {
			batch[i] = annals.EventData{Type: "T", Data: sized(t, 95),
				Metadata: map[string]string{"note": strings.Repeat("m", 600)}}
		}
		_, err := f.store.Append(f.ctx, s, annals.NoStream, batch...)
		requireTooLarge(t, err, "max_batch_bytes", 2000)
		require.Zero(t, f.countRows(t, s))
	})
	t.Run("raw SQL", func(t *testing.T) {
		t.Parallel()
		err := f.appendSQL(stream("big"), nil, `[{"type":"T","data":{"p":"`+strings.Repeat("y", 200)+`"}}]`)
		pgErr := requirePgError(t, err, "ST413")
		require.Equal(t, "max_event_bytes", detailOf(t, pgErr)["setting"])
	})
	t.Run("configure checks its arguments", func(t *testing.T) {
		t.Parallel()
		for _, arg := range []string{"max_event_bytes", "max_batch_events", "max_batch_bytes"} {
			_, err := f.pool.Exec(f.ctx, "SELECT annals.configure("+arg+" => 0)")
			pgErr := requirePgError(t, err, "ST422")
			require.Equal(t, arg, detailOf(t, pgErr)["argument"])
		}
	})
}

package tests

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// oneEvent is a call of annals.append_event, and the one-event batch it stands for. A nil field
// is SQL NULL (and an absent key in the batch).
type oneEvent struct {
	stream   any // nil: a fresh stream; nullStream: SQL NULL; else the stream id to pass
	expected any
	typ      any
	data     any // JSON text (string) or nil
	metadata any
	id       any
	schema   any
}

func (e oneEvent) batch(t *testing.T) string {
	t.Helper()
	obj := map[string]json.RawMessage{}
	put := func(k string, v any, raw bool) {
		if v == nil {
			return
		}
		if raw {
			obj[k] = json.RawMessage(v.(string))
			return
		}
		b, err := json.Marshal(v)
		require.NoError(t, err)
		obj[k] = b
	}
	put("type", e.typ, false)
	put("data", e.data, true)
	put("metadata", e.metadata, true)
	put("id", e.id, false)
	put("schema_version", e.schema, false)
	b, err := json.Marshal([]any{obj})
	require.NoError(t, err)
	return string(b)
}

// nullStream passes a NULL stream id.
type nullStreamID struct{}

var nullStream = nullStreamID{}

type appendOutcome struct {
	version, position int64
	code, message     string
	detail, hint      string
	rows              []string
}

// TestAppendEventMatchesAppendEvents runs every case through annals.append_event and through
// annals.append_events with the one-event batch, each on its own stream set up alike, and
// requires the same outcome: the same version, or the same SQLSTATE, message, DETAIL and HINT
// (stream ids aside), and the same stored rows.
func TestAppendEventMatchesAppendEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)

	const id1 = "0190a8f2-7c1e-7000-8000-0000000000a1"
	const id2 = "0190a8f2-7c1e-7000-8000-0000000000a2"
	stored := `[{"type":"A","id":"` + id1 + `","data":{"n":1},"metadata":{"m":1},"schema_version":2},{"type":"B","data":{}}]`

	cases := []struct {
		name  string
		setup []string // batches appended first (expected any); "delete" deletes the stream
		call  oneEvent
	}{
		// Arguments.
		{"null stream id", nil, oneEvent{stream: nullStream, typ: "T", data: `{}`}},
		{"empty stream id", nil, oneEvent{stream: "", typ: "T"}},
		{"whitespace stream id", nil, oneEvent{stream: "   ", typ: "T"}},
		{"control character in stream id", nil, oneEvent{stream: "a\tb", typ: "T"}},
		{"empty category", nil, oneEvent{stream: "-a", typ: "T"}},
		{"stream id over 512 bytes", nil, oneEvent{stream: strings.Repeat("s", 513), typ: "T"}},
		{"reserved stream id", nil, oneEvent{stream: "$s", typ: "T"}},
		{"expected -2", nil, oneEvent{expected: -2, typ: "T"}},
		{"null type", nil, oneEvent{data: `{}`}},
		{"empty type", nil, oneEvent{typ: ""}},
		{"type over 256 bytes", nil, oneEvent{typ: strings.Repeat("t", 257)}},
		{"type with a control character", nil, oneEvent{typ: "a\u0007b"}},
		{"type with surrounding space", nil, oneEvent{typ: " T"}},
		{"reserved type", nil, oneEvent{typ: "$T"}},
		{"data an array", nil, oneEvent{typ: "T", data: `[]`}},
		{"data a string", nil, oneEvent{typ: "T", data: `"x"`}},
		{"data true", nil, oneEvent{typ: "T", data: `true`}},
		{"data a number", nil, oneEvent{typ: "T", data: `1`}},
		{"metadata an array", nil, oneEvent{typ: "T", metadata: `[]`}},
		{"metadata a number", nil, oneEvent{typ: "T", metadata: `1`}},
		{"schema version 0", nil, oneEvent{typ: "T", schema: 0}},
		{"schema version negative", nil, oneEvent{typ: "T", schema: -1}},
		{"schema version 10 digits", nil, oneEvent{typ: "T", schema: 1000000000}},
		{"schema version max int", nil, oneEvent{typ: "T", schema: 2147483647}},
		{"data over max_event_bytes", nil, oneEvent{typ: "T", data: `{"x":"` + strings.Repeat("x", 1<<20) + `"}`}},
		{"invalid type and deleted stream", []string{stored, "delete"}, oneEvent{typ: ""}},
		// Successes.
		{"new stream, no stream", nil, oneEvent{expected: 0, typ: "T", data: `{"a":1}`}},
		{"new stream, any", nil, oneEvent{typ: "T"}},
		{"JSON null data and metadata", nil, oneEvent{typ: "T", data: `null`, metadata: `null`}},
		{"every argument", []string{stored}, oneEvent{expected: 2, typ: "C", data: `{"c":[1,2]}`, metadata: `{"actor":"x"}`, id: id2, schema: 7}},
		{"stream exists", []string{stored}, oneEvent{expected: -1, typ: "T"}},
		{"max schema version", nil, oneEvent{typ: "T", schema: 999999999}},
		// Versions.
		{"no stream on an existing stream", []string{stored}, oneEvent{expected: 0, typ: "T"}},
		{"exact on a new stream", nil, oneEvent{expected: 1, typ: "T"}},
		{"stream exists on a new stream", nil, oneEvent{expected: -1, typ: "T"}},
		{"exact behind", []string{stored}, oneEvent{expected: 1, typ: "T"}},
		{"exact ahead", []string{stored}, oneEvent{expected: 5, typ: "T"}},
		{"deleted stream", []string{stored, "delete"}, oneEvent{expected: 2, typ: "T"}},
		{"deleted stream, any", []string{stored, "delete"}, oneEvent{typ: "T"}},
		// Replays and reused ids.
		{"replay, no stream", []string{`[{"type":"A","id":"` + id1 + `","data":{"n":1}}]`},
			oneEvent{expected: 0, typ: "A", id: id1, data: `{"n":1}`}},
		{"replay, any", []string{stored}, oneEvent{typ: "A", id: id1, data: `{"n":1}`, metadata: `{"m":1}`, schema: 2}},
		{"replay, exact", []string{`[{"type":"B"}]`, `[{"type":"A","id":"` + id1 + `"}]`, `[{"type":"C"}]`},
			oneEvent{expected: 1, typ: "A", id: id1}},
		{"replay with other data", []string{stored}, oneEvent{expected: 0, typ: "A", id: id1, data: `{"n":2}`, metadata: `{"m":1}`, schema: 2}},
		{"replay with another type", []string{stored}, oneEvent{typ: "Z", id: id1, data: `{"n":1}`, metadata: `{"m":1}`, schema: 2}},
		{"replay with other metadata", []string{stored}, oneEvent{typ: "A", id: id1, data: `{"n":1}`, schema: 2}},
		{"replay with another schema version", []string{stored}, oneEvent{typ: "A", id: id1, data: `{"n":1}`, metadata: `{"m":1}`}},
		{"stored id at another position", []string{stored}, oneEvent{expected: 1, typ: "A", id: id1, data: `{"n":1}`, metadata: `{"m":1}`, schema: 2}},
		{"stored id at the end, exact", []string{stored}, oneEvent{expected: 2, typ: "A", id: id1, data: `{"n":1}`, metadata: `{"m":1}`, schema: 2}},
		{"id stored in another stream", []string{}, oneEvent{typ: "A", id: id2}},
	}

	// One stream holds id2 elsewhere, for the last case.
	require.NoError(t, f.appendSQL(stream("elsewhere"), nil, `[{"type":"X","id":"`+id2+`"}]`))

	run := func(t *testing.T, single bool, setup []string, c oneEvent) appendOutcome {
		t.Helper()
		s := stream("eq")
		var streamArg any = s
		switch c.stream {
		case nil:
		case nullStream:
			streamArg = nil
		default:
			streamArg = c.stream
		}
		for _, b := range setup {
			if b == "delete" {
				_, err := f.pool.Exec(f.ctx, "SELECT annals.delete_stream($1)", s)
				require.NoError(t, err)
				continue
			}
			require.NoError(t, f.appendSQL(s, nil, b))
		}
		var out appendOutcome
		var err error
		if single {
			err = f.pool.QueryRow(f.ctx, `SELECT r.stream_version, coalesce(r.global_position, 0)
				FROM annals.append_event(stream_id => $1, expected_version => $2, event_type => $3,
				     data => $4::jsonb, metadata => $5::jsonb, event_id => $6::uuid, schema_version => $7::integer) AS r`,
				streamArg, c.expected, c.typ, c.data, c.metadata, c.id, c.schema).Scan(&out.version, &out.position)
		} else {
			err = f.pool.QueryRow(f.ctx, `SELECT r.stream_version, coalesce(r.global_position, 0)
				FROM annals.append_events($1, $2, $3::jsonb) AS r`,
				streamArg, c.expected, c.batch(t)).Scan(&out.version, &out.position)
		}
		if err != nil {
			var pgErr *pgconn.PgError
			require.True(t, errors.As(err, &pgErr), "%v", err)
			out.code = pgErr.Code
			out.message = strings.ReplaceAll(pgErr.Message, s, "<stream>")
			out.detail = strings.ReplaceAll(pgErr.Detail, s, "<stream>")
			out.hint = pgErr.Hint
			out.position = 0
		}
		if out.position != 0 {
			// Positions differ between the two streams; whether one was returned does not.
			out.position = 1
		}
		rows, err := f.pool.Query(f.ctx, `SELECT concat_ws(' ', stream_version, event_type, data, metadata, schema_version)
			FROM annals_internal.events WHERE stream_id = $1 ORDER BY stream_version`, s)
		require.NoError(t, err)
		for rows.Next() {
			var r string
			require.NoError(t, rows.Scan(&r))
			out.rows = append(out.rows, r)
		}
		require.NoError(t, rows.Err())
		return out
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := run(t, false, tc.setup, tc.call)
			got := run(t, true, tc.setup, tc.call)
			require.Equal(t, want, got)
			if strings.HasPrefix(tc.name, "replay,") {
				require.Empty(t, got.code, "a replay returns the original result")
			}
		})
	}
}

// TestAppendEventLimitsMatch sweeps event sizes across max_event_bytes and max_batch_bytes: at
// every size append_event and append_events with the one-event batch agree (append_event
// measures the batch only near the limit).
func TestAppendEventLimitsMatch(t *testing.T) {
	t.Parallel()
	f := setup(t) // its own database: the limits set here must not leak into other tests
	_, err := f.pool.Exec(f.ctx, "SELECT annals.configure(max_event_bytes => 700, max_batch_bytes => 600)")
	require.NoError(t, err)

	outcome := func(err error) string {
		if err == nil {
			return "ok"
		}
		var pgErr *pgconn.PgError
		require.True(t, errors.As(err, &pgErr), "%v", err)
		return pgErr.Code + " " + pgErr.Message + " " + pgErr.Detail
	}
	kinds := map[string]int{}
	for n := 300; n <= 800; n += 7 {
		for _, withMeta := range []bool{false, true} {
			data := `{"p": "` + strings.Repeat("x", n) + `"}`
			var meta any
			if withMeta {
				meta = `{"m": "` + strings.Repeat("y", n/4) + `"}`
			}
			batch := `[{"type":"T","data":` + data
			if withMeta {
				batch += `,"metadata":` + meta.(string)
			}
			batch += `}]`
			_, errBatch := f.pool.Exec(f.ctx, "SELECT annals.append_events($1, NULL, $2::jsonb)", stream("limits"), batch)
			_, errOne := f.pool.Exec(f.ctx, "SELECT annals.append_event($1, NULL, 'T', $2::jsonb, $3::jsonb)", stream("limits"), data, meta)
			want, got := outcome(errBatch), outcome(errOne)
			require.Equal(t, want, got, "data of %d bytes, metadata %v", n, withMeta)
			kinds[strings.SplitN(want, " ", 2)[0]]++
		}
	}
	require.Greater(t, kinds["ok"], 0)
	require.Greater(t, kinds["ST413"], 0)
}

// TestAppendEventCompressedArguments: data passed from a table's column may arrive compressed,
// smaller than the batch it stands for; max_batch_bytes still counts the whole batch.
func TestAppendEventCompressedArguments(t *testing.T) {
	t.Parallel()
	f := setup(t) // its own database: the limits set here must not leak into other tests
	_, err := f.pool.Exec(f.ctx, `SELECT annals.configure(max_event_bytes => 1000000, max_batch_bytes => 20000);
		CREATE TABLE public.payloads (data jsonb);
		INSERT INTO public.payloads SELECT jsonb_build_object('p', repeat('x', 50000))`)
	require.NoError(t, err)
	var compressed *string
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT pg_column_compression(data) FROM public.payloads").Scan(&compressed))
	require.NotNil(t, compressed, "the stored payload is compressed")

	_, err = f.pool.Exec(f.ctx, "SELECT annals.append_event($1, NULL, 'T', p.data) FROM public.payloads AS p", stream("compressed"))
	pgErr := requirePgError(t, err, "ST413")
	require.Equal(t, "max_batch_bytes", detailOf(t, pgErr)["setting"])
}

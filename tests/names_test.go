package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// The name rule (README "Streams and events"): no control, format, line/paragraph separator or
// noncharacter code point anywhere, no White_Space code point at either end.
const forbiddenReason = " (control, format, line/paragraph separator or noncharacter)"

// nameChars are the code points the rule is about: the ones found accepted or refused
// inconsistently before, and a representative of every range. forbidden: refused anywhere;
// otherwise whitespace: refused at either end, fine inside.
var nameChars = []struct {
	r         rune
	forbidden bool
}{
	{0x0009, true}, {0x000A, true}, {0x001F, true}, {0x007F, true}, {0x0085, true}, {0x009F, true},
	{0x00AD, true}, {0x0600, true}, {0x061C, true}, {0x180E, true},
	{0x200B, true}, {0x200C, true}, {0x200D, true}, {0x200E, true}, {0x200F, true},
	{0x2028, true}, {0x2029, true}, {0x202A, true}, {0x202E, true},
	{0x2060, true}, {0x2064, true}, {0x2066, true}, {0x206F, true},
	{0xFDD0, true}, {0xFDEF, true}, {0xFEFF, true}, {0xFFF9, true}, {0xFFFB, true}, {0xFFFE, true}, {0xFFFF, true},
	{0x110BD, true}, {0x1343F, true}, {0x1D173, true}, {0x1FFFE, true},
	{0xE0001, true}, {0xE0020, true}, {0xE007F, true}, {0x10FFFE, true}, {0x10FFFF, true},
	{0x0020, false}, {0x00A0, false}, {0x1680, false}, {0x2000, false}, {0x2007, false}, {0x200A, false},
	{0x202F, false}, {0x205F, false}, {0x3000, false},
}

// nameCase is one name built around one code point, and what the rule says about it.
type nameCase struct {
	label, name, reason string // reason "" means valid
}

// namesAround places c alone, first, inside and last in names built from base (which must hold
// a '-' at neither end: stream ids use the part after it, so the category rule stays out of the
// way).
func namesAround(r rune, forbidden bool, base string) []nameCase {
	c := string(r)
	cp := fmt.Sprintf("U+%04X", r)
	edge := "must not start or end with whitespace (found " + cp + ")"
	inside := ""
	if forbidden {
		edge = "must not contain " + cp + forbiddenReason
		inside = edge
	}
	return []nameCase{
		{cp + " alone", c, edge},
		{cp + " first", c + base, edge},
		{cp + " inside", base + c + "z", inside},
		{cp + " last", base + c, edge},
	}
}

// sqlNameError asserts that a SQL call failed with ST422 on argument, for reason.
func sqlNameError(t *testing.T, err error, argument, reason string) {
	t.Helper()
	pgErr := requirePgError(t, err, "ST422")
	require.Equal(t, map[string]any{"argument": argument, "reason": reason}, detailOf(t, pgErr))
}

// goNameError asserts that a Go API call failed with an InvalidArgumentError on argument, for
// reason: found by the client before any round trip, or by the server.
func goNameError(t *testing.T, err error, byServer bool, argument, reason string) {
	t.Helper()
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	var inv *annals.InvalidArgumentError
	require.ErrorAs(t, err, &inv)
	require.Equal(t, argument, inv.Argument)
	require.Equal(t, reason, inv.Reason)
	if byServer {
		require.NotNil(t, inv.PgErr)
	} else {
		require.Nil(t, inv.PgErr, "the client refuses it before the round trip")
	}
}

// Every code point of the rule, alone, first, inside and last, as a stream id and as an event
// type: append_events from SQL and Append from Go refuse the same names (ST422, the same
// reason; Go without a round trip) and accept the same names.
func TestNameRuleAppend(t *testing.T) {
	t.Parallel()
	f := setup(t)

	for _, ch := range nameChars {
		t.Run(fmt.Sprintf("U+%04X", ch.r), func(t *testing.T) {
			t.Parallel()
			for _, tc := range namesAround(ch.r, ch.forbidden, "names-1") {
				// As a stream id: SQL, then Go.
				err := f.appendSQL(tc.name, nil, `[{"type": "T"}]`)
				_, goErr := f.store.Append(f.ctx, tc.name, annals.Any, annals.EventData{Type: "T"})
				if tc.reason == "" {
					require.NoError(t, err, "stream id %s", tc.label)
					require.NoError(t, goErr, "stream id %s", tc.label)
					require.EqualValues(t, 2, f.countRows(t, tc.name))
				} else {
					sqlNameError(t, err, "stream_id", tc.reason)
					goNameError(t, goErr, false, "stream_id", tc.reason)
				}

				// As an event type.
				s := stream("names")
				typ, jerr := json.Marshal(tc.name)
				require.NoError(t, jerr)
				err = f.appendSQL(s, nil, `[{"type": "T"}, {"type": `+string(typ)+`}]`)
				_, goErr = f.store.Append(f.ctx, s, annals.Any, annals.EventData{Type: "T"}, annals.EventData{Type: tc.name})
				if tc.reason == "" {
					require.NoError(t, err, "event type %s", tc.label)
					require.NoError(t, goErr, "event type %s", tc.label)
					require.EqualValues(t, 4, f.countRows(t, s))
				} else {
					sqlNameError(t, err, "events[1].type", tc.reason)
					goNameError(t, goErr, false, "events[1].type", tc.reason)
					require.Zero(t, f.countRows(t, s))
				}
			}
		})
	}

	// NUL cannot reach a SQL function (PostgreSQL text cannot hold it); the client names it.
	_, err := f.store.Append(f.ctx, "a\x00b", annals.Any, annals.EventData{Type: "T"})
	goNameError(t, err, false, "stream_id", "must not contain U+0000"+forbiddenReason)
	_, err = f.store.Append(f.ctx, stream("names"), annals.Any, annals.EventData{Type: "\x00"})
	goNameError(t, err, false, "events[0].type", "must not contain U+0000"+forbiddenReason)
	// Nor can invalid UTF-8.
	_, err = f.store.Append(f.ctx, "a\xffb", annals.Any, annals.EventData{Type: "T"})
	goNameError(t, err, false, "stream_id", "must be valid UTF-8")
}

// A stream id's category, the part before its first '-', must be a name read_category can read:
// not empty, no whitespace at its end.
func TestNameRuleStreamCategory(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const empty = "the category (the part before the first '-') must not be empty"
	trailing := func(cp string) string {
		return "the category (the part before the first '-') must not end with whitespace (found " + cp + ")"
	}
	for _, tc := range []struct{ id, reason string }{
		{"-", empty},
		{"-a", empty},
		{"--", empty},
		{"-a-b", empty},
		{"a -b", trailing("U+0020")},
		{"a\u00a0-b", trailing("U+00A0")},
		{"a\u3000-", trailing("U+3000")},
		{" -a", "must not start or end with whitespace (found U+0020)"},
		{"a\u200b-b", "must not contain U+200B" + forbiddenReason},
		{"a-", ""},
		{"a--b", ""},
		{"a- b", ""},
		{"a b-c", ""},
		{"a-b -c", ""}, // only the first '-' ends the category
		{"a\u00a0b-c", ""},
		{"no-dash-at-all-but-this", ""},
		{"nodash", ""},
	} {
		err := f.appendSQL(tc.id, nil, `[{"type": "T"}]`)
		_, goErr := f.store.Append(f.ctx, tc.id, annals.Any, annals.EventData{Type: "T"})
		if tc.reason != "" {
			sqlNameError(t, err, "stream_id", tc.reason)
			goNameError(t, goErr, false, "stream_id", tc.reason)
			continue
		}
		require.NoError(t, err, "%q", tc.id)
		require.NoError(t, goErr, "%q", tc.id)
		// Every stored stream is in a category read_category accepts.
		category, _, _ := strings.Cut(tc.id, "-")
		events, err := f.store.ReadCategory(f.ctx, category, annals.Checkpoint{}, annals.FeedOptions{MaxCount: 100})
		require.NoError(t, err, "read_category(%q)", category)
		_ = events // the feed barrier may hold them back for a moment: the call's acceptance is the point
	}

	// Reads take the same rule: the refused ids are refused everywhere, with the same words.
	for _, q := range []string{
		"SELECT count(*) FROM annals.read_stream($1)",
		"SELECT count(*) FROM annals.stream_info($1)",
		"SELECT annals.stream_version_at($1, now())",
		"SELECT annals.delete_stream($1)",
		"SELECT count(*) FROM annals.stream_stats($1)",
		"SELECT count(*) FROM annals.load_snapshot($1, 'S', 1)",
	} {
		_, err := f.pool.Exec(f.ctx, q, "-a")
		sqlNameError(t, err, "stream_id", empty)
		_, err = f.pool.Exec(f.ctx, q, "a\u00a0")
		sqlNameError(t, err, "stream_id", "must not start or end with whitespace (found U+00A0)")
	}
}

// read_category's and list_streams' category argument is a name without '-'.
func TestNameRuleCategoryArgument(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const dash = "must not contain '-': a category is the part of a stream id before its first '-'"
	for _, tc := range []struct{ category, reason string }{
		{"", "must not be empty"},
		{" a", "must not start or end with whitespace (found U+0020)"},
		{"a\u00a0", "must not start or end with whitespace (found U+00A0)"},
		{"\u3000", "must not start or end with whitespace (found U+3000)"},
		{"a\u200bb", "must not contain U+200B" + forbiddenReason},
		{"\ufeffa", "must not contain U+FEFF" + forbiddenReason},
		{"a\u2028", "must not contain U+2028" + forbiddenReason},
		{"-", dash},
		{"a-b", dash},
		{strings.Repeat("c", 513), "must be at most 512 bytes, is 513"},
		{"a b", ""},
		{"inventory", ""},
	} {
		_, err := f.pool.Exec(f.ctx, "SELECT count(*) FROM annals.read_category($1, '0', 0)", tc.category)
		_, listErr := f.pool.Exec(f.ctx, "SELECT count(*) FROM annals.list_streams($1)", tc.category)
		_, goErr := f.store.ReadCategory(f.ctx, tc.category, annals.Checkpoint{}, annals.FeedOptions{MaxCount: 10})
		if tc.reason == "" {
			require.NoError(t, err, "%q", tc.category)
			require.NoError(t, listErr, "%q", tc.category)
			require.NoError(t, goErr, "%q", tc.category)
			continue
		}
		sqlNameError(t, err, "category", tc.reason)
		sqlNameError(t, listErr, "category", tc.reason)
		goNameError(t, goErr, true, "category", tc.reason)
	}
	_, err := f.pool.Exec(f.ctx, "SELECT count(*) FROM annals.read_category(NULL, '0', 0)")
	sqlNameError(t, err, "category", "must not be null")
}

// Every other name takes the same rule through annals_internal.name_problem: subscription and
// projection names, aliases, upcasters' event types, snapshot types. Go's own checks too.
func TestNameRuleEverywhere(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("named")
	_, err := f.store.Append(f.ctx, s, annals.NoStream, annals.EventData{Type: "T"})
	require.NoError(t, err)

	calls := []struct {
		argument, sql string
		args          func(name string) []any
		maxBytes      int
	}{
		{"subscription", "SELECT annals.create_subscription($1)", func(n string) []any { return []any{n} }, 256},
		{"name", "SELECT annals.register_projection($1, 'pg_catalog.now()', ARRAY['pg_catalog.pg_class']::regclass[])",
			func(n string) []any { return []any{n} }, 128},
		{"alias", "SELECT annals.register_event_alias($1, 'T')", func(n string) []any { return []any{n} }, 256},
		{"event_type", "SELECT annals.register_event_alias('OldT', $1)", func(n string) []any { return []any{n} }, 256},
		{"event_type", "SELECT annals.register_upcaster($1, 1, 'pg_catalog.now()')", func(n string) []any { return []any{n} }, 256},
		{"snapshot_type", "SELECT annals.save_snapshot($1, $2, 1, 1, '{}')", func(n string) []any { return []any{s, n} }, 256},
	}
	for _, call := range calls {
		t.Run(call.sql, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []nameCase{
				{"empty", "", "must not be empty"},
				{"too long", strings.Repeat("n", call.maxBytes+1),
					fmt.Sprintf("must be at most %d bytes, is %d", call.maxBytes, call.maxBytes+1)},
				{"NBSP last", "name\u00a0", "must not start or end with whitespace (found U+00A0)"},
				{"ideographic space first", "\u3000name", "must not start or end with whitespace (found U+3000)"},
				{"ZWSP alone", "\u200b", "must not contain U+200B" + forbiddenReason},
				{"RLO inside", "na\u202eme", "must not contain U+202E" + forbiddenReason},
				{"BOM first", "\ufeffname", "must not contain U+FEFF" + forbiddenReason},
				{"U+FFFE last", "name\ufffe", "must not contain U+FFFE" + forbiddenReason},
				{"NEL inside", "na\u0085me", "must not contain U+0085" + forbiddenReason},
			} {
				_, err := f.pool.Exec(f.ctx, call.sql, call.args(tc.name)...)
				sqlNameError(t, err, call.argument, tc.reason)
			}
		})
	}

	t.Run("Go: SaveSnapshot", func(t *testing.T) {
		t.Parallel()
		_, err := f.store.SaveSnapshot(f.ctx, annals.Snapshot{StreamID: s, Type: "S\u200b", SchemaVersion: 1,
			StreamVersion: 1, State: json.RawMessage(`{}`)})
		goNameError(t, err, true, "snapshot_type", "must not contain U+200B"+forbiddenReason)
	})
	t.Run("Go: Register", func(t *testing.T) {
		t.Parallel()
		type E struct{}
		for name, msg := range map[string]string{
			"E\u00a0": "must not start or end with whitespace (found U+00A0)",
			"\u200bE": "must not contain U+200B" + forbiddenReason,
			"":        "must not be empty",
		} {
			require.PanicsWithValue(t, fmt.Sprintf("annals: Register(%q): the event type name %s", name, msg),
				func() { domain.Register[E](domain.NewRegistry(), name) })
		}
		require.NotPanics(t, func() { domain.Register[E](domain.NewRegistry(), "E with\u00a0inner space") })
	})
	t.Run("Go: Subscriber", func(t *testing.T) {
		t.Parallel()
		for name, reason := range map[string]string{
			" sub":      "must not start or end with whitespace (found U+0020)",
			"sub\u2028": "must not contain U+2028" + forbiddenReason,
		} {
			sub := &annals.Subscriber{Client: f.store, Name: name, Handler: noopHandler}
			ctx, cancel := context.WithCancel(f.ctx)
			cancel()
			goNameError(t, sub.Run(ctx), false, "subscription", reason)
		}
	})
}

func noopHandler(context.Context, pgx.Tx, annals.RecordedEvent) error { return nil }

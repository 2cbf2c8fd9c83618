package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

func TestCLIAppendThenRead(t *testing.T) {
	t.Parallel()
	db := newDB(t)

	first := appendEvent(t, db, "inventory-42", "no-stream", "ItemAdded", `{"sku":"42","name":"Blue widget","count":10}`)
	require.Equal(t, "inventory-42", first["stream_id"])
	require.EqualValues(t, 1, first["stream_version"])
	require.NotEmpty(t, first["event_id"])
	require.NotEmpty(t, first["transaction_id"])

	// The human form, through --database-url rather than DATABASE_URL.
	out := ok(t, "", "append", "inventory-42", "--expected", "1", "--type", "ItemAdjusted",
		"--data", `{"delta":-3,"reason":"sale"}`, "--metadata", `{"actor":"till-4"}`, "--database-url", db)
	require.Regexp(t, `^appended ItemAdjusted to inventory-42: version 2, global position \d+, transaction \d+, event id [0-9a-f-]{36}\n$`, out)

	// Data from stdin, a fixed id, and exists as the expectation.
	const id = "0190a6c4-3f4e-7b3a-9c1d-2e5f6a7b8c9d"
	r := annalsIn(t, db, `{"delta": 5, "reason": "restock"}`, "append", "inventory-42", "--expected", "exists",
		"--type", "ItemAdjusted", "--data", "-", "--id", id, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	// Sending the same event again (same id, same position) is a replay: nothing new is written.
	again := annalsIn(t, db, `{"delta": 5, "reason": "restock"}`, "append", "inventory-42", "--expected", "2",
		"--type", "ItemAdjusted", "--data", "-", "--id", id, "--json")
	require.Equal(t, 0, again.code, again.stderr)
	require.Equal(t, jsonLines(t, r.stdout)[0]["stream_version"], jsonLines(t, again.stdout)[0]["stream_version"])

	// Table.
	out = ok(t, db, "read", "inventory-42")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	require.Regexp(t, `^VERSION\s+TYPE\s+DATA\s+RECORDED_AT$`, lines[0])
	require.Regexp(t, `^1\s+ItemAdded\s+\{"sku": "42", "name": "Blue widget", "count": 10\}\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}`, lines[1])
	require.Regexp(t, `^2\s+ItemAdjusted\s+\{"delta": -3, "reason": "sale"\}\s+`, lines[2])
	require.Regexp(t, `^3\s+ItemAdjusted\s+\{"delta": 5, "reason": "restock"\}\s+`, lines[3])

	// Data is cut to --width.
	out = ok(t, db, "read", "inventory-42", "--width", "10", "--limit", "1")
	require.Contains(t, out, `{"sku": "…`)

	// JSON lines, every field.
	evs := jsonLines(t, ok(t, db, "read", "inventory-42", "--json"))
	require.Len(t, evs, 3)
	require.Equal(t, "ItemAdded", evs[0]["event_type"])
	require.Equal(t, map[string]any{"sku": "42", "name": "Blue widget", "count": float64(10)}, evs[0]["data"])
	require.Equal(t, map[string]any{"actor": "till-4"}, evs[1]["metadata"])
	require.Equal(t, id, evs[2]["event_id"])
	for _, k := range []string{"stream_id", "stream_version", "global_position", "transaction_id", "schema_version", "recorded_at"} {
		require.Contains(t, evs[0], k)
	}

	// Backwards, limit, from.
	evs = jsonLines(t, ok(t, db, "read", "inventory-42", "--backwards", "--limit", "1", "--json"))
	require.Len(t, evs, 1)
	require.EqualValues(t, 3, evs[0]["stream_version"])
	evs = jsonLines(t, ok(t, db, "read", "inventory-42", "--from", "2", "--json"))
	require.Len(t, evs, 2)
	require.EqualValues(t, 2, evs[0]["stream_version"])

	// A stream without events is not found: exit 3, as for streams show, in either form.
	for _, args := range [][]string{{"read", "inventory-missing"}, {"read", "inventory-missing", "--json"}, {"streams", "show", "inventory-missing"}} {
		r = annals(t, db, args...)
		require.Equal(t, 3, r.code, "%v: %s", args, r.stderr)
		require.Empty(t, r.stdout)
		requireOneLine(t, r.stderr)
		require.Contains(t, r.stderr, "inventory-missing")
		require.Contains(t, r.stderr, "annals streams list")
	}
	// A range without events of a stream that has some: a note, exit 0.
	r = annals(t, db, "read", "inventory-42", "--from", "9")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stdout)
	require.Equal(t, "stream \"inventory-42\" has no events in that range (it is at version 3)\n", r.stderr)

	// --from is read_stream's from_version: versions start at 1, so 0 is refused by both.
	r = annals(t, db, "read", "inventory-42", "--from", "0")
	require.Equal(t, 2, r.code)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "--from 0: versions start at 1")
	pool := poolFor(t, db)
	_, err := pool.Exec(t.Context(), "SELECT * FROM annals.read_stream('inventory-42', from_version => 0)")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "ST422", pgErr.Code)
	evs = jsonLines(t, ok(t, db, "read", "inventory-42", "--from", "1", "--json"))
	require.Len(t, evs, 3, "--from 1 is the first event, as leaving it out")
	evs = jsonLines(t, ok(t, db, "read", "inventory-42", "--from", "2", "--backwards", "--json"))
	require.Len(t, evs, 2)
	require.EqualValues(t, 2, evs[0]["stream_version"])
}

func TestCLIReadDeletedStream(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "cart-9", "no-stream", "ItemAdded", `{"sku":"42"}`)
	appendEvent(t, db, "cart-9", "1", "CheckedOut", `{}`)
	ok(t, db, "streams", "delete", "cart-9", "--expected", "2", "--reason", "abandoned")

	// Its events print as ever; stderr says it is deleted, once.
	r := annals(t, db, "read", "cart-9")
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), 3, r.stdout)
	require.Regexp(t, `^note: stream "cart-9" is deleted \(since \d{4}-\S+ \S+, at version 2\): its events stay readable, appends are refused\n$`, r.stderr)
	r = annals(t, db, "read", "cart-9", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, jsonLines(t, r.stdout), 2)
	require.Contains(t, r.stderr, `stream "cart-9" is deleted`)
	r = annals(t, db, "read", "cart-9", "--as-of-version", "1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "is deleted")
}

func TestCLIReadAsOf(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "acct-1", "no-stream", "Opened", `{}`)
	appendEvent(t, db, "acct-1", "1", "Deposited", `{"amount":10}`)
	time.Sleep(20 * time.Millisecond) // recorded_at of event 3 is strictly later
	appendEvent(t, db, "acct-1", "2", "Deposited", `{"amount":5}`)

	evs := jsonLines(t, ok(t, db, "read", "acct-1", "--as-of-version", "2", "--json"))
	require.Len(t, evs, 2)
	require.EqualValues(t, 2, evs[1]["stream_version"])

	out := ok(t, db, "read", "acct-1", "--as-of-version", "0")
	require.Empty(t, out)

	all := jsonLines(t, ok(t, db, "read", "acct-1", "--json"))
	at := all[1]["recorded_at"].(string)
	evs = jsonLines(t, ok(t, db, "read", "acct-1", "--as-of", at, "--json"))
	require.Len(t, evs, 2, "as of event 2's recorded_at %s", at)

	// The table form, a date long ago, and a duration ago.
	out = ok(t, db, "read", "acct-1", "--as-of", at)
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 3, out)
	r := annals(t, db, "read", "acct-1", "--as-of", "2000-01-01")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stdout)
	require.Contains(t, r.stderr, "has no events in that range")
	evs = jsonLines(t, ok(t, db, "read", "acct-1", "--as-of", "0s", "--json"))
	require.Len(t, evs, 3)

	// Usage errors.
	for _, args := range [][]string{
		{"read", "acct-1", "--as-of", "yesterday-ish"},
		{"read", "acct-1", "--as-of", at, "--as-of-version", "1"},
		{"read", "acct-1", "--as-of-version", "1", "--from", "2"},
		{"read", "acct-1", "--as-of-version", "-1"},
	} {
		r := annals(t, db, args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		requireOneLine(t, r.stderr)
	}
}

func TestCLIAppendErrors(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "order-1", "no-stream", "Placed", `{}`)
	appendEvent(t, db, "order-1", "1", "Paid", `{}`)

	// Wrong expected version: exit 4 (conflict), one line with the SQLSTATE, its meaning and what
	// to do.
	r := annals(t, db, "append", "order-1", "--expected", "1", "--type", "Shipped", "--data", "{}")
	require.Equal(t, 4, r.code)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "SQLSTATE ST409")
	require.Contains(t, r.stderr, "expected 1, actual 2")
	require.Contains(t, r.stderr, "retry with --expected 2")
	require.Empty(t, r.stdout)
	r = annals(t, db, "append", "order-2", "--expected", "exists", "--type", "Shipped", "--data", "{}")
	require.Equal(t, 4, r.code)
	require.Contains(t, r.stderr, "SQLSTATE ST409")

	// Reserved names and invalid arguments come back from the database with their SQLSTATE, and
	// exit 2 like any other wrong argument.
	r = annals(t, db, "append", "order-1", "--expected", "any", "--type", "$internal", "--data", "{}")
	require.Equal(t, 2, r.code)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "SQLSTATE ST403")
	r = annals(t, db, "read", " order-1")
	require.Equal(t, 2, r.code)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "SQLSTATE ST422")
	require.Contains(t, r.stderr, "must not start or end with whitespace (found U+0020)")
	// The client checks names itself before appending, with the database's rule and words.
	r = annals(t, db, "append", " order-1", "--expected", "any", "--type", "T", "--data", "{}")
	require.Equal(t, 2, r.code)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "invalid argument: stream_id: must not start or end with whitespace (found U+0020)")

	// A reused id with other content.
	const id = "0190a6c4-3f4e-7b3a-9c1d-2e5f6a7b8c9e"
	ok(t, db, "append", "order-3", "--expected", "any", "--type", "T", "--data", `{"a":1}`, "--id", id)
	r = annals(t, db, "append", "order-3", "--expected", "any", "--type", "T", "--data", `{"a":2}`, "--id", id)
	require.Equal(t, 4, r.code)
	require.Contains(t, r.stderr, "SQLSTATE ST412")

	// Bad JSON never reaches the database: exit 2 with a clear message.
	r = annals(t, db, "append", "order-1", "--expected", "2", "--type", "T", "--data", `{"delta":`)
	require.Equal(t, 2, r.code)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "--data is not valid JSON")
	r = annals(t, db, "append", "order-1", "--expected", "2", "--type", "T", "--data", `[1, 2]`)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--data must be a JSON object")
	r = annals(t, db, "append", "order-1", "--expected", "2", "--type", "T", "--data", `{}`, "--metadata", `nope`)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--metadata is not valid JSON")
	file := filepath.Join(t.TempDir(), "data.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"from":"file"}`), 0o600))
	ok(t, db, "append", "order-1", "--expected", "2", "--type", "T", "--data", "@"+file)

	// Other usage errors.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"append", "order-1", "--type", "T", "--data", "{}"}, "needs --expected"},
		{[]string{"append", "order-1", "--expected", "maybe", "--type", "T", "--data", "{}"}, `--expected "maybe"`},
		{[]string{"append", "order-1", "--expected", "any", "--data", "{}"}, "needs --type"},
		{[]string{"append", "order-1", "--expected", "any", "--type", "T"}, "needs --data"},
		{[]string{"append", "order-1", "--expected", "any", "--type", "T", "--data", "{}", "--id", "nope"}, "is not a UUID"},
		{[]string{"append", "--expected", "any", "--type", "T", "--data", "{}"}, "needs STREAM"},
	} {
		r := annals(t, db, tc.args...)
		require.Equal(t, 2, r.code, "%v: %s", tc.args, r.stderr)
		requireOneLine(t, r.stderr)
		require.Contains(t, r.stderr, tc.want, tc.args)
	}
	require.EqualValues(t, 3, jsonLines(t, ok(t, db, "read", "order-1", "--backwards", "--limit", "1", "--json"))[0]["stream_version"],
		"only the valid appends were written")
}

func TestCLIStreams(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "cart-1", "no-stream", "Created", `{}`)
	appendEvent(t, db, "cart-1", "1", "ItemAdded", `{"sku":"42","note":"`+strings.Repeat("x", 500)+`"}`)
	appendEvent(t, db, "cart-2", "no-stream", "Created", `{}`)
	appendEvent(t, db, "user-1", "no-stream", "Registered", `{}`)

	out := ok(t, db, "streams", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	require.Regexp(t, `^STREAM\s+VERSION\s+STATE\s+CREATED_AT\s+UPDATED_AT$`, lines[0])
	require.Regexp(t, `^cart-1\s+2\s+active\s+`, lines[1])
	require.Regexp(t, `^cart-2\s+1\s+active\s+`, lines[2])
	require.Regexp(t, `^user-1\s+1\s+active\s+`, lines[3])

	rows := jsonLines(t, ok(t, db, "streams", "list", "--category", "cart", "--json"))
	require.Len(t, rows, 2)
	require.Equal(t, "cart-1", rows[0]["stream_id"])
	require.EqualValues(t, 2, rows[0]["stream_version"])

	// Paging: --limit says where the next page starts.
	r := annals(t, db, "streams", "list", "--limit", "1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), 2, r.stdout)
	require.Contains(t, r.stderr, "next page: annals streams list --after cart-1")
	rows = jsonLines(t, ok(t, db, "streams", "list", "--after", "cart-1", "--json"))
	require.Len(t, rows, 2)
	require.Equal(t, "cart-2", rows[0]["stream_id"])

	r = annals(t, db, "streams", "list", "--category", "nothing")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stderr, `no streams in category "nothing"`)

	out = ok(t, db, "streams", "show", "cart-1")
	require.Regexp(t, `(?m)^stream\s+cart-1$`, out)
	require.Regexp(t, `(?m)^category\s+cart$`, out)
	require.Regexp(t, `(?m)^version\s+2$`, out)
	require.Regexp(t, `(?m)^state\s+active$`, out)
	require.Regexp(t, `(?m)^created\s+\d{4}-`, out)
	require.Regexp(t, `(?m)^updated\s+\d{4}-.* ago\)$`, out)
	require.Regexp(t, `(?m)^events\s+2$`, out)
	m := regexp.MustCompile(`(?m)^size\s+.* \((\d+) bytes\)$`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.Greater(t, len(m[1]), 2, "the 500-byte event makes the stream at least 100 bytes: %s", out)

	show := jsonLines(t, ok(t, db, "streams", "show", "user-1", "--json"))[0]
	require.EqualValues(t, 1, show["event_count"])
	require.Greater(t, show["size_bytes"].(float64), 0.0)

	r = annals(t, db, "streams", "show", "cart-9")
	require.Equal(t, 3, r.code, "not found")
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, `stream "cart-9" has no events (annals streams list shows the streams)`)
}

func TestCLIStreamsDelete(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "order-1", "no-stream", "Placed", `{}`)
	appendEvent(t, db, "order-1", "1", "Paid", `{}`)

	// The stream moved on: exit 4, with the version to retry with.
	r := annals(t, db, "streams", "delete", "order-1", "--expected", "1")
	require.Equal(t, 4, r.code, r.stderr)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "SQLSTATE ST409")
	require.Contains(t, r.stderr, "retry with --expected 2")
	// No events: not found, exit 3, as read and streams show say.
	r = annals(t, db, "streams", "delete", "order-9")
	require.Equal(t, 3, r.code, r.stderr)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, `stream "order-9" has no events: nothing to delete`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"streams", "delete", "order-1", "--expected", "no-stream"}, "a stream without events cannot be deleted"},
		{[]string{"streams", "delete", "order-1", "--expected", "maybe"}, `--expected "maybe"`},
		{[]string{"streams", "delete"}, "delete needs STREAM"},
		{[]string{"streams", "delete", "$all"}, "SQLSTATE ST403"},
	} {
		r := annals(t, db, tc.args...)
		require.Equal(t, 2, r.code, "%v: %s", tc.args, r.stderr)
		requireOneLine(t, r.stderr)
		require.Contains(t, r.stderr, tc.want, tc.args)
	}

	out := ok(t, db, "streams", "delete", "order-1", "--expected", "2", "--reason", "cancelled by the customer")
	require.Equal(t, "deleted order-1 at version 2; its events stay readable, appends are refused\n", out)
	require.Regexp(t, `(?m)^state\s+deleted$`, ok(t, db, "streams", "show", "order-1"))
	var reason string
	require.NoError(t, poolFor(t, db).QueryRow(t.Context(),
		"SELECT l.reason FROM annals_internal.lifecycle_log AS l WHERE l.stream_id = 'order-1' AND l.operation = 'delete'").Scan(&reason))
	require.Equal(t, "cancelled by the customer", reason)

	// Deleting again, or appending, is a conflict with its state: exit 4.
	r = annals(t, db, "streams", "delete", "order-1")
	require.Equal(t, 4, r.code, r.stderr)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, `stream "order-1" is already deleted`)
	r = annals(t, db, "append", "order-1", "--expected", "any", "--type", "Shipped", "--data", "{}")
	require.Equal(t, 4, r.code, r.stderr)
	require.Contains(t, r.stderr, "SQLSTATE ST410")

	// exists and any need a stream with events.
	appendEvent(t, db, "order-2", "no-stream", "Placed", `{}`)
	require.Contains(t, ok(t, db, "streams", "delete", "order-2", "--expected", "exists"), "deleted order-2 at version 1")
}

package cli_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCLISubscriptions(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := poolFor(t, db)
	appendEvent(t, db, "invoice-1", "no-stream", "Issued", `{}`)
	appendEvent(t, db, "invoice-1", "1", "Paid", `{}`)
	appendEvent(t, db, "invoice-2", "no-stream", "Issued", `{}`)
	execSQL(t, pool, `SELECT annals.create_subscription('billing', categories => ARRAY['invoice'])`)
	execSQL(t, pool, `SELECT annals.create_subscription('mailer', group_size => 2)`)
	execSQL(t, pool, `SELECT annals.park_event('billing', 0, 'invoice-1', 2, 5, 'boom: the mail server said no')`)

	out := ok(t, db, "subscriptions", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	require.Regexp(t, `^NAME\s+MEMBERS\s+EVENTS_BEHIND\s+TIME_BEHIND\s+DEAD_LETTERS\s+LEASES\s+FILTER$`, lines[0])
	require.Regexp(t, `^billing\s+1\s+3\s+\S+\s+1\s+0\s+categories invoice$`, lines[1])
	require.Regexp(t, `^mailer\s+2\s+3\s+\S+\s+0\s+0\s+all events$`, lines[2])

	out = ok(t, db, "subscriptions", "status", "mailer")
	require.Regexp(t, `(?m)^MEMBER\s+CHECKPOINT\s+EVENTS_BEHIND\s+TIME_BEHIND\s+LEASE\s+DEAD_LETTERS$`, out)
	require.Regexp(t, `(?m)^0/2\s+0:0\s+\d+\s+`, out)
	require.Regexp(t, `(?m)^1/2\s+0:0\s+\d+\s+`, out)
	members := jsonLines(t, ok(t, db, "subscriptions", "status", "mailer", "--json"))
	require.Len(t, members, 2)
	require.EqualValues(t, 3, members[0]["events_behind"].(float64)+members[1]["events_behind"].(float64))

	// Dead letters: list, replay (queued for the consumers), list again.
	out = ok(t, db, "subscriptions", "dead-letters", "billing")
	require.Regexp(t, `(?m)^ID\s+MEMBER\s+EVENT\s+TYPE\s+ATTEMPTS\s+STATUS\s+PARKED_AT\s+LAST_ERROR$`, out)
	m := regexp.MustCompile(`(?m)^(\d+)\s+0\s+invoice-1@2\s+Paid\s+5\s+parked\s+\S+ \S+\s+boom: the mail server said no$`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	id := m[1]

	out = ok(t, db, "subscriptions", "replay", "billing", "--id", "999999")
	require.Contains(t, out, "queued 0 dead letter(s) of billing")
	out = ok(t, db, "subscriptions", "replay", "billing", "--id", id)
	require.Contains(t, out, "queued 1 dead letter(s) of billing for retry")
	letters := jsonLines(t, ok(t, db, "subscriptions", "dead-letters", "billing", "--json"))
	require.Len(t, letters, 1)
	require.Equal(t, "retry", letters[0]["status"])
	require.Equal(t, "invoice-1", letters[0]["stream_id"])
	r := annals(t, db, "subscriptions", "dead-letters", "mailer")
	require.Equal(t, 0, r.code)
	require.Contains(t, r.stderr, "no dead letters for mailer")

	// Resets: now (nothing pending), a checkpoint for one member, the beginning again.
	// Now is the feed's barrier: past the events appended above, unless a transaction elsewhere in
	// the cluster holds the barrier below them.
	out = ok(t, db, "subscriptions", "reset", "mailer", "--to", "now")
	m = regexp.MustCompile(`^moved 2 member\(s\) of mailer to (\d+:0) \(now\)\n$`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	for _, mb := range jsonLines(t, ok(t, db, "subscriptions", "status", "mailer", "--json")) {
		require.Equal(t, m[1], mb["checkpoint"])
	}
	out = ok(t, db, "subscriptions", "reset", "mailer", "--to", "1:2", "--member", "1")
	require.Equal(t, "moved member 1 of mailer to 1:2\n", out)
	require.Regexp(t, `(?m)^1/2\s+1:2\s+`, ok(t, db, "subscriptions", "status", "mailer"))
	out = ok(t, db, "subscriptions", "reset", "mailer", "--to", "beginning")
	require.Contains(t, out, "moved 2 member(s) of mailer to 0:0 (beginning)")

	// Errors.
	for _, args := range [][]string{
		{"subscriptions", "reset", "mailer"},
		{"subscriptions", "reset", "mailer", "--to", "yesterday"},
		{"subscriptions", "reset", "mailer", "--to", "now", "--member", "-2"},
		{"subscriptions", "reset", "mailer", "--to", "beginning", "--member", "5"}, // ST422 from the database
		{"subscriptions", "replay", "billing", "--id", "x"},
		{"subscriptions", "status"},
	} {
		r := annals(t, db, args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		requireOneLine(t, r.stderr)
	}
	// An unknown subscription is not found (exit 3), whether the command or the database finds out.
	for _, args := range [][]string{
		{"subscriptions", "status", "nope"},
		{"subscriptions", "dead-letters", "nope"},
		{"subscriptions", "replay", "nope"},
		{"subscriptions", "reset", "nope", "--to", "beginning"},
		{"subscriptions", "drop", "nope"},
	} {
		r := annals(t, db, args...)
		require.Equal(t, 3, r.code, "%v: %s", args, r.stderr)
		requireOneLine(t, r.stderr)
		require.Contains(t, r.stderr, "nope")
	}
	require.Contains(t, annals(t, db, "subscriptions", "replay", "nope").stderr, "SQLSTATE ST404")
	require.Contains(t, annals(t, db, "subscriptions", "status", "nope").stderr, `subscription "nope" does not exist`)
}

func TestCLISubscriptionsCreateAndDrop(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "invoice-1", "no-stream", "Issued", `{}`)

	out := ok(t, db, "subscriptions", "create", "billing", "--categories", "invoice", "--types", "Issued,Paid", "--types", "Voided", "--group-size", "2")
	require.Equal(t, "created subscription billing from the beginning of history: categories invoice; types Issued,Paid,Voided, 2 members\n", out)
	// Now is the feed's barrier: past the invoice once no older transaction in the cluster holds it.
	waitForFeed(t, db, 1)
	out = ok(t, db, "subscriptions", "create", "mailer", "--from", "now")
	require.Equal(t, "created subscription mailer from now: all events, 1 member\n", out)
	subs := jsonLines(t, ok(t, db, "subscriptions", "list", "--json"))
	require.Len(t, subs, 2)
	require.Equal(t, "billing", subs[0]["name"])
	require.EqualValues(t, 2, subs[0]["group_size"])
	require.Equal(t, []any{"Issued", "Paid", "Voided"}, subs[0]["event_types"])
	require.Equal(t, []any{"invoice"}, subs[0]["categories"])
	require.EqualValues(t, 1, subs[0]["events_behind"], "from the beginning: the stored invoice is pending")
	require.EqualValues(t, 0, subs[1]["events_behind"], "from now: nothing pending")

	// Creating it again with the same settings is a no-op; with others, refused (drop it first).
	out = ok(t, db, "subscriptions", "create", "mailer", "--from", "now")
	require.Equal(t, "subscription mailer already exists with these settings; nothing changed\n", out)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"subscriptions", "create", "mailer", "--group-size", "3"}, "drop it first"},
		{[]string{"subscriptions", "create", "$mine"}, "SQLSTATE ST403"},
		{[]string{"subscriptions", "create", "x", "--from", "yesterday"}, `--from "yesterday": want beginning or now`},
		{[]string{"subscriptions", "create", "x", "--group-size", "0"}, "--group-size must be >= 1"},
		{[]string{"subscriptions", "create", "x", "--types", "A,,B"}, "--types has an empty name"},
		{[]string{"subscriptions", "create"}, "create needs NAME"},
	} {
		r := annals(t, db, tc.args...)
		require.Equal(t, 2, r.code, "%v: %s", tc.args, r.stderr)
		requireOneLine(t, r.stderr)
		require.Contains(t, r.stderr, tc.want, tc.args)
	}

	// Drop: gone with its checkpoints; a second drop, or a projection's own checkpoint, is refused.
	out = ok(t, db, "subscriptions", "drop", "billing")
	require.Equal(t, "dropped subscription billing with its checkpoints and dead letters\n", out)
	r := annals(t, db, "subscriptions", "status", "billing")
	require.Equal(t, 3, r.code, r.stderr)
	r = annals(t, db, "subscriptions", "drop", "billing")
	require.Equal(t, 3, r.code, r.stderr)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "subscription 'billing' does not exist (SQLSTATE ST404: check the name: annals subscriptions list)")
	r = annals(t, db, "subscriptions", "drop", "$projection:billing")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "SQLSTATE ST403")
	require.Len(t, jsonLines(t, ok(t, db, "subscriptions", "list", "--json")), 1)
}

package cli_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCLIRetention(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	for i := 0; i < 5; i++ {
		appendEvent(t, db, "sensor-1", "any", "Reading", `{"c": 20}`)
	}
	r := annals(t, db, "doctor")
	require.Regexp(t, `(?m)^OK\s+retention\s+no rules$`, r.stdout)

	require.Equal(t, "no retention rules (annals retention set adds one)\n", ok(t, db, "retention", "list"))
	require.Equal(t, "retention of category sensor: max age 30d, max count 2, truncate before -; annals retention apply removes what it says\n",
		ok(t, db, "retention", "set", "--category", "sensor", "--max-age", "30d", "--max-count", "2"))
	out := ok(t, db, "retention", "list")
	require.Regexp(t, `^TARGET\s+MAX_AGE\s+MAX_COUNT\s+TRUNCATE_BEFORE\s+UPDATED_AT\ncategory sensor\s+30d\s+2\s+-\s+\d{4}-`, out)
	r = annals(t, db, "doctor")
	require.Regexp(t, `(?m)^WARN\s+retention\s+1 rule\(s\), never applied`, r.stdout)

	require.Equal(t, "removed 3 event(s) in 2 step(s)\n", ok(t, db, "retention", "apply", "--max-events", "2", "--all"))
	require.Equal(t, "removed 0 event(s) in 1 step(s)\n", ok(t, db, "retention", "apply"))
	r = annals(t, db, "doctor")
	require.Regexp(t, `(?m)^OK\s+retention\s+1 rule\(s\); last applied \S+ ago, removed 0 event\(s\)$`, r.stdout)
	require.Len(t, jsonLines(t, ok(t, db, "read", "sensor-1", "--json")), 2)

	require.Equal(t, "removed the retention rule of category sensor\n", ok(t, db, "retention", "set", "--category", "sensor", "--remove"))
	r = annals(t, db, "retention", "set", "--category", "sensor", "--remove")
	require.Equal(t, 3, r.code, r.stderr)
	for _, args := range [][]string{
		{"retention", "set", "--max-count", "1"},
		{"retention", "set", "--stream", "a-1", "--category", "a", "--max-count", "1"},
		{"retention", "set", "--category", "a"},
		{"retention", "set", "--category", "a", "--max-age", "soon"},
		{"retention", "set", "--category", "a", "--max-count", "1", "--remove"},
		{"retention", "apply", "--max-events", "0"},
	} {
		r := annals(t, db, args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
	}
	r = annals(t, db, "retention", "set", "--category", "a-b", "--max-count", "1")
	require.Equal(t, 2, r.code, "ST422 is a usage error: %s", r.stderr)
	require.Contains(t, r.stderr, "category")
}

func TestCLIPurgeAndForget(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "cart-9", "no-stream", "ItemAdded", `{"sku":"42"}`)
	appendEvent(t, db, "cart-9", "1", "CheckedOut", `{}`)

	r := annals(t, db, "streams", "purge", "cart-9", "--expected", "1")
	require.Equal(t, 4, r.code, r.stderr)
	require.Equal(t, "purged cart-9: 2 event(s) removed; the stream stays as a tombstone and refuses appends\n",
		ok(t, db, "streams", "purge", "cart-9", "--expected", "2", "--reason", "test"))
	r = annals(t, db, "read", "cart-9")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, `note: stream "cart-9" was purged`)
	r = annals(t, db, "append", "cart-9", "--expected", "any", "--type", "ItemAdded", "--data", `{}`)
	require.Equal(t, 4, r.code, r.stderr)
	require.Contains(t, r.stderr, "purged")
	r = annals(t, db, "streams", "purge", "cart-9")
	require.Equal(t, 4, r.code, r.stderr)
	require.Contains(t, r.stderr, "already purged")
	r = annals(t, db, "streams", "purge", "cart-10")
	require.Equal(t, 3, r.code, r.stderr)

	pool := poolFor(t, db)
	_, err := pool.Exec(t.Context(), "SELECT annals.register_personal_data('MemberJoined', '{$.email}', '$.member_id')")
	require.NoError(t, err)
	appendEvent(t, db, "member-1", "no-stream", "MemberJoined", `{"member_id": "m-1", "email": "ann@example.com"}`)
	require.Contains(t, ok(t, db, "read", "member-1", "--json"), "ann@example.com")
	require.Equal(t, "forgot m-1: 1 key(s) destroyed; its personal data now reads as null\n", ok(t, db, "subjects", "forget", "m-1"))
	out := ok(t, db, "read", "member-1", "--json")
	require.NotContains(t, out, "ann@example.com")
	require.True(t, strings.Contains(out, `"$erased"`), out)
	require.Equal(t, "forgot nobody: no personal data of it was stored (erasure handlers were called)\n", ok(t, db, "subjects", "forget", "nobody"))
	r = annals(t, db, "subjects", "forget", "")
	require.Equal(t, 2, r.code, r.stderr)
}

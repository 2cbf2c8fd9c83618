package cli_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/internal/pgbouncertest"
	"github.com/stretchr/testify/require"
)

// withParam adds a query parameter to a postgres:// URL.
func withParam(url, kv string) string {
	if strings.Contains(url, "?") {
		return url + "&" + kv
	}
	return url + "?" + kv
}

// The everyday commands through PgBouncer in transaction mode, with a query mode that suits it:
// migrate, append, read, doctor, and tail, which finds out that no notification can arrive,
// says so once and polls, or listens on a direct connection with --listen-url.
func TestCLIThroughPgBouncer(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	bouncer := pgbouncertest.Start(t, db, pgbouncertest.Options{PoolSize: 4})
	pooled := withParam(bouncer.URL(t, db), "default_query_exec_mode=cache_describe")

	out := ok(t, pooled, "migrate")
	require.Contains(t, out, "up to date", "migrate through the pooler finds the template's install")
	appendEvent(t, pooled, "pooled-1", "no-stream", "Opened", `{"n":1}`)
	appendEvent(t, pooled, "pooled-1", "1", "Changed", `{"n":2}`)
	out = ok(t, pooled, "read", "pooled-1", "--json")
	evs := jsonLines(t, out)
	require.Len(t, evs, 2, out)
	require.Equal(t, "Changed", evs[1]["event_type"])

	r := annals(t, pooled, "doctor")
	require.NotContains(t, r.stdout, "FAIL ", "doctor through the pooler:\n%s\n%s", r.stdout, r.stderr)
	require.Equal(t, 0, r.code, "doctor through the pooler:\n%s\n%s", r.stdout, r.stderr)

	tail := start(t, pooled, "tail", "--from-start", "--json")
	tail.waitFor(t, tail.stderr, regexp.MustCompile(`notifications cannot reach the listening connection`), 30*time.Second)
	tail.waitFor(t, tail.stdout, regexp.MustCompile(`"stream_id":"pooled-1","stream_version":2`), feedTimeout)
	appendEvent(t, pooled, "pooled-2", "no-stream", "Opened", `{}`)
	tail.waitFor(t, tail.stdout, regexp.MustCompile(`"stream_id":"pooled-2"`), feedTimeout)
	require.Equal(t, 0, tail.stop(t, os.Interrupt, 10*time.Second), tail.stderr.String())
	require.Equal(t, 1, strings.Count(tail.stderr.String(), "notifications cannot reach"), tail.stderr.String())
	require.Contains(t, tail.stderr.String(), "--listen-url")

	direct := start(t, pooled, "tail", "--listen-url", db, "--json")
	direct.waitFor(t, direct.stderr, regexp.MustCompile(`following the feed from now`), 30*time.Second)
	appendEvent(t, pooled, "pooled-3", "no-stream", "Opened", `{}`)
	direct.waitFor(t, direct.stdout, regexp.MustCompile(`"stream_id":"pooled-3"`), feedTimeout)
	require.Equal(t, 0, direct.stop(t, os.Interrupt, 10*time.Second), direct.stderr.String())
	require.NotContains(t, direct.stderr.String(), "cannot reach", "--listen-url listens directly")

	r = annals(t, pooled, "tail", "--no-listen", "--listen-url", db)
	require.Equal(t, 2, r.code, r.stderr)
}

// pgx's default mode caches named prepared statements per connection; PgBouncer 1.18 in
// transaction mode shares server connections between clients, so a second client preparing the
// same statement on the same server connection fails. The error names the pooler and the
// remedy, not migrations.
func TestCLICachedStatementsThroughPgBouncerHint(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	// One server connection: every client lands on it.
	bouncer := pgbouncertest.Start(t, annalstest.AdminURL(t), pgbouncertest.Options{PoolSize: 1})
	pooled := bouncer.URL(t, db)
	appendEvent(t, db, "cached-1", "no-stream", "Opened", `{}`)

	var failed *result
	for range 3 {
		r := annals(t, pooled, "read", "cached-1")
		if r.code != 0 {
			failed = &r
			break
		}
	}
	require.NotNil(t, failed, "the default mode through a transaction pooler should have collided")
	requireOneLine(t, failed.stderr)
	require.Regexp(t, `SQLSTATE (42P05|26000) prepared statement`, failed.stderr)
	require.Contains(t, failed.stderr, "default_query_exec_mode=cache_describe")
	require.NotContains(t, failed.stderr, "annals migrate")
}

package cli_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// feedTimeout bounds how long an event may take to reach the gap-free feed: it is readable once
// every older transaction in the cluster has ended, and tests of other packages run beside these.
const feedTimeout = 60 * time.Second

func TestCLITail(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "old-1", "no-stream", "Before", `{}`)

	tail := start(t, db, "tail", "--poll-interval", "100ms")
	tail.waitFor(t, tail.stderr, regexp.MustCompile(`following the feed from now`), 30*time.Second)

	appendEvent(t, db, "tail-1", "no-stream", "Happened", `{"n":1}`)
	tail.waitFor(t, tail.stdout, regexp.MustCompile(`(?m)^\S+ \S+\s+\d+\s+tail-1@1\s+Happened\s+\{"n": 1\}$`), feedTimeout)
	appendEvent(t, db, "tail-1", "1", "Happened", `{"n":2}`)
	tail.waitFor(t, tail.stdout, regexp.MustCompile(`tail-1@2\s+Happened`), feedTimeout)

	require.Equal(t, 0, tail.stop(t, os.Interrupt, 10*time.Second), "tail exits 0 on Ctrl-C; stderr:\n%s", tail.stderr.String())
	require.NotContains(t, tail.stdout.String(), "old-1", "tail starts at now")
}

func TestCLITailFromStartWithFilters(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "shop-1", "no-stream", "Opened", `{}`)
	appendEvent(t, db, "shop-1", "1", "Sold", `{"sku":"a"}`)
	appendEvent(t, db, "user-1", "no-stream", "Sold", `{}`)
	appendEvent(t, db, "shop-2", "no-stream", "Sold", `{"sku":"b"}`)

	tail := start(t, db, "tail", "--from-start", "--category", "shop", "--type", "Sold", "--json", "--poll-interval", "100ms")
	tail.waitFor(t, tail.stdout, regexp.MustCompile(`"stream_id":"shop-2"`), feedTimeout)
	require.Equal(t, 0, tail.stop(t, os.Interrupt, 10*time.Second), tail.stderr.String())

	evs := jsonLines(t, tail.stdout.String())
	require.Len(t, evs, 2, tail.stdout.String())
	require.Equal(t, "shop-1", evs[0]["stream_id"])
	require.EqualValues(t, 2, evs[0]["stream_version"])
	require.Equal(t, "shop-2", evs[1]["stream_id"])
	for _, ev := range evs {
		require.Equal(t, "Sold", ev["event_type"])
	}
	require.Contains(t, tail.stderr.String(), "categories shop; types Sold")
	require.False(t, strings.Contains(tail.stdout.String(), "user-1"))
}

// waitForFeed waits until the gap-free feed has at least n events readable: until every
// transaction older than theirs, anywhere in the cluster, has ended.
func waitForFeed(t *testing.T, db string, n int) {
	t.Helper()
	pool := poolFor(t, db)
	require.Eventually(t, func() bool {
		var got int
		err := pool.QueryRow(t.Context(), "SELECT count(*) FROM annals.read_all('0', 0, 10000)").Scan(&got)
		return err == nil && got >= n
	}, feedTimeout, 50*time.Millisecond, "the feed did not reach %d events", n)
}

func TestCLITailUntilEnd(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "shop-1", "no-stream", "Opened", `{}`)
	appendEvent(t, db, "shop-1", "1", "Sold", `{"sku":"a"}`)
	appendEvent(t, db, "user-1", "no-stream", "Sold", `{}`)
	appendEvent(t, db, "shop-2", "no-stream", "Sold", `{"sku":"b"}`)
	waitForFeed(t, db, 4)

	// A transaction still open holds the feed's head below its events: the dump does not wait
	// for it, and leaves its events out.
	pool := poolFor(t, db)
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	defer tx.Rollback(t.Context()) //nolint:errcheck
	_, err = tx.Exec(t.Context(), `SELECT * FROM annals.append_events('shop-3', 0, '[{"type": "Sold"}]')`)
	require.NoError(t, err)

	// Page by page (--batch 1), the whole history, then exit 0.
	r := annals(t, db, "tail", "--until-end", "--batch", "1", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	evs := jsonLines(t, r.stdout)
	require.Len(t, evs, 4, r.stdout)
	require.Equal(t, []any{"shop-1", "shop-1", "user-1", "shop-2"}, []any{evs[0]["stream_id"], evs[1]["stream_id"], evs[2]["stream_id"], evs[3]["stream_id"]})
	require.Regexp(t, `^printed 4 event\(s\): the feed up to its head when the dump began \(global position \d+\)\n$`, r.stderr)

	// With filters and the table form.
	r = annals(t, db, "tail", "--until-end", "--category", "shop", "--type", "Sold")
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2, r.stdout)
	require.Regexp(t, `shop-1@2\s+Sold`, lines[0])
	require.Regexp(t, `shop-2@1\s+Sold`, lines[1])
	require.Contains(t, r.stderr, "printed 2 event(s)")
	require.NoError(t, tx.Rollback(t.Context()))

	// An empty store dumps nothing, successfully.
	r = annals(t, newDB(t), "tail", "--until-end")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stdout)
	require.Contains(t, r.stderr, "printed 0 event(s)")
}

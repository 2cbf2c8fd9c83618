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

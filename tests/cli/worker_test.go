package cli_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// metric is the value of the sample whose name and labels match pattern; false when absent.
func metric(body, pattern string) (float64, bool) {
	m := regexp.MustCompile(`(?m)^` + pattern + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

func TestCLIWorker(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := installInventory(t, db)
	installAsyncCounter(t, pool, "")
	execSQL(t, pool, `SELECT annals.create_subscription('billing')`)

	w := start(t, db, "worker", "--metrics-addr", "127.0.0.1:0", "--metrics-every", "100ms",
		"--poll-interval", "100ms", "--refresh-every", "200ms", "--subscription", "billing")
	url := w.waitFor(t, w.stderr, regexp.MustCompile(`metrics=(http://127\.0\.0\.1:\d+/metrics)`), 30*time.Second)[1]

	// The projection lag metric is there; the worker applies the async projection until it is 0.
	var body string
	deadline := time.Now().Add(feedTimeout)
	for {
		body = scrape(t, url)
		behind, found := metric(body, `annals_projection_events_behind\{mode="async",projection="event_counts"\}`)
		projected, _ := metric(body, `annals_worker_projected_events_total`)
		if found && behind == 0 && projected >= 3 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the worker did not catch up within %v; last scrape:\n%s\nworker log:\n%s",
			feedTimeout, body, w.stderr.String())
		time.Sleep(100 * time.Millisecond)
	}
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT sum(n) FROM public.event_counts`).Scan(&n))
	require.Equal(t, 3, n)

	for _, pattern := range []string{
		`annals_projection_events_behind\{mode="inline",projection="inventory_item_counts"\}`,
		`annals_projection_state\{projection="event_counts",state="active"\}`,
		`annals_projection_seconds_behind\{projection="event_counts"\}`,
		`annals_feed_head_position`,
		`annals_append_rate_events_per_second`,
		`annals_feed_barrier_age_seconds`,
		`annals_subscription_events_behind\{member="0",subscription="billing"\}`,
		`annals_subscription_seconds_behind\{member="0",subscription="billing"\}`,
		`annals_view_age_seconds\{view="inventory.movements_per_day"\}`,
		`annals_worker_errors_total\{task="projections"\}`,
	} {
		_, found := metric(body, pattern)
		require.True(t, found, "no %s in:\n%s", pattern, body)
	}
	v, _ := metric(body, `annals_projection_state\{projection="event_counts",state="active"\}`)
	require.Equal(t, 1.0, v)
	v, _ = metric(body, `annals_subscription_events_behind\{member="0",subscription="billing"\}`)
	require.Equal(t, 3.0, v, "the worker reports subscriptions but does not consume them")
	// The head counts only events below the cluster-wide barrier, which a parallel test's open
	// transaction can hold back at any given sample: wait for a sample that sees the events.
	deadline = time.Now().Add(feedTimeout)
	for {
		if v, _ = metric(body, `annals_feed_head_position`); v > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "annals_feed_head_position stayed 0; last scrape:\n%s", body)
		time.Sleep(100 * time.Millisecond)
		body = scrape(t, url)
	}

	// New events: the lag shows, then the worker applies them.
	appendEvent(t, db, "inventory-42", "2", "ItemAdjusted", `{"delta":1,"reason":"found one"}`)
	deadline = time.Now().Add(feedTimeout)
	for {
		body = scrape(t, url)
		if projected, _ := metric(body, `annals_worker_projected_events_total`); projected >= 4 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the new event was not projected; worker log:\n%s", w.stderr.String())
		time.Sleep(100 * time.Millisecond)
	}

	// SIGTERM: a graceful stop, exit 0, within a few seconds.
	started := time.Now()
	require.Equal(t, 0, w.stop(t, syscall.SIGTERM, 10*time.Second), w.stderr.String())
	require.Less(t, time.Since(started), 5*time.Second)
	require.Contains(t, w.stderr.String(), "annals worker stopped")
	_, err := http.Get(url)
	require.Error(t, err, "the metrics server is closed")
}

func TestCLIWorkerErrors(t *testing.T) {
	t.Parallel()
	db := newDB(t)

	r := annals(t, db, "worker", "--metrics-addr", "", "--subscription", "nope")
	require.Equal(t, 3, r.code, "not found")
	require.Contains(t, r.stderr, `subscription "nope" does not exist`)

	r = annals(t, db, "worker", "--metrics-addr", "256.0.0.1:1")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "metrics address 256.0.0.1:1")

	r = annals(t, db, "worker", "--batch", "0")
	require.Equal(t, 2, r.code)
	r = annals(t, db, "worker", "--retention-batch", "0")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--retention-batch must be positive")
}

// TestCLIWorkerMaintenance: with --retention-every and --compress-older-than the worker applies
// the retention rules and moves old events to cold storage on its own, and logs what it did.
func TestCLIWorkerMaintenance(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := poolFor(t, db)
	execSQL(t, pool, `SELECT annals.set_retention(category => 'sensor', max_count => 2)`)
	execSQL(t, pool, `SELECT annals.append_events('sensor-1', 0, '[{"type":"Reading"},{"type":"Reading"},{"type":"Reading"},{"type":"Reading"}]')`)
	execSQL(t, pool, `SELECT annals.append_events('log-1', 0, '[{"type":"Line"}]')`)

	// Retention first: once compressed, the four readings would share one cold segment, which
	// retention removes only whole (README, "Retention and erasure").
	w := start(t, db, "worker", "--metrics-addr", "", "--refresh-every", "0", "--retention-every", "100ms")
	w.waitFor(t, w.stderr, regexp.MustCompile(`retention removed events.* events=2`), feedTimeout)
	require.Equal(t, 0, w.stop(t, syscall.SIGTERM, 10*time.Second), w.stderr.String())

	w = start(t, db, "worker", "--metrics-addr", "", "--refresh-every", "0",
		"--retention-every", "100ms", "--compress-older-than", "0d", "--compress-every", "100ms")
	// Compression waits for the cluster-wide barrier to pass the events (other tests' transactions
	// hold it); the worker tries again every 100ms until they move.
	w.waitFor(t, w.stderr, regexp.MustCompile(`events moved to cold storage.* events=\d+`), feedTimeout)
	require.Equal(t, 0, w.stop(t, syscall.SIGTERM, 10*time.Second), w.stderr.String())
	require.NotContains(t, w.stderr.String(), "retention failed")

	var left, cold int
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT count(*) FROM annals.read_stream('sensor-1')`).Scan(&left))
	require.Equal(t, 2, left, "retention kept the newest two readings")
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT events FROM annals.storage_stats() WHERE tier = 'cold'`).Scan(&cold))
	require.Positive(t, cold)
}

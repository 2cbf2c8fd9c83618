package cli_test

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// installSeen registers, on one shard, the async projection "seen" recording every event it is
// given: a duplicate delivery shows as a second row of the same (stream, version).
func installSeen(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	execSQL(t, pool, `CREATE TABLE public.seen (stream_id text NOT NULL, stream_version bigint NOT NULL)`)
	execSQL(t, pool, `GRANT SELECT, INSERT, UPDATE, DELETE ON public.seen TO annals_owner`)
	execSQL(t, pool, `CREATE FUNCTION public.record_seen(events annals.event[]) RETURNS void LANGUAGE sql
		BEGIN ATOMIC INSERT INTO public.seen SELECT e.stream_id, e.stream_version FROM unnest(events) AS e; END`)
	execSQL(t, pool, `GRANT EXECUTE ON FUNCTION public.record_seen(annals.event[]) TO annals_owner`)
	execSQL(t, pool, `SELECT annals.register_projection('seen', 'public.record_seen(annals.event[])',
		ARRAY['public.seen']::regclass[], mode => 'async')`)
}

// seenCounts returns the rows and distinct (stream, version) pairs of a shard's projection table.
func seenCounts(t *testing.T, pool *pgxpool.Pool) (rows, distinct int) {
	t.Helper()
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT count(*), count(DISTINCT (stream_id, stream_version)) FROM public.seen`).Scan(&rows, &distinct))
	return rows, distinct
}

// annals worker pointed at a proxy runs every shard's async projections: one run applies each
// event appended through the proxy exactly once, on the shard storing it; a shard that becomes
// unreachable is logged once by name while the others keep being served, and is picked up again
// when it is back.
func TestCLIShardedWorker(t *testing.T) {
	t.Parallel()
	shardURLs := []string{annalstest.NewDBURL(t), annalstest.NewDBURL(t), annalstest.NewDBURL(t)}
	proxyURL := emptyDB(t)
	ok(t, "", "shard", "init", "--proxy", proxyURL, "--shard", shardURLs[0], "--shard", shardURLs[1], "--shard", shardURLs[2],
		"--name", "north", "--name", "south", "--name", "west", "--partitions", "8")
	shards := make([]*pgxpool.Pool, 3)
	for i, u := range shardURLs {
		shards[i] = poolFor(t, u)
		installSeen(t, shards[i])
	}
	proxy := poolFor(t, proxyURL)

	// Streams on every shard, found by asking the proxy where each lives.
	onShard := map[int][]string{}
	for i := 0; len(onShard[1]) < 4 || len(onShard[2]) < 4 || len(onShard[3]) < 4; i++ {
		require.Less(t, i, 1000, "no streams found on every shard")
		id := fmt.Sprintf("order-%d", i)
		var sh int
		require.NoError(t, proxy.QueryRow(t.Context(), `SELECT annals.shard_of($1)`, id).Scan(&sh))
		onShard[sh] = append(onShard[sh], id)
	}
	appendTo := func(id string, events int) {
		t.Helper()
		var batch []string
		for range events {
			batch = append(batch, `{"type": "Placed", "data": {}}`)
		}
		_, err := proxy.Exec(t.Context(), `SELECT * FROM annals.append_events($1, NULL, $2)`, id, "["+strings.Join(batch, ",")+"]")
		require.NoError(t, err)
	}
	want := map[int]int{}
	for sh, ids := range onShard {
		for j, id := range ids {
			appendTo(id, j+1)
			want[sh] += j + 1
		}
	}
	total := want[1] + want[2] + want[3]

	w := start(t, proxyURL, "worker", "--metrics-addr", "127.0.0.1:0", "--poll-interval", "100ms", "--refresh-every", "200ms")
	metricsURL := w.waitFor(t, w.stderr, regexp.MustCompile(`metrics=(http://127\.0\.0\.1:\d+/metrics)`), 30*time.Second)[1]
	w.waitFor(t, w.stderr, regexp.MustCompile(`shards="1 \(north\), 2 \(south\), 3 \(west\)"`), 30*time.Second)
	waitSeen := func(sh, n int) {
		t.Helper()
		deadline := time.Now().Add(feedTimeout)
		for {
			rows, distinct := seenCounts(t, shards[sh-1])
			require.Equal(t, rows, distinct, "shard %d: an event was applied twice", sh)
			require.LessOrEqual(t, rows, n, "shard %d: more events applied than appended", sh)
			if rows == n {
				return
			}
			require.True(t, time.Now().Before(deadline), "shard %d: %d of %d events applied; worker log:\n%s", sh, rows, n, w.stderr.String())
			time.Sleep(100 * time.Millisecond)
		}
	}
	sum := 0
	for sh := 1; sh <= 3; sh++ {
		waitSeen(sh, want[sh])
		sum += want[sh]
	}
	require.Equal(t, total, sum)
	body := scrape(t, metricsURL)
	for sh, name := range map[int]string{1: "north", 2: "south", 3: "west"} {
		v, found := metric(body, fmt.Sprintf(`annals_worker_shard_projected_events_total\{name="%s",shard="%d"\}`, name, sh))
		require.True(t, found, body)
		require.Equal(t, float64(want[sh]), v, body)
	}

	// Shard 2 becomes unreachable: no new connections, the proxy's cached one cut.
	u, err := url.Parse(shardURLs[1])
	require.NoError(t, err)
	dbName := strings.TrimPrefix(u.Path, "/")
	admin := poolFor(t, annalstest.AdminURL(t))
	execSQL(t, admin, `ALTER DATABASE `+dbName+` ALLOW_CONNECTIONS false`)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `ALTER DATABASE `+dbName+` ALLOW_CONNECTIONS true`) })
	shards[1].Close()
	execSQL(t, admin, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, dbName)

	w.waitFor(t, w.stderr, regexp.MustCompile(`shard failed; serving the other shards and retrying it.*shard=2 name=south`), feedTimeout)
	for _, sh := range []int{1, 3} {
		appendTo(onShard[sh][0], 2)
		want[sh] += 2
		waitSeen(sh, want[sh])
	}
	// Retries go on, quietly: the shard was logged once.
	time.Sleep(time.Second)
	require.Equal(t, 1, strings.Count(w.stderr.String(), "shard failed;"), w.stderr.String())
	body = scrape(t, metricsURL)
	v, found := metric(body, `annals_worker_shard_up\{name="south",shard="2"\}`)
	require.True(t, found && v == 0, body)
	v, found = metric(body, `annals_worker_shard_up\{name="north",shard="1"\}`)
	require.True(t, found && v == 1, body)

	execSQL(t, admin, `ALTER DATABASE `+dbName+` ALLOW_CONNECTIONS true`)
	shards[1] = poolFor(t, shardURLs[1])
	proxy.Reset() // its sessions hold PL/Proxy connections to shard 2 that were cut
	appendTo(onShard[2][0], 3)
	want[2] += 3
	w.waitFor(t, w.stderr, regexp.MustCompile(`shard is back.*shard=2 name=south`), feedTimeout)
	waitSeen(2, want[2])

	require.Equal(t, 0, w.stop(t, syscall.SIGTERM, 30*time.Second), w.stderr.String())
}

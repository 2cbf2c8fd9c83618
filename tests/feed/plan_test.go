package feed_test

import (
	"regexp"
	"strings"
	"sync"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

var (
	// A Sort node (plain or incremental); "Sort Key:" lines under a Merge Append do not count.
	sortNode = regexp.MustCompile(`(?m)(^|->\s+)(Incremental )?Sort\s+\(`)
	// A sequential scan of any events partition.
	seqScanEvents = regexp.MustCompile(`Seq Scan on events`)
	// An ordered scan of a partition's feed or category-feed index.
	feedIndexScan = regexp.MustCompile(`Index (Only )?Scan( Backward)? using events_p\d+_(category_)?transaction_id_global_position_idx`)
)

// The feed statements inside annals.read_all, annals.read_category (consumer group of three) and
// annals.read_subscription come off the (transaction_id, global_position) indexes in order: a
// Merge Append of index scans over the partitions, no Sort, no Seq Scan; on a table big enough
// (50k events in 500 streams) that a bad plan would show. The nested plans are captured with
// auto_explain, custom and generic alike (each call is repeated past plpgsql's fifth execution).
func TestFeedPlansUseTheFeedIndexesWithoutSort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// 50k events in 500 streams over 5 categories: 50 transactions of 100-event appends to 10
	// streams each, from two connections. Short transactions: the barrier they hold pauses every
	// feed on the server, other tests' included.
	load := make(chan error, 2)
	for worker := range 2 {
		go func() {
			for tx := worker; tx < 50; tx += 2 {
				_, err := e.pool.Exec(e.ctx, `
					SELECT count(*)
					  FROM generate_series($1 * 10, $1 * 10 + 9) AS s(i)
					 CROSS JOIN LATERAL annals.append_events(
					           (ARRAY['alpha', 'beta', 'gamma', 'delta', 'omega'])[s.i % 5 + 1] || '-' || s.i, NULL,
					           (SELECT jsonb_agg(jsonb_build_object('type', 'T' || (k % 4), 'data', jsonb_build_object('k', k)))
					              FROM generate_series(1, 100) AS g(k))) AS r`, tx)
				if err != nil {
					load <- err
					return
				}
			}
			load <- nil
		}()
	}
	for range 2 {
		require.NoError(t, <-load)
	}
	_, err := e.pool.Exec(e.ctx, "ANALYZE annals_internal.events")
	require.NoError(t, err)
	for _, sub := range []string{
		"SELECT annals.create_subscription('plan-all')",
		"SELECT annals.create_subscription('plan-beta', 'beginning', NULL, ARRAY['beta'], 3)",
		"SELECT annals.create_subscription('plan-types', 'beginning', ARRAY['T1', 'T2'])",
	} {
		_, err := e.pool.Exec(e.ctx, sub)
		require.NoError(t, err)
	}
	// Checkpoints at the start, a quarter in, and near the end of the feed.
	drain(t, e.pool, annals.Checkpoint{}, 50000, 50000)
	var cps [3]struct {
		xid uint64
		pos int64
	}
	for i, offset := range []int{0, 12500, 40000} {
		if offset == 0 {
			continue
		}
		require.NoError(t, e.pool.QueryRow(e.ctx, `
			SELECT e.transaction_id, e.global_position FROM annals.read_all('0', 0, $1) AS e
			 ORDER BY e.transaction_id DESC, e.global_position DESC LIMIT 1`, offset).Scan(&cps[i].xid, &cps[i].pos))
	}

	var (
		mu      sync.Mutex
		notices []string
	)
	conn := e.dedicated(t, func(cfg *pgx.ConnConfig) {
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			mu.Lock()
			defer mu.Unlock()
			notices = append(notices, n.Message)
		}
	})
	for _, s := range []string{
		"LOAD 'auto_explain'",
		"SET auto_explain.log_min_duration = 0",
		"SET auto_explain.log_nested_statements = on",
		"SET client_min_messages = log",
	} {
		_, err := conn.Exec(e.ctx, s)
		require.NoError(t, err)
	}

	calls := map[string]string{
		"read_all":              "SELECT count(*) FROM annals.read_all($1, $2, 100)",
		"read_all types":        "SELECT count(*) FROM annals.read_all($1, $2, 100, ARRAY['T3'])",
		"read_all categories":   "SELECT count(*) FROM annals.read_all($1, $2, 100, NULL, ARRAY['gamma', 'delta'])",
		"read_category":         "SELECT count(*) FROM annals.read_category('beta', $1, $2, 100)",
		"read_category group 0": "SELECT count(*) FROM annals.read_category('beta', $1, $2, 100, 0, 3)",
		"read_category group 2": "SELECT count(*) FROM annals.read_category('beta', $1, $2, 100, 2, 3)",
	}
	for name, sql := range calls {
		mu.Lock()
		notices = nil
		mu.Unlock()
		for i := range 7 {
			cp := cps[i%3]
			var n int
			require.NoError(t, conn.QueryRow(e.ctx, sql, cp.xid, cp.pos).Scan(&n), name)
			require.Positive(t, n, name)
		}
		requireFeedPlans(t, name, &mu, &notices, 7)
	}

	// read_subscription runs in the consumer's transaction; move the checkpoint between calls.
	for _, sub := range []struct {
		name   string
		member int
	}{{"plan-all", 0}, {"plan-beta", 1}, {"plan-types", 0}} {
		mu.Lock()
		notices = nil
		mu.Unlock()
		for i := range 7 {
			cp := cps[i%3]
			_, err := conn.Exec(e.ctx, "SELECT annals.reset_subscription($1, $2, $3)", sub.name, cp.xid, cp.pos)
			require.NoError(t, err)
			tx, err := conn.Begin(e.ctx)
			require.NoError(t, err)
			var n int
			require.NoError(t, tx.QueryRow(e.ctx, "SELECT count(*) FROM annals.read_subscription($1, $2, 100)", sub.name, sub.member).Scan(&n))
			require.Positive(t, n)
			require.NoError(t, tx.Rollback(e.ctx))
		}
		requireFeedPlans(t, "read_subscription "+sub.name, &mu, &notices, 7)
	}
}

// requireFeedPlans checks the captured plans of the feed statements (the ones ordering events
// by transaction id): at least want of them, each a Merge Append of feed-index scans with no
// Sort and no Seq Scan. Every other nested statement touching the events table must not
// seq-scan or sort it either.
func requireFeedPlans(t *testing.T, name string, mu *sync.Mutex, notices *[]string, want int) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	feedPlans := 0
	for _, n := range *notices {
		if !strings.Contains(n, "plan:") || !strings.Contains(n, "annals_internal.events") {
			continue
		}
		require.NotRegexp(t, seqScanEvents, n, "%s: a statement seq-scans the events table", name)
		require.NotRegexp(t, sortNode, n, "%s: a statement sorts events", name)
		if !strings.Contains(n, "ORDER BY e.transaction_id, e.global_position") {
			continue
		}
		feedPlans++
		require.Contains(t, n, "Merge Append", "%s: the partitions' ordered scans are merged", name)
		require.Regexp(t, feedIndexScan, n, "%s: the feed indexes are used", name)
	}
	require.GreaterOrEqual(t, feedPlans, want, "%s: auto_explain captured too few feed plans (%d notices)", name, len(*notices))
}

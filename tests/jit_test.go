package tests

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The status views and the functions behind the CLI's status commands never JIT: with every JIT
// threshold at zero, so that any statement planned with jit on would compile, no statement they
// run inside Annals does. (The statement the client sends is its own: its plan is a Function Scan
// costing next to nothing, far below the default jit_above_cost; pgTAP 006 pins that.)
func TestStatusQueriesNeverJIT(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, err := f.pool.Exec(f.ctx, `
		SELECT count(*) FROM pg_catalog.generate_series(1, 200) AS g,
		       LATERAL annals.append_events('jit-' || g, 0, '[{"type": "Filled"}, {"type": "Filled"}]') AS r`)
	require.NoError(t, err)
	for _, q := range []string{
		`CREATE SCHEMA jit_p`,
		`CREATE TABLE jit_p.n (k text PRIMARY KEY, n bigint NOT NULL)`,
		`GRANT USAGE ON SCHEMA jit_p TO annals_owner`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON jit_p.n TO annals_owner`,
		`CREATE FUNCTION jit_p.h(events annals.event[]) RETURNS void LANGUAGE sql AS
			'INSERT INTO jit_p.n AS c SELECT e.stream_id, count(*) FROM pg_catalog.unnest(events) AS e GROUP BY 1
			 ON CONFLICT (k) DO UPDATE SET n = c.n + excluded.n'`,
		`SELECT annals.register_projection('jit_async', 'jit_p.h(annals.event[])', ARRAY['jit_p.n']::regclass[], mode => 'async')`,
		`SELECT annals.create_subscription('jit_sub')`,
		`SELECT annals.park_event('jit_sub', 0, 'jit-1', 1, 1, 'boom')`,
		`ANALYZE`,
	} {
		_, err := f.pool.Exec(f.ctx, q)
		require.NoError(t, err, q)
	}

	plans, conn := explainingConn(t, f, "SET jit = on", "SET jit_above_cost = 0",
		"SET jit_inline_above_cost = 0", "SET jit_optimize_above_cost = 0")
	for _, q := range []string{
		"SELECT * FROM annals.projections",
		"SELECT * FROM annals.subscription_status",
		"SELECT * FROM annals.feed_blocker",
		"SELECT * FROM annals.dead_letters",
		"SELECT * FROM annals.view_freshness",
		"SELECT * FROM annals.feed_head()",
		"SELECT * FROM annals.list_streams()",
		"SELECT * FROM annals.stream_stats('jit-1')",
		"SELECT annals.subscription_checkpoint('jit_sub', 0)",
		"SELECT annals.run_async_projections()",
		"SELECT annals.rebuild_projection('jit_async')",
	} {
		_, err := conn.Exec(f.ctx, q)
		require.NoError(t, err, q)
		all := plans.take()
		require.NotEmpty(t, all, q)
		nested := 0
		for _, p := range all {
			if strings.Contains(p, "Query Text: "+q) {
				continue // the client's own statement, compiled only because the thresholds are 0
			}
			nested++
			require.NotContains(t, p, "JIT:", "%s ran a statement planned with JIT:\n%s", q, p)
		}
		require.NotZero(t, nested, "%s ran no statement inside Annals: nothing was checked", q)
	}
}

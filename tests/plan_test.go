package tests

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// planCollector captures the plans auto_explain logs for every statement a session runs, nested
// statements inside PL/pgSQL functions included.
type planCollector struct {
	mu    sync.Mutex
	plans []string
}

func (p *planCollector) onNotice(_ *pgconn.PgConn, n *pgconn.Notice) {
	if strings.Contains(n.Message, "Query Text:") {
		p.mu.Lock()
		p.plans = append(p.plans, n.Message)
		p.mu.Unlock()
	}
}

// take returns and forgets the plans collected so far.
func (p *planCollector) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.plans
	p.plans = nil
	return out
}

var (
	seqScanOnEvents  = regexp.MustCompile(`Seq Scan on events(_p\d+)?\b`)
	seqScanOnStreams = regexp.MustCompile(`Seq Scan on streams\b`)
	eventsPkeyScan   = regexp.MustCompile(`Index (Only )?Scan( Backward)? using events_p\d+_pkey on events_p\d+`)
	anyEventsIndex   = regexp.MustCompile(`Index (Only )?Scan( Backward)?( using| on) events_p\d+_\w+`)
	streamsPkeyScan  = regexp.MustCompile(`Index (Only )?Scan using streams_pkey on streams`)
	eventIDScan      = regexp.MustCompile(`Index Scan using events_p\d+_event_id_idx on events_p\d+`)
	streamEventIDKey = regexp.MustCompile(`Index (Only )?Scan using events_p\d+_stream_id_event_id_key on events_p\d+`)
	planExpressions  = regexp.MustCompile(`(?m)^\s*(Output|Filter|Join Filter|One-Time Filter|Index Cond|Recheck Cond|Sort Key|Function Call): .*$`)
	sortNode         = regexp.MustCompile(`(?m)^\s*(->\s*)?(Incremental )?Sort\s+\(cost`) // a Sort node, not a Sort Key
)

// explainingConn opens a connection on which auto_explain reports the plan of every statement,
// nested ones included, to the returned collector; settings run after it is set up.
func explainingConn(t *testing.T, f fixture, settings ...string) (*planCollector, *pgx.Conn) {
	t.Helper()
	plans := &planCollector{}
	cfg := f.pool.Config().ConnConfig.Copy()
	cfg.OnNotice = plans.onNotice
	conn := dedicatedConn(t, cfg)
	for _, q := range append([]string{
		"LOAD 'auto_explain'",
		"SET auto_explain.log_min_duration = 0",
		"SET auto_explain.log_nested_statements = on",
		"SET auto_explain.log_level = 'LOG'",
		"SET client_min_messages = log",
	}, settings...) {
		_, err := conn.Exec(f.ctx, q)
		require.NoError(t, err, q)
	}
	return plans, conn
}

// scanning keeps the plans that scan table (events, any partition, or streams).
func scanning(plans []string, table string) []string {
	re := regexp.MustCompile(`Scan\b.* on ` + table + `(_p\d+)?\b`)
	var out []string
	for _, p := range plans {
		if re.MatchString(p) {
			out = append(out, p)
		}
	}
	return out
}

func TestQueryPlans(t *testing.T) {
	t.Parallel()
	queryPlans(t, "")
}

// With tenancy on and a tenant set, the same statements use the same indexes: the policy adds a
// filter (and two InitPlans) to each scan, and the hot paths' comparisons are leakproof, so they
// stay index conditions.
func TestQueryPlansUnderTenancy(t *testing.T) {
	t.Parallel()
	queryPlans(t, "acme")
}

func queryPlans(t *testing.T, tenant string) {
	f := setup(t)
	var settings []string
	if tenant != "" {
		_, err := f.store.EnableTenancy(f.ctx)
		require.NoError(t, err)
		// Every connection of the fixture's pool (the seeding below) and the explaining one
		// run under the tenant.
		cfg := f.pool.Config().Copy()
		cfg.ConnConfig.RuntimeParams["annals.tenant"] = tenant
		pool, err := pgxpool.NewWithConfig(f.ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		f.pool = pool
		settings = append(settings, "SET annals.tenant = '"+tenant+"'")
	}

	// 20k events over 1000 streams of 20, plus one long stream: big enough that a careless plan
	// would scan a partition.
	_, err := f.pool.Exec(f.ctx, `
		SELECT count(*)
		  FROM pg_catalog.generate_series(1, 1000) AS g,
		       LATERAL annals.append_events('plan-' || g, 0,
		           (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('type', 'Filled', 'data', pg_catalog.jsonb_build_object('i', i)))
		              FROM pg_catalog.generate_series(1, 20) AS i)) AS r`)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, `
		SELECT count(*)
		  FROM pg_catalog.generate_series(0, 9) AS g,
		       LATERAL annals.append_events('plan-long', g * 300,
		           (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('type', 'Filled'))
		              FROM pg_catalog.generate_series(1, 300) AS i)) AS r`)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, "ANALYZE annals_internal.events, annals_internal.streams")
	require.NoError(t, err)

	for i, mode := range []string{"auto", "force_custom_plan", "force_generic_plan"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			plans, conn := explainingConn(t, f, append([]string{"SET plan_cache_mode = " + mode}, settings...)...)
			exec := func(t *testing.T, q string, args ...any) {
				t.Helper()
				// Several runs: PL/pgSQL switches to a cached generic plan after five.
				for range 7 {
					_, err := conn.Exec(f.ctx, q, args...)
					require.NoError(t, err, q)
				}
			}
			// requirePlans asserts that every captured statement reading table uses index and
			// none scans the table sequentially; it returns those plans.
			requirePlans := func(t *testing.T, table string, index *regexp.Regexp) []string {
				t.Helper()
				all := plans.take()
				for _, p := range all {
					// Estimates high enough for JIT would add milliseconds to a call that takes
					// a fraction of one.
					require.NotContains(t, p, "JIT:", "a hot-path statement crossed jit_above_cost")
				}
				got := scanning(all, table)
				require.NotEmpty(t, got, "no plan touching %s among:\n%s", table, strings.Join(all, "\n---\n"))
				for _, p := range got {
					require.NotRegexp(t, seqScanOnEvents, p)
					require.NotRegexp(t, seqScanOnStreams, p)
					require.Regexp(t, index, p)
				}
				return got
			}

			t.Run("read_stream", func(t *testing.T) {
				for _, q := range []string{
					"SELECT count(*) FROM annals.read_stream('plan-long')",
					"SELECT count(*) FROM annals.read_stream('plan-long', 1500, 100)",
					"SELECT count(*) FROM annals.read_stream('plan-long', NULL, 10, true)",
					"SELECT count(*) FROM annals.read_stream('plan-long', 2000, 10, true)",
				} {
					exec(t, q)
					for _, p := range requirePlans(t, "events", eventsPkeyScan) {
						require.NotRegexp(t, sortNode, p, "the primary key gives the order")
					}
				}
				for _, q := range []string{
					"SELECT count(*) FROM annals.read_stream('plan-7')",
					"SELECT count(*) FROM annals.read_stream('plan-8', NULL, 1000, true)",
					"SELECT count(*) FROM annals.read_stream('plan-missing')",
				} {
					exec(t, q)
					if mode == "force_generic_plan" {
						for _, p := range requirePlans(t, "events", eventsPkeyScan) {
							require.NotRegexp(t, sortNode, p, "the primary key gives the order")
						}
						continue
					}
					// A custom plan for a stream smaller than the page may bitmap-scan either
					// unique index (stream_id leads both) and sort its few rows: by the cost
					// model the cheaper plan when a stream's rows are scattered over the heap.
					// Still an index, never a Seq Scan.
					requirePlans(t, "events", anyEventsIndex)
				}
			})
			t.Run("read_stream_as_of", func(t *testing.T) {
				// Under tenancy the policy's filter (its estimate: about half the rows) makes 1,200
				// of the partition's ~5,500 rows cheaper by a Seq Scan to the cost model; a
				// stretch of 100 versions must still take the key (a bitmap scan of it, by the
				// estimate of the policy's filter).
				asOf := map[bool]string{false: "1200", true: "100"}[tenant != ""]
				exec(t, "SELECT count(*) FROM annals.read_stream_as_of('plan-long', as_of_version => "+asOf+")")
				requirePlans(t, "events", map[bool]*regexp.Regexp{false: eventsPkeyScan, true: anyEventsIndex}[tenant != ""])
				exec(t, "SELECT count(*) FROM annals.read_stream_as_of('plan-long', as_of_time => now())")
				for _, p := range requirePlans(t, "events", eventsPkeyScan) {
					require.NotRegexp(t, sortNode, p)
				}
				exec(t, "SELECT annals.stream_version_at('plan-9', now())")
				requirePlans(t, "events", eventsPkeyScan)
			})
			t.Run("read_event", func(t *testing.T) {
				// No stream id, so no pruning: one probe of events_event_id_idx per partition
				// (migration 011), never a scan of a partition.
				var id string
				require.NoError(t, f.pool.QueryRow(f.ctx,
					"SELECT e.event_id::text FROM annals.read_stream('plan-long', 1234, 1) AS e").Scan(&id))
				exec(t, "SELECT count(*) FROM annals.read_event($1::uuid)", id)
				for _, p := range requirePlans(t, "events", eventIDScan) {
					require.Len(t, eventIDScan.FindAllString(p, -1), 8, "one index probe per partition:\n%s", p)
				}
				exec(t, "SELECT count(*) FROM annals.read_event('00000000-0000-0000-0000-000000000000', raw => true)")
				requirePlans(t, "events", eventIDScan)
			})
			t.Run("stream_info", func(t *testing.T) {
				exec(t, "SELECT count(*) FROM annals.stream_info('plan-long')")
				requirePlans(t, "streams", streamsPkeyScan)
			})
			t.Run("append_events", func(t *testing.T) {
				// Any: one new stream per run, then more events on an existing one.
				exec(t, `SELECT * FROM annals.append_events('plan-new-' || pg_catalog.pg_backend_pid() || '-' || pg_catalog.clock_timestamp(), NULL,
					'[{"type":"T","data":{"a":1}},{"type":"T"}]')`)
				requirePlans(t, "streams", streamsPkeyScan)
				exec(t, `SELECT * FROM annals.append_events('plan-appended-`+mode+`', NULL, '[{"type":"T"}]')`)
				requirePlans(t, "streams", streamsPkeyScan)
			})
			t.Run("append_event", func(t *testing.T) {
				// The settings and stream rows in one read, by their keys; no JIT.
				exec(t, `SELECT * FROM annals.append_event('plan-one-' || pg_catalog.pg_backend_pid() || '-' || pg_catalog.clock_timestamp(), NULL,
					'T', '{"a":1}')`)
				requirePlans(t, "streams", streamsPkeyScan)
				exec(t, `SELECT * FROM annals.append_event('plan-appended-`+mode+`', NULL, 'T', NULL)`)
				requirePlans(t, "streams", streamsPkeyScan)
			})
			t.Run("append_event replay", func(t *testing.T) {
				s := "plan-replay-one-" + mode
				exec(t, "SELECT * FROM annals.append_event($1, 0, 'T', NULL, event_id => '0190a8f2-7c1e-7000-8000-0000000000c1')", s)
				exec(t, "SELECT * FROM annals.append_event($1, 0, 'T', NULL, event_id => '0190a8f2-7c1e-7000-8000-0000000000c1')", s)
				requirePlans(t, "events", anyEventsIndex)
			})
			t.Run("append_events replay", func(t *testing.T) {
				// The same ids again: the slow path reads the stored events through an index.
				s := "plan-replay-" + mode
				batch := `[{"id":"0190a8f2-7c1e-7000-8000-0000000000b1","type":"T"},{"id":"0190a8f2-7c1e-7000-8000-0000000000b2","type":"T"}]`
				exec(t, "SELECT * FROM annals.append_events($1, 0, $2::jsonb)", s, batch)
				requirePlans(t, "events", anyEventsIndex)
			})
			t.Run("conflict", func(t *testing.T) {
				// A conflict with event ids looks up those ids in the stream's (stream_id,
				// event_id) key: a long stream's conflict reads no more than a short one's.
				// Without ids it reads no event at all.
				for range 7 {
					_, err := conn.Exec(f.ctx, `DO $$ BEGIN
						PERFORM annals.append_events('plan-long', 0, pg_catalog.jsonb_build_array(
							pg_catalog.jsonb_build_object('id', pg_catalog.gen_random_uuid(), 'type', 'T')));
						EXCEPTION WHEN SQLSTATE 'ST409' THEN NULL; END $$`)
					require.NoError(t, err)
				}
				for _, p := range requirePlans(t, "events", streamEventIDKey) {
					require.NotRegexp(t, eventsPkeyScan, p, "the conflict read the stream's events")
				}
				for range 7 {
					_, err := conn.Exec(f.ctx, `DO $$ BEGIN
						PERFORM annals.append_events('plan-long', 0, '[{"type": "T"}]');
						EXCEPTION WHEN SQLSTATE 'ST409' THEN NULL; END $$`)
					require.NoError(t, err)
				}
				require.Empty(t, scanning(plans.take(), "events"), "a conflict without ids read events")
			})
			t.Run("delete_stream", func(t *testing.T) {
				_, err := conn.Exec(f.ctx, "SELECT annals.delete_stream($1, 20)", fmt.Sprintf("plan-%d", i+1))
				require.NoError(t, err)
				requirePlans(t, "streams", streamsPkeyScan)
			})
		})
	}
}

// Every read turns stored rows into annals.event through annals_internal.as_read (and
// as_event), SQL functions the planner must inline: a call left in a plan costs a function call
// and a composite per event, and a SET clause or a volatile helper would silently stop the
// inlining. With the plans logged verbose, their output lists must name columns, not the helpers.
func TestReadsInlineAsRead(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, q := range []string{
		`SELECT annals.append_events('inline-' || g, 0,
		    '[{"type":"Filled","data":{"i":1},"tags":["inline"]},{"type":"Filled","data":{"i":2}}]')
		   FROM pg_catalog.generate_series(1, 3) AS g`,
		"SELECT annals.create_subscription('inline-sub')",
		// A projection of each mode, so the dispatch trigger, the async run and a rebuild read too.
		`CREATE SCHEMA inl;
		 CREATE TABLE inl.seen (n integer NOT NULL);
		 CREATE TABLE inl.seen_later (n integer NOT NULL);
		 CREATE FUNCTION inl.note(events annals.event[]) RETURNS void LANGUAGE sql
		     AS 'INSERT INTO inl.seen VALUES (pg_catalog.cardinality(events))';
		 CREATE FUNCTION inl.note_later(events annals.event[]) RETURNS void LANGUAGE sql
		     AS 'INSERT INTO inl.seen_later VALUES (pg_catalog.cardinality(events))';
		 GRANT USAGE ON SCHEMA inl TO annals_owner;
		 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA inl TO annals_owner`,
		"SELECT annals.register_projection('inl_inline', 'inl.note(annals.event[])', ARRAY['inl.seen']::regclass[])",
		"SELECT annals.register_projection('inl_async', 'inl.note_later(annals.event[])', ARRAY['inl.seen_later']::regclass[], mode => 'async')",
		// Old enough to move: the first streams go cold, one more stays hot.
		"SELECT annals.compress_events('0 seconds')",
		`SELECT annals.append_events('inline-hot', 0, '[{"type":"Filled","tags":["inline"]}]')`,
	} {
		_, err := f.pool.Exec(f.ctx, q)
		require.NoError(t, err, q)
	}
	reads := []string{
		"SELECT count(*) FROM annals.read_stream('inline-hot')",
		"SELECT count(*) FROM annals.read_stream('inline-hot', NULL, 10, true)",
		"SELECT count(*) FROM annals.read_stream('inline-1')", // cold
		"SELECT count(*) FROM annals.read_stream('inline-1', raw => true)",
		"SELECT count(*) FROM annals.read_stream_as_of('inline-hot', as_of_version => 1)",
		"SELECT count(*) FROM annals.read_stream_as_of('inline-1', as_of_version => 1)",
		"SELECT count(*) FROM annals.read_all()",
		"SELECT count(*) FROM annals.read_all('0', 0, 10, raw => true)",
		"SELECT count(*) FROM annals.read_category('inline')",
		"SELECT count(*) FROM annals.read_tagged('[{\"tags\":[\"inline\"]}]')",
		"SELECT count(*) FROM annals.read_subscription('inline-sub')",
		"SELECT count(*) FROM annals.read_event((SELECT e.event_id FROM annals.read_stream('inline-2') AS e LIMIT 1))",
		`SELECT count(*) FROM annals.append_events('inline-more-' || pg_catalog.clock_timestamp(), 0, '[{"type":"Filled"}]')`,
		"SELECT annals.run_async_projections()",
		"SELECT annals.rebuild_projection('inl_inline')",
	}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		plans, conn := explainingConn(t, f, "SET auto_explain.log_verbose = on", "SET plan_cache_mode = "+mode)
		for _, q := range reads {
			for range 6 { // PL/pgSQL settles on its cached plan after five runs
				_, err := conn.Exec(f.ctx, q)
				require.NoError(t, err, q)
			}
			got := plans.take()
			require.NotEmpty(t, got, q)
			var exprs int
			for _, p := range got {
				// The plan's expressions, not the statement's text (which names the helpers).
				for _, line := range planExpressions.FindAllString(p, -1) {
					exprs++
					require.NotContains(t, line, "as_read(", "%s (%s): as_read was not inlined:\n%s", q, mode, p)
					require.NotContains(t, line, "as_event(", "%s (%s): as_event was not inlined:\n%s", q, mode, p)
				}
			}
			require.NotZero(t, exprs, "%s: no verbose plan among %d", q, len(got))
		}
	}
}

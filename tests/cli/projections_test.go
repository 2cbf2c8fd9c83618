package cli_test

import (
	"strings"
	"testing"

	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// installInventory installs the inventory read models (an inline projection and a materialized
// view) and appends a few inventory events.
func installInventory(t *testing.T, db string) *pgxpool.Pool {
	t.Helper()
	pool := poolFor(t, db)
	require.NoError(t, readmodels.Install(t.Context(), pool))
	appendEvent(t, db, "inventory-42", "no-stream", "ItemAdded", `{"sku":"42","name":"Blue widget","count":10}`)
	appendEvent(t, db, "inventory-42", "1", "ItemAdjusted", `{"delta":-3,"reason":"sale"}`)
	appendEvent(t, db, "inventory-7", "no-stream", "ItemAdded", `{"sku":"7","name":"Red widget","count":2}`)
	return pool
}

// installAsyncCounter registers an async projection counting events per type.
func installAsyncCounter(t *testing.T, pool *pgxpool.Pool, handlerBody string) {
	t.Helper()
	execSQL(t, pool, `CREATE TABLE public.event_counts (event_type text PRIMARY KEY, n bigint NOT NULL)`)
	execSQL(t, pool, `GRANT SELECT, INSERT, UPDATE, DELETE ON public.event_counts TO annals_owner`)
	execSQL(t, pool, `CREATE FUNCTION public.count_events(events annals.event[]) RETURNS void LANGUAGE plpgsql AS $$
		BEGIN `+handlerBody+`
		  INSERT INTO public.event_counts AS c
		  SELECT e.event_type, count(*) FROM unnest(events) AS e GROUP BY 1
		  ON CONFLICT (event_type) DO UPDATE SET n = c.n + excluded.n;
		END $$`)
	execSQL(t, pool, `GRANT EXECUTE ON FUNCTION public.count_events(annals.event[]) TO annals_owner`)
	execSQL(t, pool, `SELECT annals.register_projection('event_counts', 'public.count_events(annals.event[])',
		ARRAY['public.event_counts']::regclass[], mode => 'async')`)
}

func TestCLIProjections(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := installInventory(t, db)
	installAsyncCounter(t, pool, "")

	out := ok(t, db, "projections", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	require.Regexp(t, `^NAME\s+MODE\s+STATE\s+EVENTS_BEHIND\s+DEAD_LETTERS\s+REBUILT_AT\s+LAST_ERROR$`, lines[0])
	require.Regexp(t, `^event_counts\s+async\s+active\s+3\s+0\s+-\s+-$`, lines[1])
	require.Regexp(t, `^inventory_item_counts\s+inline\s+active\s+-\s+0\s+\d{4}-`, lines[2])

	ps := jsonLines(t, ok(t, db, "projections", "list", "--json"))
	require.Len(t, ps, 2)
	require.Equal(t, "inventory_item_counts", ps[1]["name"])
	require.Equal(t, []any{"ItemAdded", "ItemAdjusted"}, ps[1]["event_types"])

	out = ok(t, db, "projections", "status", "event_counts")
	require.Regexp(t, `(?m)^mode\s+async$`, out)
	require.Regexp(t, `(?m)^state\s+active$`, out)
	require.Regexp(t, `(?m)^handler\s+public\.count_events\(annals\.event\[\]\)$`, out)
	require.Regexp(t, `(?m)^checkpoint\s+0:0$`, out)
	require.Regexp(t, `(?m)^behind\s+3 events, `, out)

	out = ok(t, db, "projections", "status", "inventory_item_counts")
	require.Regexp(t, `(?m)^tables\s+inventory\.item_counts$`, out)
	require.Regexp(t, `(?m)^categories\s+inventory$`, out)

	// A rebuild reports progress on stderr and the result on stdout; the read model is rebuilt.
	execSQL(t, pool, `DELETE FROM inventory.item_counts`)
	r := annals(t, db, "projections", "rebuild", "inventory_item_counts")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `^rebuilt inventory_item_counts from 3 events in \S+\n$`, r.stdout)
	require.Contains(t, r.stderr, "rebuilding inventory_item_counts: 3/3 events (100%)")
	var count int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count FROM inventory.item_counts WHERE sku = '42'`).Scan(&count))
	require.Equal(t, 7, count)

	// The async one is rebuilt up to the gap-free barrier (where a transaction elsewhere in the
	// cluster may hold it back); the worker applies the rest.
	require.Regexp(t, `^rebuilt event_counts from [0-3] events in \S+\n$`, ok(t, db, "projections", "rebuild", "event_counts"))
	require.Regexp(t, `(?m)^rebuilt\s+\d{4}-\S+ \S+ \([0-3] events\)$`, ok(t, db, "projections", "status", "event_counts"))

	for _, args := range [][]string{
		{"projections", "rebuild", "nope"}, {"projections", "status", "nope"}, {"projections", "enable", "nope"},
		{"projections", "disable", "nope"}, {"projections", "drop", "nope"},
	} {
		r = annals(t, db, args...)
		require.Equal(t, 3, r.code, "%v: %s", args, r.stderr)
		requireOneLine(t, r.stderr)
		require.Contains(t, r.stderr, `"nope"`)
	}
	require.Contains(t, annals(t, db, "projections", "rebuild", "nope").stderr, "SQLSTATE ST404")
}

func TestCLIViews(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	installInventory(t, db)

	out := ok(t, db, "views", "list")
	require.Regexp(t, `(?m)^VIEW\s+INTERVAL\s+REFRESHED_AT\s+AGE\s+EVENTS_BEHIND\s+LAST_ERROR$`, out)
	require.Regexp(t, `(?m)^inventory\.movements_per_day\s+1m00s\s+\d{4}-\S+ \S+\s+\S+\s+3\s+-$`, out)

	out = ok(t, db, "views", "refresh", "--force")
	require.Regexp(t, `(?m)^inventory\.movements_per_day\s+refreshed\s+\S+\s+-$`, out)
	// Just refreshed and nothing new: not due.
	out = ok(t, db, "views", "refresh")
	require.Regexp(t, `(?m)^inventory\.movements_per_day\s+not due\s+-\s+-$`, out)

	vs := jsonLines(t, ok(t, db, "views", "list", "--json"))
	require.Len(t, vs, 1)
	require.NotNil(t, vs[0]["refreshed_at"])
	require.NotNil(t, vs[0]["age_seconds"])

	empty := newDB(t)
	r := annals(t, empty, "views", "refresh")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "no materialized views registered")
}

func TestCLIProjectionsDisableEnableDrop(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := installInventory(t, db)
	installAsyncCounter(t, pool, "")
	count := func() int {
		var n int
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT count FROM inventory.item_counts WHERE sku = '42'`).Scan(&n))
		return n
	}
	require.Equal(t, 7, count())

	// Disabled, the inline projection no longer follows appends.
	r := annals(t, db, "projections", "disable", "inventory_item_counts")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "disabled inline inventory_item_counts\n", r.stdout)
	require.Regexp(t, `(?m)^state\s+disabled$`, ok(t, db, "projections", "status", "inventory_item_counts"))
	require.Equal(t, "inventory_item_counts is already disabled; nothing changed\n", ok(t, db, "projections", "disable", "inventory_item_counts"))
	appendEvent(t, db, "inventory-42", "2", "ItemAdjusted", `{"delta":5}`)
	require.Equal(t, 7, count())

	// Enabled again, it says what it missed and how to apply it.
	r = annals(t, db, "projections", "enable", "inventory_item_counts")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "enabled inline inventory_item_counts\n", r.stdout)
	require.Equal(t, "note: inventory_item_counts missed the events appended while it was disabled and is incomplete; apply them with annals projections rebuild inventory_item_counts\n", r.stderr)
	require.Regexp(t, `(?m)^state\s+incomplete$`, ok(t, db, "projections", "status", "inventory_item_counts"))
	ok(t, db, "projections", "rebuild", "inventory_item_counts")
	require.Regexp(t, `(?m)^state\s+active$`, ok(t, db, "projections", "status", "inventory_item_counts"))
	require.Equal(t, 12, count())

	r = annals(t, db, "projections", "disable", "event_counts")
	require.Equal(t, 0, r.code, r.stderr)
	r = annals(t, db, "projections", "enable", "event_counts")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "annals worker catches event_counts up from its checkpoint")

	// Drop: unregistered, its table stays; a second drop is not found.
	r = annals(t, db, "projections", "drop", "event_counts")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "dropped async projection event_counts\n", r.stdout)
	// The table as annals.projections names it (schema-qualified where the view qualifies it).
	require.Regexp(t, `^note: its tables \((public\.)?event_counts\) and handler public\.count_events\(annals\.event\[\]\) stay; drop them when nothing reads them\n$`, r.stderr)
	ps := jsonLines(t, ok(t, db, "projections", "list", "--json"))
	require.Len(t, ps, 1)
	require.Equal(t, "inventory_item_counts", ps[0]["name"])
	execSQL(t, pool, "SELECT count(*) FROM public.event_counts")
	r = annals(t, db, "projections", "drop", "event_counts")
	require.Equal(t, 3, r.code, r.stderr)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "projection 'event_counts' does not exist (SQLSTATE ST404: check the name: annals projections list)")
}

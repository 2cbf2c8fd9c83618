package cold

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// world is what the read snapshot needs to ask the same questions before and after a move.
type world struct {
	streams  []string
	versions map[string]int64
	times    map[string][]time.Time // probe times per stream: before the first event, middle, last
	ids      []uuid.UUID
}

func loadWorld(t *testing.T, f fixture) world {
	t.Helper()
	w := world{versions: map[string]int64{}, times: map[string][]time.Time{}}
	rows, err := f.pool.Query(f.ctx, "SELECT s.stream_id, s.stream_version FROM annals_internal.streams AS s ORDER BY 1")
	require.NoError(t, err)
	for rows.Next() {
		var s string
		var v int64
		require.NoError(t, rows.Scan(&s, &v))
		w.streams = append(w.streams, s)
		w.versions[s] = v
	}
	require.NoError(t, rows.Err())
	for _, s := range w.streams {
		evs := collect(t, f.store.ReadStream(f.ctx, s, annals.ReadOptions{}))
		first, mid, last := evs[0], evs[len(evs)/2], evs[len(evs)-1]
		w.times[s] = []time.Time{first.RecordedAt.Add(-time.Microsecond), first.RecordedAt, mid.RecordedAt, last.RecordedAt}
		for _, e := range evs {
			w.ids = append(w.ids, e.EventID)
		}
	}
	return w
}

func collect(t *testing.T, seq func(func(annals.RecordedEvent, error) bool)) []annals.RecordedEvent {
	t.Helper()
	var out []annals.RecordedEvent
	for e, err := range seq {
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

// feedPages pages through a feed function (placeholders $1, $2 for the checkpoint) and returns
// every row as text.
func feedPages(t *testing.T, f fixture, call string) string {
	t.Helper()
	var out []string
	xid := "0"
	var pos int64
	for page := 0; ; page++ {
		require.Less(t, page, 100000)
		rows, err := f.pool.Query(f.ctx, "SELECT e::text, e.transaction_id::text, e.global_position FROM "+call+" AS e", xid, pos)
		require.NoError(t, err)
		n := 0
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line, &xid, &pos))
			out = append(out, line)
			n++
		}
		require.NoError(t, rows.Err())
		if n == 0 {
			return strings.Join(out, "\n")
		}
	}
}

// snapshot asks every read question and returns the answers by name.
func snapshot(t *testing.T, f fixture, w world) map[string]string {
	t.Helper()
	m := map[string]string{}
	q := func(name, sql string, args ...any) { m[name] = rowsText(t, f.ctx, f.pool, sql, args...) }
	for _, s := range w.streams {
		v := w.versions[s]
		q("read_stream "+s, "SELECT * FROM annals.read_stream($1, NULL, 100000)", s)
		q("read_stream raw "+s, "SELECT * FROM annals.read_stream($1, NULL, 100000, raw => true)", s)
		var pages []string
		for from := int64(1); from <= v+1; from += 7 {
			pages = append(pages, rowsText(t, f.ctx, f.pool, "SELECT * FROM annals.read_stream($1, $2, 7)", s, from))
		}
		m["read_stream pages "+s] = strings.Join(pages, "\n")
		q("stream_stats count "+s, "SELECT s.event_count FROM annals.stream_stats($1) AS s", s)
		q("read_stream backwards "+s, "SELECT * FROM annals.read_stream($1, NULL, 5, true)", s)
		q("read_stream backwards mid "+s, "SELECT * FROM annals.read_stream($1, $2, 9, true)", s, v/2+1)
		q("read_stream backwards all "+s, "SELECT * FROM annals.read_stream($1, NULL, 100000, true, true)", s)
		q("as_of version "+s, "SELECT * FROM annals.read_stream_as_of($1, as_of_version => $2)", s, v/2)
		q("as_of version page "+s, "SELECT * FROM annals.read_stream_as_of($1, as_of_version => $2, from_version => 3, max_count => 4)", s, v-1)
		for i, at := range w.times[s] {
			q(fmt.Sprintf("as_of time %d %s", i, s), "SELECT * FROM annals.read_stream_as_of($1, as_of_time => $2)", s, at)
			q(fmt.Sprintf("version_at %d %s", i, s), "SELECT annals.stream_version_at($1, $2)", s, at)
		}
		var gos []string
		for _, e := range collect(t, f.store.ReadStream(f.ctx, s, annals.ReadOptions{})) {
			gos = append(gos, fmt.Sprintf("%+v", e))
		}
		m["go ReadStream "+s] = strings.Join(gos, "\n")
	}
	var evs []string
	for _, id := range w.ids {
		evs = append(evs, rowsText(t, f.ctx, f.pool, "SELECT * FROM annals.read_event($1)", id),
			rowsText(t, f.ctx, f.pool, "SELECT * FROM annals.read_event($1, true)", id))
	}
	m["read_event"] = strings.Join(evs, "\n")
	m["read_all 7"] = feedPages(t, f, "annals.read_all($1::xid8, $2, 7)")
	m["read_all 1000 raw"] = feedPages(t, f, "annals.read_all($1::xid8, $2, 1000, raw => true)")
	m["read_all types"] = feedPages(t, f, "annals.read_all($1::xid8, $2, 3, ARRAY['PriceSet', 'ItemsShipped'])")
	m["read_all categories"] = feedPages(t, f, "annals.read_all($1::xid8, $2, 4, NULL, ARRAY['order'])")
	m["read_category"] = feedPages(t, f, "annals.read_category('stock', $1::xid8, $2, 5)")
	for member := range 3 {
		m[fmt.Sprintf("read_category group %d", member)] =
			feedPages(t, f, fmt.Sprintf("annals.read_category('stock', $1::xid8, $2, 4, %d, 3)", member))
	}
	// Subscriptions read in a transaction rolled back, so the checkpoints stay.
	for _, sub := range []string{"cold-all", "cold-stock"} {
		for member := range 2 {
			if sub == "cold-all" && member == 1 {
				continue
			}
			tx, err := f.pool.Begin(f.ctx)
			require.NoError(t, err)
			m[fmt.Sprintf("read_subscription %s %d", sub, member)] =
				rowsText(t, f.ctx, tx, "SELECT * FROM annals.read_subscription($1, $2, 100000)", sub, member)
			require.NoError(t, tx.Rollback(f.ctx))
		}
	}
	q("dead_letters", "SELECT dead_letter_id, stream_id, stream_version, global_position, transaction_id, event_type, attempts, last_error, status FROM annals.dead_letters ORDER BY 1")
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	m["read_dead_letters"] = rowsText(t, f.ctx, tx, "SELECT * FROM annals.read_dead_letters('cold-all')")
	require.NoError(t, tx.Rollback(f.ctx))
	// The Go feed, decoded.
	var gos []string
	var cp annals.Checkpoint
	for {
		page, err := f.store.ReadAll(f.ctx, cp, annals.FeedOptions{MaxCount: 11})
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			gos = append(gos, fmt.Sprintf("%+v", e))
		}
		last := page[len(page)-1]
		cp = annals.Checkpoint{TransactionID: last.TransactionID, GlobalPosition: last.GlobalPosition}
	}
	m["go ReadAll"] = strings.Join(gos, "\n")
	return m
}

func requireSame(t *testing.T, want, got map[string]string, state string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !strings.HasPrefix(k, "as_of ") && !strings.Contains(k, " group ") && !strings.HasPrefix(k, "read_subscription cold-stock") { // some ask before the first event or past a short stream
			require.NotEmpty(t, want[k], "%s: %s reads nothing, the test proves nothing", state, k)
		}
		require.Equal(t, want[k], got[k], "%s: %s differs from the all-hot answer", state, k)
	}
	require.Len(t, got, len(want))
}

// seed appends streams of three categories, of lengths from 1 to 230 (more than two segments),
// in batches of 1 to 5, interleaved, with a SQL upcaster and an alias in play.
func seed(t *testing.T, f fixture) {
	t.Helper()
	f.exec(t, `
		CREATE FUNCTION public.price_v1_to_v2(data jsonb) RETURNS jsonb
		LANGUAGE sql IMMUTABLE SET search_path = pg_catalog
		AS $$ SELECT data || jsonb_build_object('currency', 'EUR') $$;
		GRANT EXECUTE ON FUNCTION public.price_v1_to_v2(jsonb) TO annals_owner;
		SELECT annals.register_upcaster('PriceSet', 1, 'public.price_v1_to_v2(jsonb)');
		SELECT annals.register_event_alias('GoodsShipped', 'ItemsShipped');`)
	lengths := map[string]int{"stock-1": 230, "stock-2": 40, "stock-3": 1, "stock-4": 101, "order-1": 17,
		"order-2": 99, "order-3": 3, "cust-1": 60}
	done := map[string]int{}
	types := []string{"ItemsReceived", "GoodsShipped", "ItemsShipped", "PriceSet"}
	for round := 0; ; round++ {
		progress := false
		for _, s := range []string{"stock-1", "stock-2", "stock-3", "stock-4", "order-1", "order-2", "order-3", "cust-1"} {
			n := min(1+(round+len(s))%5, lengths[s]-done[s])
			if n <= 0 {
				continue
			}
			batch := make([]annals.EventData, n)
			for i := range batch {
				batch[i] = ev(types[(done[s]+i)%4], done[s]+i)
			}
			_, err := f.store.Append(f.ctx, s, annals.Exact(int64(done[s])), batch...)
			require.NoError(t, err)
			done[s] += n
			progress = true
		}
		if !progress {
			break
		}
	}
	f.exec(t, "SELECT annals.create_subscription('cold-all')")
	f.exec(t, "SELECT annals.create_subscription('cold-stock', 'beginning', ARRAY['ItemsShipped', 'PriceSet'], ARRAY['stock'], 2)")
	// Dead letters point at events by (stream, version): two parked, one of them up for retry.
	f.exec(t, "SELECT annals.park_event('cold-all', 0, 'stock-1', 4, 3, 'boom')")
	f.exec(t, "SELECT annals.park_event('cold-all', 0, 'order-2', 9, 1, 'bang')")
	f.exec(t, "SELECT annals.retry_dead_letters('cold-all', ARRAY[(SELECT min(d.dead_letter_id) FROM annals.dead_letters AS d)])")
	waitBarrier(t, f)
}

// Every read function and both Go paths return the same rows, byte for byte, with the events
// all hot, partly compressed (in small steps, so many batches and part-cold streams), with a
// stream archived, and all cold.
func TestReadsAreTheSameHotAndCold(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seed(t, f)
	w := loadWorld(t, f)
	hot := snapshot(t, f, w)

	moved := scalar[int64](t, f, "SELECT annals.compress_events('0', 37)")
	require.EqualValues(t, 37, moved)
	requireSame(t, hot, snapshot(t, f, w), "37 events cold")

	for range 5 {
		require.EqualValues(t, 53, scalar[int64](t, f, "SELECT annals.compress_events('0', 53)"))
	}
	require.Positive(t, scalar[int64](t, f, "SELECT annals.archive_stream('order-2')"))
	require.Positive(t, scalar[int64](t, f, "SELECT annals.archive_stream('stock-4', 101)"))
	requireSame(t, hot, snapshot(t, f, w), "partly cold, two streams archived")

	total := scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events")
	require.Equal(t, total, scalar[int64](t, f, "SELECT annals.compress_events('0')"))
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events"))
	requireSame(t, hot, snapshot(t, f, w), "all cold")

	// Idempotent: nothing left to move.
	require.Zero(t, scalar[int64](t, f, "SELECT annals.compress_events('0')"))
	require.Zero(t, scalar[int64](t, f, "SELECT annals.archive_stream('stock-1')"))
	requireSame(t, hot, snapshot(t, f, w), "all cold, moved again")

	var tiers []string
	st, err := f.store.StorageStats(f.ctx)
	require.NoError(t, err)
	for _, tier := range st {
		tiers = append(tiers, fmt.Sprintf("%s %d", tier.Tier, tier.Events))
	}
	require.Equal(t, []string{"hot 0", fmt.Sprintf("cold %d", len(w.ids))}, tiers)
}

// compress_events leaves events younger than older_than hot, and stops at the first of them in
// feed order.
func TestCompressOnlyOlderEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	seed(t, f)
	f.exec(t, `ALTER TABLE annals_internal.events DISABLE TRIGGER events_append_only`)
	f.exec(t, `UPDATE annals_internal.events SET recorded_at = recorded_at - interval '40 days'
	            WHERE global_position <= (SELECT min(global_position) + 99 FROM annals_internal.events)`)
	f.exec(t, `ALTER TABLE annals_internal.events ENABLE TRIGGER events_append_only`)
	require.EqualValues(t, 100, scalar[int64](t, f, "SELECT annals.compress_events('30 days')"))
	require.Zero(t, scalar[int64](t, f, "SELECT annals.compress_events('30 days')"))
	require.Zero(t, scalar[int64](t, f, `SELECT count(*) FROM annals_internal.events WHERE recorded_at < now() - interval '30 days'`))
	st, err := f.store.StorageStats(f.ctx)
	require.NoError(t, err)
	require.Equal(t, "cold", st[1].Tier)
	require.EqualValues(t, 100, st[1].Events)
	require.Positive(t, st[1].BytesPerEvent)
}

package projections_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/stretchr/testify/require"
)

// inventoryModel is what the inventory read models must show, computed in Go from what was appended.
type inventoryModel struct {
	names  map[string]string
	counts map[string]int
	// versions is each sku's stream version.
	versions map[string]int64
}

func newInventoryModel() *inventoryModel {
	return &inventoryModel{names: map[string]string{}, counts: map[string]int{}, versions: map[string]int64{}}
}

// add appends ItemAdded for a new sku.
func (m *inventoryModel) add(t testing.TB, f fixture, sku, name string, count int) {
	t.Helper()
	res := f.append(t, "inventory-"+sku, ev("ItemAdded", map[string]any{"sku": sku, "name": name, "count": count}))
	m.names[sku], m.counts[sku], m.versions[sku] = name, count, res.StreamVersion
}

// adjust appends ItemAdjusted events (one append, several deltas) to a sku.
func (m *inventoryModel) adjust(t testing.TB, f fixture, sku string, deltas ...int) {
	t.Helper()
	batch := make([]annals.EventData, len(deltas))
	for i, d := range deltas {
		batch[i] = ev("ItemAdjusted", map[string]any{"delta": d, "reason": "count"})
		m.counts[sku] += d
	}
	res := f.append(t, "inventory-"+sku, batch...)
	m.versions[sku] = res.StreamVersion
}

func (m *inventoryModel) rows() []string {
	var out []string
	for sku, name := range m.names {
		out = append(out, fmt.Sprintf("%s %s %d %d", sku, name, m.counts[sku], m.versions[sku]))
	}
	sort.Strings(out)
	return out
}

// history appends a varied inventory history for n skus (plus events the read models ignore).
func (m *inventoryModel) history(t testing.TB, f fixture, prefix string, n int) {
	t.Helper()
	for i := range n {
		sku := fmt.Sprintf("%s%03d", prefix, i)
		m.add(t, f, sku, "Item "+sku, 10+i)
		if i%2 == 0 {
			m.adjust(t, f, sku, -3, 5)
		}
		if i%3 == 0 {
			m.adjust(t, f, sku, -1)
		}
	}
	f.append(t, "order-1", ev("ItemAdjusted", map[string]any{"delta": 99})) // another category
	f.append(t, "inventory-"+prefix+"000", ev("ItemInspected", nil))        // another type: the row keeps its version
}

func itemCounts(t testing.TB, f fixture) []string {
	t.Helper()
	return dump(t, f, "SELECT c.sku, c.name, c.count, c.version FROM inventory.item_counts AS c ORDER BY c.sku")
}

func TestInventoryReadModels(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := newInventoryModel()
	m.history(t, f, "a", 16)

	// Installed on a store with history: the counts are rebuilt from it; installing again is harmless.
	require.NoError(t, readmodels.Install(f.ctx, f.pool))
	require.Equal(t, m.rows(), itemCounts(t, f))
	require.NoError(t, readmodels.Install(f.ctx, f.pool))
	require.Equal(t, m.rows(), itemCounts(t, f))

	// Appends update the counts inline, in the appending transaction.
	m.history(t, f, "b", 8)
	m.adjust(t, f, "a003", 7, -2, -2)
	require.Equal(t, m.rows(), itemCounts(t, f))

	// The table is hash-partitioned: rows live in the partitions, spread over them.
	parts := dump(t, f, "SELECT c.tableoid::regclass::text, count(*) FROM inventory.item_counts AS c GROUP BY 1 ORDER BY 1")
	require.GreaterOrEqual(t, len(parts), 3, "rows spread over the partitions: %v", parts)
	for _, p := range parts {
		require.True(t, strings.HasPrefix(p, "inventory.item_counts_p"), p)
	}
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM ONLY inventory.item_counts"))
	require.EqualValues(t, len(m.names), scalar[int64](t, f, `SELECT (SELECT count(*) FROM inventory.item_counts_p0) + (SELECT count(*) FROM inventory.item_counts_p1)
		+ (SELECT count(*) FROM inventory.item_counts_p2) + (SELECT count(*) FROM inventory.item_counts_p3)`))

	// Rebuilding in small batches (adds and adjustments of one item in different batches) gives
	// the same table, updated_at included.
	full := dump(t, f, "SELECT c.sku, c.name, c.count, c.version, c.updated_at FROM inventory.item_counts AS c ORDER BY c.sku")
	for _, batch := range []int{1, 2, 7} {
		f.exec(t, "SELECT annals.rebuild_projection('inventory_item_counts', $1)", batch)
		require.Equal(t, full, dump(t, f, "SELECT c.sku, c.name, c.count, c.version, c.updated_at FROM inventory.item_counts AS c ORDER BY c.sku"), "batch size %d", batch)
	}

	// Movements per day: filled by refresh_views, never by appends; units in and out per item per
	// UTC day, from the events as stored.
	type key struct{ day, sku string }
	type mv struct{ in, out, n int64 }
	want := map[key]mv{}
	rows, err := f.pool.Query(f.ctx, `SELECT (e.recorded_at AT TIME ZONE 'UTC')::date::text, substr(e.stream_id, 11), e.event_type,
		coalesce((e.data ->> 'count')::int, 0), coalesce((e.data ->> 'delta')::int, 0)
		FROM annals_internal.events AS e WHERE e.stream_id LIKE 'inventory-%' AND e.event_type IN ('ItemAdded', 'ItemAdjusted')`)
	require.NoError(t, err)
	for rows.Next() {
		var day, sku, typ string
		var count, delta int64
		require.NoError(t, rows.Scan(&day, &sku, &typ, &count, &delta))
		k := want[key{day, sku}]
		k.n++
		if typ == "ItemAdded" {
			k.in += count
		} else if delta > 0 {
			k.in += delta
		} else {
			k.out -= delta
		}
		want[key{day, sku}] = k
	}
	require.NoError(t, rows.Err())
	var wantRows []string
	for k, v := range want {
		wantRows = append(wantRows, fmt.Sprintf("%s %s %d %d %d", k.day, k.sku, v.in, v.out, v.n))
	}
	sort.Strings(wantRows)
	movements := func() []string {
		return dump(t, f, "SELECT m.day::text, m.sku, m.units_in, m.units_out, m.movements FROM inventory.movements_per_day AS m ORDER BY 1, 2")
	}
	refreshedThroughHeadAll(t, f)
	require.Equal(t, wantRows, movements())
	require.Contains(t, strings.Join(movements(), "\n"), " a003 ")

	before := movements()
	m.adjust(t, f, "a001", -4)
	require.Equal(t, before, movements(), "appends do not refresh the view")
	refreshedThroughHeadAll(t, f)
	require.NotEqual(t, before, movements())
	require.Equal(t, m.rows(), itemCounts(t, f))
}

// refreshedThroughHeadAll refreshes every registered view until none lags the last event.
func refreshedThroughHeadAll(t testing.TB, f fixture) {
	t.Helper()
	eventually(t, 30*time.Second, "the views to be refreshed through the last event", func() bool {
		res, err := f.store.RefreshViews(f.ctx, true)
		require.NoError(t, err)
		for _, r := range res {
			require.Nil(t, r.Error, r.View)
		}
		return scalar[int64](t, f, "SELECT coalesce(max(m.events_behind), 0) FROM annals.view_freshness AS m") == 0
	})
}

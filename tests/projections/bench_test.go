package projections_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/internal/inventory/readmodels"
)

// The cost of inline dispatch: single-event appends to inventory streams from 8 goroutines, with
// the inventory projection disabled (the dispatch trigger is then off too) and enabled. Run with
//
//	go test -run '^$' -bench Inline -benchtime 3s ./tests/projections/
func BenchmarkAppendInlineProjectionOff(b *testing.B) { benchmarkInventoryAppends(b, false) }

// BenchmarkAppendInlineProjectionOn is BenchmarkAppendInlineProjectionOff with the projection on.
func BenchmarkAppendInlineProjectionOn(b *testing.B) { benchmarkInventoryAppends(b, true) }

func benchmarkInventoryAppends(b *testing.B, enabled bool) {
	ctx := context.Background()
	pool := annalstest.NewDB(b)
	store := annals.New(pool, annals.ClientOptions{})
	if err := readmodels.Install(ctx, pool); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "SELECT annals.set_projection_enabled('inventory_item_counts', $1)", enabled); err != nil {
		b.Fatal(err)
	}
	var trigger string
	if err := pool.QueryRow(ctx, `SELECT t.tgenabled::text FROM pg_trigger AS t
		WHERE t.tgrelid = 'annals_internal.events'::regclass AND t.tgname = 'events_dispatch_inline'`).Scan(&trigger); err != nil {
		b.Fatal(err)
	}
	if (trigger != "D") != enabled {
		b.Fatalf("dispatch trigger state %q with the projection enabled=%v", trigger, enabled)
	}

	var workers, added atomic.Int64
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0))) // 8 goroutines in all
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		sku := fmt.Sprintf("w%d", workers.Add(1))
		stream := "inventory-" + sku
		first := true
		for pb.Next() {
			e := annals.EventData{Type: "ItemAdjusted", Data: map[string]any{"delta": 1, "reason": "bench"}}
			if first {
				e = annals.EventData{Type: "ItemAdded", Data: map[string]any{"sku": sku, "name": sku, "count": 0}}
				first = false
				added.Add(1)
			}
			if _, err := store.Append(ctx, stream, annals.Any, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if enabled {
		// The projection kept up: the counts add up to the adjustments.
		var sum int64
		if err := pool.QueryRow(ctx, "SELECT coalesce(sum(c.count), 0) FROM inventory.item_counts AS c WHERE c.sku LIKE 'w%'").Scan(&sum); err != nil {
			b.Fatal(err)
		}
		if want := int64(b.N) - added.Load(); sum != want {
			b.Fatalf("item counts add up to %d, want %d", sum, want)
		}
	}
}

package demo

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/annals-db/annals/goapi/domain"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/annals-db/annals/internal/progress"
)

// snapshotCommands is how many adjustments the snapshot step makes, in transactions of
// snapshotBatch commands.
const (
	snapshotCommands = 120
	snapshotBatch    = 30
)

func (s *story) snapshot(ctx context.Context) error {
	s.heading("Snapshots: long streams load fast")
	s.say("Loading an item replays its events. The service's repository saves a snapshot of the state",
		"every 100 events (after the append, so it never slows down or fails one) and then loads the",
		"latest snapshot plus the events after it. 120 sales and deliveries of Red gear, through the",
		"repository, 30 commands per transaction:")
	s.sql(`service := inventory.NewService(client, domain.RepositoryOptions{SnapshotEvery: 100})
tx, _ := pool.Begin(ctx)
for _, delta := range deltas[:30] {  // +3, -2, +5, -4, +1, +3, ...
    item, err = service.HandleTx(ctx, tx, inventory.AdjustCount{SKU: "7", Delta: delta})
}
tx.Commit(ctx)  // and 3 more transactions like it`)
	const sku = "7"
	stream := inventory.StreamID(sku)
	t0 := time.Now()
	var item inventory.Item
	for done := 0; done < snapshotCommands; {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return err
		}
		for end := done + snapshotBatch; done < end; done++ {
			delta := []int{3, -2, 5, -4, 1}[done%5]
			reason := "delivery"
			if delta < 0 {
				reason = "sale"
			}
			if item, err = s.svc.HandleTx(ctx, tx, inventory.AdjustCount{SKU: sku, Delta: delta, Reason: reason}); err != nil {
				_ = tx.Rollback(ctx)
				return fmt.Errorf("adjust %s: %w", stream, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}
	s.result("%s at version %d, %d in stock (%d commands, %d transactions, %s)", stream, item.Version, item.Count,
		snapshotCommands, snapshotCommands/snapshotBatch, progress.Duration(time.Since(t0)))

	snap, err := s.query(ctx, "SELECT stream_version, state FROM annals.load_snapshot('inventory-7', 'inventory-item', 1);")
	if err != nil {
		return err
	}
	if len(snap.rows) != 1 {
		return fmt.Errorf("annals.load_snapshot found %d snapshots of %s, want 1", len(snap.rows), stream)
	}
	at, err := strconv.ParseInt(snap.get(0, "stream_version"), 10, 64)
	if err != nil || at < 100 || at > item.Version {
		return fmt.Errorf("the snapshot of %s is at version %s, want 100 to %d", stream, snap.get(0, "stream_version"), item.Version)
	}
	s.result("the latest snapshot: %s's state at version %d", stream, at)
	tail, err := s.query(ctx, fmt.Sprintf("SELECT count(*) AS tail FROM annals.read_stream('inventory-7', from_version => %d);", at+1))
	if err != nil {
		return err
	}
	if want := strconv.FormatInt(item.Version-at, 10); tail.rows[0][0] != want {
		return fmt.Errorf("annals.read_stream counts %s events after the snapshot, want %s", tail.rows[0][0], want)
	}

	loaded, err := s.svc.Item(ctx, sku)
	if err != nil {
		return err
	}
	replay, err := inventory.NewService(s.store, domain.RepositoryOptions{SnapshotEvery: -1}).Item(ctx, sku)
	if err != nil {
		return err
	}
	if loaded != replay || loaded != item {
		return fmt.Errorf("snapshot + tail loads %+v, a full replay %+v, the last command returned %+v", loaded, replay, item)
	}
	s.result("service.Item(ctx, %q): snapshot + %d events = %d in stock at version %d, as a full replay",
		sku, item.Version-at, loaded.Count, loaded.Version)
	s.fact("snapshot of %s at version %d: loaded with %d more events, equal to a full replay", stream, at, item.Version-at)
	return nil
}

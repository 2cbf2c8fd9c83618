package inventory_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

type env struct {
	pool    *pgxpool.Pool
	client  *annals.Client
	service *inventory.Service
}

func newEnv(t *testing.T, opts domain.RepositoryOptions) env {
	t.Helper()
	pool := annalstest.NewDB(t)
	require.NoError(t, readmodels.Install(t.Context(), pool))
	client := annals.New(pool, annals.ClientOptions{})
	return env{pool: pool, client: client, service: inventory.NewService(client, opts)}
}

// projected is the inline projection's row for sku: what BI tools see.
func (e env) projected(t *testing.T, sku string) (count int, version int64) {
	t.Helper()
	require.NoError(t, e.pool.QueryRow(t.Context(),
		"SELECT c.count, c.version FROM inventory.item_counts AS c WHERE c.sku = $1", sku).Scan(&count, &version))
	return count, version
}

func TestService(t *testing.T) {
	t.Parallel()
	e := newEnv(t, domain.RepositoryOptions{})
	ctx := t.Context()

	t.Run("add, adjust, read back; the projection agrees", func(t *testing.T) {
		t.Parallel()
		item, err := e.service.AddItem(ctx, "42", "Blue widget", 10)
		require.NoError(t, err)
		require.Equal(t, inventory.Item{SKU: "42", Name: "Blue widget", Count: 10, Exists: true, Version: 1}, item)
		item, err = e.service.AdjustCount(ctx, "42", 5, "delivery")
		require.NoError(t, err)
		require.Equal(t, 15, item.Count)
		item, err = e.service.AdjustCount(ctx, "42", -3, "sale")
		require.NoError(t, err)
		require.Equal(t, 12, item.Count)
		require.Equal(t, int64(3), item.Version)

		_, err = e.service.AdjustCount(ctx, "42", -20, "sale")
		var insufficient *inventory.InsufficientInventoryError
		require.ErrorAs(t, err, &insufficient)
		require.Equal(t, 12, insufficient.Available)
		require.Equal(t, 20, insufficient.Requested)
		require.ErrorIs(t, err, inventory.ErrInsufficientInventory)

		loaded, err := e.service.Item(ctx, "42")
		require.NoError(t, err)
		require.Equal(t, item, loaded, "the rejected sale appended nothing")
		count, version := e.projected(t, "42")
		require.Equal(t, 12, count)
		require.Equal(t, int64(3), version)

		// The stream holds exactly the names and shapes the demo and the SQL read models use.
		var got []string
		for ev, err := range e.client.ReadStream(ctx, inventory.StreamID("42"), annals.ReadOptions{}) {
			require.NoError(t, err)
			got = append(got, ev.EventType+" "+string(ev.Data))
		}
		require.Equal(t, []string{
			`ItemAdded {"sku": "42", "name": "Blue widget", "count": 10}`,
			`ItemAdjusted {"delta": 5, "reason": "delivery"}`,
			`ItemAdjusted {"delta": -3, "reason": "sale"}`,
		}, got)
	})

	t.Run("unknown items and duplicates", func(t *testing.T) {
		t.Parallel()
		_, err := e.service.Item(ctx, "nope")
		require.ErrorIs(t, err, inventory.ErrItemNotFound)
		_, err = e.service.AdjustCount(ctx, "nope", 1, "delivery")
		require.ErrorIs(t, err, inventory.ErrItemNotFound)
		_, err = e.service.AddItem(ctx, "dup", "Thing", 1)
		require.NoError(t, err)
		_, err = e.service.AddItem(ctx, "dup", "Thing", 1)
		require.ErrorIs(t, err, inventory.ErrItemExists)
		_, err = e.service.AddItem(ctx, "bad ", "Thing", 1)
		require.ErrorIs(t, err, annals.ErrInvalidArgument, "the database refuses a malformed stream id")
	})

	t.Run("concurrent sales never oversell", func(t *testing.T) {
		t.Parallel()
		busy := inventory.NewService(e.client, domain.RepositoryOptions{MaxAttempts: 200})
		_, err := busy.AddItem(ctx, "hot", "Hot item", 10)
		require.NoError(t, err)
		var wg sync.WaitGroup
		var sold, refused atomic.Int32
		for range 25 {
			wg.Go(func() {
				_, err := busy.AdjustCount(ctx, "hot", -1, "sale")
				switch {
				case err == nil:
					sold.Add(1)
				case errors.Is(err, inventory.ErrInsufficientInventory):
					refused.Add(1)
				default:
					t.Errorf("sale: %v", err)
				}
			})
		}
		wg.Wait()
		require.Equal(t, int32(10), sold.Load())
		require.Equal(t, int32(15), refused.Load())
		item, err := busy.Item(ctx, "hot")
		require.NoError(t, err)
		require.Equal(t, 0, item.Count)
		require.Equal(t, int64(11), item.Version)
		count, version := e.projected(t, "hot")
		require.Equal(t, 0, count)
		require.Equal(t, int64(11), version)
	})

	t.Run("the caller's transaction", func(t *testing.T) {
		t.Parallel()
		_, err := e.service.AddItem(ctx, "tx", "Boxed", 5)
		require.NoError(t, err)
		tx, err := e.pool.Begin(ctx)
		require.NoError(t, err)
		item, err := e.service.HandleTx(ctx, tx, inventory.AdjustCount{SKU: "tx", Delta: -2, Reason: "sale"})
		require.NoError(t, err)
		require.Equal(t, 3, item.Count)
		require.NoError(t, tx.Rollback(ctx))
		item, err = e.service.Item(ctx, "tx")
		require.NoError(t, err)
		require.Equal(t, 5, item.Count, "rolled back with the caller's transaction")
		count, _ := e.projected(t, "tx")
		require.Equal(t, 5, count)
	})
}

func TestRebuildSnapshotsAndHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, domain.RepositoryOptions{})
	ctx := t.Context()
	_, err := e.service.AddItem(ctx, "7", "Gear", 100)
	require.NoError(t, err)
	count := 100
	for i := range 249 {
		delta := []int{3, -2, 5, -4, 1}[i%5]
		item, err := e.service.AdjustCount(ctx, "7", delta, "churn")
		require.NoError(t, err)
		count += delta
		require.Equal(t, count, item.Count)
	}

	snap, ok, err := e.client.LoadSnapshot(ctx, inventory.StreamID("7"), inventory.SnapshotType, 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(200), snap.StreamVersion, "every 100 events")

	withSnapshots, err := e.service.Item(ctx, "7")
	require.NoError(t, err)
	replay := inventory.NewService(e.client, domain.RepositoryOptions{SnapshotEvery: -1})
	fromEvents, err := replay.Item(ctx, "7")
	require.NoError(t, err)
	require.Equal(t, fromEvents, withSnapshots, "snapshot + tail equals a full replay")
	require.Equal(t, inventory.Item{SKU: "7", Name: "Gear", Count: count, Exists: true, Version: 250}, withSnapshots)
	projected, version := e.projected(t, "7")
	require.Equal(t, count, projected)
	require.Equal(t, int64(250), version)

	// Rebuilding from the raw events by hand gives the same item.
	d := inventory.Decider()
	reg := inventory.NewRegistry()
	rebuilt := d.Initial()
	for ev, err := range e.client.ReadStream(ctx, inventory.StreamID("7"), annals.ReadOptions{}) {
		require.NoError(t, err)
		typed, err := reg.Decode(ev)
		require.NoError(t, err)
		rebuilt = d.Evolve(rebuilt, typed)
	}
	rebuilt.Version = 250
	require.Equal(t, fromEvents, rebuilt)

	// The past, with and without snapshots.
	for _, v := range []int64{1, 2, 150, 200, 201, 250} {
		at, err := e.service.ItemAt(ctx, "7", annals.AtVersion(v))
		require.NoError(t, err)
		again, err := replay.ItemAt(ctx, "7", annals.AtVersion(v))
		require.NoError(t, err)
		require.Equal(t, again, at)
		require.Equal(t, v, at.Version)
	}
	first, err := e.service.ItemAt(ctx, "7", annals.AtVersion(1))
	require.NoError(t, err)
	require.Equal(t, 100, first.Count)
	_, err = e.service.ItemAt(ctx, "7", annals.AtVersion(0))
	require.ErrorIs(t, err, inventory.ErrItemNotFound)
}

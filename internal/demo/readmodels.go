package demo

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/annals-db/annals/internal/progress"
)

// installSQL is the gist of internal/inventory/readmodels/001_read_models.sql, which
// readmodels.Install runs.
const installSQL = `-- internal/inventory/readmodels/001_read_models.sql, in short:
CREATE TABLE inventory.item_counts (sku text PRIMARY KEY, name text, count integer,
    version bigint, updated_at timestamptz) PARTITION BY HASH (sku);  -- and 4 partitions
CREATE FUNCTION inventory.project_item_counts(events annals.event[]) RETURNS void ...;
SELECT annals.register_projection('inventory_item_counts',
         'inventory.project_item_counts(annals.event[])',
         ARRAY['inventory.item_counts']::regclass[],
         event_types => ARRAY['ItemAdded', 'ItemAdjusted'],
         categories => ARRAY['inventory'], mode => 'inline');
SELECT annals.rebuild_projection('inventory_item_counts');  -- project the history so far`

const itemCountsSQL = "SELECT * FROM inventory.item_counts ORDER BY sku;"

func (s *story) projection(ctx context.Context) error {
	s.heading("A read model, kept current by the append itself")
	s.say("Read models are plain tables that projections keep current, for the application and for",
		"BI tools. inventory_item_counts is an inline projection: a trigger hands each append's events",
		"to a set-based SQL handler inside the append's own transaction. readmodels.Install (Go package",
		"internal/inventory/readmodels) creates it:")
	s.sql(installSQL)
	t0 := time.Now()
	if err := readmodels.Install(ctx, s.pool); err != nil {
		return err
	}
	s.result("installed in %s; the history of inventory-42 is projected already:", progress.Duration(time.Since(t0)))
	rows, err := s.query(ctx, itemCountsSQL)
	if err != nil {
		return err
	}
	want := []string{s.sku, s.final.Name, strconv.Itoa(s.final.Count), strconv.FormatInt(s.final.Version, 10)}
	if len(rows.rows) != 1 || !reflect.DeepEqual(rows.rows[0][:4], want) {
		return fmt.Errorf("after the install inventory.item_counts holds %v, want one row starting %v", rows.rows, want)
	}

	fmt.Fprintln(s.out)
	s.say("Now add an item inside a transaction and read the table before COMMIT:")
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	gear := inventory.AddItem{SKU: "7", Name: "Red gear", Count: 500}
	item, err := s.svc.HandleTx(ctx, tx, gear)
	if err != nil {
		return fmt.Errorf("add %s: %w", gear.Name, err)
	}
	ev, err := s.reg.Encode(inventory.ItemAdded{SKU: gear.SKU, Name: gear.Name, Count: gear.Count}, domain.Metadata{})
	if err != nil {
		return err
	}
	s.sql("BEGIN;\n" + appendSQL(inventory.StreamID(gear.SKU), annals.NoStream, ev))
	s.result("version %d", item.Version)
	inside, err := s.queryOn(ctx, tx, "SELECT sku, name, count, version FROM inventory.item_counts WHERE sku = '7';")
	if err != nil {
		return err
	}
	if len(inside.rows) != 1 || inside.get(0, "count") != "500" || inside.get(0, "version") != "1" {
		return fmt.Errorf("inside the appending transaction inventory.item_counts shows %v for sku 7, want count 500 at version 1", inside.rows)
	}
	s.result("already there, inside the appending transaction")

	const otherSQL = "SELECT count(*) FROM inventory.item_counts WHERE sku = '7';"
	other, err := fetchText(ctx, s.pool, otherSQL)
	if err != nil {
		return err
	}
	if other.rows[0][0] != "0" {
		return fmt.Errorf("another session sees %s rows for sku 7 before COMMIT, want 0", other.rows[0][0])
	}
	s.sql("-- meanwhile, in another session:\n" + otherSQL)
	s.result("0: another session sees nothing of the append until COMMIT")
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	s.sql("COMMIT;")
	after, err := s.svc.Item(ctx, gear.SKU)
	if err != nil {
		return err
	}
	count, version, err := s.projected(ctx, gear.SKU)
	if err != nil {
		return err
	}
	if count != after.Count || version != after.Version {
		return fmt.Errorf("after COMMIT inventory.item_counts says %d at version %d, the events %d at %d", count, version, after.Count, after.Version)
	}
	s.result("committed: events and read model together, now visible to every session")
	s.fact("inline projection: inventory.item_counts changed inside the appending transaction, atomically")
	return nil
}

// projected is inventory.item_counts' count and version for sku.
func (s *story) projected(ctx context.Context, sku string) (count int, version int64, err error) {
	err = s.pool.QueryRow(ctx, "SELECT c.count, c.version FROM inventory.item_counts AS c WHERE c.sku = $1", sku).Scan(&count, &version)
	if err != nil {
		return 0, 0, fmt.Errorf("read inventory.item_counts for %s: %w", sku, err)
	}
	return count, version, nil
}

const freshnessSQL = "SELECT view_name, refreshed_at, events_behind FROM annals.view_freshness;"

func (s *story) view(ctx context.Context) error {
	s.heading("A materialized view for heavy aggregates")
	s.say("Aggregates over the whole history are materialized views, refreshed CONCURRENTLY outside the",
		"append path: `annals worker` (or pg_cron) calls annals.refresh_views() on a schedule, and readers",
		"are never blocked. readmodels.Install registered inventory.movements_per_day, units in and out",
		"per item and day, to be refreshed at most once a minute.")
	before, err := s.query(ctx, freshnessSQL)
	if err != nil {
		return err
	}
	if len(before.rows) != 1 || before.get(0, "events_behind") == "0" {
		return fmt.Errorf("before the refresh annals.view_freshness says %v, want one view behind", before.rows)
	}
	s.result("%s behind: the view was not refreshed since Red gear was added", plural(before.get(0, "events_behind"), "event"))
	refreshed, err := s.query(ctx, "SELECT * FROM annals.refresh_views(force => true);  -- force: skip the interval")
	if err != nil {
		return err
	}
	if len(refreshed.rows) != 1 || refreshed.get(0, "refreshed") != "t" {
		return fmt.Errorf("annals.refresh_views returned %v, want the view refreshed", refreshed.rows)
	}
	if err := s.settleView(ctx); err != nil {
		return err
	}
	if _, err := s.query(ctx, "SELECT * FROM inventory.movements_per_day ORDER BY day, sku;"); err != nil {
		return err
	}
	// Units in minus units out per item must be what the projection says is in stock.
	check, err := fetchText(ctx, s.pool, `SELECT count(*) FROM (SELECT m.sku, sum(m.units_in - m.units_out) AS n
		  FROM inventory.movements_per_day AS m GROUP BY m.sku) AS m
		  FULL JOIN inventory.item_counts AS c ON c.sku = m.sku WHERE m.n IS DISTINCT FROM c.count`)
	if err != nil {
		return err
	}
	if check.rows[0][0] != "0" {
		return fmt.Errorf("inventory.movements_per_day disagrees with inventory.item_counts on %s item(s)", check.rows[0][0])
	}
	s.result("units in minus units out per item: what inventory.item_counts says is in stock")
	after, err := s.query(ctx, freshnessSQL)
	if err != nil {
		return err
	}
	if after.get(0, "events_behind") != "0" {
		return fmt.Errorf("after the refresh annals.view_freshness says %v, want 0 events behind", after.rows)
	}
	s.result("fresh: 0 events behind")
	s.fact("materialized view inventory.movements_per_day refreshed CONCURRENTLY, 0 events behind")
	return nil
}

// settleView refreshes the view again, quietly, while annals.view_freshness says it is behind.
// A refresh includes the feed only up to the oldest transaction running anywhere in the cluster
// (other databases' too), so a busy server may need another pass.
func (s *story) settleView(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := fetchText(ctx, s.pool, "SELECT f.events_behind FROM annals.view_freshness AS f")
		if err != nil {
			return err
		}
		if len(r.rows) == 1 && r.rows[0][0] == "0" || time.Now().After(deadline) {
			return nil // the check after it reports a view still behind
		}
		time.Sleep(50 * time.Millisecond)
		if _, err := s.store.RefreshViews(ctx, true); err != nil {
			return err
		}
	}
}

func (s *story) rebuild(ctx context.Context) error {
	s.heading("Rebuild a projection")
	s.say("A new read model, or a fixed handler: rebuild it. annals.rebuild_projection replays the whole",
		"history into fresh tables and swaps them in atomically. Readers see the old rows until the",
		"swap and appends keep flowing meanwhile; annals.projections shows the progress.")
	before, err := fetchText(ctx, s.pool, itemCountsSQL)
	if err != nil {
		return err
	}
	s.sql("SELECT annals.rebuild_projection('inventory_item_counts');")
	bar := progress.New(s.out, "   → rebuilding inventory_item_counts")
	t0 := time.Now()
	n, err := s.store.RebuildProjection(ctx, "inventory_item_counts", bar.Update, 100*time.Millisecond)
	bar.Finish(err == nil)
	if err != nil {
		return err
	}
	s.result("%d events replayed in %s (Go: client.RebuildProjection, with progress)", n, progress.Duration(time.Since(t0)))
	after, err := s.query(ctx, itemCountsSQL)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(before, after) {
		return fmt.Errorf("the rebuilt inventory.item_counts differs from the live one:\nbefore %v\nafter  %v", before.rows, after.rows)
	}
	s.result("identical to the table the appends had kept current, row for row")
	if _, err := s.query(ctx, "SELECT projection_name, mode, state, rebuilt_at FROM annals.projections;"); err != nil {
		return err
	}
	s.fact("projection rebuilt from %d events: the same %d rows the appends had kept current", n, len(after.rows))
	return nil
}

package demo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgcluster"
	"github.com/annals-db/annals/internal/progress"
	"github.com/jackc/pgx/v5/pgxpool"
)

// replicaSetupSQL is the async projection the replica step waits for.
const replicaSetupSQL = `CREATE SCHEMA demo;
CREATE TABLE demo.stock_moves (global_position bigint PRIMARY KEY, stream_id text, event_type text);
CREATE FUNCTION demo.record_moves(events annals.event[]) RETURNS void LANGUAGE sql
    AS 'INSERT INTO demo.stock_moves SELECT e.global_position, e.stream_id, e.event_type FROM unnest(events) AS e';
GRANT USAGE ON SCHEMA demo TO annals_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON demo.stock_moves TO annals_owner;
SELECT annals.register_projection('demo_stock_moves', 'demo.record_moves(annals.event[])', '{demo.stock_moves}', mode => 'async');`

// replica starts a throwaway primary with a streaming hot standby (the scratch database's server
// cannot be given one from here), writes on the primary, reads the write back on the standby and
// waits there for an async projection. Without the server binaries it says so and moves on.
func (s *story) replica(ctx context.Context) error {
	s.heading("Read replicas: write on the primary, read your write on a standby")
	s.say("Reads can be served by streaming hot standbys. The consistency token is the transaction id",
		"an append returns; annals.wait_for(token) on a standby returns once it has replayed that",
		"transaction. A throwaway primary and standby for this step (initdb, pg_basebackup -R):")
	t0 := time.Now()
	primary, err := pgcluster.Start(ctx, pgcluster.Options{Prefix: "annals-demo-"})
	if err != nil {
		s.result("skipped: cannot start a throwaway cluster here (%s)", firstLine(err.Error()))
		return nil
	}
	defer primary.Stop() //nolint:errcheck // a throwaway; its directory goes either way
	pp, err := pgxpool.New(ctx, primary.URL("postgres"))
	if err != nil {
		return err
	}
	defer pp.Close()
	if _, err := annals.Migrate(ctx, pp); err != nil {
		return fmt.Errorf("install Annals on the throwaway primary: %w", err)
	}
	if _, err := pp.Exec(ctx, replicaSetupSQL); err != nil {
		return fmt.Errorf("replica step setup: %w", err)
	}
	standby, err := primary.StartStandby(ctx)
	if err != nil {
		s.result("skipped: cannot start a standby here (%s)", firstLine(err.Error()))
		return nil
	}
	defer standby.Stop() //nolint:errcheck
	if err := pgcluster.WaitForReplay(ctx, primary.URL("postgres"), standby.URL("postgres")); err != nil {
		return err
	}
	sp, err := pgxpool.New(ctx, standby.URL("postgres"))
	if err != nil {
		return err
	}
	defer sp.Close()
	if err := sp.Ping(ctx); err != nil { // the pool's first connection, outside the timing below
		return err
	}
	s.result("primary on port %d, hot standby on port %d, started in %s", primary.Port, standby.Port, progress.Duration(time.Since(t0)))

	client := annals.New(pp, annals.ClientOptions{Replicas: []*pgxpool.Pool{sp}})
	s.sql(`res, _ := client.Append(ctx, "inventory-99", annals.NoStream, itemAdded)   // the primary`)
	res, err := client.Append(ctx, "inventory-99", annals.NoStream,
		annals.EventData{Type: "ItemAdded", Data: map[string]any{"sku": "99", "name": "Green bolt", "count": 5}})
	if err != nil {
		return err
	}
	s.result("version %d, transaction %d: the token", res.StreamVersion, res.TransactionID)

	s.sql(`ryw := annals.WithConsistency(ctx, annals.ReadYourWrites(res.TransactionID))
client.StreamInfo(ryw, "inventory-99")   // a standby, once annals.wait_for(token) says it has it`)
	t1 := time.Now()
	info, err := client.StreamInfo(annals.WithConsistency(ctx, annals.ReadYourWrites(res.TransactionID)), "inventory-99")
	if err != nil {
		return err
	}
	if st := client.ReplicaStats(); len(st.Replicas) != 1 || st.Replicas[0].Reads != 1 || info.StreamVersion != 1 {
		return fmt.Errorf("read-your-writes on the standby: version %d, stats %+v", info.StreamVersion, st)
	}
	s.result("version %d, read on the standby %s after the append", info.StreamVersion, progress.Duration(time.Since(t1)))

	s.sql(fmt.Sprintf("SELECT annals.wait_for_projection('demo_stock_moves', '%d', '0');   -- on the standby", res.TransactionID))
	ok, err := client.WaitForProjection(ctx, "demo_stock_moves", res.TransactionID, 0)
	if err != nil {
		return err
	}
	if ok {
		return errors.New("the async projection had the event before it ran")
	}
	s.result("f: the async projection has not run yet")
	s.sql("SELECT annals.run_async_projections();   -- on the primary: annals worker's job")
	if _, err := client.RunAsyncProjections(ctx, 1000); err != nil {
		return err
	}
	t2 := time.Now()
	ok, err = client.WaitForProjection(ctx, "demo_stock_moves", res.TransactionID, 10*time.Second)
	if err != nil || !ok {
		return fmt.Errorf("wait for the projection on the standby: %v, %w", ok, err)
	}
	var rows int
	if err := sp.QueryRow(ctx, "SELECT count(*) FROM demo.stock_moves").Scan(&rows); err != nil {
		return err
	}
	s.result("t on the standby %s later; its demo.stock_moves has %d row(s)", progress.Duration(time.Since(t2)), rows)

	s.sql(`annals.New(standbyPool, annals.ClientOptions{}).Append(ctx, "inventory-99", annals.Any, itemAdjusted)`)
	_, err = annals.New(sp, annals.ClientOptions{}).Append(ctx, "inventory-99", annals.Any,
		annals.EventData{Type: "ItemAdjusted", Data: map[string]any{"delta": 1, "reason": "recount"}})
	if !errors.Is(err, annals.ErrReadOnlyServer) {
		return fmt.Errorf("an append on the standby: %v, want ErrReadOnlyServer", err)
	}
	s.result("refused: %s", strings.TrimPrefix(err.Error(), "annals: "))
	s.fact("read replicas: an append on the primary read back on a standby (read-your-writes), an async projection waited for there, an append on the standby refused (25006)")
	return nil
}

package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// streamLen is the length of every stream the loader writes.
const streamLen = 100

// loadedSet is one loader call's streams: load-<tag>x0 .. load-<tag>x<streams-1>, streamLen
// events each.
type loadedSet struct {
	tag     int
	streams int
}

// reset empties the event store and the baseline table so a scenario starts from the same state
// whatever ran before it, then checkpoints. Events are append-only: emptying them goes around
// the TRUNCATE guard trigger with session_replication_role, which needs a superuser; without
// one the store is left as it is.
func (b *Bench) reset(ctx context.Context) error {
	b.stored, b.loaded = 0, nil
	if !b.superuser {
		return nil
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	stmts := []string{
		"SET LOCAL session_replication_role = replica",
		"TRUNCATE annals_internal.events, annals_internal.streams, annals_internal.cold_tags, annals_internal.cold_segments, annals_internal.cold_batches, bench.raw_events, bench.guide_events",
	}
	var hasInventory bool
	if err := tx.QueryRow(ctx, "SELECT pg_catalog.to_regclass('inventory.item_counts') IS NOT NULL").Scan(&hasInventory); err != nil {
		return err
	}
	if hasInventory {
		stmts = append(stmts, "TRUNCATE inventory.item_counts")
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("reset store: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("reset store: %w", err)
	}
	if _, err := b.pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("reset store: checkpoint: %w", err)
	}
	return nil
}

// load writes n events (rounded up to whole streams of streamLen) straight into
// annals_internal.events, as a superuser, bypassing append_events: n/streamLen new streams
// whose events are interleaved (event g goes to stream g mod streams), so reading one stream
// touches pages all over the table as it would after months of traffic. Chunks of events are
// inserted by two connections at once, each chunk one transaction whose id is taken in chunk
// order (so transaction ids grow with stream versions, as the feed expects); the matching
// streams rows are written last. Then the table is vacuumed and analyzed, and the call waits
// until the feed barrier has passed the loaded transactions.
func (b *Bench) load(ctx context.Context, n int, label string) (loadedSet, error) {
	streams := max(1, (n+streamLen-1)/streamLen)
	n = streams * streamLen
	b.loadTag++
	set := loadedSet{tag: b.loadTag, streams: streams}
	prefix := fmt.Sprintf("load-%dx", set.tag)
	const chunk = 200_000
	chunks := (n + chunk - 1) / chunk
	b.prog.step(fmt.Sprintf("%s: load %s events directly", label, formatNumber(float64(n))), loadEstimate(n))

	var mu sync.Mutex // hands out chunks; held until the chunk's transaction has its id
	next := 0
	var lastXid uint64
	var firstErr error
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				if next >= chunks || firstErr != nil {
					mu.Unlock()
					return
				}
				c := next
				next++
				tx, err := b.pool.Begin(ctx)
				var xid uint64
				if err == nil {
					err = tx.QueryRow(ctx, "SELECT pg_catalog.pg_current_xact_id()::text::bigint").Scan(&xid)
				}
				if err == nil && xid > lastXid {
					lastXid = xid
				}
				mu.Unlock()
				if err == nil {
					_, err = tx.Exec(ctx, `
						INSERT INTO annals_internal.events (stream_id, stream_version, event_id, event_type, schema_version,
						                                    data, metadata, transaction_id, recorded_at)
						SELECT $1 || (g % $2), g / $2 + 1, gen_random_uuid(), 'Loaded', 1,
						       jsonb_build_object('sku', 'sku-' || (g % $2), 'count', g % 100, 'note', 'bulk-loaded event'),
						       '{}', pg_current_xact_id(), now()
						  FROM generate_series($3::bigint, $4::bigint) AS g`,
						prefix, streams, c*chunk, min((c+1)*chunk, n)-1)
				}
				if err == nil {
					err = tx.Commit(ctx)
				}
				if err != nil {
					if tx != nil {
						_ = tx.Rollback(context.WithoutCancel(ctx))
					}
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return set, fmt.Errorf("load: %w", firstErr)
	}
	if err := ctx.Err(); err != nil {
		return set, err
	}
	_, err := b.pool.Exec(ctx, `
		INSERT INTO annals_internal.streams (stream_id, category, stream_version, last_transaction_id, created_at, updated_at)
		SELECT $1 || k, 'load', $3, $4::text::xid8, now(), now() FROM generate_series(0, $2 - 1) AS k`,
		prefix, streams, streamLen, strconv.FormatUint(lastXid, 10))
	if err != nil {
		return set, fmt.Errorf("load: streams rows: %w", err)
	}
	b.prog.step(fmt.Sprintf("%s: vacuum and analyze %s events", label, formatNumber(float64(b.stored+n))), vacuumEstimate(b.stored+n))
	for _, s := range []string{"VACUUM (ANALYZE) annals_internal.events", "VACUUM (ANALYZE) annals_internal.streams", "CHECKPOINT"} {
		if _, err := b.pool.Exec(ctx, s); err != nil {
			return set, fmt.Errorf("load: %s: %w", s, err)
		}
	}
	b.stored += n
	b.loaded = append(b.loaded, set)
	return set, b.waitForBarrier(ctx, lastXid)
}

// waitForBarrier waits (up to a minute) until every transaction up to xid is below the feed
// barrier, i.e. no older transaction anywhere in the cluster is still running.
func (b *Bench) waitForBarrier(ctx context.Context, xid uint64) error {
	deadline := time.Now().Add(time.Minute)
	for {
		var xmin uint64
		err := b.pool.QueryRow(ctx, "SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint").Scan(&xmin)
		if err != nil {
			return err
		}
		if xmin > xid {
			return nil
		}
		if time.Now().After(deadline) {
			b.prog.note("the feed barrier is still behind the loaded events after a minute: a long transaction elsewhere on the server holds it")
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// randomLoadedStream picks a stream the loader wrote, uniformly over all loaded streams.
func (b *Bench) randomLoadedStream(r *rand.Rand) string {
	total := 0
	for _, s := range b.loaded {
		total += s.streams
	}
	k := r.IntN(max(total, 1))
	for _, s := range b.loaded {
		if k < s.streams {
			return fmt.Sprintf("load-%dx%d", s.tag, k)
		}
		k -= s.streams
	}
	return "load-0x0"
}

// loadEstimate and vacuumEstimate guess durations on a small machine, for the progress bar.
func loadEstimate(n int) time.Duration   { return time.Duration(n) * 15 * time.Microsecond }
func vacuumEstimate(n int) time.Duration { return time.Duration(n)*3*time.Microsecond + time.Second }

// backendPID returns the server process id of a connection.
func backendPID(ctx context.Context, c *pgx.Conn) (int, error) {
	var pid int
	err := c.QueryRow(ctx, "SELECT pg_catalog.pg_backend_pid()").Scan(&pid)
	return pid, err
}

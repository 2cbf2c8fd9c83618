package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	annals "github.com/annals-db/annals/goapi"
)

// The cold-storage scenario (opt-in: --scenarios cold-storage): the figures of M11's targets,
// each next to the same measurement on hot events in the same run.
//   - bytes on disk per event, cold (after annals.compress_events) vs hot (the same events
//     before), on inventory-like events of about 500 bytes of JSON;
//   - Client.ReadStream of a 100-event stream that is entirely cold vs one that is hot;
//   - feed catch-up (Client.ReadAll, pages of 1,000, decoded) through cold history vs hot;
//   - single-event appends to streams with cold history vs streams without;
//   - annals.compress_events' rate while 8 clients append, and those appends' throughput next
//     to the same appends without a move running.

func (b *Bench) coldEvents() int {
	if b.cfg.Quick {
		return 30_000
	}
	return 300_000
}

// coldStreamLen is the length of the scenario's streams.
const coldStreamLen = 100

// loadRealistic inserts streams x coldStreamLen inventory-like events straight into the events
// table (as a superuser), interleaved across streams, 10,000 per transaction, recorded 60 days
// ago, with their streams rows; then vacuums and analyzes.
func (b *Bench) loadRealistic(ctx context.Context, prefix string, streams int) error {
	n := streams * coldStreamLen
	for from := 0; from < n; from += 10_000 {
		_, err := b.pool.Exec(ctx, `
			INSERT INTO annals_internal.events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, transaction_id, recorded_at)
			SELECT $1 || (g % $2), g / $2 + 1, gen_random_uuid(),
			       (ARRAY['ItemsReceived', 'ItemsShipped', 'ItemsReserved', 'ReservationReleased'])[1 + g % 4], 1,
			       jsonb_build_object('sku', 'sku-' || (g % 1000), 'warehouse', 'wh-' || (g % 7), 'quantity', g % 50,
			                          'reason', 'restock from supplier order', 'order_id', gen_random_uuid(),
			                          'unit_price', (g % 997) / 10.0, 'currency', 'EUR',
			                          'lines', jsonb_build_array(jsonb_build_object('line', 1, 'qty', g % 9),
			                                                     jsonb_build_object('line', 2, 'qty', g % 5))),
			       jsonb_build_object('correlation_id', gen_random_uuid(), 'causation_id', gen_random_uuid(),
			                          'user', 'user-' || (g % 37), 'source', 'api', 'client', 'inventory-service/1.4.2'),
			       pg_current_xact_id(), now() - interval '60 days'
			  FROM generate_series($3::bigint, $4::bigint) AS g`, prefix, streams, from, min(from+10_000, n)-1)
		if err != nil {
			return fmt.Errorf("load cold-storage events: %w", err)
		}
	}
	if _, err := b.pool.Exec(ctx, `
		INSERT INTO annals_internal.streams (stream_id, category, stream_version, last_transaction_id, state, created_at, updated_at)
		SELECT e.stream_id, min(e.category), max(e.stream_version), max(e.transaction_id), 'active', min(e.recorded_at), max(e.recorded_at)
		  FROM annals_internal.events AS e WHERE e.stream_id LIKE $1 || '%' GROUP BY e.stream_id`, prefix); err != nil {
		return fmt.Errorf("load cold-storage streams: %w", err)
	}
	_, err := b.pool.Exec(ctx, "VACUUM ANALYZE annals_internal.events")
	return err
}

func (b *Bench) tierBytesPerEvent(ctx context.Context, tier string) (float64, error) {
	var v float64
	err := b.pool.QueryRow(ctx, "SELECT coalesce(s.bytes_per_event, 0)::float8 FROM annals.storage_stats() AS s WHERE s.tier = $1", tier).Scan(&v)
	return v, err
}

func coldStorageScenario() scenario {
	return scenario{
		name:           "cold-storage",
		summary:        "cold storage (M11): bytes per event, stream reads, feed replay and appends on cold history vs hot, compress_events' rate under 8 appending clients",
		optIn:          true,
		needsSuperuser: true,
		estimate: func(b *Bench) time.Duration {
			n := b.coldEvents()
			return 3*loadEstimate(n) + time.Duration(4*b.reps)*b.dur + time.Duration(6*b.reps*n)*10*time.Microsecond
		},
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			n := b.coldEvents()
			streams := n / coldStreamLen
			label := fmt.Sprintf("cold storage, %s events", formatNumber(float64(n)))
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			client := annals.New(b.pool, annals.ClientOptions{})
			var out []Result

			// 1. Bytes: the first history, hot, then cold.
			b.prog.step(label+": load and compress", loadEstimate(2*n))
			if err := b.loadRealistic(ctx, "cold-", streams); err != nil {
				return nil, err
			}
			hotBytes, err := b.tierBytesPerEvent(ctx, "hot")
			if err != nil {
				return nil, err
			}
			t0 := time.Now()
			moved, err := client.CompressEvents(ctx, 30*24*time.Hour, int64(n))
			if err != nil {
				return nil, err
			}
			idleRate := float64(moved) / time.Since(t0).Seconds()
			coldBytes, err := b.tierBytesPerEvent(ctx, "cold")
			if err != nil {
				return nil, err
			}
			r := figure(label+": bytes on disk per event", "bytes", []float64{coldBytes}, []float64{hotBytes},
				"the same events hot (annals.storage_stats before the move: heap, TOAST, indexes, freshly vacuumed)",
				"annals.storage_stats() after annals.compress_events moved them all (per-stream segments of 100, lz4)", ratioAtMost(1.0/3))
			r.Note = fmt.Sprintf("inventory-like events, about 520 bytes of JSON data + metadata (three random uuids); stretch target 0.20x; compress_events alone moved %s events/s", formatNumber(idleRate))
			out = append(out, r)

			// A second history, hot: the hot side of the read comparisons.
			if err := b.loadRealistic(ctx, "warm-", streams); err != nil {
				return nil, err
			}
			var hotStart annals.Checkpoint
			if err := b.pool.QueryRow(ctx, `SELECT e.transaction_id::text::bigint, e.global_position - 1 FROM annals_internal.events AS e
				WHERE e.stream_id LIKE 'warm-%' ORDER BY e.transaction_id, e.global_position LIMIT 1`).
				Scan(&hotStart.TransactionID, &hotStart.GlobalPosition); err != nil {
				return nil, err
			}

			// 2. read_stream, 100 events, cold vs hot.
			readStreams := func(prefix string) func(context.Context) (float64, error) {
				return func(ctx context.Context) (float64, error) {
					t0 := time.Now()
					reads := 0
					for time.Since(t0) < b.dur/2 {
						got := 0
						for _, err := range client.ReadStream(ctx, fmt.Sprintf("%s%d", prefix, rand.IntN(streams)), annals.ReadOptions{}) {
							if err != nil {
								return 0, err
							}
							got++
						}
						if got != coldStreamLen {
							return 0, fmt.Errorf("read %d events of a %d-event stream", got, coldStreamLen)
						}
						reads++
					}
					return float64(reads) / time.Since(t0).Seconds(), nil
				}
			}
			s, err := b.alternate(ctx, label+": read_stream", side{"hot streams", b.dur / 2, readStreams("warm-")},
				side{"cold streams", b.dur / 2, readStreams("cold-")})
			if err != nil {
				return nil, err
			}
			r = figure(label+": Client.ReadStream of a 100-event stream, cold", "reads/s", s[1], s[0],
				"the same read of a hot 100-event stream (interleaved history, same shape)",
				fmt.Sprintf("Go client, one goroutine, random streams, %d x %s per side, alternated, median", b.reps, b.dur/2), ratioAtLeast(0.5))
			r.Note = "target: at most 2x the hot read's time, i.e. a ratio >= 0.50"
			out = append(out, r)

			// 3. Feed catch-up through cold history vs hot, at the Client's default page size and
			// a larger one (a page that reaches cold events decompresses its whole batch).
			for _, page := range feedPages {
				feed := func(from annals.Checkpoint) func(context.Context) (float64, error) {
					return func(ctx context.Context) (float64, error) {
						return catchUp(ctx, n, func(ctx context.Context, after annals.Checkpoint) ([]annals.RecordedEvent, error) {
							if after == (annals.Checkpoint{}) {
								after = from
							}
							return client.ReadAll(ctx, after, annals.FeedOptions{MaxCount: page})
						})
					}
				}
				est := time.Duration(n) * 10 * time.Microsecond
				s, err = b.alternate(ctx, fmt.Sprintf("%s: feed, pages of %d", label, page),
					side{"hot history", est, feed(hotStart)}, side{"cold history", est, feed(annals.Checkpoint{})})
				if err != nil {
					return nil, err
				}
				out = append(out, figure(fmt.Sprintf("%s: feed catch-up (Client.ReadAll, pages of %s) through cold history", label, formatNumber(float64(page))), "events/s", s[1], s[0],
					"the same catch-up through as many hot events",
					fmt.Sprintf("Go client, decoded into []annals.RecordedEvent, one goroutine; %d reps per side, alternated, median", b.reps), ratioAtLeast(1)))
			}

			// 4. Appends to streams with cold history vs without.
			appends := func(prefix string) func(context.Context) (float64, error) {
				return func(ctx context.Context) (float64, error) {
					t0 := time.Now()
					k := 0
					for time.Since(t0) < b.dur/2 {
						if _, err := b.pool.Exec(ctx, "SELECT annals.append_event($1, NULL, 'ItemsReceived', $2::jsonb)",
							fmt.Sprintf("%s%d", prefix, rand.IntN(streams)), benchData); err != nil {
							return 0, err
						}
						k++
					}
					return float64(k) / time.Since(t0).Seconds(), nil
				}
			}
			s, err = b.alternate(ctx, label+": appends", side{"hot streams", b.dur / 2, appends("warm-")}, side{"cold streams", b.dur / 2, appends("cold-")})
			if err != nil {
				return nil, err
			}
			out = append(out, figure(label+": single appends (append_event) to streams with cold history", "appends/s", s[1], s[0],
				"the same appends to streams whose history is hot",
				fmt.Sprintf("Go/pgx, one client, random streams, %d x %s per side, alternated, median", b.reps, b.dur/2), ratioAtLeast(0.9)))

			// 5. compress_events under 8 appending clients, vs the appends alone.
			clients := 8
			w := appendWorkload(b.streamsPerClient())
			alone, err := b.tps(ctx, w, clients, b.dur)
			if err != nil {
				return nil, err
			}
			var movedUnder atomic.Int64
			var moveErr error
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Add(1)
			t0 = time.Now()
			var moveTime time.Duration
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					// "warm-" is the only hot history left: recorded 60 days ago.
					k, err := client.CompressEvents(ctx, 30*24*time.Hour, 20_000)
					if err != nil {
						moveErr = err
						return
					}
					movedUnder.Add(k)
					moveTime = time.Since(t0)
					if k == 0 {
						return
					}
				}
			}()
			b.prog.step(label+": 8 appending clients with compress_events running", b.dur)
			with, err := b.tps(ctx, w, clients, b.dur)
			close(stop)
			wg.Wait()
			if err != nil {
				return nil, err
			}
			if moveErr != nil {
				return nil, moveErr
			}
			r = figure(label+": appends (8 clients) while compress_events runs", "appends/s", []float64{with}, []float64{alone},
				"the same 8 clients without a move running", b.method(clients)+" (one run per side)", ratioAtLeast(0.9))
			out = append(out, r)
			rate := float64(movedUnder.Load()) / moveTime.Seconds()
			r = figure(label+": compress_events rate while 8 clients append", "events/s", []float64{rate}, []float64{idleRate},
				"compress_events alone (the first history, no appends)",
				fmt.Sprintf("calls of 20,000 events back to back, %s events moved in %s", formatNumber(float64(movedUnder.Load())), moveTime.Round(time.Millisecond)),
				valueAtLeast(50_000))
			if movedUnder.Load() >= int64(n) {
				r.Note = "the move finished before the appends' run ended: the appends' figure covers part of the run without a move"
			}
			out = append(out, r)
			return out, nil
		},
	}
}

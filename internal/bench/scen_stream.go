package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// hotResult is one run of writers on one stream.
type hotResult struct {
	successes, conflicts int64
	elapsed              time.Duration
}

// hotStream runs writers goroutines appending single events to stream with exact expected
// versions through the Go client; a writer that gets ErrWrongExpectedVersion takes the actual
// version from the error and tries again.
func (b *Bench) hotStream(ctx context.Context, stream string, writers int, d time.Duration) (hotResult, error) {
	client := annals.New(b.pool, annals.ClientOptions{AppendAttempts: 1})
	var start int64
	info, err := client.StreamInfo(ctx, stream)
	switch {
	case err == nil:
		start = info.StreamVersion
	case !errors.Is(err, annals.ErrStreamNotFound):
		return hotResult{}, err
	}
	var succ, confl atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	t0 := time.Now()
	deadline := t0.Add(d)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := start
			for time.Now().Before(deadline) && ctx.Err() == nil {
				res, err := client.Append(ctx, stream, annals.Exact(v),
					annals.EventData{Type: "HotEvent", Data: json.RawMessage(benchData)})
				if err == nil {
					succ.Add(1)
					v = res.StreamVersion
					continue
				}
				var wev *annals.WrongExpectedVersionError
				if errors.As(err, &wev) {
					confl.Add(1)
					v = wev.Actual
					continue
				}
				once.Do(func() { firstErr = err })
				return
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return hotResult{}, firstErr
	}
	return hotResult{succ.Load(), confl.Load(), time.Since(t0)}, ctx.Err()
}

// guideHotStream is hotStream with the guide's design: writers goroutines each run the guide's
// append on the hand-written table (BEGIN; SELECT max(version); INSERT version + 1; COMMIT); a
// writer whose INSERT hits UNIQUE (stream_id, version) counts a conflict and tries again.
func (b *Bench) guideHotStream(ctx context.Context, stream string, writers int, d time.Duration) (hotResult, error) {
	var succ, confl atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	t0 := time.Now()
	deadline := t0.Add(d)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
					var v int
					if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM bench.guide_events WHERE stream_id = $1", stream).Scan(&v); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, "INSERT INTO bench.guide_events (stream_id, version, type, data) VALUES ($1, $2, 'HotEvent', $3::jsonb)",
						stream, v+1, benchData)
					return err
				})
				if err == nil {
					succ.Add(1)
					continue
				}
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Code == "23505" {
					confl.Add(1)
					continue
				}
				once.Do(func() { firstErr = err })
				return
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return hotResult{}, firstErr
	}
	return hotResult{succ.Load(), confl.Load(), time.Since(t0)}, ctx.Err()
}

// hotDur is one hot-stream repetition: half the usual in a quick run.
func (b *Bench) hotDur() time.Duration {
	if b.cfg.Quick {
		return b.dur / 2
	}
	return b.dur
}

func hotStreamScenario() scenario {
	return scenario{
		name:     "hot-stream",
		summary:  "8 writers on one stream with exact expected versions, retrying on conflict (Go client)",
		estimate: func(b *Bench) time.Duration { return time.Duration(3*b.reps)*b.hotDur() + time.Second },
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			writers := b.conc
			label := fmt.Sprintf("hot stream, %d writers", writers)
			b.prog.step(label+": warm-up", time.Second)
			if _, err := b.hotStream(ctx, "hot-1", writers, b.hotDur()/4); err != nil {
				return nil, err
			}
			if _, err := b.hotStream(ctx, "solo-1", 1, b.hotDur()/4); err != nil {
				return nil, err
			}
			if _, err := b.guideHotStream(ctx, "guide-hot-1", writers, b.hotDur()/4); err != nil {
				return nil, err
			}
			var hot, solo, guide []hotResult
			_, err := b.alternate(ctx, label,
				side{"1 writer", b.hotDur(), func(ctx context.Context) (float64, error) {
					r, err := b.hotStream(ctx, "solo-1", 1, b.hotDur())
					solo = append(solo, r)
					return 0, err
				}},
				side{fmt.Sprintf("guide's table, %d writers", writers), b.hotDur(), func(ctx context.Context) (float64, error) {
					r, err := b.guideHotStream(ctx, "guide-hot-1", writers, b.hotDur())
					guide = append(guide, r)
					return 0, err
				}},
				side{fmt.Sprintf("%d writers", writers), b.hotDur(), func(ctx context.Context) (float64, error) {
					r, err := b.hotStream(ctx, "hot-1", writers, b.hotDur())
					hot = append(hot, r)
					return 0, err
				}})
			if err != nil {
				return nil, err
			}
			rate := func(rs []hotResult) []float64 {
				var out []float64
				for _, r := range rs {
					out = append(out, float64(r.successes)/r.elapsed.Seconds())
				}
				return out
			}
			perSuccess := func(rs []hotResult) []float64 {
				var out []float64
				for _, r := range rs {
					out = append(out, float64(r.conflicts)/float64(max(r.successes, 1)))
				}
				return out
			}
			method := fmt.Sprintf("Go client (annals.Client.Append, Exact(v)), %d goroutines on stream hot-1; on ST409 retry at the actual version from the error; %d x %s per side, ABBA-alternated, median",
				writers, b.reps, b.hotDur())
			r1 := figure(label+": successes", "appends/s", rate(hot), rate(solo),
				"1 writer on its own stream with exact versions (the stream's serial ceiling)", method, nil)
			r2 := figure(label+": conflicts per success", "conflicts", perSuccess(hot), perSuccess(solo),
				"1 writer (never conflicts)", method, nil)
			r2.Ratio = nil
			r2.Note = "no ratio: the baseline is 0"
			r3 := figure(label+" vs the guide's table: successes", "appends/s", rate(hot), rate(guide),
				fmt.Sprintf("the guide's design, %d goroutines on one stream of its hand-written table: BEGIN; SELECT max(version); INSERT version + 1; COMMIT, on a UNIQUE (stream_id, version) violation try again", writers),
				method+"; the guide's writers alternated in the same rotation", nil)
			r3.Note = fmt.Sprintf("the guide's writers: %.2f conflicts per success (Annals: %.2f)", median(perSuccess(guide)), median(perSuccess(hot)))
			return []Result{r1, r2, r3}, nil
		},
	}
}

// eventSQL selects the columns of annals.event, named, from alias e.
const eventSQL = `e.stream_id, e.stream_version, e.global_position, e.event_id, e.event_type,
	e.schema_version, e.data, e.metadata, e.transaction_id, e.recorded_at`

// timedRead runs one read and decodes every row into annals.RecordedEvent; it returns the
// elapsed time and the number of rows.
func timedRead(ctx context.Context, c *pgx.Conn, sql string, args ...any) (time.Duration, int, error) {
	t0 := time.Now()
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		return 0, 0, err
	}
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByName[annals.RecordedEvent])
	return time.Since(t0), len(evs), err
}

// fillStream appends n events to stream with append_events, 1,000 per call.
func (b *Bench) fillStream(ctx context.Context, stream string, n int) error {
	for done := 0; done < n; done += 1000 {
		_, err := b.pool.Exec(ctx, `SELECT annals.append_events($1, NULL,
			(SELECT jsonb_agg(jsonb_build_object('type', 'BenchEvent', 'data',
			        jsonb_build_object('sku', 'sku-0042', 'count', g, 'note', 'a small event payload')))
			   FROM generate_series(1, $2) AS g))`, stream, min(1000, n-done))
		if err != nil {
			return fmt.Errorf("fill %s: %w", stream, err)
		}
	}
	return nil
}

func readStreamScenario() scenario {
	sizes := []int{1000, 10000}
	iterations := func(b *Bench, n int) int {
		k := 200
		if b.cfg.Quick {
			k = 25
		}
		return max(k*1000/n, 4)
	}
	return scenario{
		name:    "read-stream",
		summary: "reading a 1,000- and a 10,000-event stream with annals.read_stream vs a plain SELECT",
		estimate: func(b *Bench) time.Duration {
			var d time.Duration
			for _, n := range sizes {
				d += time.Duration(b.reps*2*iterations(b, n)*n) * 4 * time.Microsecond
			}
			return d + 2*time.Second
		},
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			b.prog.step("read-stream: write the streams", time.Second)
			for _, n := range sizes {
				if err := b.fillStream(ctx, fmt.Sprintf("read-%d", n), n); err != nil {
					return nil, err
				}
				// A neighbour of the same length so the stream's pages are not all its own.
				if b.cfg.Quick {
					continue
				}
				if err := b.fillStream(ctx, fmt.Sprintf("other-%d", n), n); err != nil {
					return nil, err
				}
			}
			if _, err := b.pool.Exec(ctx, "VACUUM (ANALYZE) annals_internal.events"); err != nil {
				return nil, err
			}
			conns, err := b.connect(ctx, 1, nil)
			if err != nil {
				return nil, err
			}
			defer closeAll(conns)
			c := conns[0]
			var out []Result
			for _, n := range sizes {
				stream := fmt.Sprintf("read-%d", n)
				k := iterations(b, n)
				fnSQL := "SELECT " + eventSQL + " FROM annals.read_stream($1, NULL, $2) AS e"
				plainSQL := "SELECT " + eventSQL + ` FROM annals_internal.events AS e
					WHERE e.stream_id = $1 ORDER BY e.stream_version LIMIT $2`
				for range 3 { // warm-up
					for _, q := range []string{fnSQL, plainSQL} {
						if _, got, err := timedRead(ctx, c, q, stream, n); err != nil || got != n {
							return out, fmt.Errorf("warm-up read of %s: %d rows, %v", stream, got, err)
						}
					}
				}
				// Each repetition alternates the two reads k times; a sample is its median.
				label := fmt.Sprintf("read %s-event stream", formatNumber(float64(n)))
				var fnS, plainS []float64
				for rep := range b.reps {
					b.prog.step(fmt.Sprintf("%s (%d/%d)", label, rep+1, b.reps), time.Duration(2*k*n)*4*time.Microsecond)
					var fnT, plainT []float64
					for i := range k {
						order := []string{fnSQL, plainSQL}
						if i%2 == 1 {
							order = []string{plainSQL, fnSQL}
						}
						for _, q := range order {
							d, _, err := timedRead(ctx, c, q, stream, n)
							if err != nil {
								return out, err
							}
							ms := float64(d) / float64(time.Millisecond)
							if q == fnSQL {
								fnT = append(fnT, ms)
							} else {
								plainT = append(plainT, ms)
							}
						}
					}
					fnS, plainS = append(fnS, median(fnT)), append(plainS, median(plainT))
				}
				out = append(out, figure(label, "ms", fnS, plainS,
					"plain SELECT of the same columns from annals_internal.events WHERE stream_id = $1 ORDER BY stream_version",
					fmt.Sprintf("Go/pgx, one connection, SELECT ... FROM annals.read_stream(id, NULL, %d) decoded into annals.RecordedEvent; %d reps of %d alternated reads, median of medians", n, b.reps, k),
					ratioAtMost(1.2)))
			}
			return out, nil
		},
	}
}

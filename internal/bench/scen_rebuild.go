package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The rebuild-under-load scenario: an inline projection over a loaded history is rebuilt while
// appenders run, once with an append left idle in transaction and once with an open ANALYZE of
// one events partition (standing in for autovacuum), each held open for a while after the
// rebuild has reached its last step. Before M7 that last step queued for SHARE on the events
// table and every append in the store queued behind it for as long as the other transaction
// stayed open. The figures are the appends' latencies during the rebuild next to the same
// appenders' without one.

// rebuildEvents is the size of the history the scenario rebuilds.
func (b *Bench) rebuildEvents() int {
	if b.cfg.Quick {
		return 20_000
	}
	return 500_000
}

// rebuildHold is how long the blocker stays open after the rebuild has reached its last step;
// rebuildBaseline is the length of a measuring window without a rebuild.
func (b *Bench) rebuildHold() time.Duration {
	if b.cfg.Quick {
		return 500 * time.Millisecond
	}
	return 3 * time.Second
}

func (b *Bench) rebuildBaseline() time.Duration {
	if b.cfg.Quick {
		return time.Second
	}
	return 5 * time.Second
}

// Appenders: two write 200-event batches to loaded streams (the projection's category, so the
// rebuild replays them) and pause rebuildBatchPause between appends; two write single events to
// streams of another category and pause rebuildSinglePause. The single appends do little work of
// their own, so their latency is mostly what they waited for.
const (
	rebuildBatchWriters  = 2
	rebuildSingleWriters = 2
	rebuildBatch         = 200
	rebuildBatchPause    = 200 * time.Millisecond
	rebuildSinglePause   = 20 * time.Millisecond
)

// rebuildCase is one kind of transaction left open across the rebuild's last step.
type rebuildCase struct {
	name, label string
	hold        string // what the blocker runs in its transaction, then leaves it idle
}

var rebuildCases = []rebuildCase{
	{"idle", "append idle in transaction",
		`SELECT r.stream_version FROM annals.append_events('bench_idle-1', NULL, '[{"type":"BenchEvent","data":` + benchData + `}]'::jsonb) AS r`},
	{"analyze", "open ANALYZE of a partition",
		"ANALYZE annals_internal.events_p0"},
}

// appendSample is one append: kind (batch or single), when it started, how long it took.
type appendSample struct {
	batch bool
	start time.Time
	ms    float64
}

// appendLoad runs the appenders until stopped, recording every append.
type appendLoad struct {
	mu      sync.Mutex
	samples []appendSample
	err     error
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	conns   []*pgx.Conn
	stopped sync.Once
}

func (b *Bench) startAppendLoad(ctx context.Context) (*appendLoad, error) {
	conns, err := b.connect(ctx, rebuildBatchWriters+rebuildSingleWriters, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &appendLoad{cancel: cancel, conns: conns}
	evs := make([]string, rebuildBatch)
	for i := range evs {
		evs[i] = `{"type":"BenchEvent","data":` + benchData + `}`
	}
	batchJSON := "[" + strings.Join(evs, ",") + "]"
	singleJSON := `[{"type":"BenchEvent","data":` + benchData + `}]`
	for i, c := range conns {
		batch := i < rebuildBatchWriters
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				stream, events := fmt.Sprintf("bench-%d-%d", i, r.IntN(50)), singleJSON
				if batch {
					stream, events = b.randomLoadedStream(r), batchJSON
				}
				t0 := time.Now()
				_, err := c.Exec(ctx, "SELECT r.stream_version FROM annals.append_events($1, NULL, $2::jsonb) AS r", stream, events)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() == nil {
						l.mu.Lock()
						l.err = errors.Join(l.err, fmt.Errorf("append to %s: %w", stream, err))
						l.mu.Unlock()
					}
					return
				}
				l.mu.Lock()
				l.samples = append(l.samples, appendSample{batch: batch, start: t0, ms: ms(d)})
				l.mu.Unlock()
				pause := rebuildSinglePause
				if batch {
					pause = rebuildBatchPause
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}
	return l, nil
}

// stop ends the appenders (once) and returns the errors they met.
func (l *appendLoad) stop() error {
	l.stopped.Do(func() {
		l.cancel()
		l.wg.Wait()
		closeAll(l.conns)
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// window returns the latencies (ms) of the appends of one kind that started in [from, to), and
// when the longest of them started.
func (l *appendLoad) window(from, to time.Time, batch bool) (ms []float64, longestAt time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	longest := -1.0
	for _, s := range l.samples {
		if s.batch == batch && !s.start.Before(from) && s.start.Before(to) {
			ms = append(ms, s.ms)
			if s.ms > longest {
				longest, longestAt = s.ms, s.start
			}
		}
	}
	return ms, longestAt
}

func (l *appendLoad) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

const rebuildProjectionSQL = `
CREATE SCHEMA bench_rebuild;
CREATE TABLE bench_rebuild.counts (stream_id text PRIMARY KEY, events bigint NOT NULL, last_version bigint NOT NULL);
CREATE FUNCTION bench_rebuild.count_events(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
	INSERT INTO bench_rebuild.counts AS c (stream_id, events, last_version)
	SELECT e.stream_id, count(*), max(e.stream_version) FROM unnest(events) AS e GROUP BY e.stream_id
	ON CONFLICT (stream_id) DO UPDATE
	   SET events = c.events + excluded.events, last_version = greatest(c.last_version, excluded.last_version)
$fn$;
GRANT USAGE ON SCHEMA bench_rebuild TO annals_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON bench_rebuild.counts TO annals_owner;
SELECT annals.register_projection('bench_counts', 'bench_rebuild.count_events(annals.event[])'::regprocedure,
	ARRAY['bench_rebuild.counts']::regclass[], categories => ARRAY['load']);`

// rebuildRun is one rebuild under load: when it ran, when it was first seen waiting at its last
// step, how long it waited there for the blocker, how many events it applied.
type rebuildRun struct {
	from, lastStep, to time.Time
	waited             time.Duration
	applied            int64
}

// rebuildWithBlocker opens the blocker's transaction, rebuilds the projection, and commits the
// blocker rebuildHold after the rebuild has shown that its last step waits.
func (b *Bench) rebuildWithBlocker(ctx context.Context, c rebuildCase, load *appendLoad) (rebuildRun, error) {
	var run rebuildRun
	conns, err := b.connect(ctx, 2, nil)
	if err != nil {
		return run, err
	}
	defer closeAll(conns)
	blockerConn, rebuildConn := conns[0], conns[1]
	blocker, err := blockerConn.Begin(ctx)
	if err != nil {
		return run, err
	}
	defer blocker.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if _, err := blocker.Exec(ctx, c.hold); err != nil {
		return run, fmt.Errorf("blocker: %w", err)
	}
	pid, err := backendPID(ctx, rebuildConn)
	if err != nil {
		return run, err
	}

	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	rctx, cancel := context.WithCancel(ctx)
	var r result
	finished := false
	defer func() { // on every error path too: nothing may touch the projection while it rebuilds
		cancel()
		if !finished {
			r = <-done
		}
	}()
	run.from = time.Now()
	go func() {
		var n int64
		err := rebuildConn.QueryRow(rctx, "SELECT annals.rebuild_projection('bench_counts')").Scan(&n)
		done <- result{n, err}
	}()
	var waitingSince time.Time
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for waitingSince.IsZero() {
		select {
		case r = <-done:
			finished = true
			if r.err != nil {
				return run, fmt.Errorf("rebuild: %w", r.err)
			}
			return run, errors.New("the rebuild finished without waiting for the blocker")
		case <-ctx.Done():
			return run, ctx.Err()
		case <-tick.C:
		}
		if err := load.failed(); err != nil {
			return run, err
		}
		var waiting bool
		err := b.pool.QueryRow(ctx, `SELECT a.application_name ~ '^annals rebuild [0-9a-f]+ \d+/\d+ wait ' OR a.wait_event_type IS NOT DISTINCT FROM 'Lock'
			FROM pg_catalog.pg_stat_activity AS a WHERE a.pid = $1`, pid).Scan(&waiting)
		if err != nil {
			return run, err
		}
		if waiting {
			waitingSince = time.Now()
		}
	}
	select {
	case <-time.After(b.rebuildHold()):
	case <-ctx.Done():
		return run, ctx.Err()
	}
	if err := blocker.Commit(ctx); err != nil {
		return run, fmt.Errorf("blocker: %w", err)
	}
	released := time.Now()
	r = <-done
	finished = true
	run.to = time.Now()
	if r.err != nil {
		return run, fmt.Errorf("rebuild: %w", r.err)
	}
	run.applied = r.n
	run.lastStep = waitingSince
	run.waited = released.Sub(waitingSince)
	return run, nil
}

// stats of one window: the longest append and the 99th percentile, per kind, and how long
// before the window's end the longest single append started.
type windowStats struct {
	singleMax, singleP99, batchMax, batchP99 float64
	singleMaxBeforeEnd                       time.Duration
}

func statsOf(load *appendLoad, from, to time.Time) (windowStats, error) {
	single, at := load.window(from, to, false)
	batch, _ := load.window(from, to, true)
	if len(single) == 0 || len(batch) == 0 {
		return windowStats{}, fmt.Errorf("no appends completed between %s and %s (%d single, %d batch)",
			from.Format(time.TimeOnly), to.Format(time.TimeOnly), len(single), len(batch))
	}
	return windowStats{
		singleMax: percentile(single, 100), singleP99: percentile(single, 99),
		batchMax: percentile(batch, 100), batchP99: percentile(batch, 99),
		singleMaxBeforeEnd: to.Sub(at),
	}, nil
}

func rebuildUnderLoadScenario() scenario {
	return scenario{
		name:           "rebuild-under-load",
		summary:        "append latency while an inline projection over 500k events (quick 20k) is rebuilt, with an idle-in-transaction append or an open ANALYZE held across the rebuild's last step, vs the same appenders without a rebuild",
		needsSuperuser: true,
		estimate: func(b *Bench) time.Duration {
			n := b.rebuildEvents()
			rebuild := time.Duration(n)*40*time.Microsecond + time.Second
			return loadEstimate(n) + vacuumEstimate(n) + rebuild +
				time.Duration(b.reps*len(rebuildCases))*(b.rebuildBaseline()+rebuild+b.rebuildHold())
		},
		run: func(ctx context.Context, b *Bench) (_ []Result, err error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			n := b.rebuildEvents()
			label := fmt.Sprintf("rebuild under load, %s events", formatNumber(float64(n)))
			if _, err := b.load(ctx, n, label); err != nil {
				return nil, err
			}
			if _, err := b.pool.Exec(ctx, rebuildProjectionSQL); err != nil {
				return nil, fmt.Errorf("install the projection: %w", err)
			}
			defer func() { // later scenarios must not pay for it
				_, e := b.pool.Exec(context.WithoutCancel(ctx), "SELECT annals.drop_projection('bench_counts'); DROP SCHEMA bench_rebuild CASCADE")
				if e != nil && err == nil {
					err = e
				}
			}()
			b.prog.step(label+": first build, no load", time.Duration(n)*35*time.Microsecond+time.Second)
			t0 := time.Now()
			var first int64
			if err := b.pool.QueryRow(ctx, "SELECT annals.rebuild_projection('bench_counts')").Scan(&first); err != nil {
				return nil, fmt.Errorf("first build: %w", err)
			}
			alone := time.Since(t0)

			load, err := b.startAppendLoad(ctx)
			if err != nil {
				return nil, err
			}
			defer func() {
				if e := load.stop(); e != nil && err == nil {
					err = e
				}
			}()
			b.prog.step(label+": appenders warm-up", time.Second)
			time.Sleep(time.Second)

			type perCase struct {
				with, last, without []windowStats
				runs                []rebuildRun
			}
			res := make([]perCase, len(rebuildCases))
			for rep := range b.reps {
				for k, c := range rebuildCases {
					for half := range 2 {
						if (half == 0) == (rep%2 == 0) { // ABBA: without a rebuild first on even reps
							b.prog.step(fmt.Sprintf("%s: %s, no rebuild (%d/%d)", label, c.name, rep+1, b.reps), b.rebuildBaseline())
							from := time.Now()
							select {
							case <-time.After(b.rebuildBaseline()):
							case <-ctx.Done():
								return nil, ctx.Err()
							}
							st, err := statsOf(load, from, time.Now())
							if err != nil {
								return nil, err
							}
							res[k].without = append(res[k].without, st)
							continue
						}
						b.prog.step(fmt.Sprintf("%s: %s, rebuild (%d/%d)", label, c.name, rep+1, b.reps),
							time.Duration(n)*40*time.Microsecond+b.rebuildHold())
						run, err := b.rebuildWithBlocker(ctx, c, load)
						if err != nil {
							return nil, fmt.Errorf("%s: %w", c.name, err)
						}
						st, err := statsOf(load, run.from, run.to)
						if err != nil {
							return nil, err
						}
						last, err := statsOf(load, run.lastStep, run.to)
						if err != nil {
							return nil, err
						}
						res[k].with = append(res[k].with, st)
						res[k].last = append(res[k].last, last)
						res[k].runs = append(res[k].runs, run)
					}
				}
			}
			if err := load.stop(); err != nil {
				return nil, err
			}
			// The rebuilt table must equal a replay (appends have stopped): a wrong rebuild is no figure.
			var mismatch int64
			if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM (
				(SELECT e.stream_id, count(*) FROM annals_internal.events AS e WHERE e.category = 'load' GROUP BY 1
				 EXCEPT SELECT c.stream_id, c.events FROM bench_rebuild.counts AS c)
				UNION ALL
				(SELECT c.stream_id, c.events FROM bench_rebuild.counts AS c
				 EXCEPT SELECT e.stream_id, count(*) FROM annals_internal.events AS e WHERE e.category = 'load' GROUP BY 1)) AS d`).Scan(&mismatch); err != nil {
				return nil, err
			}
			if mismatch != 0 {
				return nil, fmt.Errorf("the rebuilt projection differs from a replay in %d streams", mismatch)
			}

			method := fmt.Sprintf("Go/pgx: %d writers of %d-event batches to loaded streams (the projection's category: skipped by dispatch during a rebuild, replayed by it) "+
				"pausing %v between appends, and %d writers of single events to another category pausing %v; annals.rebuild_projection of an inline per-stream count "+
				"over %s loaded events with the blocker opened before it and committed %v after the rebuild showed its last step waiting; "+
				"%d reps per case, ABBA-alternated with %v windows without a rebuild, median over reps",
				rebuildBatchWriters, rebuildBatch, rebuildBatchPause, rebuildSingleWriters, rebuildSinglePause, formatNumber(float64(n)), b.rebuildHold(), b.reps, b.rebuildBaseline())
			var out []Result
			for k, c := range rebuildCases {
				pick := func(ws []windowStats, f func(windowStats) float64) []float64 {
					xs := make([]float64, len(ws))
					for i, w := range ws {
						xs[i] = f(w)
					}
					return xs
				}
				single99 := pick(res[k].without, func(w windowStats) float64 { return w.singleP99 })
				var durs, waited, applied []float64
				for _, r := range res[k].runs {
					durs = append(durs, r.to.Sub(r.from).Seconds())
					waited = append(waited, r.waited.Seconds())
					applied = append(applied, float64(r.applied))
				}
				var longestWhen []string
				for _, w := range res[k].with {
					longestWhen = append(longestWhen, fmt.Sprintf("%.1f ms %.2f s before the rebuild returned", w.singleMax, w.singleMaxBeforeEnd.Seconds()))
				}
				note := fmt.Sprintf("longest single append per rep: %s; "+
					"rebuild took %.2f s (median) of which its last step waited %.2f s for the blocker, %s events applied; "+
					"batch appends during the rebuild: longest %.1f ms, p99 %.1f ms, without: longest %.1f ms, p99 %.1f ms; "+
					"single appends without a rebuild: longest %.1f ms; the first build, no load: %s events in %.2f s",
					strings.Join(longestWhen, ", "), median(durs), median(waited), formatNumber(median(applied)),
					median(pick(res[k].with, func(w windowStats) float64 { return w.batchMax })),
					median(pick(res[k].with, func(w windowStats) float64 { return w.batchP99 })),
					median(pick(res[k].without, func(w windowStats) float64 { return w.batchMax })),
					median(pick(res[k].without, func(w windowStats) float64 { return w.batchP99 })),
					median(pick(res[k].without, func(w windowStats) float64 { return w.singleMax })),
					formatNumber(float64(first)), alone.Seconds())
				lastStep := figure(fmt.Sprintf("rebuild, %s: longest single append in the last step", c.label), "ms",
					pick(res[k].last, func(w windowStats) float64 { return w.singleMax }), single99,
					"p99 of the same single appends without a rebuild", method+
						"; the last step: from when the rebuild's application_name first showed it waiting until it returned", nil)
				lastStep.Note = fmt.Sprintf("batch appends in the last step: longest %.1f ms, p99 %.1f ms (median over reps)",
					median(pick(res[k].last, func(w windowStats) float64 { return w.batchMax })),
					median(pick(res[k].last, func(w windowStats) float64 { return w.batchP99 })))
				longest := figure(fmt.Sprintf("rebuild, %s: longest single append", c.label), "ms",
					pick(res[k].with, func(w windowStats) float64 { return w.singleMax }), single99,
					"p99 of the same single appends without a rebuild", method, nil)
				longest.Note = note
				p99 := figure(fmt.Sprintf("rebuild, %s: p99 single append", c.label), "ms",
					pick(res[k].with, func(w windowStats) float64 { return w.singleP99 }), single99,
					"p99 of the same single appends without a rebuild", method, nil)
				out = append(out, lastStep, longest, p99)
			}
			return out, nil
		},
	}
}

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// growthBase is the size of the "empty" store: enough loaded streams to pick from at random.
const growthBase = 10_000

func (b *Bench) growthSizes() []int {
	if b.cfg.Quick {
		return []int{growthBase, 60_000}
	}
	sizes := []int{growthBase, 1_000_000}
	if b.cfg.FullGrowth {
		sizes = append(sizes, 10_000_000)
	}
	return sizes
}

func (b *Bench) growthOps() (appends, reads int) {
	if b.cfg.Quick {
		return 150, 40
	}
	return 1000, 300
}

// growthProbe measures, on a store of the current size, the median latency of single-event
// appends to random existing streams and of reads of random 100-event streams, one sample per
// repetition.
func (b *Bench) growthProbe(ctx context.Context, label string) (appendMs, readMs []float64, err error) {
	conns, err := b.connect(ctx, 1, map[string]string{"synchronous_commit": "off"})
	if err != nil {
		return nil, nil, err
	}
	defer closeAll(conns)
	c := conns[0]
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	nAppend, nRead := b.growthOps()
	readSQL := "SELECT " + eventSQL + " FROM annals.read_stream($1) AS e"
	b.prog.step(label+": warm-up", time.Second)
	for range 100 {
		if err := appendOne(ctx, c, b.randomLoadedStream(r)); err != nil {
			return nil, nil, err
		}
		if _, _, err := timedRead(ctx, c, readSQL, b.randomLoadedStream(r)); err != nil {
			return nil, nil, err
		}
	}
	pid, err := backendPID(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	var cpuA, cpuR []float64 // server CPU per operation, when the server is local
	for rep := range b.reps {
		b.prog.step(fmt.Sprintf("%s (%d/%d)", label, rep+1, b.reps), time.Duration(nAppend)*700*time.Microsecond+time.Duration(nRead)*2*time.Millisecond)
		var at, rt []float64
		c0, local := backendCPU(pid, b.db)
		for range nAppend {
			t0 := time.Now()
			if err := appendOne(ctx, c, b.randomLoadedStream(r)); err != nil {
				return nil, nil, err
			}
			at = append(at, ms(time.Since(t0)))
		}
		c1, _ := backendCPU(pid, b.db)
		for range nRead {
			d, _, err := timedRead(ctx, c, readSQL, b.randomLoadedStream(r))
			if err != nil {
				return nil, nil, err
			}
			rt = append(rt, ms(d))
		}
		c2, _ := backendCPU(pid, b.db)
		if local {
			cpuA = append(cpuA, float64(c1-c0)/float64(time.Microsecond)/float64(nAppend))
			cpuR = append(cpuR, float64(c2-c1)/float64(time.Microsecond)/float64(nRead))
		}
		appendMs, readMs = append(appendMs, median(at)), append(readMs, median(rt))
	}
	// Why: what one append writes to the WAL and what one read touches, averaged over a few
	// calls run under EXPLAIN (ANALYZE, BUFFERS, WAL), which counts the nested statements too.
	var aw, rb planStats
	for range 50 {
		st, err := explainStats(ctx, c, `SELECT annals.append_events($1, NULL, '[{"type":"BenchEvent","data":`+benchData+`}]'::jsonb)`, b.randomLoadedStream(r))
		if err != nil {
			return nil, nil, err
		}
		aw.add(st, 50)
		st, err = explainStats(ctx, c, readSQL, b.randomLoadedStream(r))
		if err != nil {
			return nil, nil, err
		}
		rb.add(st, 50)
	}
	note := fmt.Sprintf("per append %.0f WAL bytes, %.2f full-page images, %.1f buffers dirtied; per read %.0f buffers hit, %.1f read",
		aw.WALBytes, aw.WALFPI, aw.Dirtied, rb.Hit, rb.Read)
	if len(cpuA) > 0 {
		note += fmt.Sprintf("; server CPU per append %.0f us, per read %.0f us", median(cpuA), median(cpuR))
	}
	b.growthNotes = append(b.growthNotes, note)
	return appendMs, readMs, nil
}

// planStats are the counters EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) reports for a plan.
type planStats struct {
	Hit      float64 `json:"Shared Hit Blocks"`
	Read     float64 `json:"Shared Read Blocks"`
	Dirtied  float64 `json:"Shared Dirtied Blocks"`
	WALFPI   float64 `json:"WAL FPI"`
	WALBytes float64 `json:"WAL Bytes"`
}

func (p *planStats) add(o planStats, n float64) {
	p.Hit += o.Hit / n
	p.Read += o.Read / n
	p.Dirtied += o.Dirtied / n
	p.WALFPI += o.WALFPI / n
	p.WALBytes += o.WALBytes / n
}

// explainStats runs sql under EXPLAIN (ANALYZE, BUFFERS, WAL) and returns the top plan's
// counters, which include the work of statements nested in functions.
func explainStats(ctx context.Context, c *pgx.Conn, sql string, args ...any) (planStats, error) {
	var raw []byte
	if err := c.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) "+sql, args...).Scan(&raw); err != nil {
		return planStats{}, err
	}
	var plans []struct {
		Plan planStats `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &plans); err != nil || len(plans) == 0 {
		return planStats{}, fmt.Errorf("explain output: %v", err)
	}
	return plans[0].Plan, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func growthScenario() scenario {
	return scenario{
		name:           "growth",
		summary:        "single-event append and stream-read latency with ~0, 1M (and with --full-growth 10M) events stored",
		needsSuperuser: true,
		estimate: func(b *Bench) time.Duration {
			var d time.Duration
			na, nr := b.growthOps()
			for _, n := range b.growthSizes() {
				d += loadEstimate(n) + vacuumEstimate(n) + time.Second +
					time.Duration(b.reps)*(time.Duration(na)*700*time.Microsecond+time.Duration(nr)*2*time.Millisecond)
			}
			return d
		},
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			b.growthNotes = nil
			var baseA, baseR []float64
			var out []Result
			for i, n := range b.growthSizes() {
				name := formatCount(n)
				if i == 0 {
					name = "~0 (" + formatCount(n) + ")"
				}
				label := "growth at " + name + " events"
				if _, err := b.load(ctx, n-b.stored, label); err != nil {
					return out, err
				}
				a, r, err := b.growthProbe(ctx, label)
				if err != nil {
					return out, err
				}
				if i == 0 {
					baseA, baseR = a, r
					continue
				}
				why := fmt.Sprintf("at %s: %s; at %s: %s", formatCount(growthBase), b.growthNotes[0], formatCount(b.stored), b.growthNotes[i])
				na, nr := b.growthOps()
				baseLabel := fmt.Sprintf("the same probe on a store of %s events (~empty)", formatCount(growthBase))
				out = append(out,
					figure(fmt.Sprintf("append latency, %s stored", formatCount(b.stored)), "ms", a, baseA, baseLabel,
						fmt.Sprintf("Go/pgx, one connection with synchronous_commit=off (WAL flush time does not grow with the store; see append), "+
							"single-event append_events to random existing streams; %d reps of %d, median of medians; the size steps run one after another, not alternated", b.reps, na),
						ratioAtMost(1.3)),
					figure(fmt.Sprintf("stream read latency, %s stored", formatCount(b.stored)), "ms", r, baseR, baseLabel,
						fmt.Sprintf("Go/pgx, one connection, annals.read_stream of a random %d-event stream (its events spread over the table), decoded; %d reps of %d, median of medians", streamLen, b.reps, nr),
						nil))
				out[len(out)-2].Note = why
			}
			if !b.cfg.FullGrowth && !b.cfg.Quick && len(out) > 0 {
				out[len(out)-2].Note += "; the 10M step runs with --full-growth"
			}
			return out, nil
		},
	}
}

// formatCount writes 10000 as 10k and 1000000 as 1M.
func formatCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return formatNumber(float64(n))
}

package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// workload is one SQL statement that every client runs in a closed loop, each execution its own
// transaction. In sql, :client_id is the client's number (0-based, as in pgbench) and :s a
// random number in 1..streams, drawn per execution; write them with casts (:client_id::text).
type workload struct {
	sql     string
	streams int
}

var (
	varClient = regexp.MustCompile(`(^|[^:]):client_id\b`)
	varStream = regexp.MustCompile(`(^|[^:]):s\b`)
)

func (w workload) pgbenchScript() string {
	return fmt.Sprintf("\\set s random(1, %d)\n%s;\n", max(w.streams, 1), strings.TrimSpace(w.sql))
}

// goSQL is the statement with $1 for :client_id and $2 for :s, as pgbench -M prepared sends it.
func (w workload) goSQL() string {
	s := varClient.ReplaceAllString(w.sql, "${1}$$1")
	return varStream.ReplaceAllString(s, "${1}$$2")
}

// method describes how throughput is measured, for the report.
func (b *Bench) method(clients int) string {
	what := "Go/pgx closed loop"
	if b.pgbench != "" {
		what = "pgbench -M prepared"
	}
	return fmt.Sprintf("%s, %d client%s, %d x %s per side, ABBA-alternated, median", what, clients, plural(clients), b.reps, b.durLabel())
}

func (b *Bench) durLabel() string {
	if b.pgbench != "" {
		return fmt.Sprintf("%ds", pgbenchSeconds(b.dur))
	}
	return b.dur.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// tps measures statements per second of w at the given number of clients for about d.
func (b *Bench) tps(ctx context.Context, w workload, clients int, d time.Duration) (float64, error) {
	if b.pgbench != "" {
		return b.pgbenchTPS(ctx, w, clients, d)
	}
	return b.goTPS(ctx, w, clients, d)
}

var (
	tpsLine    = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	failedLine = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

func pgbenchSeconds(d time.Duration) int { return max(1, int(math.Round(d.Seconds()))) }

func (b *Bench) pgbenchTPS(ctx context.Context, w workload, clients int, d time.Duration) (float64, error) {
	f, err := os.CreateTemp("", "annals-bench-*.sql")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(w.pgbenchScript()); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, runtime.NumCPU())),
		"-T", strconv.Itoa(pgbenchSeconds(d)), "-f", f.Name(), b.libpq}
	cmd := exec.CommandContext(ctx, b.pgbench, args...)
	cmd.Env = append(os.Environ(), "PGAPPNAME=annals bench pgbench")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w\n%s", err, tail(string(out), 1500))
	}
	if m := failedLine.FindSubmatch(out); m != nil && string(m[1]) != "0" {
		return 0, fmt.Errorf("pgbench: %s transactions failed\n%s", m[1], tail(string(out), 1500))
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in its output\n%s", tail(string(out), 1500))
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// goTPS is the fallback load generator: one goroutine and connection per client.
func (b *Bench) goTPS(ctx context.Context, w workload, clients int, d time.Duration) (float64, error) {
	conns, err := b.connect(ctx, clients, nil)
	if err != nil {
		return 0, err
	}
	defer closeAll(conns)
	sql := w.goSQL()
	var ops atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			cid := strconv.Itoa(i)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, err := c.Exec(ctx, sql, cid, strconv.Itoa(1+r.IntN(max(w.streams, 1)))); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(ops.Load()) / time.Since(start).Seconds(), ctx.Err()
}

// warm runs w once for every client and stream number, so every stream the measurement touches
// exists and the caches are warm.
func (b *Bench) warm(ctx context.Context, w workload, clients int) error {
	sql := w.goSQL()
	type job struct{ c, s int }
	jobs := make(chan job)
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(clients, 8) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if _, err := b.pool.Exec(ctx, sql, strconv.Itoa(j.c), strconv.Itoa(j.s)); err != nil {
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	for s := 1; s <= max(w.streams, 1); s++ {
		for c := range clients {
			if ctx.Err() != nil {
				break
			}
			jobs <- job{c, s}
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("warm-up: %w", firstErr)
	}
	return ctx.Err()
}

// connect opens n dedicated connections (not pooled), with optional session settings. The
// settings are SET after connecting, not sent as startup parameters, which connection poolers
// refuse for settings they do not track (PgBouncer: "unsupported startup parameter").
func (b *Bench) connect(ctx context.Context, n int, settings map[string]string) ([]*pgx.Conn, error) {
	conns := make([]*pgx.Conn, 0, n)
	for range n {
		c, err := pgx.ConnectConfig(ctx, b.connCfg.Copy())
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("connect: %w", err)
		}
		conns = append(conns, c)
		for k, v := range settings {
			if _, err := c.Exec(ctx, "SELECT pg_catalog.set_config($1, $2, false)", k, v); err != nil {
				closeAll(conns)
				return nil, fmt.Errorf("connect: set %s: %w", k, err)
			}
		}
	}
	return conns, nil
}

func closeAll(conns []*pgx.Conn) {
	for _, c := range conns {
		c.Close(context.Background())
	}
}

// side is one arm of an alternated comparison: run returns one measured sample.
type side struct {
	name string
	est  time.Duration
	run  func(ctx context.Context) (float64, error)
}

// alternate measures every side b.reps times, reversing the order on every other repetition
// (A B, B A, A B, ...), so slow drifts of the machine's load hit all sides alike.
func (b *Bench) alternate(ctx context.Context, label string, sides ...side) ([][]float64, error) {
	out := make([][]float64, len(sides))
	for rep := range b.reps {
		for k := range sides {
			i := k
			if rep%2 == 1 {
				i = len(sides) - 1 - k
			}
			b.prog.step(fmt.Sprintf("%s: %s (%d/%d)", label, sides[i].name, rep+1, b.reps), sides[i].est)
			v, err := sides[i].run(ctx)
			if err != nil {
				return out, fmt.Errorf("%s: %w", sides[i].name, err)
			}
			out[i] = append(out[i], v)
		}
	}
	return out, nil
}

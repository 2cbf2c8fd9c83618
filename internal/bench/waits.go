package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// waits counts what the benchmark's server processes were doing, sampled from
// pg_stat_activity: "CPU" (no wait event: running, or runnable and waiting for a core on a busy
// machine) or "type:event" (IO:WALSync is the commit's WAL flush, Lock:object on pg_database 0
// the NOTIFY commit lock, LWLock:WALWrite waiting for another flush, ...).
type waits map[string]int

// sampleWaits samples the active client backends of the scratch database (other than its own
// connection) every 10ms until the returned stop function is called.
func (b *Bench) sampleWaits(ctx context.Context) (stop func() waits) {
	ctx, cancel := context.WithCancel(ctx)
	w := waits{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := b.pool.Acquire(ctx)
		if err != nil {
			return
		}
		defer conn.Release()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rows, err := conn.Query(ctx, `SELECT coalesce(a.wait_event_type || ':' || a.wait_event, 'CPU')
				FROM pg_catalog.pg_stat_activity AS a
				WHERE a.datname = pg_catalog.current_database() AND a.pid <> pg_catalog.pg_backend_pid()
				  AND a.state = 'active' AND a.backend_type = 'client backend'`)
			if err != nil {
				return
			}
			mu.Lock()
			for rows.Next() {
				var s string
				if rows.Scan(&s) == nil {
					w[s]++
				}
			}
			mu.Unlock()
			rows.Close()
		}
	}()
	return func() waits {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return w
	}
}

func (w waits) add(o waits) {
	for k, v := range o {
		w[k] += v
	}
}

// String lists the most frequent states with their share of the samples, e.g.
// "CPU 61%, IO:WALSync 22%, LWLock:WALWrite 9%".
func (w waits) String() string {
	total := 0
	keys := make([]string, 0, len(w))
	for k, v := range w {
		total += v
		keys = append(keys, k)
	}
	if total == 0 {
		return "no samples"
	}
	sort.Slice(keys, func(i, j int) bool { return w[keys[i]] > w[keys[j]] || w[keys[i]] == w[keys[j]] && keys[i] < keys[j] })
	var parts []string
	for _, k := range keys[:min(len(keys), 4)] {
		if pct := 100 * w[k] / total; pct >= 2 {
			parts = append(parts, fmt.Sprintf("%s %d%%", k, pct))
		}
	}
	return strings.Join(parts, ", ")
}

// shares returns each state's share of the samples (for JSON).
func (w waits) shares() map[string]float64 {
	total := 0
	for _, v := range w {
		total += v
	}
	if total == 0 {
		return nil
	}
	out := map[string]float64{}
	for k, v := range w {
		out[k] = float64(v) / float64(total)
	}
	return out
}

// withWaits attaches what the server processes waited on, for the subject and the baseline.
func (r Result) withWaits(subj, base waits, subjName, baseName string) Result {
	r.Waits, r.BaselineWaits = subj.shares(), base.shares()
	note := fmt.Sprintf("server waits (share of active-backend samples): %s: %s; %s: %s", subjName, subj, baseName, base)
	if r.Note != "" {
		note = r.Note + "; " + note
	}
	r.Note = note
	return r
}

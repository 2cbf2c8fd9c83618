package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/shard"
	"github.com/jackc/pgx/v5"
)

// A worker pointed at a sharded store's proxy runs, for every shard of the map, its own projection
// loop (annals.run_async_projections(shard, max_events) through PL/Proxy: the shard's async
// projections and checkpoints live on the shard, so each shard's events are applied once, by that
// shard's call) and refreshes every shard's views. A shard that is down is logged once, by name,
// retried with a backoff, and logged again when it is back; the other shards go on meanwhile.

// shardedUnsupported names the first option given that works on one database only ("": none).
func (c workerConfig) shardedUnsupported() string {
	switch {
	case len(c.subscriptions) > 0:
		return "--subscription"
	case c.compressOlderThan != nil:
		return "--compress-older-than"
	case c.retentionEvery > 0:
		return "--retention-every"
	case c.listen.url != "":
		return "--listen-url"
	}
	return ""
}

// shardState logs a shard going down once and coming back once.
type shardState struct {
	mu   sync.Mutex
	down map[int]bool
}

func (s *shardState) failed(w *worker, in shard.Info, task string, err error, backoff time.Duration) {
	s.mu.Lock()
	first := !s.down[in.Shard]
	s.down[in.Shard] = true
	s.mu.Unlock()
	w.metrics.shardUp.WithLabelValues(strconv.Itoa(in.Shard), in.Name).Set(0)
	if first {
		w.log.Error("shard failed; serving the other shards and retrying it", "shard", in.Shard, "name", in.Name,
			"task", task, "error", explain(err), "backoff", backoff)
	}
}

func (s *shardState) succeeded(w *worker, in shard.Info) {
	s.mu.Lock()
	was := s.down[in.Shard]
	delete(s.down, in.Shard)
	s.mu.Unlock()
	w.metrics.shardUp.WithLabelValues(strconv.Itoa(in.Shard), in.Name).Set(1)
	if was {
		w.log.Info("shard is back", "shard", in.Shard, "name", in.Name)
	}
}

// shardProjections runs one shard's async projections through the proxy; it polls, as no
// notification of a shard reaches the proxy.
func (w *worker) shardProjections(in shard.Info, st *shardState) projections {
	return projections{
		run: func(ctx context.Context) (int64, error) {
			var n int64
			err := w.pool.QueryRow(ctx, "SELECT annals.run_async_projections($1, $2)", in.Shard, w.batch).Scan(&n)
			return n, err
		},
		failed: func(err error, backoff time.Duration) { st.failed(w, in, "projections", err, backoff) },
		succeeded: func(n int64) {
			st.succeeded(w, in)
			w.metrics.shardProjected.WithLabelValues(strconv.Itoa(in.Shard), in.Name).Add(float64(n))
		},
	}
}

// shardedViewsLoop refreshes every shard's due views at start and every refreshEvery.
func (w *worker) shardedViewsLoop(stop, work context.Context, st *shardState) {
	for stop.Err() == nil {
		for _, in := range w.shards {
			rows, err := w.pool.Query(work, "SELECT view_name, refreshed, duration, error FROM annals.refresh_views($1)", in.Shard)
			var res []annals.ViewRefresh
			if err == nil {
				res, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (annals.ViewRefresh, error) {
					var v annals.ViewRefresh
					return v, r.Scan(&v.View, &v.Refreshed, &v.Duration, &v.Error)
				})
			}
			if err != nil {
				w.metrics.errors.WithLabelValues("views").Inc()
				st.failed(w, in, "views", err, w.refreshEvery)
				continue
			}
			st.succeeded(w, in)
			w.logRefreshes(res, "shard", in.Shard)
		}
		pause(stop, w.refreshEvery)
	}
}

// shardedLoops are the loops of a worker on a proxy: one projection loop per shard, one views loop.
func (w *worker) shardedLoops() []func(context.Context, context.Context) {
	st := &shardState{down: map[int]bool{}}
	var loops []func(context.Context, context.Context)
	for _, in := range w.shards {
		loops = append(loops, func(stop, work context.Context) { w.projectionsLoop(stop, work, w.shardProjections(in, st)) })
	}
	if w.refreshEvery > 0 {
		loops = append(loops, func(stop, work context.Context) { w.shardedViewsLoop(stop, work, st) })
	}
	return loops
}

func shardNames(infos []shard.Info) string {
	s := ""
	for i, in := range infos {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d (%s)", in.Shard, in.Name)
	}
	return s
}

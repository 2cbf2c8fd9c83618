package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/shard"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
)

func newWorkerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker [--metrics-addr ADDR] [--refresh-every D] [--subscription NAME]...",
		Short: "Run async projections and view refreshes until stopped, with Prometheus metrics.",
		Long: `Run async projections and view refreshes until stopped, with Prometheus metrics.

The worker calls annals.run_async_projections until it returns 0, then waits for NOTIFY
annals_events or --poll-interval (behind a pooler in transaction mode no notification can arrive:
the worker finds that out at start, logs it once and polls every 200ms; give it --listen-url, a
direct connection to PostgreSQL, to keep the wake-ups, or --no-listen to poll without the check);
calls annals.refresh_views every --refresh-every (each view's own refresh_interval still
applies); and serves Prometheus metrics on --metrics-addr (/metrics):
append rate, feed head and barrier age, projection lag and state, view freshness, worker errors, and
the lag of each subscription named with --subscription, each streaming standby's replay lag (bytes
and seconds, from pg_stat_replication). Subscriptions need your handlers, so the
worker only reports on them; run annals.Subscriber in your service to consume them.

With --compress-older-than (off by default) it also moves events older than that into cold
storage every --compress-every, in annals.compress_events calls of --compress-batch events; that
needs annals_owner (the rest needs annals_writer). With --retention-every (off by default) it
applies the retention rules (annals.apply_retention, --retention-batch events per call) at start
and at that interval; that needs annals_owner too.

Several workers may run at once: projections and views are split between them (SKIP LOCKED).
SIGINT or SIGTERM stops it gracefully: no new work starts, work in flight may finish within
--shutdown-timeout, then the metrics server closes and the worker exits 0.

Pointed at a sharded store's proxy (annals shard init), it reads the shard map and runs one
projection loop per shard, through the proxy (annals.run_async_projections(shard, n)): async
projections and their checkpoints live on each shard, so each shard's events are applied exactly
once, by that shard's loop; it refreshes every shard's views too. A shard that cannot be reached is
logged once, by name, and retried with a backoff while the other shards go on; it is logged again
when it is back. On a proxy the worker polls every --poll-interval (no notification crosses
PL/Proxy), serves only the worker's own metrics (events projected, errors; per shard
annals_worker_shard_up and annals_worker_shard_projected_events_total), and refuses
--subscription, --compress-older-than, --retention-every and --listen-url: run a worker with those
against each shard.

The login needs annals_writer.`,
		Example: `  annals worker
  annals worker --metrics-addr :9187 --refresh-every 30s --subscription billing --subscription emails`,
		Args: noArgs,
	}
	db := addDatabaseFlag(cmd)
	f := cmd.Flags()
	cfg := workerConfig{}
	f.StringVar(&cfg.metricsAddr, "metrics-addr", "127.0.0.1:9187", "serve Prometheus metrics on this address (empty: off; port 0: any free port)")
	f.DurationVar(&cfg.refreshEvery, "refresh-every", 15*time.Second, "how often to refresh due materialized views (0: never)")
	f.DurationVar(&cfg.sampleEvery, "metrics-every", 10*time.Second, "how often to read lag and state for the metrics")
	f.IntVar(&cfg.batch, "batch", 1000, "events per projection per annals.run_async_projections call")
	f.StringArrayVar(&cfg.subscriptions, "subscription", nil, "report this subscription's lag (repeatable)")
	f.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long work in flight may take to finish after SIGINT/SIGTERM")
	compressOlderThan := f.String("compress-older-than", "", "move events older than this into cold storage (30d; empty: off)")
	f.DurationVar(&cfg.compressEvery, "compress-every", time.Hour, "how often to compress, with --compress-older-than")
	f.Int64Var(&cfg.compressBatch, "compress-batch", 50000, "events per annals.compress_events call")
	f.DurationVar(&cfg.retentionEvery, "retention-every", 0, "how often to apply the retention rules (0: never)")
	f.Int64Var(&cfg.retentionBatch, "retention-batch", 100000, "events per annals.apply_retention call")
	logJSON := f.Bool("log-json", false, "log JSON lines instead of text")
	cfg.listen = addListenFlags(cmd)

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if cfg.sampleEvery <= 0 || cfg.batch <= 0 || cfg.refreshEvery < 0 || cfg.shutdownTimeout < 0 {
			return usagef("--metrics-every and --batch must be positive; --refresh-every and --shutdown-timeout not negative")
		}
		if err := cfg.listen.check(); err != nil {
			return err
		}
		if cfg.retentionEvery < 0 || cfg.retentionBatch <= 0 {
			return usagef("--retention-every must not be negative, --retention-batch must be positive")
		}
		if *compressOlderThan != "" {
			age, err := parseAge(*compressOlderThan)
			if err != nil {
				return err
			}
			cfg.compressOlderThan = &age
			if cfg.compressEvery <= 0 || cfg.compressBatch <= 0 {
				return usagef("--compress-every and --compress-batch must be positive")
			}
		}
		var h slog.Handler = slog.NewTextHandler(cmd.ErrOrStderr(), nil)
		if *logJSON {
			h = slog.NewJSONHandler(cmd.ErrOrStderr(), nil)
		}
		ctx := cmd.Context()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		w := &worker{workerConfig: cfg, client: client, pool: pool, log: slog.New(h), metrics: newWorkerMetrics()}
		if sharded, err := shard.IsProxy(ctx, pool); err != nil {
			return err
		} else if sharded {
			if flag := cfg.shardedUnsupported(); flag != "" {
				return usagef("%s works on one database: on a sharded store run a worker with it against each shard (annals shard status lists them)", flag)
			}
			if w.shards, err = shard.Shards(ctx, pool); err != nil {
				return err
			}
			if len(w.shards) == 0 {
				return errors.New("the proxy's shard map is empty: run annals shard init first")
			}
			return w.run(ctx)
		}
		if err := client.CheckSchema(ctx); err != nil {
			return err
		}
		// M15: with tenancy on, the worker works for every tenant ('*', for members of annals_owner)
		// unless --tenant or ANNALS_TENANT names one.
		if tenantFlag(cmd) == "" {
			on, err := client.TenancyEnabled(ctx)
			if err != nil {
				return err
			}
			if on {
				w.client = annals.New(pool, annals.ClientOptions{Tenant: "*"})
				w.log.Info("tenancy is on: working for every tenant (tenant '*')")
			}
		}
		return w.run(ctx)
	}
	return cmd
}

type workerConfig struct {
	metricsAddr                                string
	refreshEvery, sampleEvery, shutdownTimeout time.Duration
	batch                                      int
	subscriptions                              []string
	listen                                     *listenFlags
	compressOlderThan                          *time.Duration // nil: no compression
	compressEvery                              time.Duration
	compressBatch                              int64
	retentionEvery                             time.Duration // 0: no retention
	retentionBatch                             int64
}

type worker struct {
	workerConfig
	client  *annals.Client
	pool    *pgxpool.Pool
	log     *slog.Logger
	metrics *workerMetrics
	// shards is the proxy's map when --database-url is a sharded store's proxy; nil otherwise.
	shards []shard.Info
}

// run works until ctx ends (the signal), then shuts down gracefully and returns nil. Database
// calls run on a context of their own, cancelled only when the shutdown timeout passes, so a
// batch in flight commits instead of being cut off.
func (w *worker) run(ctx context.Context) error {
	if len(w.subscriptions) > 0 {
		found, err := querySubscriptions(ctx, w.pool, w.subscriptions)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, s := range found {
			have[s.Name] = true
		}
		for _, s := range w.subscriptions {
			if !have[s] {
				return subscriptionMissing(s)
			}
		}
	}

	var srv *http.Server
	if w.metricsAddr != "" {
		ln, err := net.Listen("tcp", w.metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics address %s: %w (pick another with --metrics-addr, or --metrics-addr '' to turn metrics off)", w.metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(w.metrics.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(w.log.Handler(), slog.LevelError)}))
		mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/" {
				http.NotFound(rw, r)
				return
			}
			fmt.Fprintln(rw, "annals worker: metrics at /metrics")
		})
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.log.Error("metrics server failed", "error", err)
			}
		}()
		w.log.Info("annals worker started", "metrics", "http://"+ln.Addr().String()+"/metrics",
			"refresh_every", w.refreshEvery, "subscriptions", w.subscriptions)
	} else {
		w.log.Info("annals worker started", "metrics", "off", "refresh_every", w.refreshEvery, "subscriptions", w.subscriptions)
	}

	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	if w.shards != nil {
		w.log.Info("sharded store: running every shard's async projections and views through the proxy", "shards", shardNames(w.shards))
		w.startLoops(ctx, work, &wg, w.shardedLoops())
		return w.stop(ctx, &wg, cancelWork, srv)
	}
	listener := w.listen.start(ctx, w.client, w.log)

	loops := []func(context.Context, context.Context){
		func(stop, work context.Context) { w.projectionsLoop(stop, work, w.localProjections(listener)) },
		w.sampleLoop,
	}
	if w.refreshEvery > 0 {
		loops = append(loops, w.viewsLoop)
	}
	if w.compressOlderThan != nil {
		loops = append(loops, func(stop, work context.Context) {
			w.stepLoop(stop, work, "compress", w.compressEvery, w.compressBatch,
				func(ctx context.Context) (int64, error) {
					return w.client.CompressEvents(ctx, *w.compressOlderThan, w.compressBatch)
				}, "events moved to cold storage", "older_than", *w.compressOlderThan)
		})
	}
	if w.retentionEvery > 0 {
		loops = append(loops, func(stop, work context.Context) {
			w.stepLoop(stop, work, "retention", w.retentionEvery, w.retentionBatch,
				func(ctx context.Context) (int64, error) { return w.client.ApplyRetention(ctx, w.retentionBatch) },
				"retention removed events")
		})
	}
	w.startLoops(ctx, work, &wg, loops)
	return w.stop(ctx, &wg, cancelWork, srv)
}

func (w *worker) startLoops(stop, work context.Context, wg *sync.WaitGroup, loops []func(context.Context, context.Context)) {
	for _, loop := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(stop, work)
		}()
	}
}

// stop waits for ctx (the signal), then for the loops within the shutdown timeout, and closes
// the metrics server.
func (w *worker) stop(ctx context.Context, wg *sync.WaitGroup, cancelWork context.CancelFunc, srv *http.Server) error {
	<-ctx.Done()
	w.log.Info("annals worker stopping: letting work in flight finish", "timeout", w.shutdownTimeout)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.shutdownTimeout):
		w.log.Warn("shutdown timeout passed: cancelling work in flight (it rolls back and is redone by the next worker)")
		cancelWork()
		<-done
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	w.log.Info("annals worker stopped")
	return nil
}

// projections is one loop of async projections: run calls annals.run_async_projections (on one
// database, or on one shard through the proxy), failed and succeeded report a call's outcome.
type projections struct {
	run       func(context.Context) (int64, error)
	failed    func(err error, backoff time.Duration)
	succeeded func(n int64)
	listener  *annals.EventListener // nil: poll only
}

// projectionsLoop runs p until the projections are caught up, then waits for a notification or
// the poll interval; a failed call is retried with a backoff (500ms doubling to 30s).
func (w *worker) projectionsLoop(stop, work context.Context, p projections) {
	backoff := time.Duration(0)
	for stop.Err() == nil {
		n, err := p.run(work)
		if err != nil {
			w.metrics.errors.WithLabelValues("projections").Inc()
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			p.failed(err, backoff)
			pause(stop, backoff)
			continue
		}
		backoff = 0
		w.metrics.projected.Add(float64(n))
		p.succeeded(n)
		if n > 0 {
			continue
		}
		w.listen.wait(stop, p.listener)
	}
}

// localProjections runs the async projections of the worker's own database.
func (w *worker) localProjections(listener *annals.EventListener) projections {
	return projections{
		run: func(ctx context.Context) (int64, error) { return w.client.RunAsyncProjections(ctx, w.batch) },
		failed: func(err error, backoff time.Duration) {
			w.log.Error("running async projections failed; retrying", "error", explain(err), "backoff", backoff)
		},
		succeeded: func(int64) {},
		listener:  listener,
	}
}

// viewsLoop refreshes due materialized views at start and every refreshEvery.
func (w *worker) viewsLoop(stop, work context.Context) {
	for stop.Err() == nil {
		res, err := w.client.RefreshViews(work, false)
		if err != nil {
			w.metrics.errors.WithLabelValues("views").Inc()
			w.log.Error("refreshing views failed", "error", explain(err))
		}
		w.logRefreshes(res)
		pause(stop, w.refreshEvery)
	}
}

// logRefreshes counts and logs refresh_views' rows; logArgs name the shard on a proxy.
func (w *worker) logRefreshes(res []annals.ViewRefresh, logArgs ...any) {
	for _, r := range res {
		switch {
		case r.Error != nil:
			w.metrics.errors.WithLabelValues("views").Inc()
			w.metrics.refreshes.WithLabelValues(r.View, "failed").Inc()
			w.log.Error("view refresh failed", append([]any{"view", r.View, "error", *r.Error}, logArgs...)...)
		case r.Refreshed:
			w.metrics.refreshes.WithLabelValues(r.View, "refreshed").Inc()
			d := time.Duration(0)
			if r.Duration != nil {
				d = *r.Duration
			}
			w.log.Info("view refreshed", append([]any{"view", r.View, "duration", d}, logArgs...)...)
		}
	}
}

// stepLoop runs a bounded maintenance step (compress_events, apply_retention) at start and every
// interval: calls of batch events until one does less than a full batch, then logs the total.
func (w *worker) stepLoop(stop, work context.Context, name string, every time.Duration, batch int64,
	step func(context.Context) (int64, error), done string, logArgs ...any) {
	for stop.Err() == nil {
		var total int64
		for stop.Err() == nil {
			n, err := step(work)
			if err != nil {
				w.metrics.errors.WithLabelValues(name).Inc()
				w.log.Error(name+" failed", "error", explain(err))
				break
			}
			total += n
			if n < batch {
				break
			}
		}
		if total > 0 {
			w.log.Info(done, append([]any{"events", total}, logArgs...)...)
		}
		pause(stop, every)
	}
}

// sampleLoop reads lag and state for the metrics at start and every sampleEvery.
func (w *worker) sampleLoop(stop, work context.Context) {
	var prevPos int64
	var prevAt time.Time
	for stop.Err() == nil {
		s, err := w.sample(work)
		if err != nil {
			w.metrics.errors.WithLabelValues("metrics").Inc()
			w.log.Error("reading metrics failed", "error", explain(err))
		} else {
			if !prevAt.IsZero() {
				if dt := s.at.Sub(prevAt).Seconds(); dt > 0 && s.headPosition >= prevPos {
					s.appendRate = float64(s.headPosition-prevPos) / dt
				}
			}
			prevPos, prevAt = s.headPosition, s.at
			w.metrics.set(s)
		}
		pause(stop, w.sampleEvery)
	}
}

// snapshot is what one sample read; the collector serves the latest one on every scrape.
type snapshot struct {
	at           time.Time
	headPosition int64
	appendRate   float64
	barrierAge   float64
	projections  []projectionRow
	views        []viewRow
	members      []annals.SubscriptionStatus
	standbys     []standbyLag
}

func (w *worker) sample(ctx context.Context) (*snapshot, error) {
	s := &snapshot{at: time.Now()}
	head, err := w.client.FeedHead(ctx)
	if err != nil {
		return nil, err
	}
	s.headPosition = head.LastPosition
	b, err := feedBlocker(ctx, w.pool)
	if err != nil {
		return nil, fmt.Errorf("read annals.feed_blocker: %w", err)
	}
	if b != nil {
		s.barrierAge = b.Age.Seconds()
	}
	if s.projections, err = queryProjections(ctx, w.pool, nil); err != nil {
		return nil, err
	}
	if s.views, err = queryViews(ctx, w.pool); err != nil {
		return nil, err
	}
	if s.standbys, err = standbyLags(ctx, w.pool); err != nil {
		return nil, fmt.Errorf("read pg_stat_replication: %w", err)
	}
	for _, name := range w.subscriptions {
		ms, err := w.client.SubscriptionStatus(ctx, name)
		if err != nil {
			return nil, err
		}
		s.members = append(s.members, ms...)
	}
	return s, nil
}

// pause waits d, or until stop ends.
func pause(stop context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop.Done():
	case <-t.C:
	}
}

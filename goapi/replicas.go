package annals

import (
	"context"
	"iter"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ReplicaOptions tunes how a Client uses its replicas (ClientOptions.Replica). Zero fields take
// the defaults.
type ReplicaOptions struct {
	// MaxLag is how far behind the primary a replica may be and still serve Eventual reads
	// (default 5s). A replica further behind is skipped until a probe finds it caught up.
	MaxLag time.Duration
	// WaitBound is how long a ReadYourWrites read waits for a replica to replay the token's
	// transaction before it reads from the primary instead (default 1s).
	WaitBound time.Duration
	// ProbeInterval is how often a replica's state (up, replaying, lag) is refreshed; probes run
	// in the background, started by the reads that find the state older (default 1s).
	ProbeInterval time.Duration
	// Logger receives a line whenever a replica goes down, falls behind or comes back (default
	// slog.Default()).
	Logger *slog.Logger
}

// newReplicaSet returns the replicas' state, or nil when there are none.
func newReplicaSet(pools []*pgxpool.Pool, opts ReplicaOptions) *replicaSet {
	s := &replicaSet{opts: opts}
	for _, p := range pools {
		if p != nil {
			s.list = append(s.list, &replica{set: s, pool: p, name: poolName(p)})
		}
	}
	if len(s.list) == 0 {
		return nil
	}
	return s
}

// ReplicaStats counts how reads were routed; export them as metrics.
type ReplicaStats struct {
	// Replicas is each replica's latest known state, in ClientOptions.Replicas order.
	Replicas []ReplicaState
	// PrimaryFallbacks counts reads that wanted a replica and went to the primary because none
	// was usable (down, lagging, or failing during the read).
	PrimaryFallbacks uint64
	// WaitFallbacks counts ReadYourWrites reads whose replica had not replayed the token's
	// transaction within WaitBound, so they read from the primary.
	WaitFallbacks uint64
}

// ReplicaState is one replica as its last probe and the reads through it found it.
type ReplicaState struct {
	// Name is the replica's host:port.
	Name string
	// Down: the last probe or read failed to reach it; Lagging: it is further behind than MaxLag.
	Down, Lagging bool
	// LagBytes and LagSeconds: how far its replay was behind the primary at the last probe.
	LagBytes   int64
	LagSeconds float64
	// Reads counts reads served; Skips counts reads that passed it over (down or lagging).
	Reads, Skips uint64
	// LastError is why it was last marked down ("" when it never was).
	LastError string
	// ProbedAt is when it was last probed (zero: not yet).
	ProbedAt time.Time
}

// ReplicaStats returns the replicas' states and the routing counters (empty without replicas).
func (c *Client) ReplicaStats() ReplicaStats {
	s := c.replicas
	if s == nil {
		return ReplicaStats{}
	}
	out := ReplicaStats{PrimaryFallbacks: s.primaryFallbacks.Load(), WaitFallbacks: s.waitFallbacks.Load()}
	for _, r := range s.list {
		r.mu.Lock()
		st := r.state
		r.mu.Unlock()
		st.Name, st.Reads, st.Skips = r.name, r.reads.Load(), r.skips.Load()
		out.Replicas = append(out.Replicas, st)
	}
	return out
}

// ReadPool returns the pool a read with ctx's Consistency uses now: a usable replica (for
// ReadYourWrites, one that has replayed the token's transaction, waiting up to WaitBound) or the
// primary. Use it for your own queries of projection tables.
func (c *Client) ReadPool(ctx context.Context) *pgxpool.Pool {
	_, r := c.readServer(ctx)
	if r == nil {
		return c.pool
	}
	return r.pool
}

type replicaSet struct {
	opts             ReplicaOptions
	list             []*replica
	next             atomic.Uint64
	primaryFallbacks atomic.Uint64
	waitFallbacks    atomic.Uint64
}

type replica struct {
	set     *replicaSet // the Client's set it belongs to
	pool    *pgxpool.Pool
	name    string
	reads   atomic.Uint64
	skips   atomic.Uint64
	probing atomic.Bool

	mu    sync.Mutex
	state ReplicaState // Down, Lagging, lag, LastError, ProbedAt
}

func (s *replicaSet) maxLag() time.Duration { return positive(s.opts.MaxLag, 5*time.Second) }
func (s *replicaSet) waitBound() time.Duration {
	return positive(s.opts.WaitBound, time.Second)
}
func (s *replicaSet) probeInterval() time.Duration {
	return positive(s.opts.ProbeInterval, time.Second)
}
func (s *replicaSet) logger() *slog.Logger {
	if s.opts.Logger != nil {
		return s.opts.Logger
	}
	return slog.Default()
}

// readServer picks where a read with ctx's Consistency goes: a replica (returned too, so a
// failure can mark it down) or the primary (nil replica).
func (c *Client) readServer(ctx context.Context) (dbtx, *replica) {
	s := c.replicas
	cons := ConsistencyFrom(ctx)
	if s == nil || len(s.list) == 0 || cons.mode == modePrimary {
		return c.db(ctx), nil
	}
	v, _ := ctx.Value(consistencyKey{}).(*consistencyValue)
	// A replica an earlier read through this context used (and, for ReadYourWrites, found to
	// have the token's transaction) serves again while it is usable: no new wait.
	if v != nil {
		if r := v.pinned.Load(); r != nil && r.set == s && r.usable() {
			s.refresh(r, c.pool)
			r.reads.Add(1)
			return c.on(ctx, r.pool), r
		}
	}
	r := s.pick(c.pool)
	if r == nil {
		s.primaryFallbacks.Add(1)
		return c.db(ctx), nil
	}
	if cons.mode == modeReadYourWrites && !s.replayed(ctx, r, cons.token) {
		return c.db(ctx), nil
	}
	if v != nil {
		v.pinned.Store(r)
	}
	r.reads.Add(1)
	return c.on(ctx, r.pool), r
}

// usable reports whether r is neither down nor lagging, as last known.
func (r *replica) usable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.state.Down && !r.state.Lagging
}

// pick returns the next usable replica, round robin, or nil; it starts probes of stale ones.
func (s *replicaSet) pick(primary *pgxpool.Pool) *replica {
	n := uint64(len(s.list))
	start := s.next.Add(1)
	var found *replica
	for i := uint64(0); i < n; i++ {
		r := s.list[(start+i)%n]
		s.refresh(r, primary)
		usable := r.usable()
		if found == nil && usable {
			found = r
		} else if !usable {
			r.skips.Add(1)
		}
	}
	return found
}

// refresh starts a background probe of r when its state is older than ProbeInterval.
func (s *replicaSet) refresh(r *replica, primary *pgxpool.Pool) {
	r.mu.Lock()
	stale := time.Since(r.state.ProbedAt) >= s.probeInterval()
	r.mu.Unlock()
	if stale {
		s.probe(r, primary)
	}
}

// replayed waits (up to WaitBound) until r shows the transaction token. Each ask is its own
// statement with a zero timeout, so the replica holds no snapshot of ours between asks and its
// replay is never held up by us. A replica that fails is marked down.
func (s *replicaSet) replayed(ctx context.Context, r *replica, token uint64) bool {
	deadline := time.Now().Add(s.waitBound())
	sleep := waitPollFirst
	for {
		ok, err := waitForTransaction(ctx, r.pool, token, 0)
		switch {
		case err != nil && replicaUnavailable(err) && ctx.Err() == nil:
			s.markDown(ctx, r, err)
			return false
		case err != nil: // the primary will say it again, with the caller's context
			return false
		case ok:
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			s.waitFallbacks.Add(1)
			return false
		}
		t := time.NewTimer(min(sleep, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		sleep = min(2*sleep, waitPollMax)
	}
}

// markDown records that a read through r failed to reach it; a probe brings it back.
func (s *replicaSet) markDown(ctx context.Context, r *replica, err error) {
	r.mu.Lock()
	was := r.state.Down
	r.state.Down, r.state.LastError, r.state.ProbedAt = true, err.Error(), time.Now()
	r.mu.Unlock()
	s.primaryFallbacks.Add(1)
	if !was {
		s.logger().WarnContext(ctx, "annals: replica down, reading from the primary until it answers again",
			"replica", r.name, "error", err)
	}
}

const probeSQL = `SELECT pg_catalog.pg_is_in_recovery(),
       (pg_catalog.pg_last_wal_replay_lsn() - '0/0'::pg_catalog.pg_lsn)::bigint,
       extract(epoch FROM pg_catalog.clock_timestamp() - pg_catalog.pg_last_xact_replay_timestamp())::float8`

// probe refreshes r's state in the background: is it up, how far behind the primary is its replay.
func (s *replicaSet) probe(r *replica, primary *pgxpool.Pool) {
	if !r.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer r.probing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), max(s.probeInterval(), 2*time.Second))
		defer cancel()
		var primaryLSN *int64
		// Unknown when the "primary" is itself in recovery: then only seconds count.
		_ = primary.QueryRow(ctx, `SELECT CASE WHEN NOT pg_catalog.pg_is_in_recovery()
		    THEN (pg_catalog.pg_current_wal_lsn() - '0/0'::pg_catalog.pg_lsn)::bigint END`).Scan(&primaryLSN)
		var recovering bool
		var replayLSN *int64
		var replayAge *float64
		err := r.pool.QueryRow(ctx, probeSQL).Scan(&recovering, &replayLSN, &replayAge)
		now := time.Now()
		var lagBytes int64
		var lagSeconds float64
		if err == nil && recovering && replayLSN != nil {
			if primaryLSN != nil {
				lagBytes = max(0, *primaryLSN-*replayLSN)
			}
			// Behind by bytes: the replay's age is how stale it is (an idle primary commits
			// nothing, so the age of the last replayed commit alone would overstate it).
			if (primaryLSN == nil || lagBytes > 0) && replayAge != nil {
				lagSeconds = max(0, *replayAge)
			}
		}
		lagging := err == nil && lagSeconds > s.maxLag().Seconds()
		r.mu.Lock()
		wasDown, wasLagging := r.state.Down, r.state.Lagging
		r.state.ProbedAt = now
		r.state.Down = err != nil
		if err != nil {
			r.state.LastError = err.Error()
		} else {
			r.state.Lagging, r.state.LagBytes, r.state.LagSeconds = lagging, lagBytes, lagSeconds
		}
		r.mu.Unlock()
		log := s.logger()
		switch {
		case err != nil && !wasDown:
			log.Warn("annals: replica down, reading from the primary until it answers again", "replica", r.name, "error", err)
		case err == nil && wasDown:
			log.Info("annals: replica back", "replica", r.name, "lag_bytes", lagBytes, "lag_seconds", lagSeconds)
		case lagging && !wasLagging:
			log.Warn("annals: replica lagging beyond MaxLag, skipped until it catches up", "replica", r.name,
				"lag_bytes", lagBytes, "lag_seconds", lagSeconds, "max_lag", s.maxLag())
		case err == nil && !lagging && wasLagging:
			log.Info("annals: replica caught up", "replica", r.name, "lag_bytes", lagBytes, "lag_seconds", lagSeconds)
		}
	}()
}

func poolName(p *pgxpool.Pool) string {
	cfg := p.Config().ConnConfig
	return cfg.Host + ":" + strconv.Itoa(int(cfg.Port))
}

// routed runs read on the server ctx's Consistency picks; when a replica fails to answer it is
// marked down and the read runs again on the primary.
func routed[T any](ctx context.Context, c *Client, read func(dbtx) (T, error)) (T, error) {
	db, r := c.readServer(ctx)
	v, err := read(db)
	if err != nil && r != nil && replicaUnavailable(err) && ctx.Err() == nil {
		c.replicas.markDown(ctx, r, err)
		return read(c.db(ctx))
	}
	return v, err
}

// routedSeq is routed for iterators: a replica failing before the first item yields moves the
// whole read to the primary; after that, the error is the caller's (items were already seen).
func routedSeq[T any](ctx context.Context, c *Client, read func(dbtx) iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		db, r := c.readServer(ctx)
		started := false
		for v, err := range read(db) {
			if err != nil && !started && r != nil && replicaUnavailable(err) && ctx.Err() == nil {
				c.replicas.markDown(ctx, r, err)
				for v, err := range read(c.db(ctx)) {
					if !yield(v, err) {
						return
					}
				}
				return
			}
			started = true
			if !yield(v, err) {
				return
			}
		}
	}
}

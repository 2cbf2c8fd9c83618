package annals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A sharded store (package goapi/shard) has one gap-free feed per shard: events of one stream
// never span shards, so each shard's feed orders a stream's events, and a consumer's position is
// one Checkpoint per shard. An annals.Client on the proxy's pool appends and reads streams as on
// one node; the calls in this file are the sharded feed's.

// ShardNumbers returns the shards of the sharded store whose proxy c's pool connects to, 1..N.
func (c *Client) ShardNumbers(ctx context.Context) ([]int, error) {
	return shardNumbers(ctx, c.db(ctx))
}

// ShardNumbersTx is ShardNumbers inside the caller's transaction on the proxy.
func (c *Client) ShardNumbersTx(ctx context.Context, tx pgx.Tx) ([]int, error) {
	return shardNumbers(ctx, tx)
}

func shardNumbers(ctx context.Context, db dbtx) ([]int, error) {
	rows, err := db.Query(ctx, "SELECT s.shard FROM annals.shards() AS s")
	if err != nil {
		return nil, wrapf(mapError(err), "shard numbers")
	}
	ns, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, wrapf(mapError(err), "shard numbers")
	}
	return ns, nil
}

// ReadShard reads one shard's gap-free feed after the checkpoint, through the proxy: ReadAll of
// that shard (opts.Group is not supported, as in ReadAll). ErrShardUnavailable when the proxy
// cannot reach it.
func (c *Client) ReadShard(ctx context.Context, shard int, after Checkpoint, opts FeedOptions) ([]RecordedEvent, error) {
	return readShard(ctx, c.db(ctx), shard, after, opts)
}

// ReadShardTx is ReadShard inside the caller's transaction on the proxy. The shard's read is
// PL/Proxy's own remote call, not part of that transaction's snapshot.
func (c *Client) ReadShardTx(ctx context.Context, tx pgx.Tx, shard int, after Checkpoint, opts FeedOptions) ([]RecordedEvent, error) {
	return readShard(ctx, tx, shard, after, opts)
}

func readShard(ctx context.Context, db dbtx, shard int, after Checkpoint, opts FeedOptions) ([]RecordedEvent, error) {
	if opts.Group != (ConsumerGroup{}) {
		return nil, invalid("group", "consumer groups split one category's feed: use ReadCategory")
	}
	return collectEvents(ctx, db, fmt.Sprintf("read shard %d", shard),
		"SELECT "+eventColumns+" FROM annals.read_all($1, $2, $3, $4, $5, $6, $7) AS e",
		shard, after.TransactionID, after.GlobalPosition, pageSize(opts.MaxCount),
		nilIfEmpty(opts.EventTypes), nilIfEmpty(opts.Categories), opts.Raw)
}

// ShardedSubscriber runs a HandlerFunc over a sharded store's feed, exactly once per event: for
// each shard it reads a batch through the proxy and applies the handler inside a transaction on
// Target, the database the handler writes to, where it also moves that shard's checkpoint (a row
// of CheckpointTable, locked for the batch). The handler's writes and the checkpoint commit or
// roll back together, and two instances of one subscriber take turns per shard, so an event is
// never applied twice or skipped. A shard that is down holds up only its own events: the others
// keep flowing. A failing handler rolls its batch back; the batch is retried after a backoff
// (there are no dead letters here).
type ShardedSubscriber struct {
	// Proxy is a client on the sharded store's proxy (required).
	Proxy *Client
	// Target is where the handler writes and the checkpoints live (required). It may be any
	// database, one of the shards included.
	Target *pgxpool.Pool
	// Name identifies the subscriber's checkpoints (required).
	Name string
	// Handler is called for each event in Target's transaction (required).
	Handler HandlerFunc
	// CheckpointTable is the table holding the checkpoints, created if missing: a name, or
	// schema.name (default annals_shard_checkpoints, in Target's search path).
	CheckpointTable string
	// BatchSize is the most events per shard and transaction (default 100).
	BatchSize int
	// PollInterval is the wait after a pass that found nothing (default 200ms).
	PollInterval time.Duration
	// EventTypes and Categories filter the feed, as FeedOptions do.
	EventTypes, Categories []string
	// Logger receives errors (default slog.Default()).
	Logger *slog.Logger

	ready atomic.Bool // the checkpoint table exists
}

func (s *ShardedSubscriber) defaults() error {
	if s.Proxy == nil || s.Target == nil || s.Handler == nil || s.Name == "" {
		return invalid("subscriber", "Proxy, Target, Name and Handler are required")
	}
	return nil
}

// The settings with their defaults, read without changing the caller's struct (Poll may run
// concurrently).
func (s *ShardedSubscriber) checkpointTable() string {
	if s.CheckpointTable == "" {
		return "annals_shard_checkpoints"
	}
	return s.CheckpointTable
}
func (s *ShardedSubscriber) batchSize() int { return positive(s.BatchSize, 100) }
func (s *ShardedSubscriber) pollInterval() time.Duration {
	return positive(s.PollInterval, 200*time.Millisecond)
}
func (s *ShardedSubscriber) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// table is CheckpointTable quoted, schema-qualified when it has a dot.
func (s *ShardedSubscriber) table() string {
	return pgx.Identifier(strings.SplitN(s.checkpointTable(), ".", 2)).Sanitize()
}

// Setup creates the checkpoint table on Target if it is missing. Run and Poll call it.
func (s *ShardedSubscriber) Setup(ctx context.Context) error {
	if err := s.defaults(); err != nil {
		return err
	}
	if s.ready.Load() {
		return nil
	}
	_, err := s.Target.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table()+` (
		subscriber      text   NOT NULL,
		shard           integer NOT NULL,
		transaction_id  xid8   NOT NULL DEFAULT '0',
		global_position bigint NOT NULL DEFAULT 0,
		CONSTRAINT `+pgx.Identifier{strings.ReplaceAll(s.checkpointTable(), ".", "_") + "_pkey"}.Sanitize()+` PRIMARY KEY (subscriber, shard))`)
	if err != nil {
		return wrapf(mapError(err), "sharded subscriber %s: create %s", s.Name, s.checkpointTable())
	}
	s.ready.Store(true)
	return nil
}

// Checkpoints returns the subscriber's position in each shard's feed (shards it never read are
// absent: it starts them from the beginning).
func (s *ShardedSubscriber) Checkpoints(ctx context.Context) (map[int]Checkpoint, error) {
	if err := s.Setup(ctx); err != nil {
		return nil, err
	}
	rows, err := s.Target.Query(ctx, `SELECT shard, transaction_id, global_position FROM `+
		s.table()+` WHERE subscriber = $1`, s.Name)
	if err != nil {
		return nil, wrapf(mapError(err), "sharded subscriber %s: checkpoints", s.Name)
	}
	out := map[int]Checkpoint{}
	var shard int
	var cp Checkpoint
	_, err = pgx.ForEachRow(rows, []any{&shard, &cp.TransactionID, &cp.GlobalPosition}, func() error {
		out[shard] = cp
		return nil
	})
	if err != nil {
		return nil, wrapf(mapError(err), "sharded subscriber %s: checkpoints", s.Name)
	}
	return out, nil
}

// Poll makes one pass over every shard, processing at most BatchSize events of each, and returns
// how many it processed. A shard's failure (down, or a handler error) does not stop the pass: the
// other shards are processed and the errors are returned joined.
func (s *ShardedSubscriber) Poll(ctx context.Context) (int, error) {
	if err := s.Setup(ctx); err != nil {
		return 0, err
	}
	shards, err := s.Proxy.ShardNumbers(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for _, shard := range shards {
		n, err := s.pollShard(ctx, shard)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

func (s *ShardedSubscriber) pollShard(ctx context.Context, shard int) (int, error) {
	table := s.table()
	n := 0
	err := pgx.BeginFunc(ctx, s.Target, func(tx pgx.Tx) error {
		// The row exists before it is locked; a concurrent instance waits here for this batch.
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (subscriber, shard) VALUES ($1, $2)
			ON CONFLICT (subscriber, shard) DO NOTHING`, s.Name, shard); err != nil {
			return mapError(err)
		}
		var cp Checkpoint
		if err := tx.QueryRow(ctx, `SELECT transaction_id, global_position FROM `+table+`
			WHERE subscriber = $1 AND shard = $2 FOR UPDATE`, s.Name, shard).Scan(&cp.TransactionID, &cp.GlobalPosition); err != nil {
			return mapError(err)
		}
		evs, err := s.Proxy.ReadShard(ctx, shard, cp, FeedOptions{MaxCount: s.batchSize(), EventTypes: s.EventTypes, Categories: s.Categories})
		if err != nil || len(evs) == 0 {
			return err
		}
		for _, ev := range evs {
			if err := s.Handler(ctx, tx, ev); err != nil {
				return fmt.Errorf("handler failed at shard %d position %d (stream %s version %d): %w",
					shard, ev.GlobalPosition, ev.StreamID, ev.StreamVersion, err)
			}
		}
		last := evs[len(evs)-1].Checkpoint()
		if _, err := tx.Exec(ctx, `UPDATE `+table+` SET transaction_id = $3, global_position = $4
			WHERE subscriber = $1 AND shard = $2`, s.Name, shard, last.TransactionID, last.GlobalPosition); err != nil {
			return mapError(err)
		}
		n = len(evs)
		return nil
	})
	if err != nil {
		return 0, wrapf(err, "sharded subscriber %s: shard %d", s.Name, shard)
	}
	return n, nil
}

// Run polls until ctx is cancelled, then returns nil. Errors are logged and the pass retried
// after a backoff (PollInterval doubling up to 30s); only invalid configuration ends Run early.
func (s *ShardedSubscriber) Run(ctx context.Context) error {
	if err := s.defaults(); err != nil {
		return err
	}
	backoff := s.pollInterval()
	for ctx.Err() == nil {
		n, err := s.Poll(ctx)
		wait := s.pollInterval()
		switch {
		case err != nil && ctx.Err() == nil:
			s.logger().Error("annals: sharded subscriber", "subscriber", s.Name, "err", err)
			wait, backoff = backoff, min(2*backoff, 30*time.Second)
		case n > 0:
			wait, backoff = 0, s.pollInterval()
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
	return nil
}

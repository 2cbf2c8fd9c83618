package annals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// HandlerFunc processes one event inside the subscriber's transaction. Writes made through tx commit
// together with the subscription's checkpoint, so their effects happen exactly once; an error
// rolls them back and the event is retried.
type HandlerFunc func(ctx context.Context, tx pgx.Tx, ev RecordedEvent) error

// Subscriber runs a HandlerFunc over a subscription member: it reads a batch, applies the handler to
// each event and acknowledges the batch in one transaction. It wakes on NOTIFY annals_events but
// polls too, so lost notifications or a dead listener connection only add latency. Its listener
// checks at start that notifications arrive (see Client.ListenEvents): behind a pooler in
// transaction mode they cannot, and the subscriber says so once and polls every
// FallbackPollInterval; give it ListenConfig (a direct connection) to keep the wake-ups. A failing
// event is tried MaxAttempts times, then parked as a dead letter while the feed moves on; a
// serialization failure (40001, say from AppendTx in the handler) redoes the batch in a new
// transaction instead, as retrying in the same one cannot succeed.
// Events parked earlier and queued with annals.retry_dead_letters are retried as well.
type Subscriber struct {
	Client *Client
	// Name is the subscription's name (a name of 1..256 bytes, as annals.create_subscription
	// takes it; Run refuses others with ErrInvalidArgument).
	Name string
	// Handler is called for each event (required).
	Handler HandlerFunc
	// Member is the consumer-group member this subscriber serves (default 0).
	Member int
	// Consumer names this instance for the lease (default host-pid-random).
	Consumer string
	// BatchSize is the most events per transaction (default 100).
	BatchSize int
	// PollInterval bounds the wait between empty reads while the listener works and no
	// notification arrives (default 1s).
	PollInterval time.Duration
	// FallbackPollInterval is the wait between empty reads while no notification can arrive:
	// with DisableListen, when the listener found that LISTEN cannot receive, and while it starts
	// or reconnects (default 200ms, never more than PollInterval).
	FallbackPollInterval time.Duration
	// MaxAttempts is how often an event is tried before it is parked (default 5).
	MaxAttempts int
	// RetryDelay is the first pause between attempts at one event, doubled each time (default 50ms).
	RetryDelay time.Duration
	// LeaseDuration is how long the lease lasts without renewal (default 30s); a dead instance's
	// member is taken over after it.
	LeaseDuration time.Duration
	// DisableListen polls only, every FallbackPollInterval.
	DisableListen bool
	// ListenConfig, when set, gives the listener a connection of its own with this configuration
	// instead of one taken from Client's pool: a direct connection to PostgreSQL (or through a
	// pooler in session mode) when the pool goes through a pooler in transaction mode, where LISTEN
	// cannot receive. It must reach the same database as the pool.
	ListenConfig *pgx.ConnConfig
	// Logger receives errors and parked events (default slog.Default()).
	Logger *slog.Logger

	mu    sync.Mutex
	stats SubscriberStats
}

// SubscriberStats are a running subscriber's counters. Retried counts handler attempts that
// failed and were tried again.
type SubscriberStats struct {
	Processed  int64
	Parked     int64
	Retried    int64
	Batches    int64
	Checkpoint Checkpoint
	LastBatch  time.Time
	LastError  error
}

// Stats returns a snapshot of the counters.
func (s *Subscriber) Stats() SubscriberStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// subscriberRun is one Run of a Subscriber: its settings with the defaults filled in (the
// caller's struct is never changed) beside the Subscriber whose counters it updates.
type subscriberRun struct {
	*Subscriber
	consumer      string
	batchSize     int
	pollInterval  time.Duration
	fallbackPoll  time.Duration
	maxAttempts   int
	retryDelay    time.Duration
	leaseDuration time.Duration
	logger        *slog.Logger
}

// positive is v when it is above zero, else def.
func positive[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (s *Subscriber) settings() (*subscriberRun, error) {
	if s.Client == nil || s.Handler == nil || s.Name == "" {
		return nil, invalid("subscriber", "Client, Name and Handler are required")
	}
	if p := nameProblem(s.Name, 256); p != "" {
		return nil, invalid("subscription", "%s", p)
	}
	r := &subscriberRun{Subscriber: s, consumer: s.Consumer, logger: s.Logger,
		batchSize:     positive(s.BatchSize, 100),
		pollInterval:  positive(s.PollInterval, time.Second),
		fallbackPoll:  positive(s.FallbackPollInterval, 200*time.Millisecond),
		maxAttempts:   positive(s.MaxAttempts, 5),
		retryDelay:    positive(s.RetryDelay, 50*time.Millisecond),
		leaseDuration: s.LeaseDuration,
	}
	r.fallbackPoll = min(r.fallbackPoll, r.pollInterval)
	if r.leaseDuration < time.Second {
		r.leaseDuration = 30 * time.Second
	}
	if r.consumer == "" {
		host, _ := os.Hostname()
		r.consumer = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
	}
	if r.logger == nil {
		r.logger = slog.Default()
	}
	return r, nil
}

// Run processes the subscription until ctx is cancelled, then releases its lease and returns nil.
// Errors reading or committing are logged and retried with backoff; only invalid configuration
// or a missing subscription end Run early.
func (s *Subscriber) Run(ctx context.Context) error {
	r, err := s.settings()
	if err != nil {
		return err
	}
	var listener *EventListener
	if !r.DisableListen {
		lctx, stopListening := context.WithCancel(ctx)
		listener = r.Client.ListenEvents(lctx, ListenOptions{ConnConfig: r.ListenConfig,
			Logger: r.logger.With("subscription", r.Name, "member", r.Member, "poll_interval", r.fallbackPoll)})
		defer func() {
			stopListening()
			<-listener.Done() // its connection closed
		}()
	}
	defer func() {
		_, _ = r.Client.pool.Exec(context.WithoutCancel(ctx), "SELECT annals.release_lease($1, $2, $3)", r.Name, r.Member, r.consumer)
	}()

	backoff := time.Duration(0)
	var leaseUntil time.Time
	for ctx.Err() == nil {
		if time.Until(leaseUntil) < r.leaseDuration/2 {
			held, err := r.acquireLease(ctx)
			switch {
			case err != nil && (errors.Is(err, ErrInvalidArgument) || isNotFound(err)):
				return err
			case err != nil:
				backoff = r.fail(ctx, err, backoff)
				continue
			case !held:
				sleep(ctx, r.pollInterval, nil) // another instance holds it; wait to take over
				continue
			}
			leaseUntil = time.Now().Add(r.leaseDuration)
		}
		n, err := r.processBatch(ctx)
		if err == nil {
			var m int
			m, err = r.retryDeadLetters(ctx)
			n += m
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if isNotFound(err) {
				return err
			}
			backoff = r.fail(ctx, err, backoff)
			continue
		}
		backoff = 0
		if n == 0 {
			listener.Wait(ctx, r.pollInterval, r.fallbackPoll)
		}
	}
	return nil
}

func (s *subscriberRun) acquireLease(ctx context.Context) (bool, error) {
	var held bool
	err := s.Client.pool.QueryRow(ctx, "SELECT annals.acquire_lease($1, $2, $3, $4)",
		s.Name, s.Member, s.consumer, int(s.leaseDuration/time.Second)).Scan(&held)
	if err != nil {
		return false, wrapf(mapError(err), "subscriber %q: lease", s.Name)
	}
	return held, nil
}

// fail logs err and sleeps with exponential backoff (100ms doubling to 30s).
func (s *subscriberRun) fail(ctx context.Context, err error, backoff time.Duration) time.Duration {
	s.mu.Lock()
	s.stats.LastError = err
	s.mu.Unlock()
	backoff = min(max(2*backoff, 100*time.Millisecond), 30*time.Second)
	s.logger.Error("annals subscriber error; backing off", "subscription", s.Name, "member", s.Member,
		"error", err, "backoff", backoff)
	sleep(ctx, backoff, nil)
	return backoff
}

// processBatch handles one batch in one transaction. The fast path runs every event without
// savepoints; if the handler fails, the transaction is rolled back and the batch replayed with a
// savepoint per event, retrying and finally parking the failing ones. The fast path's failure
// counts as the failing event's first attempt.
func (s *subscriberRun) processBatch(ctx context.Context) (int, error) {
	n, failed, err := s.runBatch(ctx, nil)
	if err == nil && failed != nil {
		n, _, err = s.runBatch(ctx, failed)
	}
	return n, err
}

// failure is the fast path's handler failure: the event and the error.
type failure struct {
	streamID string
	version  int64
	err      error
}

// runBatch runs the fast path when failed is nil and reports the handler's failure, if any;
// given that failure it replays the batch carefully.
func (s *subscriberRun) runBatch(ctx context.Context, failed *failure) (n int, handlerFailed *failure, err error) {
	careful := failed != nil
	tx, err := s.Client.pool.Begin(ctx)
	if err != nil {
		return 0, nil, wrapf(err, "subscriber %q: begin", s.Name)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit

	batch := &pgx.Batch{}
	s.Client.tenantStatement(ctx, batch) // the tenant (if any) for the whole transaction
	batch.Queue("SELECT "+eventColumns+" FROM annals.read_subscription($1, $2, $3) AS e", s.Name, s.Member, s.batchSize)
	batch.Queue("SELECT c.transaction_id, c.global_position FROM annals.subscription_checkpoint($1, $2) AS c", s.Name, s.Member)
	br := tx.SendBatch(ctx, batch)
	if _, ok := s.Client.tenantFor(ctx); ok {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return 0, nil, wrapf(mapError(err), "subscriber %q: set tenant", s.Name)
		}
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return 0, nil, wrapf(mapError(err), "subscriber %q: read", s.Name)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		br.Close()
		return 0, nil, wrapf(mapError(err), "subscriber %q: read", s.Name)
	}
	var expected Checkpoint
	if err := br.QueryRow().Scan(&expected.TransactionID, &expected.GlobalPosition); err != nil {
		br.Close()
		return 0, nil, wrapf(mapError(err), "subscriber %q: checkpoint", s.Name)
	}
	if err := br.Close(); err != nil {
		return 0, nil, wrapf(mapError(err), "subscriber %q", s.Name)
	}
	if len(events) == 0 {
		// Commit: an idle read may have moved the checkpoint up to the feed barrier.
		if err := tx.Commit(ctx); err != nil {
			return 0, nil, wrapf(mapError(err), "subscriber %q: commit", s.Name)
		}
		return 0, nil, nil
	}

	parked := 0
	for _, ev := range events {
		if !careful {
			if err := s.Handler(ctx, tx, ev); err != nil {
				if ctx.Err() != nil {
					return 0, nil, ctx.Err()
				}
				return 0, &failure{streamID: ev.StreamID, version: ev.StreamVersion, err: err}, nil // replay the batch carefully
			}
			continue
		}
		var prior error
		if ev.StreamID == failed.streamID && ev.StreamVersion == failed.version {
			prior = failed.err
		}
		ok, err := s.tryEvent(ctx, tx, ev, prior)
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			parked++
		}
	}
	last := events[len(events)-1].Checkpoint()
	_, err = tx.Exec(ctx, "SELECT annals.ack_subscription($1, $2, $3, $4, $5, $6, $7)",
		s.Name, s.Member, expected.TransactionID, expected.GlobalPosition, last.TransactionID, last.GlobalPosition, s.consumer)
	if err != nil {
		return 0, nil, wrapf(mapError(err), "subscriber %q: acknowledge", s.Name)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, nil, wrapf(mapError(err), "subscriber %q: commit", s.Name)
	}
	s.mu.Lock()
	s.stats.Processed += int64(len(events) - parked)
	s.stats.Parked += int64(parked)
	s.stats.Batches++
	s.stats.Checkpoint = last
	s.stats.LastBatch = time.Now()
	s.mu.Unlock()
	return len(events), nil, nil
}

// tryEvent runs the handler under a savepoint until MaxAttempts attempts have been made, prior
// (the fast path's failure of this event, if any) counting as the first; when every attempt
// fails it parks the event (in the same transaction) and reports false.
func (s *subscriberRun) tryEvent(ctx context.Context, tx pgx.Tx, ev RecordedEvent, prior error) (bool, error) {
	lastErr := prior
	delay := s.retryDelay
	attempt := 0
	if prior != nil {
		attempt = 1
	}
	for ; attempt < s.maxAttempts; attempt++ {
		if lastErr != nil { // a retry
			s.mu.Lock()
			s.stats.Retried++
			s.mu.Unlock()
			sleep(ctx, delay, nil)
			delay *= 2
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
		}
		sp, err := tx.Begin(ctx) // a savepoint
		if err != nil {
			return false, wrapf(err, "subscriber %q: savepoint", s.Name)
		}
		if lastErr = s.Handler(ctx, sp, ev); lastErr == nil {
			if err := sp.Commit(ctx); err != nil {
				return false, wrapf(err, "subscriber %q: release savepoint", s.Name)
			}
			return true, nil
		}
		if err := sp.Rollback(ctx); err != nil {
			return false, wrapf(err, "subscriber %q: rollback savepoint", s.Name)
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if serializationFailure(lastErr) {
			break // retrying in this transaction cannot help
		}
	}
	if serializationFailure(lastErr) {
		// Not the event's fault (say, an append older than its stream's last appender), and it
		// recurs on every retry in this transaction: redo the batch in a new one instead.
		return false, wrapf(lastErr, "subscriber %q: %s@%d", s.Name, ev.StreamID, ev.StreamVersion)
	}
	_, err := tx.Exec(ctx, "SELECT annals.park_event($1, $2, $3, $4, $5, $6)",
		s.Name, s.Member, ev.StreamID, ev.StreamVersion, s.maxAttempts, lastErr.Error())
	if err != nil {
		return false, wrapf(mapError(err), "subscriber %q: park %s@%d", s.Name, ev.StreamID, ev.StreamVersion)
	}
	s.logger.Warn("annals subscriber parked an event", "subscription", s.Name, "member", s.Member,
		"stream_id", ev.StreamID, "stream_version", ev.StreamVersion, "attempts", s.maxAttempts, "error", lastErr)
	return false, nil
}

// retryDeadLetters processes parked events that an operator queued for retry.
func (s *subscriberRun) retryDeadLetters(ctx context.Context) (int, error) {
	tx, err := s.Client.pool.Begin(ctx)
	if err != nil {
		return 0, wrapf(err, "subscriber %q: begin", s.Name)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	// The tenant (if any) is set in the read's round trip, for the rest of the transaction.
	rows, err := s.Client.on(ctx, tx).Query(ctx, "SELECT d.dead_letter_id, "+eventColumns+
		" FROM annals.read_dead_letters($1, $2, $3) AS d CROSS JOIN LATERAL (SELECT (d.event).*) AS e",
		s.Name, s.Member, s.batchSize)
	if err != nil {
		return 0, wrapf(mapError(err), "subscriber %q: read dead letters", s.Name)
	}
	type letter struct {
		id int64
		ev RecordedEvent
	}
	letters, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (letter, error) {
		var l letter
		err := r.Scan(append([]any{&l.id}, l.ev.fields()...)...)
		return l, err
	})
	if err != nil {
		return 0, wrapf(mapError(err), "subscriber %q: read dead letters", s.Name)
	}
	if len(letters) == 0 {
		return 0, nil
	}
	for _, l := range letters {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return 0, err
		}
		herr := s.Handler(ctx, sp, l.ev)
		if serializationFailure(herr) {
			// Retrying in this transaction cannot succeed: redo in a fresh one, park nothing.
			return 0, wrapf(herr, "subscriber %q: dead letter %d", s.Name, l.id)
		}
		var msg *string
		if herr != nil {
			_ = sp.Rollback(ctx)
			m := herr.Error()
			msg = &m
		} else if err := sp.Commit(ctx); err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, "SELECT annals.resolve_dead_letter($1, $2, $3)", l.id, herr == nil, msg); err != nil {
			return 0, wrapf(mapError(err), "subscriber %q: resolve dead letter %d", s.Name, l.id)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, wrapf(mapError(err), "subscriber %q: commit dead letters", s.Name)
	}
	return len(letters), nil
}

func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

func isNotFound(err error) bool {
	return errors.Is(err, ErrNotFound)
}

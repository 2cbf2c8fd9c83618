package domain

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	annals "github.com/annals-db/annals/goapi"
)

// AggregateRepository loads, saves and handles commands for an Aggregate type A (a pointer to a
// struct embedding AggregateBase). Safe for concurrent use; the aggregates it returns are not.
type AggregateRepository[A Aggregate] struct {
	e            engine[A]
	newAggregate func() A
}

// NewAggregateRepository returns an AggregateRepository over client, decoding and encoding events
// with registry. newAggregate returns an empty aggregate, such as func() *Account { return
// &Account{} }; with snapshots on, A must also survive a round trip through encoding/json (its
// state decodes into a fresh newAggregate()). It panics when an argument is nil.
func NewAggregateRepository[A Aggregate](client *annals.Client, registry *Registry, newAggregate func() A, opts RepositoryOptions) *AggregateRepository[A] {
	if client == nil || registry == nil || newAggregate == nil {
		panic("annals: NewAggregateRepository needs a client, a registry and a constructor")
	}
	r := &AggregateRepository[A]{newAggregate: newAggregate}
	r.e = engine[A]{
		client: client, reg: registry, opts: opts.withDefaults(),
		fresh: r.New,
		fromSnapshot: func(streamID string, version int64, raw json.RawMessage) (A, error) {
			a := r.New(streamID)
			if err := json.Unmarshal(raw, a); err != nil {
				var zero A
				return zero, err
			}
			b := a.aggregateBase()
			b.version, b.snapshotVersion = version, version
			return a, nil
		},
		apply: func(a A, ev any, version int64) A {
			a.Apply(ev)
			a.aggregateBase().version = version
			return a
		},
	}
	return r
}

// New returns a new aggregate for streamID at version 0 with nothing pending. Saving it expects
// the stream to have no events.
func (r *AggregateRepository[A]) New(streamID string) A {
	a := r.newAggregate()
	b := a.aggregateBase()
	*b = AggregateBase{id: streamID}
	return a
}

// Load returns the aggregate of a stream, rebuilt from the latest snapshot (when snapshots are
// on) and the events after it, with nothing pending. A stream without events is
// ErrStreamNotFound (use New to start one). Decoding failures are *DecodeError.
func (r *AggregateRepository[A]) Load(ctx context.Context, streamID string) (A, error) {
	l, err := r.e.load(ctx, nil, streamID, -1)
	return aggregateResult(l, err)
}

// LoadTx is Load inside the caller's transaction.
func (r *AggregateRepository[A]) LoadTx(ctx context.Context, tx pgx.Tx, streamID string) (A, error) {
	l, err := r.e.load(ctx, tx, streamID, -1)
	return aggregateResult(l, err)
}

// LoadAt returns the aggregate as of a version (AtVersion) or a point in time (AtTime); its
// Version is the version that state reflects. A snapshot is used only when it is at or below
// that version. ErrStreamNotFound when the stream had no events at that point. Saving such an
// aggregate fails with ErrWrongExpectedVersion unless the stream is still there.
func (r *AggregateRepository[A]) LoadAt(ctx context.Context, streamID string, asOf annals.AsOf) (A, error) {
	l, err := r.e.loadAt(ctx, streamID, asOf)
	return aggregateResult(l, err)
}

func aggregateResult[A Aggregate](l loaded[A], err error) (A, error) {
	var zero A
	if err != nil {
		return zero, err
	}
	if l.version == 0 {
		return zero, notFound(l.state.aggregateBase().id)
	}
	return l.state, nil
}

// Save appends a's pending events expecting a's version. Only when the append succeeded does it
// clear them and move a to the new version; on any error they stay pending, with the event ids
// fixed at the first attempt, so saving again after an unknown outcome (a lost connection) is a
// replay, not a duplicate. Nothing pending is a no-op. A retryable failure or a lost connection
// is sent again, up to RepositoryOptions.MaxAttempts appends in all; a conflict is not
// (ErrWrongExpectedVersion: a's decisions were made on an old state; use Handle, or load again).
// A snapshot is saved after the commit when the policy says so; its failure is only logged.
// Events carry the context's Metadata (ContextWithMetadata). An aggregate with no stream id (not
// made by New or Load) is ErrInvalidArgument.
func (r *AggregateRepository[A]) Save(ctx context.Context, a A) error {
	for attempt := 1; ; attempt++ {
		err := r.save(ctx, nil, a)
		if err == nil {
			return nil
		}
		if next, err := afterFailure(ctx, err, attempt, r.e.opts.MaxAttempts, false); next != resend {
			return err
		}
	}
}

// SaveTx is Save inside the caller's transaction. Since the caller commits, SaveTx treats a
// successful append in tx as the aggregate's commit: pending events are cleared and the version
// moves on, so the aggregate matches what tx holds; when tx then rolls back, discard the
// aggregate and load it again (its events never happened). A failed append keeps them pending,
// but the transaction is aborted. A due snapshot is written in a savepoint of tx.
func (r *AggregateRepository[A]) SaveTx(ctx context.Context, tx pgx.Tx, a A) error {
	if tx == nil {
		return invalid("tx", "must not be nil")
	}
	return r.save(ctx, tx, a)
}

// save sends a's pending events once (in tx when it is not nil); the callers retry.
func (r *AggregateRepository[A]) save(ctx context.Context, tx pgx.Tx, a A) error {
	b := a.aggregateBase()
	data, err := r.encodePending(ctx, b)
	if err != nil || len(data) == 0 { // nothing pending: a no-op
		return err
	}
	res, err := r.e.append(ctx, tx, b.id, annals.Exact(b.version), data)
	if err != nil {
		return err
	}
	b.committed(res.StreamVersion)
	if r.e.maybeSnapshot(ctx, tx, b.id, a, b.version, b.snapshotVersion) {
		b.snapshotVersion = b.version
	}
	return nil
}

// encodePending encodes b's pending events, fixing their event ids at the first call so that a
// later save of the same events is a replay; b must have a stream id. Save and Pending share it.
func (r *AggregateRepository[A]) encodePending(ctx context.Context, b *AggregateBase) ([]annals.EventData, error) {
	if b.id == "" {
		return nil, invalid("aggregate", "has no stream id: create it with AggregateRepository.New or Load")
	}
	events := make([]any, len(b.pending))
	ids := make([]uuid.UUID, len(b.pending))
	for i, p := range b.pending {
		events[i], ids[i] = p.event, p.id
	}
	data, err := r.e.encode(ctx, events, ids)
	if err != nil {
		return nil, err
	}
	for i := range b.pending {
		b.pending[i].id = ids[i] // fixed from now on
	}
	return data, nil
}

// Handle runs command on a stream's aggregate: Load (or New when the stream has no events),
// command, Save. When another writer appended first (ErrWrongExpectedVersion) it loads and runs
// command again, so command must only change the aggregate (raise events), nothing outside it;
// a retryable failure or a lost connection sends the same events again. Either way at most
// RepositoryOptions.MaxAttempts appends are sent. It returns the aggregate after the commit, or
// command's error as is with nothing appended.
func (r *AggregateRepository[A]) Handle(ctx context.Context, streamID string, command func(A) error) (A, error) {
	return r.handle(ctx, nil, streamID, command)
}

// HandleTx is Handle inside the caller's transaction (see SaveTx). It does not retry: a conflict
// aborts the transaction, which the caller retries as a whole.
func (r *AggregateRepository[A]) HandleTx(ctx context.Context, tx pgx.Tx, streamID string, command func(A) error) (A, error) {
	if tx == nil {
		var zero A
		return zero, invalid("tx", "must not be nil")
	}
	return r.handle(ctx, tx, streamID, command)
}

// handle is the only retry loop of the aggregate's append: each turn sends one append, at most
// MaxAttempts in all (one with tx).
func (r *AggregateRepository[A]) handle(ctx context.Context, tx pgx.Tx, streamID string, command func(A) error) (A, error) {
	var zero A
	maxAttempts := r.e.opts.MaxAttempts
	if tx != nil {
		maxAttempts = 1
	}
	var a A
	loadAndRun := true
	for attempt := 1; ; attempt++ {
		if loadAndRun {
			l, err := r.e.load(ctx, tx, streamID, -1)
			if err != nil {
				return zero, err
			}
			a = l.state
			a.aggregateBase().snapshotVersion = l.snapshotVersion
			if err := command(a); err != nil {
				return zero, err
			}
		}
		err := r.save(ctx, tx, a)
		if err == nil {
			return a, nil
		}
		next, err := afterFailure(ctx, err, attempt, maxAttempts, true)
		if next == giveUp {
			return zero, err
		}
		loadAndRun = next == redecide // a resend keeps a's pending events and their ids
	}
}

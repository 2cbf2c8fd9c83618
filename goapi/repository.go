package annals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// RepositoryOptions configures a Repository or an AggregateRepository. The zero value gives
// the defaults.
type RepositoryOptions struct {
	// SnapshotType names this repository's snapshots (default "aggregate"). Give it a stable
	// name of its own when two repositories keep state for the same streams.
	SnapshotType string
	// SnapshotVersion is the version of the state's JSON shape (default 1). Bump it when the
	// state's shape changes: snapshots of other versions are then ignored and rebuilt.
	SnapshotVersion int
	// SnapshotEvery writes a snapshot after a commit that leaves the stream this many events or
	// more past the last snapshot (default 100; negative turns snapshots off: none are written
	// or read). Snapshots are written after the append committed, so they never fail a command:
	// a failure is logged and the next commit tries again.
	SnapshotEvery int
	// MaxAttempts is how many appends a repository call sends at most (default 3; 1 disables
	// retries). After an optimistic concurrency conflict (ErrWrongExpectedVersion) Handle
	// reloads and decides again. After a retryable failure (IsRetryable: 40001, 40P01, 55P03)
	// or a connection lost before the answer, Handle, HandleAt and Save send the same events
	// again, with the same ids, so resending an append that did commit is a replay. The
	// repository is the only layer that retries its appends: it does not go through
	// Client.Append's retry loop, so WithAppendAttempts does not apply to it. The Tx forms
	// never retry.
	MaxAttempts int
	// Logger receives snapshot failures (default slog.Default()).
	Logger *slog.Logger
}

func (o RepositoryOptions) withDefaults() RepositoryOptions {
	if o.SnapshotType == "" {
		o.SnapshotType = "aggregate"
	}
	if o.SnapshotVersion == 0 {
		o.SnapshotVersion = 1
	}
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = 100
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// engine is what both repository styles share: loading (snapshot + tail, or as of a version),
// encoding with fixed ids, appending, and the snapshot policy. S is the decider's state or the
// aggregate pointer.
type engine[S any] struct {
	client *Client
	reg    *Registry
	opts   RepositoryOptions
	// fresh is the state of a stream without events.
	fresh func(streamID string) S
	// fromSnapshot decodes a snapshot's state taken at version.
	fromSnapshot func(streamID string, version int64, state json.RawMessage) (S, error)
	// apply evolves the state by one decoded event stored at version.
	apply func(state S, event any, version int64) S
}

type loaded[S any] struct {
	state           S
	version         int64
	snapshotVersion int64 // the snapshot the load started from, 0 for none
}

// load rebuilds a stream's state: the latest usable snapshot then the events after it, up to
// version upTo (negative: the end). tx may be nil.
func (e *engine[S]) load(ctx context.Context, tx pgx.Tx, streamID string, upTo int64) (loaded[S], error) {
	l := loaded[S]{state: e.fresh(streamID)}
	if e.opts.SnapshotEvery > 0 {
		var db dbtx = e.client.pool
		if tx != nil {
			db = tx
		}
		snap, ok, err := loadSnapshot(ctx, db, streamID, e.opts.SnapshotType, e.opts.SnapshotVersion)
		if err != nil {
			return loaded[S]{}, err
		}
		if ok && (upTo < 0 || snap.StreamVersion <= upTo) {
			state, err := e.fromSnapshot(streamID, snap.StreamVersion, snap.State)
			if err == nil {
				l = loaded[S]{state: state, version: snap.StreamVersion, snapshotVersion: snap.StreamVersion}
			} else { // a shape change without a SnapshotVersion bump: replay instead
				e.opts.Logger.WarnContext(ctx, "annals: snapshot ignored, it does not decode; bump RepositoryOptions.SnapshotVersion",
					"stream_id", streamID, "snapshot_type", e.opts.SnapshotType, "stream_version", snap.StreamVersion, "error", err)
			}
		}
	}
	var events iter.Seq2[RecordedEvent, error]
	switch {
	case upTo >= 0 && l.version >= upTo:
		return l, nil
	case upTo < 0 && tx != nil:
		events = e.client.ReadStreamTx(ctx, tx, streamID, ReadOptions{From: l.version + 1})
	case upTo < 0:
		events = e.client.ReadStream(ctx, streamID, ReadOptions{From: l.version + 1})
	case l.version > 0: // as of a version, from a snapshot at or below it
		events = e.client.ReadStream(ctx, streamID, ReadOptions{From: l.version + 1, Limit: int(upTo - l.version)})
	default:
		events = e.client.ReadStreamAsOf(ctx, streamID, AtVersion(upTo))
	}
	for ev, err := range events {
		if err != nil {
			return loaded[S]{}, err
		}
		typed, err := e.reg.Decode(ev)
		if err != nil {
			return loaded[S]{}, err
		}
		l.state = e.apply(l.state, typed, ev.StreamVersion)
		l.version = ev.StreamVersion
	}
	return l, nil
}

// loadAt is load as of a version or a point in time.
func (e *engine[S]) loadAt(ctx context.Context, streamID string, asOf AsOf) (loaded[S], error) {
	if !asOf.set || !asOf.byTime && asOf.version < 0 {
		return loaded[S]{}, invalid("as_of", "use AtVersion(v >= 0) or AtTime(t)")
	}
	target := asOf.version
	if asOf.byTime {
		var err error
		if target, err = e.client.StreamVersionAt(ctx, streamID, asOf.at); err != nil {
			return loaded[S]{}, err
		}
	}
	return e.load(ctx, nil, streamID, target)
}

// encode turns typed events into EventData with ids fixed now (ids[i] when set), and the
// context's metadata.
func (e *engine[S]) encode(ctx context.Context, events []any, ids []uuid.UUID) ([]EventData, error) {
	md, _ := MetadataFromContext(ctx)
	out := make([]EventData, len(events))
	for i, ev := range events {
		ed, err := e.reg.Encode(ev, md)
		if err != nil {
			return nil, err
		}
		if ids[i] == uuid.Nil {
			if ids[i], err = uuid.NewV7(); err != nil {
				return nil, wrapf(err, "generate event id")
			}
		}
		ed.ID = ids[i]
		out[i] = ed
	}
	return out, nil
}

// append sends events once: in tx when it is not nil, else in a transaction of its own. It
// never retries; the repository's loop does (afterFailure).
func (e *engine[S]) append(ctx context.Context, tx pgx.Tx, streamID string, expected ExpectedVersion, events []EventData) (AppendResult, error) {
	if tx != nil {
		return e.client.AppendTx(ctx, tx, streamID, expected, events...)
	}
	return e.client.appendNoRetry(ctx, streamID, expected, events...)
}

// maybeSnapshot applies the snapshot policy after a commit (or, with tx, after the append in the
// caller's transaction, inside a savepoint so a failure leaves the transaction usable). It
// reports whether a snapshot was saved; failures are logged, never returned.
func (e *engine[S]) maybeSnapshot(ctx context.Context, tx pgx.Tx, streamID string, state S, version, lastSnapshot int64) bool {
	if e.opts.SnapshotEvery <= 0 || version-lastSnapshot < int64(e.opts.SnapshotEvery) {
		return false
	}
	err := func() error {
		raw, err := json.Marshal(state)
		if err != nil {
			return fmt.Errorf("encode state: %w", err)
		}
		snap := Snapshot{StreamID: streamID, Type: e.opts.SnapshotType, SchemaVersion: e.opts.SnapshotVersion,
			StreamVersion: version, State: raw}
		if tx == nil {
			_, err = saveSnapshot(ctx, e.client.pool, snap)
			return err
		}
		sp, err := tx.Begin(ctx) // a savepoint
		if err != nil {
			return err
		}
		if _, err = saveSnapshot(ctx, sp, snap); err != nil {
			_ = sp.Rollback(ctx)
			return err
		}
		return sp.Commit(ctx)
	}()
	if err != nil {
		e.opts.Logger.WarnContext(ctx, "annals: snapshot not saved (the command succeeded)",
			"stream_id", streamID, "snapshot_type", e.opts.SnapshotType, "stream_version", version, "error", err)
		return false
	}
	return true
}

// retry is what a repository does after a failed append.
type retry int

const (
	giveUp   retry = iota // return the error
	resend                // send the same events (same ids) again: a transient failure or a lost reply
	redecide              // reload and decide again: another writer appended first
)

// afterFailure is the repositories' one retry policy for the append they just sent as attempt
// (1-based) of maxAttempts: what to do next, after a jittered wait so that racing writers do not
// retry in lockstep, and the error to give up with. A conflict is retried only when redecide is
// allowed (Handle), a transient failure (retryableAppend) always, until maxAttempts appends were
// sent.
func afterFailure(ctx context.Context, err error, attempt, maxAttempts int, canRedecide bool) (retry, error) {
	next := giveUp
	switch {
	case attempt >= maxAttempts:
	case canRedecide && errors.Is(err, ErrWrongExpectedVersion):
		next = redecide
	case retryableAppend(ctx, err):
		next = resend
	}
	if next == giveUp {
		return giveUp, err
	}
	wait := time.Duration(attempt) * (time.Millisecond + rand.N(4*time.Millisecond))
	select {
	case <-ctx.Done():
		return giveUp, fmt.Errorf("annals: %w (after %v)", ctx.Err(), err)
	case <-time.After(wait):
		return next, nil
	}
}

func notFound(streamID string) error {
	return wrapf(ErrStreamNotFound, "load %q", streamID)
}

// Repository loads and changes the state of streams with a Decider: Handle loads a stream
// (latest snapshot + the events after it), decides a command, and appends the new events
// expecting the version it loaded, retrying on conflicts. Safe for concurrent use.
type Repository[S, C any] struct {
	e engine[S]
	d Decider[S, C]
}

// NewRepository returns a Repository for decider's streams over client, decoding and encoding
// events with registry (every event type the decider reads or decides must be registered). It
// panics when client, registry or one of decider's functions is nil.
func NewRepository[S, C any](client *Client, registry *Registry, decider Decider[S, C], opts RepositoryOptions) *Repository[S, C] {
	if client == nil || registry == nil || decider.Initial == nil || decider.Decide == nil || decider.Evolve == nil {
		panic("annals: NewRepository needs a client, a registry and a decider with Initial, Decide and Evolve")
	}
	r := &Repository[S, C]{d: decider}
	r.e = engine[S]{
		client: client, reg: registry, opts: opts.withDefaults(),
		fresh: func(string) S { return decider.Initial() },
		fromSnapshot: func(_ string, _ int64, raw json.RawMessage) (S, error) {
			var s S // not Initial(): the JSON holds the whole state, defaults must not leak in
			err := json.Unmarshal(raw, &s)
			return s, err
		},
		apply: func(s S, ev any, _ int64) S { return decider.Evolve(s, ev) },
	}
	return r
}

// HandleResult is what Handle did.
type HandleResult[S any] struct {
	// State is the stream's state after the command (as a reload would see it).
	State S
	// Version is the stream's version after the command.
	Version int64
	// Events are the events appended, as Decode returns them; empty when the decider decided
	// nothing (then nothing was appended).
	Events []any
	// Appended describes the append (zero when nothing was appended).
	Appended AppendResult
	// Attempts is how many times the command was decided (1 without conflicts).
	Attempts int
}

// Load returns a stream's current state and version: the latest snapshot (when snapshots are
// on) and the events after it. A stream without events is ErrStreamNotFound, returned with
// Initial's state and version 0; an existing stream whose state happens to equal Initial's is
// not. Decoding failures are *DecodeError.
func (r *Repository[S, C]) Load(ctx context.Context, streamID string) (S, int64, error) {
	l, err := r.e.load(ctx, nil, streamID, -1)
	return stateResult(streamID, l, err)
}

// LoadTx is Load inside the caller's transaction.
func (r *Repository[S, C]) LoadTx(ctx context.Context, tx pgx.Tx, streamID string) (S, int64, error) {
	l, err := r.e.load(ctx, tx, streamID, -1)
	return stateResult(streamID, l, err)
}

// LoadAt returns a stream's state as of a version (AtVersion) or a point in time (AtTime), and
// the version that state reflects. A snapshot is used only when it is at or below that version.
// ErrStreamNotFound when the stream had no events at that point.
func (r *Repository[S, C]) LoadAt(ctx context.Context, streamID string, asOf AsOf) (S, int64, error) {
	l, err := r.e.loadAt(ctx, streamID, asOf)
	return stateResult(streamID, l, err)
}

func stateResult[S any](streamID string, l loaded[S], err error) (S, int64, error) {
	if err != nil {
		var zero S
		return zero, 0, err
	}
	if l.version == 0 {
		return l.state, 0, notFound(streamID)
	}
	return l.state, l.version, nil
}

// Handle runs command against a stream: load, Decide, append the events expecting the loaded
// version. When another writer appended first (ErrWrongExpectedVersion) it reloads and decides
// again; after a retryable failure or a lost connection it sends the same events again (their
// ids are fixed before the first send, so a resend is a replay). At most
// RepositoryOptions.MaxAttempts appends are sent; then the last error is returned. Decide's error is returned as is (nothing appended); so are errors wrapping
// ErrUnknownEventType or ErrInvalidArgument for events the registry cannot encode. A snapshot
// is saved after the commit when the policy says so; its failure is logged, not returned.
// Events carry the context's Metadata (ContextWithMetadata).
func (r *Repository[S, C]) Handle(ctx context.Context, streamID string, command C) (HandleResult[S], error) {
	return r.handle(ctx, nil, streamID, -1, command)
}

// HandleAt is Handle for a command decided on what its sender saw at a version (an HTTP
// If-Match, a form posted back): it runs only while the stream is at expected (0: the stream has
// no events yet) and is never decided again: a stream at another version, found on load or by
// the append when a writer slipped in between, is a *WrongExpectedVersionError
// (ErrWrongExpectedVersion) carrying the actual version. A retryable failure or a lost
// connection is sent again, as by Handle. Snapshots are used and written as by Handle.
func (r *Repository[S, C]) HandleAt(ctx context.Context, streamID string, expected int64, command C) (HandleResult[S], error) {
	if expected < 0 {
		return HandleResult[S]{}, invalid("expected", "must be a stream version >= 0, got %d", expected)
	}
	return r.handle(ctx, nil, streamID, expected, command)
}

// HandleTx is Handle inside the caller's transaction, so the events commit or roll back with the
// caller's own writes. It does not retry: a conflict (ErrWrongExpectedVersion) or a retryable
// error (IsRetryable) aborts the transaction, which the caller retries as a whole. A due
// snapshot is written in a savepoint of tx, so it too commits with the transaction and its
// failure leaves the transaction usable.
func (r *Repository[S, C]) HandleTx(ctx context.Context, tx pgx.Tx, streamID string, command C) (HandleResult[S], error) {
	if tx == nil {
		return HandleResult[S]{}, invalid("tx", "must not be nil")
	}
	return r.handle(ctx, tx, streamID, -1, command)
}

// handle runs command; expected >= 0 requires the stream at that version (never decided again),
// -1 takes whatever version it loads. It is the only retry loop of the append: each turn sends
// one append, at most MaxAttempts in all (one with tx).
func (r *Repository[S, C]) handle(ctx context.Context, tx pgx.Tx, streamID string, expected int64, command C) (HandleResult[S], error) {
	maxAttempts := r.e.opts.MaxAttempts
	if tx != nil {
		maxAttempts = 1
	}
	var (
		l        loaded[S]
		res      HandleResult[S]
		data     []EventData // nil: load and decide (again)
		decision int
	)
	for attempt := 1; ; attempt++ {
		if data == nil {
			var err error
			if l, err = r.e.load(ctx, tx, streamID, -1); err != nil {
				return HandleResult[S]{}, err
			}
			if expected >= 0 && l.version != expected {
				return HandleResult[S]{}, &WrongExpectedVersionError{
					BaseError: BaseError{Kind: ErrWrongExpectedVersion,
						Message: fmt.Sprintf("stream %q is at version %d, not %d", streamID, l.version, expected)},
					StreamID: streamID, Expected: Exact(expected), Actual: l.version}
			}
			decided, err := r.d.Decide(l.state, command)
			if err != nil {
				return HandleResult[S]{}, err
			}
			decision++
			res = HandleResult[S]{State: l.state, Version: l.version, Attempts: decision}
			if len(decided) == 0 {
				return res, nil
			}
			if data, err = r.e.encode(ctx, decided, make([]uuid.UUID, len(decided))); err != nil {
				return HandleResult[S]{}, err
			}
			// Evolve with the events as a reload will see them (decoded from their JSON), so the
			// state returned and snapshotted is exactly what a replay gives.
			res.Events = make([]any, len(data))
			for i, ed := range data {
				if res.Events[i], err = r.e.reg.Decode(RecordedEvent{StreamID: streamID, StreamVersion: l.version + int64(i) + 1,
					EventType: ed.Type, SchemaVersion: ed.SchemaVersion, Data: ed.Data.(json.RawMessage)}); err != nil {
					return HandleResult[S]{}, err
				}
			}
		}
		appended, err := r.e.append(ctx, tx, streamID, Exact(l.version), data)
		if err != nil {
			next, err := afterFailure(ctx, err, attempt, maxAttempts, expected < 0)
			switch next {
			case redecide:
				data = nil
				continue
			case resend:
				continue
			}
			return HandleResult[S]{}, err
		}
		res.State = r.d.Fold(l.state, res.Events...)
		res.Version = appended.StreamVersion
		res.Appended = appended
		r.e.maybeSnapshot(ctx, tx, streamID, res.State, res.Version, l.snapshotVersion)
		return res, nil
	}
}

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
func NewAggregateRepository[A Aggregate](client *Client, registry *Registry, newAggregate func() A, opts RepositoryOptions) *AggregateRepository[A] {
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
func (r *AggregateRepository[A]) LoadAt(ctx context.Context, streamID string, asOf AsOf) (A, error) {
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
	if b.id == "" {
		return invalid("aggregate", "has no stream id: create it with AggregateRepository.New or Load")
	}
	if len(b.pending) == 0 {
		return nil
	}
	events := make([]any, len(b.pending))
	ids := make([]uuid.UUID, len(b.pending))
	for i, p := range b.pending {
		events[i], ids[i] = p.event, p.id
	}
	data, err := r.e.encode(ctx, events, ids)
	if err != nil {
		return err
	}
	for i := range b.pending {
		b.pending[i].id = ids[i] // fixed from now on
	}
	res, err := r.e.append(ctx, tx, b.id, Exact(b.version), data)
	if err != nil {
		return err
	}
	b.committed(res.StreamVersion)
	if r.e.maybeSnapshot(ctx, tx, b.id, a, b.version, b.snapshotVersion) {
		b.snapshotVersion = b.version
	}
	return nil
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

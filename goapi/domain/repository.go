package domain

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	annals "github.com/annals-db/annals/goapi"
)

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
func NewRepository[S, C any](client *annals.Client, registry *Registry, decider Decider[S, C], opts RepositoryOptions) *Repository[S, C] {
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
	Appended annals.AppendResult
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
func (r *Repository[S, C]) LoadAt(ctx context.Context, streamID string, asOf annals.AsOf) (S, int64, error) {
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
		data     []annals.EventData // nil: load and decide (again)
		decision int
	)
	for attempt := 1; ; attempt++ {
		if data == nil {
			var err error
			if l, err = r.e.load(ctx, tx, streamID, -1); err != nil {
				return HandleResult[S]{}, err
			}
			if expected >= 0 && l.version != expected {
				return HandleResult[S]{}, &annals.WrongExpectedVersionError{
					BaseError: annals.BaseError{Kind: annals.ErrWrongExpectedVersion,
						Message: fmt.Sprintf("stream %q is at version %d, not %d", streamID, l.version, expected)},
					StreamID: streamID, Expected: annals.Exact(expected), Actual: l.version}
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
				if res.Events[i], err = r.e.reg.Decode(annals.RecordedEvent{StreamID: streamID, StreamVersion: l.version + int64(i) + 1,
					EventType: ed.Type, SchemaVersion: ed.SchemaVersion, Data: ed.Data.(json.RawMessage)}); err != nil {
					return HandleResult[S]{}, err
				}
			}
		}
		appended, err := r.e.append(ctx, tx, streamID, annals.Exact(l.version), data)
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

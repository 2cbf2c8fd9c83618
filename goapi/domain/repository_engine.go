package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/internal/retry"
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
	// Client.Append's retry loop, so ClientOptions.AppendAttempts does not apply to it. The Tx forms
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
	client *annals.Client
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
	// A load decides the next append: read the primary, where a replica's lag could only cost a
	// conflict and a retry.
	ctx = annals.WithConsistency(ctx, annals.OnPrimary)
	if e.opts.SnapshotEvery > 0 {
		var (
			snap annals.Snapshot
			ok   bool
			err  error
		)
		if tx != nil {
			snap, ok, err = e.client.LoadSnapshotTx(ctx, tx, streamID, e.opts.SnapshotType, e.opts.SnapshotVersion)
		} else {
			snap, ok, err = e.client.LoadSnapshot(ctx, streamID, e.opts.SnapshotType, e.opts.SnapshotVersion)
		}
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
	var events iter.Seq2[annals.RecordedEvent, error]
	switch {
	case upTo >= 0 && l.version >= upTo:
		return l, nil
	case upTo < 0 && tx != nil:
		events = e.client.ReadStreamTx(ctx, tx, streamID, annals.ReadOptions{From: l.version + 1})
	case upTo < 0:
		events = e.client.ReadStream(ctx, streamID, annals.ReadOptions{From: l.version + 1})
	case l.version > 0: // as of a version, from a snapshot at or below it
		events = e.client.ReadStream(ctx, streamID, annals.ReadOptions{From: l.version + 1, Limit: int(upTo - l.version)})
	default:
		events = e.client.ReadStreamAsOf(ctx, streamID, annals.AtVersion(upTo))
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
func (e *engine[S]) loadAt(ctx context.Context, streamID string, asOf annals.AsOf) (loaded[S], error) {
	target, byVersion := asOf.Version()
	at, byTime := asOf.Time()
	switch {
	case byTime:
		var err error
		if target, err = e.client.StreamVersionAt(ctx, streamID, at); err != nil {
			return loaded[S]{}, err
		}
	case !byVersion || target < 0:
		return loaded[S]{}, invalid("as_of", "use annals.AtVersion(v >= 0) or annals.AtTime(t)")
	}
	return e.load(ctx, nil, streamID, target)
}

// encode turns typed events into EventData with ids fixed now (ids[i] when set), and the
// context's metadata.
func (e *engine[S]) encode(ctx context.Context, events []any, ids []uuid.UUID) ([]annals.EventData, error) {
	md, _ := MetadataFromContext(ctx)
	out := make([]annals.EventData, len(events))
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
func (e *engine[S]) append(ctx context.Context, tx pgx.Tx, streamID string, expected annals.ExpectedVersion, events []annals.EventData) (annals.AppendResult, error) {
	if tx != nil {
		return e.client.AppendTx(ctx, tx, streamID, expected, events...)
	}
	return e.client.AppendOnce(ctx, streamID, expected, events...)
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
		snap := annals.Snapshot{StreamID: streamID, Type: e.opts.SnapshotType, SchemaVersion: e.opts.SnapshotVersion,
			StreamVersion: version, State: raw}
		if tx == nil {
			_, err = e.client.SaveSnapshot(ctx, snap)
			return err
		}
		sp, err := tx.Begin(ctx) // a savepoint
		if err != nil {
			return err
		}
		if _, err = e.client.SaveSnapshotTx(ctx, sp, snap); err != nil {
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

// nextStep is what a repository does after a failed append.
type nextStep int

const (
	giveUp   nextStep = iota // return the error
	resend                   // send the same events (same ids) again: a transient failure or a lost reply
	redecide                 // reload and decide again: another writer appended first
)

// afterFailure is the repositories' one retry policy for the append they just sent as attempt
// (1-based) of maxAttempts: what to do next, after a jittered wait so that racing writers do not
// retry in lockstep, and the error to give up with. A conflict is retried only when redecide is
// allowed (Handle), a transient failure (retry.Resendable) always, until maxAttempts appends were
// sent.
func afterFailure(ctx context.Context, err error, attempt, maxAttempts int, canRedecide bool) (nextStep, error) {
	next := giveUp
	switch {
	case attempt >= maxAttempts:
	case canRedecide && errors.Is(err, annals.ErrWrongExpectedVersion):
		next = redecide
	case retry.Resendable(ctx, err):
		next = resend
	}
	if next == giveUp {
		return giveUp, err
	}
	if werr := retry.Wait(ctx, attempt, time.Millisecond, 4*time.Millisecond); werr != nil {
		return giveUp, fmt.Errorf("annals: %w (after %v)", werr, err)
	}
	return next, nil
}

func notFound(streamID string) error {
	return wrapf(annals.ErrStreamNotFound, "load %q", streamID)
}

package annals

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
)

// Snapshot is an aggregate's state at a stream version, kept by the database as the latest one
// per (StreamID, Type).
type Snapshot struct {
	StreamID string
	// Type names the kind of state (one stream may have several); a stable string.
	Type string
	// SchemaVersion is the state's own shape version: a load asks for one and ignores others, so
	// bumping it after changing the state's shape retires old snapshots.
	SchemaVersion int
	// StreamVersion is the version of the last event the state reflects.
	StreamVersion int64
	// State is the state as JSON (any JSON value but null).
	State json.RawMessage
}

const saveSnapshotSQL = `SELECT annals.save_snapshot($1, $2, $3, $4, $5::jsonb)`

// SaveSnapshot stores s unless the stored snapshot of the same stream and type is newer (or the
// same version and schema): it returns true when saved, false when ignored. A snapshot ahead of
// the stream's version is ErrInvalidArgument, as are an invalid stream id, type, schema version
// (< 1) or state. Repositories call it for you (RepositoryOptions.SnapshotEvery).
func (c *Client) SaveSnapshot(ctx context.Context, s Snapshot) (bool, error) {
	return saveSnapshot(ctx, c.db(ctx), s)
}

// SaveSnapshotTx is SaveSnapshot inside the caller's transaction. An error aborts the
// transaction, like any failed statement; use a savepoint (tx.Begin) to keep it going.
func (c *Client) SaveSnapshotTx(ctx context.Context, tx pgx.Tx, s Snapshot) (bool, error) {
	return saveSnapshot(ctx, tx, s)
}

func saveSnapshot(ctx context.Context, db dbtx, s Snapshot) (bool, error) {
	var saved bool
	state := []byte(s.State)
	if len(state) == 0 {
		return false, invalid("state", "must not be empty")
	}
	if !json.Valid(state) {
		return false, invalid("state", "must be valid JSON")
	}
	err := db.QueryRow(ctx, saveSnapshotSQL, s.StreamID, s.Type, s.SchemaVersion, s.StreamVersion, jsonArg(state)).Scan(&saved)
	if err != nil {
		return false, wrapf(mapError(err), "save snapshot %q of %q", s.Type, s.StreamID)
	}
	return saved, nil
}

const loadSnapshotSQL = `SELECT s.stream_version, s.state FROM annals.load_snapshot($1, $2, $3) AS s`

// LoadSnapshot returns the latest snapshot of snapshotType for a stream in schemaVersion, and
// false when there is none usable: none saved, saved in another schema version, or ahead of the
// stream (after a restore of older events). Errors: ErrInvalidArgument for an invalid stream id
// or schema version.
func (c *Client) LoadSnapshot(ctx context.Context, streamID, snapshotType string, schemaVersion int) (Snapshot, bool, error) {
	type found struct {
		s  Snapshot
		ok bool
	}
	f, err := routed(ctx, c, func(db dbtx) (found, error) {
		s, ok, err := loadSnapshot(ctx, db, streamID, snapshotType, schemaVersion)
		return found{s, ok}, err
	})
	return f.s, f.ok, err
}

// LoadSnapshotTx is LoadSnapshot inside the caller's transaction.
func (c *Client) LoadSnapshotTx(ctx context.Context, tx pgx.Tx, streamID, snapshotType string, schemaVersion int) (Snapshot, bool, error) {
	return loadSnapshot(ctx, tx, streamID, snapshotType, schemaVersion)
}

func loadSnapshot(ctx context.Context, db dbtx, streamID, snapshotType string, schemaVersion int) (Snapshot, bool, error) {
	s := Snapshot{StreamID: streamID, Type: snapshotType, SchemaVersion: schemaVersion}
	var state []byte
	err := db.QueryRow(ctx, loadSnapshotSQL, streamID, snapshotType, schemaVersion).Scan(&s.StreamVersion, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, wrapf(mapError(err), "load snapshot %q of %q", snapshotType, streamID)
	}
	s.State = state
	return s, true, nil
}

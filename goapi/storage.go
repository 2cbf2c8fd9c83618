package annals

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// StorageTier is one row of annals.storage_stats: how many events a tier holds and the bytes
// they take on disk.
type StorageTier struct {
	// Tier is "hot" (the events table) or "cold" (compressed segments).
	Tier string
	// Events is the number of events in the tier: exact for the cold tier, and for the hot
	// tier up to 100,000 events; beyond that the hot count is estimated from the table
	// statistics (annals.storage_stats).
	Events int64
	// Bytes is the tier's size on disk: heap, TOAST and indexes (dead rows included until
	// VACUUM reclaims them).
	Bytes int64
	// BytesPerEvent is Bytes / Events, 0 for an empty tier.
	BytesPerEvent float64
}

// StorageStats returns one StorageTier per tier, hot first. It reads the catalog's sizes and
// statistics and the cold segments' small heap rows, never the hot events of a large store. With
// replicas it reads where ctx's Consistency says
// (WithConsistency): a replica's sizes are its own files'.
func (c *Client) StorageStats(ctx context.Context) ([]StorageTier, error) {
	return routed(ctx, c, func(db dbtx) ([]StorageTier, error) { return storageStats(ctx, db) })
}

// StorageStatsTx is StorageStats inside the caller's transaction.
func (c *Client) StorageStatsTx(ctx context.Context, tx pgx.Tx) ([]StorageTier, error) {
	return storageStats(ctx, tx)
}

func storageStats(ctx context.Context, db dbtx) ([]StorageTier, error) {
	rows, err := db.Query(ctx,
		"SELECT s.tier, s.events, s.bytes, coalesce(s.bytes_per_event, 0)::float8 FROM annals.storage_stats() AS s")
	if err != nil {
		return nil, wrapf(mapError(err), "storage stats")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StorageTier, error) {
		var t StorageTier
		err := r.Scan(&t.Tier, &t.Events, &t.Bytes, &t.BytesPerEvent)
		return t, err
	})
	if err != nil {
		return nil, wrapf(mapError(err), "storage stats")
	}
	return out, nil
}

// CompressEvents moves up to maxEvents events recorded more than olderThan ago into compressed
// cold storage, oldest first, and returns how many it moved (0 when none is left). Reads return
// the same events before and after. It needs annals_owner's rights (ErrPermissionDenied
// otherwise); a negative olderThan or a maxEvents below 1 is ErrInvalidArgument.
func (c *Client) CompressEvents(ctx context.Context, olderThan time.Duration, maxEvents int64) (int64, error) {
	return compressEvents(ctx, c.db(ctx), olderThan, maxEvents)
}

// CompressEventsTx is CompressEvents inside the caller's transaction.
func (c *Client) CompressEventsTx(ctx context.Context, tx pgx.Tx, olderThan time.Duration, maxEvents int64) (int64, error) {
	return compressEvents(ctx, tx, olderThan, maxEvents)
}

func compressEvents(ctx context.Context, db dbtx, olderThan time.Duration, maxEvents int64) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, "SELECT annals.compress_events(make_interval(secs => $1), $2)",
		olderThan.Seconds(), maxEvents).Scan(&n)
	if err != nil {
		return 0, wrapf(mapError(err), "compress events")
	}
	return n, nil
}

// ArchiveStream moves every hot event of a stream into compressed cold storage now and returns
// how many it moved (0 when it is already cold). Reads and appends go on as before. expected is
// Any, StreamExists or the stream's exact version. Errors: ErrNotFound for an unknown stream,
// ErrWrongExpectedVersion, ErrPermissionDenied without annals_owner's rights.
func (c *Client) ArchiveStream(ctx context.Context, streamID string, expected ExpectedVersion) (int64, error) {
	return archiveStream(ctx, c.db(ctx), streamID, expected)
}

// ArchiveStreamTx is ArchiveStream inside the caller's transaction.
func (c *Client) ArchiveStreamTx(ctx context.Context, tx pgx.Tx, streamID string, expected ExpectedVersion) (int64, error) {
	return archiveStream(ctx, tx, streamID, expected)
}

func archiveStream(ctx context.Context, db dbtx, streamID string, expected ExpectedVersion) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, "SELECT annals.archive_stream($1, $2)", streamID, expected.arg()).Scan(&n)
	if err != nil {
		return 0, wrapf(mapError(err), "archive stream %q", streamID)
	}
	return n, nil
}

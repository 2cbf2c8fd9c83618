package annals

import (
	"context"
	"errors"
	"iter"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// StreamInfo describes a stream: a row of annals.stream_info and annals.list_streams.
type StreamInfo struct {
	StreamID      string    `db:"stream_id"`
	StreamVersion int64     `db:"stream_version"`
	CreatedAt     time.Time `db:"created_at"`
	UpdatedAt     time.Time `db:"updated_at"`
	// State is "active", "deleted" or "purged" (a tombstone: PurgeStream removed its events).
	State string `db:"state"`
}

const streamColumns = `s.stream_id, s.stream_version, s.created_at, s.updated_at, s.state`

// StreamInfo returns a stream's version, timestamps and state, or ErrStreamNotFound when the
// stream has no events. A deleted stream keeps its row, with State "deleted".
func (c *Client) StreamInfo(ctx context.Context, streamID string) (StreamInfo, error) {
	return routed(ctx, c, func(db dbtx) (StreamInfo, error) { return streamInfo(ctx, db, streamID) })
}

// StreamInfoTx is StreamInfo inside the caller's transaction.
func (c *Client) StreamInfoTx(ctx context.Context, tx pgx.Tx, streamID string) (StreamInfo, error) {
	return streamInfo(ctx, tx, streamID)
}

func streamInfo(ctx context.Context, db dbtx, streamID string) (StreamInfo, error) {
	rows, err := db.Query(ctx, `SELECT `+streamColumns+` FROM annals.stream_info($1) AS s`, streamID)
	if err != nil {
		return StreamInfo{}, wrapf(mapError(err), "stream info %q", streamID)
	}
	info, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[StreamInfo])
	if errors.Is(err, pgx.ErrNoRows) {
		return StreamInfo{}, wrapf(ErrStreamNotFound, "stream info %q", streamID)
	}
	if err != nil {
		return StreamInfo{}, wrapf(mapError(err), "stream info %q", streamID)
	}
	return info, nil
}

// ListStreamsOptions select the streams ListStreams returns. The zero value lists every stream.
type ListStreamsOptions struct {
	// Category keeps the streams of one category (the part of the id before the first '-'); ""
	// means every category.
	Category string
	// After starts the listing after this stream id (exclusive): pass the last id seen to go on
	// where an earlier listing stopped. "" starts at the first stream.
	After string
	// Limit caps the number of streams; 0 means no cap.
	Limit int
}

// ListStreams returns an iterator over the streams that have events, in stream id order, fetched
// in pages of ClientOptions.ReadPageSize (at most 10000) through annals.list_streams. Deleted streams are
// listed too (State "deleted"). The iterator stops at the first error, which it yields: an
// invalid category is ErrInvalidArgument.
func (c *Client) ListStreams(ctx context.Context, opts ListStreamsOptions) iter.Seq2[StreamInfo, error] {
	return routedSeq(ctx, c, func(db dbtx) iter.Seq2[StreamInfo, error] { return c.listStreams(ctx, db, opts) })
}

// ListStreamsTx is ListStreams inside the caller's transaction.
func (c *Client) ListStreamsTx(ctx context.Context, tx pgx.Tx, opts ListStreamsOptions) iter.Seq2[StreamInfo, error] {
	return c.listStreams(ctx, tx, opts)
}

func (c *Client) listStreams(ctx context.Context, db dbtx, opts ListStreamsOptions) iter.Seq2[StreamInfo, error] {
	return func(yield func(StreamInfo, error) bool) {
		var category, after *string
		if opts.Category != "" {
			category = &opts.Category
		}
		if opts.After != "" {
			after = &opts.After
		}
		remaining := opts.Limit
		if remaining <= 0 {
			remaining = math.MaxInt
		}
		for remaining > 0 {
			n := min(c.readPageSize, 10000, remaining) // list_streams takes at most 10000
			rows, err := db.Query(ctx, `SELECT `+streamColumns+` FROM annals.list_streams($1, $2, $3) AS s`, category, after, n)
			if err != nil {
				yield(StreamInfo{}, wrapf(mapError(err), "list streams"))
				return
			}
			page, err := pgx.CollectRows(rows, pgx.RowToStructByName[StreamInfo])
			if err != nil {
				yield(StreamInfo{}, wrapf(mapError(err), "list streams"))
				return
			}
			for _, s := range page {
				if !yield(s, nil) {
					return
				}
			}
			if len(page) < n {
				return
			}
			remaining -= len(page)
			last := page[len(page)-1].StreamID
			after = &last
		}
	}
}

// StreamStats is what a stream holds: a row of annals.stream_stats.
type StreamStats struct {
	// EventCount is the number of stored events (0 for a stream without events).
	EventCount int64 `db:"event_count"`
	// SizeBytes is the stored size of the stream's event rows, after compression and TOAST,
	// without indexes.
	SizeBytes int64 `db:"size_bytes"`
}

// StreamStats counts a stream's events and the bytes their rows take. It reads every event of
// the stream, so it is for inspection, not for a hot path. A stream without events has zero
// stats (not an error; StreamInfo tells whether a stream exists).
func (c *Client) StreamStats(ctx context.Context, streamID string) (StreamStats, error) {
	return routed(ctx, c, func(db dbtx) (StreamStats, error) { return streamStats(ctx, db, streamID) })
}

// StreamStatsTx is StreamStats inside the caller's transaction.
func (c *Client) StreamStatsTx(ctx context.Context, tx pgx.Tx, streamID string) (StreamStats, error) {
	return streamStats(ctx, tx, streamID)
}

func streamStats(ctx context.Context, db dbtx, streamID string) (StreamStats, error) {
	var st StreamStats
	err := db.QueryRow(ctx, "SELECT s.event_count, s.size_bytes FROM annals.stream_stats($1) AS s", streamID).
		Scan(&st.EventCount, &st.SizeBytes)
	if err != nil {
		return StreamStats{}, wrapf(mapError(err), "stream stats %q", streamID)
	}
	return st, nil
}

// DeleteStream closes a stream: later appends fail with ErrStreamDeleted, its events stay
// readable, and the deletion is audited with reason ("" records none). It returns the final
// version. Errors: ErrWrongExpectedVersion when the stream has no events or is not at expected
// (NoStream always fails: there is nothing to delete), ErrStreamDeleted when it is already
// deleted.
func (c *Client) DeleteStream(ctx context.Context, streamID string, expected ExpectedVersion, reason string) (int64, error) {
	return deleteStream(ctx, c.db(ctx), streamID, expected, reason)
}

// DeleteStreamTx is DeleteStream inside the caller's transaction, so the deletion commits or
// rolls back with the caller's own writes.
func (c *Client) DeleteStreamTx(ctx context.Context, tx pgx.Tx, streamID string, expected ExpectedVersion, reason string) (int64, error) {
	return deleteStream(ctx, tx, streamID, expected, reason)
}

func deleteStream(ctx context.Context, db dbtx, streamID string, expected ExpectedVersion, reason string) (int64, error) {
	var v int64
	var r *string
	if reason != "" {
		r = &reason
	}
	err := db.QueryRow(ctx, "SELECT annals.delete_stream($1, $2, $3)", streamID, expected.arg(), r).Scan(&v)
	if err != nil {
		return 0, wrapf(mapError(err), "delete stream %q", streamID)
	}
	return v, nil
}

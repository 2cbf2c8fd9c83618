package annals

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Checkpoint is a position in the gap-free feed: the (TransactionID, GlobalPosition) of the last
// event consumed. The zero value is the beginning of the feed.
type Checkpoint struct {
	TransactionID  uint64
	GlobalPosition int64
}

// After reports whether c is later in the feed than o.
func (c Checkpoint) After(o Checkpoint) bool {
	return c.TransactionID > o.TransactionID ||
		c.TransactionID == o.TransactionID && c.GlobalPosition > o.GlobalPosition
}

// checkpointJSON is a feed position as the SQL API spells it in JSON ({"transaction_id":
// "<xid8>", "position": <bigint>}: an xid8 does not fit every JSON reader's numbers), in a
// conditional append's condition and in its ST409 DETAIL.
type checkpointJSON struct {
	TransactionID string `json:"transaction_id"`
	Position      int64  `json:"position"`
}

func toCheckpointJSON(c Checkpoint) checkpointJSON {
	return checkpointJSON{TransactionID: strconv.FormatUint(c.TransactionID, 10), Position: c.GlobalPosition}
}

// checkpoint reads the position back; a transaction id the database did not write as a number
// reads as 0, the beginning.
func (c checkpointJSON) checkpoint() Checkpoint {
	xid, _ := strconv.ParseUint(c.TransactionID, 10, 64)
	return Checkpoint{TransactionID: xid, GlobalPosition: c.Position}
}

// Checkpoint returns the feed position of e, the checkpoint to store after consuming it.
func (e RecordedEvent) Checkpoint() Checkpoint {
	return Checkpoint{TransactionID: e.TransactionID, GlobalPosition: e.GlobalPosition}
}

// FeedOptions sizes, filters and splits a page of ReadAll or ReadCategory. The zero value means
// 1000 events, no filter, no split, upcast events.
type FeedOptions struct {
	// MaxCount is the page size (default 1000).
	MaxCount int
	// EventTypes keeps only these event types (ReadAll only).
	EventTypes []string
	// Categories keeps only streams of these categories (ReadAll only; ReadCategory reads one).
	Categories []string
	// Group returns one consumer-group member's share (ReadCategory only).
	Group ConsumerGroup
	// Raw returns events as stored, without upcasting or alias renaming.
	Raw bool
}

// ReadAll returns the next page of the gap-free global feed after a checkpoint: only events of
// transactions older than every running one, in (TransactionID, GlobalPosition) order, so no
// event is ever skipped by a consumer that stores the last event's Checkpoint and asks again. An
// empty page means caught up (or paused behind a long-running transaction, which the SQL view
// annals.feed_blocker names). opts.Group is ErrInvalidArgument: consumer groups split a
// category's feed (ReadCategory).
func (c *Client) ReadAll(ctx context.Context, after Checkpoint, opts FeedOptions) ([]RecordedEvent, error) {
	return routed(ctx, c, func(db dbtx) ([]RecordedEvent, error) { return readAll(ctx, db, after, opts) })
}

// ReadAllTx is ReadAll inside the caller's transaction. The barrier is the transaction's
// snapshot: in a REPEATABLE READ transaction every page reads the feed as it was at its start.
func (c *Client) ReadAllTx(ctx context.Context, tx pgx.Tx, after Checkpoint, opts FeedOptions) ([]RecordedEvent, error) {
	return readAll(ctx, tx, after, opts)
}

func readAll(ctx context.Context, db dbtx, after Checkpoint, opts FeedOptions) ([]RecordedEvent, error) {
	if opts.Group != (ConsumerGroup{}) {
		return nil, invalid("group", "consumer groups split one category's feed: use ReadCategory")
	}
	return collectEvents(ctx, db, "read all",
		"SELECT "+eventColumns+" FROM annals.read_all($1, $2, $3, $4, $5, $6) AS e",
		after.TransactionID, after.GlobalPosition, pageSize(opts.MaxCount), nilIfEmpty(opts.EventTypes), nilIfEmpty(opts.Categories), opts.Raw)
}

// ConsumerGroup splits a feed between Size members; Member (0..Size-1) gets exactly the streams
// that hash to it. The zero value means no split.
type ConsumerGroup struct {
	Member, Size int
}

// ReadCategory returns the next page of one category's gap-free feed (streams named
// "category-..."), optionally one consumer-group member's share of it (opts.Group), upcast
// unless opts.Raw. opts.EventTypes and opts.Categories are ErrInvalidArgument: filter with
// ReadAll's options instead.
func (c *Client) ReadCategory(ctx context.Context, category string, after Checkpoint, opts FeedOptions) ([]RecordedEvent, error) {
	return routed(ctx, c, func(db dbtx) ([]RecordedEvent, error) { return readCategory(ctx, db, category, after, opts) })
}

// ReadCategoryTx is ReadCategory inside the caller's transaction.
func (c *Client) ReadCategoryTx(ctx context.Context, tx pgx.Tx, category string, after Checkpoint, opts FeedOptions) ([]RecordedEvent, error) {
	return readCategory(ctx, tx, category, after, opts)
}

func readCategory(ctx context.Context, db dbtx, category string, after Checkpoint, opts FeedOptions) ([]RecordedEvent, error) {
	switch {
	case len(opts.EventTypes) > 0:
		return nil, invalid("event_types", "ReadCategory has no type filter: use ReadAll with Categories and EventTypes")
	case len(opts.Categories) > 0:
		return nil, invalid("categories", "ReadCategory reads the category it is given: use ReadAll to read several")
	}
	size := max(opts.Group.Size, 1)
	return collectEvents(ctx, db, "read category",
		"SELECT "+eventColumns+" FROM annals.read_category($1, $2, $3, $4, $5, $6, $7) AS e",
		category, after.TransactionID, after.GlobalPosition, pageSize(opts.MaxCount), opts.Group.Member, size, opts.Raw)
}

// FeedHead is the feed's barrier and newest readable event.
type FeedHead struct {
	// Barrier is the oldest running transaction id: events of transactions below it are readable.
	Barrier uint64
	// LastPosition is the newest readable event's global position (0 when the store is empty).
	LastPosition int64
}

// FeedHead returns the feed's barrier and newest readable position.
func (c *Client) FeedHead(ctx context.Context) (FeedHead, error) {
	return routed(ctx, c, func(db dbtx) (FeedHead, error) { return feedHead(ctx, db) })
}

// FeedHeadTx is FeedHead inside the caller's transaction (as its snapshot sees the feed).
func (c *Client) FeedHeadTx(ctx context.Context, tx pgx.Tx) (FeedHead, error) {
	return feedHead(ctx, tx)
}

func feedHead(ctx context.Context, db dbtx) (FeedHead, error) {
	var h FeedHead
	var last *int64
	err := db.QueryRow(ctx, "SELECT h.barrier_transaction, h.last_position FROM annals.feed_head() AS h").Scan(&h.Barrier, &last)
	if err != nil {
		return h, wrapf(mapError(err), "feed head")
	}
	if last != nil {
		h.LastPosition = *last
	}
	return h, nil
}

func collectEvents(ctx context.Context, db dbtx, what, sql string, args ...any) ([]RecordedEvent, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrapf(mapError(err), "%s", what)
	}
	evs, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, wrapf(mapError(err), "%s", what)
	}
	return evs, nil
}

func pageSize(n int) int {
	if n <= 0 {
		return 1000
	}
	return n
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

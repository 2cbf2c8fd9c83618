package annals

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/annals-db/annals/goapi/internal/retry"
)

// TagQueryItem matches the events whose type is one of Types (every type when Types is empty)
// and that carry every tag of Tags (at least one).
type TagQueryItem struct {
	Types []string `json:"types,omitempty"`
	Tags  []string `json:"tags"`
}

// TagQuery matches the events that match any of its items: a consistency boundary drawn by tags
// rather than by a stream ("course:7" or "student:42" enrolments, say).
type TagQuery []TagQueryItem

// Tags is a TagQuery of one item: every event, of any type, carrying all the tags.
func Tags(tags ...string) TagQuery { return TagQuery{{Tags: tags}} }

// TaggedEvent is an event ReadTagged returns: the event and its tags.
type TaggedEvent struct {
	RecordedEvent
	Tags []string
}

// Condition is the precondition of a conditional append: no event matching Query may exist
// after After, the feed position the decision read up to (the zero Checkpoint: from the start).
type Condition struct {
	Query TagQuery
	After Checkpoint
}

const readTaggedSQL = `SELECT ` + eventColumns + `, e.tags
FROM annals.read_tagged($1::jsonb, $2::text::xid8, $3, $4) AS e`

const appendConditionalSQL = `SELECT r.stream_id, r.stream_version, r.global_position, r.transaction_id
FROM annals.append_conditional($1::jsonb, $2::jsonb) AS r`

// ReadTagged returns up to opts.MaxCount (default 1000) events matching query after the feed
// position after, in feed order and gap-free like ReadAll: no event that commits later can ever
// appear before the last one returned. Only opts.MaxCount is used. Events come upcast; the
// query's types match the stored type names. With replicas it reads where ctx's Consistency
// says (WithConsistency); DecideTagged always reads on the primary.
func (c *Client) ReadTagged(ctx context.Context, query TagQuery, after Checkpoint, opts FeedOptions) ([]TaggedEvent, error) {
	return routed(ctx, c, func(db dbtx) ([]TaggedEvent, error) { return readTagged(ctx, db, query, after, opts) })
}

// ReadTaggedTx is ReadTagged inside the caller's transaction.
func (c *Client) ReadTaggedTx(ctx context.Context, tx pgx.Tx, query TagQuery, after Checkpoint, opts FeedOptions) ([]TaggedEvent, error) {
	return readTagged(ctx, tx, query, after, opts)
}

func readTagged(ctx context.Context, db dbtx, query TagQuery, after Checkpoint, opts FeedOptions) ([]TaggedEvent, error) {
	q, err := json.Marshal(query)
	if err != nil {
		return nil, wrapf(err, "read tagged")
	}
	rows, err := db.Query(ctx, readTaggedSQL, jsonArg(q), strconv.FormatUint(after.TransactionID, 10), after.GlobalPosition, pageSize(opts.MaxCount))
	if err != nil {
		return nil, wrapf(mapError(err), "read tagged")
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TaggedEvent, error) {
		var e TaggedEvent
		err := row.Scan(append(e.fields(), &e.Tags)...)
		return e, err
	})
	if err != nil {
		return nil, wrapf(mapError(err), "read tagged")
	}
	return evs, nil
}

// readTaggedAll reads every event matching query, page by page, and returns them with the
// position of the last one (after when there is none): the condition's After for a decision
// based on them.
func readTaggedAll(ctx context.Context, db dbtx, query TagQuery) ([]TaggedEvent, Checkpoint, error) {
	var all []TaggedEvent
	var pos Checkpoint
	for {
		page, err := readTagged(ctx, db, query, pos, FeedOptions{})
		if err != nil {
			return nil, Checkpoint{}, err
		}
		all = append(all, page...)
		if len(page) == 0 {
			return all, pos, nil
		}
		pos = page[len(page)-1].Checkpoint()
		if len(page) < 1000 {
			return all, pos, nil
		}
	}
}

// AppendConditional appends like AppendMulti, atomically, only if no event matching cond.Query
// was appended after cond.After; otherwise it returns a *ConditionFailedError (errors.Is
// ErrWrongExpectedVersion) naming the first such event. The check and the append are one step
// under locks: two conditional appends whose queries overlap never both succeed on the same
// facts, at any isolation level, while appends with disjoint queries do not wait for each other.
// Retryable failures and lost connections are resent (a replay); a failed condition is not.
func (c *Client) AppendConditional(ctx context.Context, cond Condition, appends ...StreamAppend) ([]StreamAppendResult, error) {
	call, err := newConditionalCall(cond, appends)
	if err != nil {
		return nil, err
	}
	return c.sendMulti(ctx, call, "conditional append")
}

// AppendConditionalTx is AppendConditional inside the caller's transaction; it does not retry.
func (c *Client) AppendConditionalTx(ctx context.Context, tx pgx.Tx, cond Condition, appends ...StreamAppend) ([]StreamAppendResult, error) {
	call, err := newConditionalCall(cond, appends)
	if err != nil {
		return nil, err
	}
	return multiOnce(ctx, tx, call, "conditional append")
}

func newConditionalCall(cond Condition, appends []StreamAppend) (multiCall, error) {
	arg, ids, err := encodeAppends(appends)
	if err != nil {
		return multiCall{}, err
	}
	c, err := json.Marshal(struct {
		Query TagQuery       `json:"query"`
		After checkpointJSON `json:"after"`
	}{cond.Query, toCheckpointJSON(cond.After)})
	if err != nil {
		return multiCall{}, wrapf(err, "conditional append")
	}
	return multiCall{sql: appendConditionalSQL, args: []any{jsonArg(arg), jsonArg(c)}, ids: ids}, nil
}

// DecideTagged is the decider loop of a consistency boundary drawn by tags: it reads every event
// matching query, asks decide what to append given them, and appends that on the condition that
// nothing matching query was appended since the read. When another append changed those facts
// first (a *ConditionFailedError) it waits a little (the gap-free read shows the new event once
// every older transaction has ended), reads and decides again, up to maxAttempts times in all
// (0 means 10). decide must only compute: it may run several times. It returns decide's error as
// is, with nothing appended; no appends means nothing to do (nil, nil).
func (c *Client) DecideTagged(ctx context.Context, query TagQuery, maxAttempts int,
	decide func(events []TaggedEvent) ([]StreamAppend, error)) ([]StreamAppendResult, error) {
	if maxAttempts <= 0 {
		maxAttempts = 10
	}
	for attempt := 1; ; attempt++ {
		res, err := c.decideTagged(ctx, nil, query, decide)
		var cf *ConditionFailedError
		if err == nil || !errors.As(err, &cf) || attempt >= maxAttempts {
			return res, err
		}
		// The conflicting event is committed, but the gap-free read only returns it once every
		// older transaction has ended: give the feed barrier time to pass it.
		if werr := retry.Wait(ctx, attempt, 5*time.Millisecond, 10*time.Millisecond); werr != nil {
			return nil, wrapf(werr, "decide by tags (after %v)", err)
		}
	}
}

// DecideTaggedTx is DecideTagged inside the caller's transaction: one read, one decision, one
// conditional append. A failed condition aborts tx, so it is not retried here (maxAttempts is
// not used): retry the whole transaction.
func (c *Client) DecideTaggedTx(ctx context.Context, tx pgx.Tx, query TagQuery, _ int,
	decide func(events []TaggedEvent) ([]StreamAppend, error)) ([]StreamAppendResult, error) {
	if tx == nil {
		return nil, invalid("tx", "must not be nil")
	}
	return c.decideTagged(ctx, tx, query, decide)
}

// decideTagged reads, decides and appends once, in tx when it is not nil.
func (c *Client) decideTagged(ctx context.Context, tx pgx.Tx, query TagQuery,
	decide func(events []TaggedEvent) ([]StreamAppend, error)) ([]StreamAppendResult, error) {
	db := c.db(ctx)
	if tx != nil {
		db = tx
	}
	events, pos, err := readTaggedAll(ctx, db, query)
	if err != nil {
		return nil, err
	}
	appends, err := decide(events)
	if err != nil || len(appends) == 0 {
		return nil, err
	}
	if tx != nil {
		return c.AppendConditionalTx(ctx, tx, Condition{Query: query, After: pos}, appends...)
	}
	return c.AppendConditional(ctx, Condition{Query: query, After: pos}, appends...)
}

package annals

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/annals-db/annals/goapi/internal/retry"
)

// StreamAppend is one stream's part of a multi-stream append: its events and the version the
// stream must be at, as for Append.
type StreamAppend struct {
	StreamID string
	Expected ExpectedVersion
	Events   []EventData
}

// StreamAppendResult is one stream's outcome of a multi-stream append.
type StreamAppendResult struct {
	StreamID string
	AppendResult
}

const appendMultiSQL = `SELECT r.stream_id, r.stream_version, r.global_position, r.transaction_id
FROM annals.append_multi($1::jsonb) AS r`

// multiCall is an encoded multi-stream append, the same on every try.
type multiCall struct {
	sql  string
	args []any
	ids  [][]uuid.UUID
}

// encodeAppends checks every append and writes the appends argument of append_multi and
// append_conditional. Event ids are fixed here, so a resend is a replay.
func encodeAppends(appends []StreamAppend) ([]byte, [][]uuid.UUID, error) {
	if len(appends) == 0 {
		return nil, nil, invalid("appends", "must hold at least one append")
	}
	ids := make([][]uuid.UUID, len(appends))
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, a := range appends {
		batch, evIDs, err := encodeBatch(a.StreamID, a.Expected, a.Events)
		if err != nil {
			return nil, nil, wrapf(err, "appends[%d] (stream %q)", i, a.StreamID)
		}
		ids[i] = evIDs
		if i > 0 {
			buf.WriteByte(',')
		}
		sid, _ := json.Marshal(a.StreamID) // a string always encodes
		buf.WriteString(`{"stream_id":`)
		buf.Write(sid)
		if v := a.Expected.arg(); v != nil {
			fmt.Fprintf(&buf, `,"expected_version":%d`, *v)
		}
		buf.WriteString(`,"events":`)
		buf.Write(batch)
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	return buf.Bytes(), ids, nil
}

// AppendMulti appends to several streams atomically, in one round trip: all the appends commit
// or none does. Each stream is checked against its Expected version as Append checks it, and a
// failure names the stream (*WrongExpectedVersionError.StreamID, the error's DETAIL). The server
// locks the streams in one fixed order, so overlapping multi-appends never deadlock, and only
// then assigns the transaction id, so they do not fail with 40001 either. Retryable failures and
// lost connections are retried (WithAppendAttempts); resending the same ids is a replay that
// returns the original results. Results come in the order of appends; each stream may appear
// once.
func (c *Client) AppendMulti(ctx context.Context, appends ...StreamAppend) ([]StreamAppendResult, error) {
	call, err := newMultiCall(appends)
	if err != nil {
		return nil, err
	}
	return c.sendMulti(ctx, call, "append to several streams")
}

// AppendMultiTx is AppendMulti inside the caller's transaction; it does not retry. Call it
// before other writes in tx: a transaction that already has an id can fail with 40001 on a busy
// stream (IsRetryable), as AppendTx can.
func (c *Client) AppendMultiTx(ctx context.Context, tx pgx.Tx, appends ...StreamAppend) ([]StreamAppendResult, error) {
	call, err := newMultiCall(appends)
	if err != nil {
		return nil, err
	}
	return multiOnce(ctx, tx, call, "append to several streams")
}

func newMultiCall(appends []StreamAppend) (multiCall, error) {
	arg, ids, err := encodeAppends(appends)
	if err != nil {
		return multiCall{}, err
	}
	return multiCall{sql: appendMultiSQL, args: []any{jsonArg(arg)}, ids: ids}, nil
}

// sendMulti sends call, retrying as Append does.
func (c *Client) sendMulti(ctx context.Context, call multiCall, what string) ([]StreamAppendResult, error) {
	for attempt := 1; ; attempt++ {
		res, err := multiOnce(ctx, c.db(ctx), call, what)
		if err == nil || attempt >= c.appendTries || !retry.Resendable(ctx, err) {
			return res, err
		}
		if werr := retry.Wait(ctx, attempt, 5*time.Millisecond, 10*time.Millisecond); werr != nil {
			return nil, fmt.Errorf("annals: %s: %w (after %v)", what, werr, err)
		}
	}
}

func multiOnce(ctx context.Context, db dbtx, call multiCall, what string) ([]StreamAppendResult, error) {
	rows, err := db.Query(ctx, call.sql, call.args...)
	if err != nil {
		return nil, wrapf(mapError(err), "%s", what)
	}
	out := make([]StreamAppendResult, 0, len(call.ids))
	for rows.Next() {
		var r StreamAppendResult
		var pos *int64
		var xid *uint64
		if err := rows.Scan(&r.StreamID, &r.StreamVersion, &pos, &xid); err != nil {
			rows.Close()
			return nil, wrapf(err, "%s", what)
		}
		if pos != nil {
			r.GlobalPosition = *pos
		}
		if xid != nil {
			r.TransactionID = *xid
		}
		if i := len(out); i < len(call.ids) {
			r.EventIDs = call.ids[i]
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapf(mapError(err), "%s", what)
	}
	return out, nil
}

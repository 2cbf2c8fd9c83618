package annals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EventData is an event to append.
type EventData struct {
	// ID identifies the event; the zero UUID means "generate one" (a UUIDv7, before the first
	// try, so retries resend the same id).
	ID uuid.UUID
	// Type is the stable event type name: a name (1..256 bytes; no control, format, line or
	// paragraph separator or noncharacter code point; no whitespace at either end; see the
	// README's "Streams and events"), not starting with '$'.
	Type string
	// SchemaVersion is the payload's schema version; 0 means 1.
	SchemaVersion int
	// Data must encode to a JSON object: a json.RawMessage or []byte holding one, or any value
	// encoding/json turns into an object. nil means {}.
	Data any
	// Metadata is like Data; conventional keys are correlation_id, causation_id and actor.
	Metadata any
}

// AppendResult describes the last event of an append.
type AppendResult struct {
	// StreamVersion is the stream's version after the append.
	StreamVersion int64
	// GlobalPosition is the last event's position in the store (unique, increasing, gaps allowed).
	GlobalPosition int64
	// TransactionID is the appending transaction's id (xid8), half of the feed checkpoint.
	TransactionID uint64
	// EventIDs are the ids of the appended events, in order, including generated ones.
	EventIDs []uuid.UUID
}

const appendSQL = `SELECT r.stream_version, r.global_position, r.transaction_id
FROM annals.append_events($1, $2, $3::jsonb) AS r`

// Append appends events to a stream atomically, in one round trip, checking expected. It
// returns ErrWrongExpectedVersion (*WrongExpectedVersionError), ErrEventIDConflict,
// ErrStreamDeleted, ErrTooLarge, ErrInvalidArgument or ErrReserved. Stream ids and event types
// that break the name rule are refused before the round trip, with the server's words. It retries retryable failures
// and lost connections (see WithAppendAttempts); replaying the same ids is safe. An empty
// events list checks expected and returns the stream's current version.
func (c *Client) Append(ctx context.Context, streamID string, expected ExpectedVersion, events ...EventData) (AppendResult, error) {
	batch, ids, err := encodeBatch(streamID, expected, events)
	if err != nil {
		return AppendResult{}, err
	}
	var res AppendResult
	for attempt := 1; ; attempt++ {
		res, err = appendOnce(ctx, c.pool, streamID, expected, batch)
		if err == nil || attempt >= c.appendTries || !retryableAppend(ctx, err) {
			break
		}
		// Jittered backoff: a hot stream's losers should not retry in lockstep.
		wait := time.Duration(attempt) * (5*time.Millisecond + rand.N(10*time.Millisecond))
		select {
		case <-ctx.Done():
			return AppendResult{}, fmt.Errorf("annals: append to %q: %w (after %v)", streamID, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
	if err != nil {
		return AppendResult{}, err
	}
	res.EventIDs = ids
	return res, nil
}

// AppendTx is Append inside the caller's transaction, so events commit or roll back with the
// caller's own writes. It does not retry: a 40001 aborts the caller's transaction, which the
// caller must retry as a whole (IsRetryable reports it). Append before other writes in the
// transaction to avoid that 40001 on busy streams.
func (c *Client) AppendTx(ctx context.Context, tx pgx.Tx, streamID string, expected ExpectedVersion, events ...EventData) (AppendResult, error) {
	batch, ids, err := encodeBatch(streamID, expected, events)
	if err != nil {
		return AppendResult{}, err
	}
	res, err := appendOnce(ctx, tx, streamID, expected, batch)
	if err != nil {
		return AppendResult{}, err
	}
	res.EventIDs = ids
	return res, nil
}

func appendOnce(ctx context.Context, db dbtx, streamID string, expected ExpectedVersion, batch []byte) (AppendResult, error) {
	var res AppendResult
	var pos *int64
	var xid *uint64
	err := db.QueryRow(ctx, appendSQL, streamID, expected.arg(), jsonArg(batch)).Scan(&res.StreamVersion, &pos, &xid)
	if err != nil {
		return AppendResult{}, wrapf(mapError(err), "append to %q", streamID)
	}
	if pos != nil {
		res.GlobalPosition = *pos
	}
	if xid != nil {
		res.TransactionID = *xid
	}
	return res, nil
}

// retryableAppend: transient concurrency failures, and connection failures whose outcome is
// unknown (the ids make a resend a replay), unless the caller gave up.
func retryableAppend(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if IsRetryable(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return false // the server answered: a real verdict
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// encodeBatch checks what can be checked without a round trip and writes the events argument.
// Ids are fixed here, once, so every retry sends the same batch.
func encodeBatch(streamID string, expected ExpectedVersion, events []EventData) ([]byte, []uuid.UUID, error) {
	if p := streamIDProblem(streamID); p != "" {
		return nil, nil, invalid("stream_id", "%s", p)
	}
	if expected.set && expected.v < -1 {
		return nil, nil, invalid("expected_version", "must be Any, StreamExists, NoStream or Exact(v >= 1), got %d", expected.v)
	}
	ids := make([]uuid.UUID, len(events))
	var buf bytes.Buffer
	buf.Grow(64 + 160*len(events))
	buf.WriteByte('[')
	for i, ev := range events {
		id := ev.ID
		if id == uuid.Nil {
			var err error
			if id, err = uuid.NewV7(); err != nil {
				return nil, nil, wrapf(err, "generate event id")
			}
		}
		ids[i] = id
		if p := nameProblem(ev.Type, 256); p != "" {
			return nil, nil, invalid(fmt.Sprintf("events[%d].type", i), "%s", p)
		}
		if ev.SchemaVersion < 0 {
			return nil, nil, invalid(fmt.Sprintf("events[%d].schema_version", i), "must be positive, got %d", ev.SchemaVersion)
		}
		data, err := jsonObject(ev.Data)
		if err != nil {
			return nil, nil, invalid(fmt.Sprintf("events[%d].data", i), "%v", err)
		}
		var meta []byte
		if ev.Metadata != nil {
			if meta, err = jsonObject(ev.Metadata); err != nil {
				return nil, nil, invalid(fmt.Sprintf("events[%d].metadata", i), "%v", err)
			}
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"id":"`)
		buf.WriteString(id.String())
		buf.WriteString(`","type":`)
		typ, _ := json.Marshal(ev.Type) // a string always encodes
		buf.Write(typ)
		if ev.SchemaVersion > 0 {
			fmt.Fprintf(&buf, `,"schema_version":%d`, ev.SchemaVersion)
		}
		buf.WriteString(`,"data":`)
		buf.Write(data)
		if meta != nil {
			buf.WriteString(`,"metadata":`)
			buf.Write(meta)
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	return buf.Bytes(), ids, nil
}

// jsonArg passes JSON text as a query argument that every pgx query mode sends as text. A []byte
// argument goes out as bytea in QueryExecModeExec and QueryExecModeSimpleProtocol (the modes for
// connection poolers), whose text form ('\x7b...') the server refuses to cast to jsonb (22P02); a
// string is JSON text in every mode, and the describing modes encode it for a jsonb parameter.
func jsonArg(b []byte) string { return string(b) }

// jsonObject encodes v and checks that it is a JSON object; nil gives {}.
func jsonObject(v any) ([]byte, error) {
	var raw []byte
	switch t := v.(type) {
	case nil:
		return []byte("{}"), nil
	case json.RawMessage:
		raw = t
	case []byte:
		raw = t
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("does not encode to JSON: %w", err)
		}
		raw = b
	}
	trimmed := bytes.TrimSpace(raw)
	if string(trimmed) == "null" { // a typed nil map or pointer: nil means {}
		return []byte("{}"), nil
	}
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, errors.New("must be a JSON object")
	}
	return trimmed, nil
}

package annals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/annals-db/annals/goapi/internal/retry"
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
	// Tags are the event's consistency-boundary tags ("course:7", "student:42"), each a name of
	// 1..256 bytes; ReadTagged and AppendConditional find events by them. nil means none.
	Tags []string
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

// appendOneSQL appends one event with scalar arguments: no JSON array to build or take apart.
// The server answers exactly as append_events does for the one-event batch.
const appendOneSQL = `SELECT r.stream_version, r.global_position, r.transaction_id
FROM annals.append_event($1, $2, $3, $4::jsonb, $5::jsonb, $6::uuid, $7::integer) AS r`

// appendCall is one encoded append: the SQL and its arguments, the same on every try.
type appendCall struct {
	sql  string
	args []any
}

func newAppendCall(streamID string, expected ExpectedVersion, events []EventData) (appendCall, []uuid.UUID, error) {
	if len(events) == 1 && len(events[0].Tags) == 0 { // append_event takes no tags
		ev, err := encodeOne(streamID, expected, events[0])
		if err != nil {
			return appendCall{}, nil, err
		}
		var meta, schema any
		if ev.metadata != nil {
			meta = jsonArg(ev.metadata)
		}
		if ev.schemaVersion > 0 {
			schema = ev.schemaVersion
		}
		return appendCall{appendOneSQL, []any{streamID, expected.arg(), ev.typ, jsonArg(ev.data), meta, ev.id.String(), schema}},
			[]uuid.UUID{ev.id}, nil
	}
	batch, ids, err := encodeBatch(streamID, expected, events)
	if err != nil {
		return appendCall{}, nil, err
	}
	return appendCall{appendSQL, []any{streamID, expected.arg(), jsonArg(batch)}}, ids, nil
}

// Append appends events to a stream atomically, in one round trip, checking expected. It
// returns ErrWrongExpectedVersion (*WrongExpectedVersionError), ErrEventIDConflict,
// ErrStreamDeleted, ErrTooLarge, ErrInvalidArgument or ErrReserved. Stream ids and event types
// that break the name rule are refused before the round trip, with the server's words. It retries retryable failures
// and lost connections (see ClientOptions.AppendAttempts); replaying the same ids is safe. An empty
// events list checks expected and returns the stream's current version. One event goes through
// annals.append_event (scalar arguments, no JSON array), several through annals.append_events;
// the results and errors are the same.
func (c *Client) Append(ctx context.Context, streamID string, expected ExpectedVersion, events ...EventData) (AppendResult, error) {
	call, ids, err := newAppendCall(streamID, expected, events)
	if err != nil {
		return AppendResult{}, err
	}
	var res AppendResult
	for attempt := 1; ; attempt++ {
		res, err = appendOnce(ctx, c.db(ctx), streamID, call)
		if err == nil || attempt >= c.appendTries || !retry.Resendable(ctx, err) {
			break
		}
		if werr := retry.Wait(ctx, attempt, 5*time.Millisecond, 10*time.Millisecond); werr != nil {
			return AppendResult{}, fmt.Errorf("annals: append to %q: %w (after %v)", streamID, werr, err)
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
	call, ids, err := newAppendCall(streamID, expected, events)
	if err != nil {
		return AppendResult{}, err
	}
	res, err := appendOnce(ctx, tx, streamID, call)
	if err != nil {
		return AppendResult{}, err
	}
	res.EventIDs = ids
	return res, nil
}

func appendOnce(ctx context.Context, db dbtx, streamID string, call appendCall) (AppendResult, error) {
	var res AppendResult
	var pos *int64
	var xid *uint64
	err := db.QueryRow(ctx, call.sql, call.args...).Scan(&res.StreamVersion, &pos, &xid)
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

// encodedEvent is one event, checked, with its id fixed.
type encodedEvent struct {
	id            uuid.UUID
	typ           string
	schemaVersion int
	data          []byte
	metadata      []byte // nil when the event has none
	tags          []string
}

// checkArgs checks the stream id and expected version without a round trip.
func checkArgs(streamID string, expected ExpectedVersion) error {
	if p := streamIDProblem(streamID); p != "" {
		return invalid("stream_id", "%s", p)
	}
	if expected.set && expected.v < -1 {
		return invalid("expected_version", "must be Any, StreamExists, NoStream or Exact(v >= 1), got %d", expected.v)
	}
	return nil
}

// encodeEvent checks event i and fixes its id (a UUIDv7 when it has none), so every retry sends
// the same event.
func encodeEvent(i int, ev EventData) (encodedEvent, error) {
	id := ev.ID
	if id == uuid.Nil {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return encodedEvent{}, wrapf(err, "generate event id")
		}
	}
	if p := nameProblem(ev.Type, 256); p != "" {
		return encodedEvent{}, invalid(fmt.Sprintf("events[%d].type", i), "%s", p)
	}
	if ev.SchemaVersion < 0 {
		return encodedEvent{}, invalid(fmt.Sprintf("events[%d].schema_version", i), "must be positive, got %d", ev.SchemaVersion)
	}
	data, err := jsonObject(ev.Data)
	if err != nil {
		return encodedEvent{}, invalid(fmt.Sprintf("events[%d].data", i), "%v", err)
	}
	var meta []byte
	if ev.Metadata != nil {
		if meta, err = jsonObject(ev.Metadata); err != nil {
			return encodedEvent{}, invalid(fmt.Sprintf("events[%d].metadata", i), "%v", err)
		}
	}
	for j, tag := range ev.Tags {
		if p := nameProblem(tag, 256); p != "" {
			return encodedEvent{}, invalid(fmt.Sprintf("events[%d].tags", i), "tag %d: %s", j, p)
		}
	}
	return encodedEvent{id: id, typ: ev.Type, schemaVersion: ev.SchemaVersion, data: data, metadata: meta, tags: ev.Tags}, nil
}

// encodeOne checks a one-event append for append_event; the errors name events[0] as for a batch.
func encodeOne(streamID string, expected ExpectedVersion, ev EventData) (encodedEvent, error) {
	if err := checkArgs(streamID, expected); err != nil {
		return encodedEvent{}, err
	}
	return encodeEvent(0, ev)
}

// encodeBatch checks what can be checked without a round trip and writes the events argument.
// Ids are fixed here, once, so every retry sends the same batch.
func encodeBatch(streamID string, expected ExpectedVersion, events []EventData) ([]byte, []uuid.UUID, error) {
	if err := checkArgs(streamID, expected); err != nil {
		return nil, nil, err
	}
	ids := make([]uuid.UUID, len(events))
	var buf bytes.Buffer
	buf.Grow(64 + 160*len(events))
	buf.WriteByte('[')
	for i, raw := range events {
		ev, err := encodeEvent(i, raw)
		if err != nil {
			return nil, nil, err
		}
		ids[i] = ev.id
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"id":"`)
		buf.WriteString(ev.id.String())
		buf.WriteString(`","type":`)
		typ, _ := json.Marshal(ev.typ) // a string always encodes
		buf.Write(typ)
		if ev.schemaVersion > 0 {
			fmt.Fprintf(&buf, `,"schema_version":%d`, ev.schemaVersion)
		}
		buf.WriteString(`,"data":`)
		buf.Write(ev.data)
		if ev.metadata != nil {
			buf.WriteString(`,"metadata":`)
			buf.Write(ev.metadata)
		}
		if len(ev.tags) > 0 {
			tags, _ := json.Marshal(ev.tags) // strings always encode
			buf.WriteString(`,"tags":`)
			buf.Write(tags)
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

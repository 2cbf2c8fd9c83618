package annals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/annals-db/annals/goapi/internal/retry"
	"github.com/annals-db/annals/goapi/internal/wrap"
)

// Sentinel errors. Every error returned by this package that came from the database still unwraps
// to its *pgconn.PgError, so errors.As(err, &pgErr) keeps working next to errors.Is.
var (
	// ErrWrongExpectedVersion: the stream was not at the expected version (SQLSTATE ST409). The
	// error is a *WrongExpectedVersionError.
	ErrWrongExpectedVersion = errors.New("annals: wrong expected version")
	// ErrEventIDConflict: an event id is already stored with other content or at another
	// position (ST412). The error is an *EventIDConflictError.
	ErrEventIDConflict = errors.New("annals: event id conflict")
	// ErrStreamDeleted: the stream is deleted or archived and takes no appends (ST410).
	ErrStreamDeleted = errors.New("annals: stream deleted")
	// ErrTooLarge: an event or batch is over a configured limit (ST413). The error is a
	// *TooLargeError.
	ErrTooLarge = errors.New("annals: too large")
	// ErrInvalidArgument: an argument failed validation (ST422, or the client's own checks). The
	// error is an *InvalidArgumentError.
	ErrInvalidArgument = errors.New("annals: invalid argument")
	// ErrReserved: a stream id or event type uses the reserved '$' prefix (ST403).
	ErrReserved = errors.New("annals: reserved name")
	// ErrAppendOnly: something tried to update, delete or truncate history (ST405).
	ErrAppendOnly = errors.New("annals: history is append-only")
	// ErrStreamNotFound: the stream has no events (returned by StreamInfo).
	ErrStreamNotFound = errors.New("annals: stream not found")
	// ErrEventNotFound: no event has the id (returned by ReadEvent).
	ErrEventNotFound = errors.New("annals: event not found")
	// ErrNotFound: a named object (subscription, projection, dead letter) does not exist (ST404).
	ErrNotFound = errors.New("annals: not found")
	// ErrCheckpointConflict: a subscription checkpoint was not where the acknowledgement expected
	// it: another consumer acknowledged first (ST411).
	ErrCheckpointConflict = errors.New("annals: checkpoint moved by another consumer")
	// ErrPermissionDenied: the login lacks a privilege the call needs (PostgreSQL's 42501): grant
	// it annals_writer, annals_reader or annals_bi as the call requires.
	ErrPermissionDenied = errors.New("annals: permission denied")
	// ErrUpcasterFailed: a registered upcaster did not return a JSON object (ST500); fix the
	// upcaster function the message names.
	ErrUpcasterFailed = errors.New("annals: upcaster failed")
	// ErrLeaseHeld: another consumer holds the subscription member's lease (ST423).
	ErrLeaseHeld = errors.New("annals: lease held by another consumer")
	// ErrTenantSwitch: annals.set_tenant refused to change the tenant inside a transaction that has
	// already written or set another tenant (ST424): commit or roll back first.
	ErrTenantSwitch = errors.New("annals: tenant switch inside a transaction")
	// ErrFeedRestored: stored transaction ids are ahead of this cluster after a logical restore
	// (ST503); run annals.rebase_transaction_ids() as a superuser (annals_owner suffices where
	// the history guard is not installed).
	ErrFeedRestored = errors.New("annals: transaction ids restored from another cluster")
	// ErrReadOnlyServer: a write reached a read-only server, a hot standby (PostgreSQL's 25006):
	// send appends, checkpoints and other writes to the primary.
	ErrReadOnlyServer = errors.New("annals: read-only server")
	// ErrSchemaNotInstalled: Annals is not installed in this database, or is older than this
	// build; run Migrate.
	ErrSchemaNotInstalled = errors.New("annals: schema not installed")
	// ErrSchemaTooNew: a newer release of Annals installed the schema; upgrade this program.
	ErrSchemaTooNew = errors.New("annals: schema is newer than this build")
	// ErrShardUnavailable: a sharded store's proxy could not reach the shard a call needed
	// (SQLSTATE ST502; the message and ShardUnavailableError name the shard). Other shards serve.
	ErrShardUnavailable = errors.New("annals: shard unavailable")
)

// BaseError is the common shape of the typed errors: a sentinel Kind, a human message, and the
// database error it came from (nil for client-side validation).
type BaseError struct {
	Kind    error
	Message string
	PgErr   *pgconn.PgError
}

// Error is the database's message when there is one (it already says what kind of error it is),
// else the kind with the client's own reason.
func (e *BaseError) Error() string {
	switch {
	case e.Message == "":
		return e.Kind.Error()
	case e.PgErr != nil:
		return "annals: " + e.Message
	}
	return e.Kind.Error() + ": " + e.Message
}

// Is reports whether target is this error's sentinel.
func (e *BaseError) Is(target error) bool { return target == e.Kind }

// Unwrap returns the database error, so errors.As(err, &*pgconn.PgError) works.
func (e *BaseError) Unwrap() error {
	if e.PgErr == nil {
		return nil
	}
	return e.PgErr
}

// WrongExpectedVersionError is returned when an append or delete found the stream at another
// version than expected (SQLSTATE ST409).
type WrongExpectedVersionError struct {
	BaseError
	StreamID string
	// Expected is what the caller asked for; Actual the stream's version at the time.
	Expected ExpectedVersion
	Actual   int64
}

// EventIDConflictError is returned when an event id is already stored in the stream with other
// content or at another position (SQLSTATE ST412).
type EventIDConflictError struct {
	BaseError
	StreamID string
	EventID  uuid.UUID
}

// TooLargeError is returned when an event or batch is over a limit (SQLSTATE ST413).
type TooLargeError struct {
	BaseError
	// Setting names the limit (max_event_bytes, max_batch_events, max_batch_bytes).
	Setting       string
	Limit, Actual int64
}

// InvalidArgumentError is returned when an argument fails validation (SQLSTATE ST422). Argument
// names it the way the SQL function does, e.g. "events[2].type".
type InvalidArgumentError struct {
	BaseError
	Argument, Reason string
}

// ShardUnavailableError is returned when a sharded store's proxy could not reach the shard a
// call needed (SQLSTATE ST502): Shard is its number (1..N), Name its name in the proxy's map.
type ShardUnavailableError struct {
	BaseError
	Shard int
	Name  string
}

// detail is the union of the JSON DETAIL shapes Annals raises.
type detail struct {
	StreamID      string          `json:"stream_id"`
	Expected      json.RawMessage `json:"expected"`
	Actual        json.Number     `json:"actual"`
	EventID       string          `json:"event_id"`
	Limit         json.Number     `json:"limit"`
	Setting       string          `json:"setting"`
	Argument      string          `json:"argument"`
	Reason        string          `json:"reason"`
	TransactionID json.RawMessage `json:"transaction_id"`
	Conflict      *conflictDetail `json:"conflict"` // M15: a conditional append's failed condition
}

// conflictDetail is DETAIL.conflict of a failed append_conditional.
type conflictDetail struct {
	checkpointJSON
	StreamID      string `json:"stream_id"`
	StreamVersion int64  `json:"stream_version"`
	EventType     string `json:"event_type"`
}

// ConditionFailedError is returned when a conditional append found an event matching its
// condition's query after the position its decision read (SQLSTATE ST409): the facts changed.
// errors.Is(err, ErrWrongExpectedVersion) holds, as for a stream's expected version. Read again,
// decide again, retry.
type ConditionFailedError struct {
	BaseError
	// Conflict is the first matching event's feed position; StreamID, StreamVersion and
	// EventType say which event it is.
	Conflict      Checkpoint
	StreamID      string
	StreamVersion int64
	EventType     string
}

// MapError turns an error from Annals' SQL functions into this package's typed errors, for
// callers who run their own statements (in an AppendTx transaction, say). Errors it does not
// recognize, and nil, are returned unchanged; typed errors still unwrap to *pgconn.PgError.
func MapError(err error) error { return mapError(err) }

// ProjectionError is returned when an inline projection's handler failed inside an append (the
// append wrote nothing). Projection names it; Err is the handler's error, which unwraps to the
// *pgconn.PgError with the handler's SQLSTATE.
type ProjectionError struct {
	Projection string
	Err        error
}

func (e *ProjectionError) Error() string {
	cause := strings.TrimPrefix(e.Err.Error(), "annals: ")
	if pgErr, ok := e.Err.(*pgconn.PgError); ok { // a handler's own error: its words, its SQLSTATE
		cause = fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	}
	return fmt.Sprintf("inline projection %q failed: %s", e.Projection, cause)
}

// Unwrap returns the handler's error.
func (e *ProjectionError) Unwrap() error { return e.Err }

// inlineFrame finds the frame inline dispatch calls a handler through in an error's CONTEXT:
// annals_internal."inline projection <name>" (quotes in the name doubled).
var inlineFrame = regexp.MustCompile(`function annals_internal\."inline projection ((?:[^"]|"")*)"\(annals\.event\[\]\)`)

// mapError is the single place that reads SQLSTATEs.
func mapError(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) {
		return err
	}
	if m := inlineFrame.FindStringSubmatch(pgErr.Where); m != nil {
		var pe *ProjectionError
		if errors.As(err, &pe) {
			return err
		}
		return &ProjectionError{Projection: strings.ReplaceAll(m[1], `""`, `"`), Err: mapCode(err, pgErr)}
	}
	return mapCode(err, pgErr)
}

// mapCode maps pgErr, which err wraps, by its SQLSTATE.
func mapCode(err error, pgErr *pgconn.PgError) error {
	var d detail
	if len(pgErr.Detail) > 0 && pgErr.Detail[0] == '{' {
		_ = json.Unmarshal([]byte(pgErr.Detail), &d) // best effort: the message stays either way
	}
	base := func(kind error) BaseError { return BaseError{Kind: kind, Message: pgErr.Message, PgErr: pgErr} }
	switch pgErr.Code {
	case "ST411":
		e := base(ErrCheckpointConflict)
		return &e
	case "ST409":
		if d.Conflict != nil {
			return &ConditionFailedError{BaseError: base(ErrWrongExpectedVersion),
				Conflict: d.Conflict.checkpoint(),
				StreamID: d.Conflict.StreamID, StreamVersion: d.Conflict.StreamVersion, EventType: d.Conflict.EventType}
		}
		actual, _ := d.Actual.Int64()
		exp := Any
		var v int64
		if json.Unmarshal(d.Expected, &v) == nil && string(d.Expected) != "null" {
			exp = ExpectedVersion{v: v, set: true}
		}
		return &WrongExpectedVersionError{BaseError: base(ErrWrongExpectedVersion), StreamID: d.StreamID, Expected: exp, Actual: actual}
	case "ST412":
		id, _ := uuid.Parse(d.EventID)
		return &EventIDConflictError{BaseError: base(ErrEventIDConflict), StreamID: d.StreamID, EventID: id}
	case "ST410":
		e := base(ErrStreamDeleted)
		return &e
	case "ST413":
		limit, _ := d.Limit.Int64()
		actual, _ := d.Actual.Int64()
		return &TooLargeError{BaseError: base(ErrTooLarge), Setting: d.Setting, Limit: limit, Actual: actual}
	case "ST422":
		return &InvalidArgumentError{BaseError: base(ErrInvalidArgument), Argument: d.Argument, Reason: d.Reason}
	case "ST403":
		e := base(ErrReserved)
		return &e
	case "ST405":
		e := base(ErrAppendOnly)
		return &e
	case "ST404":
		e := base(ErrNotFound)
		return &e
	case "ST423":
		e := base(ErrLeaseHeld)
		return &e
	case "ST424":
		e := base(ErrTenantSwitch)
		return &e
	case "42501":
		e := base(ErrPermissionDenied)
		return &e
	case "ST500":
		e := base(ErrUpcasterFailed)
		return &e
	case "ST503":
		e := base(ErrFeedRestored)
		return &e
	case "ST502":
		var sd struct {
			Shard int    `json:"shard"`
			Name  string `json:"name"`
		}
		_ = json.Unmarshal([]byte(pgErr.Detail), &sd) // best effort: the message names the shard too
		return &ShardUnavailableError{BaseError: base(ErrShardUnavailable), Shard: sd.Shard, Name: sd.Name}
	case "22021", "22P05": // a NUL byte in text, \u0000 in JSON: input PostgreSQL cannot store
		return &InvalidArgumentError{BaseError: base(ErrInvalidArgument), Reason: pgErr.Message}
	case "25006":
		e := base(ErrReadOnlyServer)
		e.Message = pgErr.Message + "; this server is a read-only hot standby: send writes to the primary"
		return &e
	case "3F000": // schema annals missing. Not 42883/42P01: a projection handler raises those too.
		e := base(ErrSchemaNotInstalled)
		e.Message = pgErr.Message + "; run annals.Migrate or `annals migrate`"
		return &e
	}
	return err
}

// kinds are the sentinels, most specific first (ErrStreamNotFound before ErrNotFound).
var kinds = []error{
	ErrWrongExpectedVersion, ErrEventIDConflict, ErrStreamDeleted, ErrTooLarge, ErrInvalidArgument,
	ErrReserved, ErrAppendOnly, ErrStreamNotFound, ErrEventNotFound, ErrNotFound, ErrCheckpointConflict, ErrUpcasterFailed, ErrPermissionDenied, ErrLeaseHeld, ErrTenantSwitch,
	ErrFeedRestored, ErrReadOnlyServer, ErrSchemaNotInstalled, ErrSchemaTooNew, ErrShardUnavailable,
}

// Kind returns the sentinel error err is (or maps to, for a raw *pgconn.PgError from Annals'
// functions), such as ErrWrongExpectedVersion, or nil when it is none of them. Tools that
// describe errors by kind use it instead of reading SQLSTATEs themselves.
func Kind(err error) error {
	err = mapError(err)
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

// invalid builds a client-side InvalidArgumentError (no database round trip was made).
func invalid(argument, format string, args ...any) error {
	reason := fmt.Sprintf(format, args...)
	return &InvalidArgumentError{
		BaseError: BaseError{Kind: ErrInvalidArgument, Message: argument + ": " + reason},
		Argument:  argument, Reason: reason,
	}
}

// IsRetryable reports whether err is a transient concurrency failure that the whole transaction
// can be retried after: serialization failure (40001), deadlock (40P01) or lock not available
// (55P03). A retried append is safe when its event ids were fixed before the first try, which
// Append and AppendTx do.
func IsRetryable(err error) bool { return retry.Transient(err) }

// wrapf wraps err with the call it came from (format and args, as for fmt.Sprintf).
var wrapf = wrap.Errorf

// replicaUnavailable reports whether a read failed because the server could not serve it (it
// is unreachable, shutting down, starting up, or cancelled the read in a conflict with its
// replay), not because of what was asked: the same read can go to the primary.
func replicaUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), strings.HasPrefix(pgErr.Code, "57P"):
			return true // connection failures; admin shutdown, crash shutdown, cannot connect now
		case pgErr.Code == "40001", pgErr.Code == "40P01":
			return true // a read is only cancelled so on a standby: a conflict with recovery
		}
		return false
	}
	return Kind(err) == nil // not one of ours (client-side validation): the connection failed
}

// serializationFailure reports a 40001: the transaction must be retried whole.
func serializationFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "40001"
}

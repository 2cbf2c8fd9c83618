package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgconn"
)

// Exit codes. Every command's error goes through exitCodeFor, so the same failure exits the same
// way whichever command met it (a missing stream is 3 for read and for streams show), and a
// script can branch on the kind without reading the message.
const (
	exitOK = 0
	// exitFailure: anything the codes below do not cover: the server is unreachable, a statement
	// failed, a privilege is missing, annals doctor found a FAIL.
	exitFailure = 1
	// exitUsage: the command was called wrong: an unknown command or flag, a bad flag value, no
	// database configured, or an argument the database rejected as invalid (ST422) or reserved
	// (ST403). Fix the command line.
	exitUsage = 2
	// exitNotFound: what the command names does not exist: a stream without events, an event id,
	// a subscription, projection or dead letter (ST404).
	exitNotFound = 3
	// exitConflict: the store is not in the state the command expected: wrong expected version
	// (ST409), an event id stored with other content (ST412), a deleted stream (ST410), a
	// checkpoint another consumer moved, a lease another consumer holds (ST423), a tenant switch inside a transaction (ST424). Read the current
	// state and decide again.
	exitConflict = 4
	// exitInterrupted: Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
	exitInterrupted = 130
)

// exitCodes maps the kinds of annals.Kind to exit codes; every other error is exitFailure.
var exitCodes = map[error]int{
	annals.ErrInvalidArgument:      exitUsage,
	annals.ErrReserved:             exitUsage,
	annals.ErrStreamNotFound:       exitNotFound,
	annals.ErrEventNotFound:        exitNotFound,
	annals.ErrNotFound:             exitNotFound,
	annals.ErrWrongExpectedVersion: exitConflict,
	annals.ErrEventIDConflict:      exitConflict,
	annals.ErrStreamDeleted:        exitConflict,
	annals.ErrCheckpointConflict:   exitConflict,
	annals.ErrLeaseHeld:            exitConflict,
	annals.ErrTenantSwitch:         exitConflict,
}

// exitCodeFor is the exit code for a command's error (not nil).
func exitCodeFor(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	if code, ok := exitCodes[annals.Kind(err)]; ok {
		return code
	}
	return exitFailure
}

// kindError is an error the command itself found, of one of annals.Kind's kinds (a subscription
// that does not exist, say), so it exits and is worded like the same error from the database.
// Its message says what happened and what to do.
type kindError struct {
	msg  string
	kind error
}

func (e kindError) Error() string { return e.msg }

// Is reports whether target is the error's kind.
func (e kindError) Is(target error) bool { return target == e.kind }

// notFound is a kindError of kind annals.ErrNotFound.
func notFound(format string, args ...any) error {
	return kindError{fmt.Sprintf(format, args...), annals.ErrNotFound}
}

// streamMissing is the error for a stream without events, the same from every command.
func streamMissing(stream string) error {
	return kindError{fmt.Sprintf("stream %q has no events (annals streams list shows the streams)", stream), annals.ErrStreamNotFound}
}

// sqlstate is what a SQLSTATE means and what to do about it.
type sqlstate struct{ meaning, hint string }

// sqlstates covers the PostgreSQL codes a user of this command meets in practice, and the Annals
// code the Go API has no kind for. Classes (the first two characters) are the fallback.
var sqlstates = map[string]sqlstate{
	"ST401": {"refused by the history guard", "only a superuser may change Annals' history tables and their append-only triggers: run this (or annals migrate) as a superuser"},
	"42883": {"undefined function", "Annals is missing or older than this build: run `annals migrate`"},
	"42P01": {"undefined table", "Annals is missing or older than this build: run `annals migrate`"},
	"42501": {"insufficient privilege", "the login lacks a privilege; GRANT it annals_writer (or annals_reader to read), or run as the owner or a superuser"},
	"28P01": {"password authentication failed", "check the user and password in DATABASE_URL"},
	"28000": {"invalid authorization", "check the user in DATABASE_URL and the server's pg_hba.conf"},
	"3D000": {"database does not exist", "create it (createdb NAME) or fix the database name in DATABASE_URL"},
	"53300": {"too many connections", "close idle sessions or raise max_connections"},
	"57014": {"statement cancelled", "the statement was cancelled or hit statement_timeout; retry, or raise the timeout"},
	"57P01": {"server shutting down", "retry when the server is back"},
	"57P03": {"server not accepting connections yet", "retry in a moment"},
	"25006": {"read-only transaction", "connect to the primary, not a standby"},
	"40001": {"serialization failure", "a concurrent transaction interfered; retry"},
	"40P01": {"deadlock detected", "retry"},
	"55P03": {"lock not available", "another session holds the lock; retry later"},
	"22P02": {"invalid text representation", "check the format of the value named in the message"},
	"23505": {"unique violation", "the row already exists"},
	"42P05": {"prepared statement already exists", poolerStatementsHint},
	"26000": {"prepared statement does not exist", poolerStatementsHint},
}

// poolerStatementsHint explains 42P05 and 26000, which Annals' SQL never raises: pgx's default
// mode caches named prepared statements per connection, and a pooler in transaction mode
// shares server connections between clients behind its back.
const poolerStatementsHint = "a connection pooler in transaction mode (PgBouncer before 1.21, or without " +
	"max_prepared_statements) shares server connections, so pgx's cached prepared statements collide: add " +
	"default_query_exec_mode=cache_describe (or exec) to the database URL, or use PgBouncer 1.21+ with " +
	"max_prepared_statements > 0"

var sqlstateClasses = map[string]sqlstate{
	"08": {"connection failure", "is PostgreSQL running and is DATABASE_URL right?"},
	"22": {"data exception", "check the values passed"},
	"42": {"syntax error or access rule violation", "check the names used, and that `annals migrate` ran"},
	"53": {"insufficient resources", "the server is out of a resource; check its logs"},
	"XX": {"internal error", "check the server log"},
}

// explain turns an error into one line that says what happened, what the SQLSTATE means and what
// to do.
func explain(err error) string {
	msg := tidyMessage(err.Error())
	var own kindError
	if errors.As(err, &own) {
		return msg // written by the command, with what to do
	}
	var pgErr *pgconn.PgError
	hasPg := errors.As(err, &pgErr)

	hint := specificHint(err)
	var code, meaning string
	if hasPg {
		code = pgErr.Code
		st, ok := sqlstates[code]
		if kind := annals.Kind(err); kind != nil && !ok {
			// Annals' own messages say what happened, its HINT what to do.
			st = sqlstate{}
		} else if !ok && len(code) == 5 {
			st = sqlstateClasses[code[:2]]
		}
		meaning = st.meaning
		switch {
		case hint != "":
		case pgErr.Hint != "":
			hint = pgErr.Hint // the function's own advice comes first
		default:
			hint = st.hint
		}
	}
	if hint == "" {
		var netErr *net.OpError
		var connErr *pgconn.ConnectError
		if errors.As(err, &netErr) || errors.As(err, &connErr) {
			hint = "is PostgreSQL running and is DATABASE_URL right?"
		}
	}

	if strings.Contains(msg, "`annals migrate`") && strings.Contains(hint, "`annals migrate`") {
		hint = "" // the message says it already
	}
	var note string
	switch {
	case code != "" && meaning != "" && hint != "":
		note = fmt.Sprintf("SQLSTATE %s %s: %s", code, meaning, hint)
	case code != "" && meaning != "":
		note = fmt.Sprintf("SQLSTATE %s %s", code, meaning)
	case code != "" && hint != "":
		note = fmt.Sprintf("SQLSTATE %s: %s", code, hint)
	case code != "":
		note = "SQLSTATE " + code
	default:
		note = hint
	}
	if note == "" {
		return msg
	}
	// pgx writes "(SQLSTATE 42501)" into a raw error's text: replace it rather than repeat it.
	if code != "" {
		if raw := "(SQLSTATE " + code + ")"; strings.Contains(msg, raw) {
			return strings.Replace(msg, raw, "("+note+")", 1)
		}
	}
	return msg + " (" + note + ")"
}

// specificHint is advice that needs more than the SQLSTATE: the typed errors' fields, and errors
// that never reached the server.
func specificHint(err error) string {
	var wev *annals.WrongExpectedVersionError
	if errors.As(err, &wev) {
		return fmt.Sprintf("the stream is at version %d: read it again and, if the change still applies, retry with --expected %d",
			wev.Actual, wev.Actual)
	}
	var tooLarge *annals.TooLargeError
	if errors.As(err, &tooLarge) && tooLarge.Setting != "" {
		return fmt.Sprintf("%s is %d, this is %d: split the batch or raise it with SELECT annals.configure(%s => ...) as annals_owner",
			tooLarge.Setting, tooLarge.Limit, tooLarge.Actual, tooLarge.Setting)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "ST404" {
		// Which list to look in, from the DETAIL's key.
		var d map[string]any
		_ = json.Unmarshal([]byte(pgErr.Detail), &d)
		switch {
		case d["subscription"] != nil:
			return "check the name: annals subscriptions list"
		case d["projection"] != nil:
			return "check the name: annals projections list"
		case d["dead_letter_id"] != nil:
			return "check the id: annals subscriptions dead-letters NAME"
		}
	}
	switch {
	case errors.Is(err, annals.ErrCheckpointConflict):
		return "another consumer acknowledged first; let one consumer own each member"
	case errors.Is(err, annals.ErrSchemaNotInstalled):
		return "run `annals migrate` against this database"
	case errors.Is(err, annals.ErrSchemaTooNew):
		return "a newer release installed the schema: upgrade this annals binary"
	case errors.Is(err, annals.ErrStreamNotFound):
		return "check the name: annals streams list"
	}
	return ""
}

// tidyMessage makes err.Error() one line with "annals: " said once, by main. The Go package says
// each fact once; a command that wraps its error adds only its own words.
func tidyMessage(s string) string {
	s = strings.ReplaceAll(strings.Join(strings.Fields(s), " "), ": annals: ", ": ") // a command's own wrap
	return strings.TrimPrefix(s, "annals: ")
}

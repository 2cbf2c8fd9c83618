package main

import (
	"errors"
	"fmt"
	"net"
	"strings"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgconn"
)

// sqlstate is what a SQLSTATE means and what to do about it.
type sqlstate struct{ meaning, hint string }

// annalsHints says what to do about each kind of Annals error; what it is comes from the error
// itself (annals.Kind), so the words match the Go API's.
var annalsHints = map[error]string{
	annals.ErrWrongExpectedVersion: "read the stream again (annals read STREAM) and retry with its current version",
	annals.ErrEventIDConflict:      "a retry must resend identical events; new events need new ids (omit --id to generate one)",
	annals.ErrStreamDeleted:        "the stream is closed for appends; append to another stream",
	annals.ErrTooLarge:             "split the batch or raise the limit with SELECT annals.configure(...) as annals_owner",
	annals.ErrInvalidArgument:      "fix the argument named in the message",
	annals.ErrReserved:             "names starting with $ are reserved for Annals; pick another name",
	annals.ErrAppendOnly:           "events are never updated or deleted; append a compensating event instead",
	annals.ErrNotFound:             "check the name: annals subscriptions list, annals projections list",
	annals.ErrCheckpointConflict:   "another consumer moved the checkpoint; read it again before acknowledging",
	annals.ErrLeaseHeld:            "another instance serves this member; stop it or wait for its lease to expire",
	annals.ErrFeedRestored:         "run SELECT annals.rebase_transaction_ids() as a superuser once, then retry",
	annals.ErrSchemaNotInstalled:   "run `annals migrate` against this database",
}

// sqlstates covers the PostgreSQL codes a user of this command meets in practice, and the Annals
// code the Go API has no kind for. Classes (the first two characters) are the fallback.
var sqlstates = map[string]sqlstate{
	"ST500": {"upcaster failed", "fix the registered upcaster function named in the message"},
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
	var pgErr *pgconn.PgError
	hasPg := errors.As(err, &pgErr)

	hint := specificHint(err)
	var code, meaning string
	if hasPg {
		code = pgErr.Code
		st, ok := sqlstates[code]
		if kind := annals.Kind(err); kind != nil && !ok {
			st = sqlstate{strings.TrimPrefix(kind.Error(), "annals: "), annalsHints[kind]}
		} else if !ok && len(code) == 5 {
			st = sqlstateClasses[code[:2]]
		}
		meaning = st.meaning
		if hint == "" {
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

// tidyMessage makes err.Error() one line and drops the "annals: " that every layer of the Go
// package prefixes (main prints one).
func tidyMessage(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
	s = strings.ReplaceAll(s, ": annals: ", ": ")
	for strings.HasPrefix(s, "annals: ") {
		s = strings.TrimPrefix(s, "annals: ")
	}
	// The typed errors say their kind, then the database's message, which often starts with the
	// same words: "wrong expected version: wrong expected version for stream ...". Say it once.
	parts := strings.Split(s, ": ")
	kept := parts[:0]
	for i, p := range parts {
		if i+1 < len(parts) && p != "" && strings.HasPrefix(parts[i+1], p) {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, ": ")
}

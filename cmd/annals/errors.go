package main

import (
	"errors"
	"fmt"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgconn"
)

// explain turns an error into one line that says what happened and what to do.
func explain(err error) string {
	hints := []struct {
		kind error
		hint string
	}{
		{annals.ErrWrongExpectedVersion, "read the stream again and retry with its current version"},
		{annals.ErrEventIDConflict, "a retry must resend identical events; new events need new ids"},
		{annals.ErrStreamDeleted, "the stream is closed; append to another stream"},
		{annals.ErrTooLarge, "split the batch or raise the limit with annals.configure(...)"},
		{annals.ErrInvalidArgument, "fix the argument named above"},
		{annals.ErrReserved, "names starting with $ are reserved; pick another name"},
		{annals.ErrSchemaNotInstalled, "run `annals migrate` against this database"},
		{annals.ErrSchemaTooNew, "upgrade this annals binary"},
	}
	for _, h := range hints {
		if errors.Is(err, h.kind) {
			return fmt.Sprintf("%v (%s)", err, h.hint)
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return fmt.Sprintf("%v (SQLSTATE 42501: the login lacks a privilege; grant it annals_writer or annals_reader, or migrate as a superuser)", err)
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return fmt.Sprintf("%v (is PostgreSQL running and is DATABASE_URL right?)", err)
	}
	return err.Error()
}

package annals_test

import (
	"errors"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// The integration tests in tests/ reach every SQLSTATE through the public API; these cover what
// no API call can provoke, by mapping errors raised with raw SQL.
func TestMapError(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := annalstest.NewDB(t)
	_, err := pool.Exec(ctx, `SELECT * FROM annals.append_events('s-1', 0, '[{"type":"T"}]')`)
	require.NoError(t, err)

	mapped := func(t *testing.T, sql string) (*pgconn.PgError, error) {
		t.Helper()
		_, raw := pool.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, raw, &pgErr)
		return pgErr, annals.MapError(raw)
	}

	t.Run("ST405 is ErrAppendOnly", func(t *testing.T) {
		t.Parallel()
		for _, sql := range []string{
			"UPDATE annals_internal.events SET data = '{}'",
			"DELETE FROM annals_internal.events",
			"TRUNCATE annals_internal.events",
		} {
			pgErr, err := mapped(t, sql)
			require.ErrorIs(t, err, annals.ErrAppendOnly, sql)
			var base *annals.BaseError
			require.ErrorAs(t, err, &base)
			require.Equal(t, annals.ErrAppendOnly, base.Kind)
			require.Same(t, pgErr, base.PgErr)
			var unwrapped *pgconn.PgError
			require.ErrorAs(t, err, &unwrapped)
			require.Equal(t, "ST405", unwrapped.Code)
		}
	})

	t.Run("a missing schema is ErrSchemaNotInstalled", func(t *testing.T) {
		t.Parallel()
		pgErr, err := mapped(t, "SELECT nope.f()")
		require.Equal(t, "3F000", pgErr.Code)
		require.ErrorIs(t, err, annals.ErrSchemaNotInstalled)
		require.ErrorAs(t, err, new(*pgconn.PgError))
	})

	t.Run("other errors pass through", func(t *testing.T) {
		t.Parallel()
		// A projection handler may raise 42883 or 42P01 itself: not a missing install.
		for _, sql := range []string{"SELECT 1/0", "SELECT annals.no_such_function()", "SELECT count(*) FROM annals.no_such_view"} {
			pgErr, err := mapped(t, sql)
			require.Same(t, pgErr, err, sql)
		}
		require.NoError(t, annals.MapError(nil))
		plain := errors.New("plain")
		require.Same(t, plain, annals.MapError(plain))
	})
}

func TestKind(t *testing.T) {
	t.Parallel()
	raw := func(code string) error {
		return &pgconn.PgError{Code: code, Message: "m", Detail: `{}`}
	}
	for code, want := range map[string]error{
		"ST412": annals.ErrEventIDConflict, "ST410": annals.ErrStreamDeleted, "ST413": annals.ErrTooLarge,
		"ST422": annals.ErrInvalidArgument, "ST403": annals.ErrReserved, "ST405": annals.ErrAppendOnly,
		"ST404": annals.ErrNotFound, "ST423": annals.ErrLeaseHeld, "ST424": annals.ErrTenantSwitch, "ST503": annals.ErrFeedRestored,
		"ST411": annals.ErrCheckpointConflict, "ST500": annals.ErrUpcasterFailed, "42501": annals.ErrPermissionDenied,
		"3F000": annals.ErrSchemaNotInstalled,
	} {
		require.Equal(t, want, annals.Kind(raw(code)), code)
	}
	wrong := &pgconn.PgError{Code: "ST409", Detail: `{"stream_id": "s-1", "expected": 1, "actual": 2}`}
	require.Equal(t, annals.ErrWrongExpectedVersion, annals.Kind(wrong))
	require.Equal(t, annals.ErrWrongExpectedVersion, annals.Kind(annals.MapError(wrong)), "a mapped error keeps its kind")
	require.Nil(t, annals.Kind(raw("23505")), "not an Annals error")
	require.Nil(t, annals.Kind(errors.New("plain")))
	require.Nil(t, annals.Kind(nil))
}

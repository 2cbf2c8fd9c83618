package tests

import (
	"context"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// loginRole creates a LOGIN role (cluster-wide, so uniquely named) that is a member of grants,
// dropped when the test ends.
func loginRole(t *testing.T, f fixture, grants ...string) string {
	t.Helper()
	name := "annals_t_login_" + pgutil.RandomHex(6)
	_, err := f.pool.Exec(f.ctx, "CREATE ROLE "+name+" LOGIN")
	require.NoError(t, err)
	t.Cleanup(func() {
		// Runs before the database is dropped (cleanups run last-in first-out).
		ctx := context.Background()
		_, _ = f.pool.Exec(ctx, "DROP OWNED BY "+name)
		_, err := f.pool.Exec(ctx, "DROP ROLE "+name)
		if err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	for _, g := range grants {
		_, err := f.pool.Exec(f.ctx, "GRANT "+pgx.Identifier{g}.Sanitize()+" TO "+name)
		require.NoError(t, err)
	}
	return name
}

// as returns a pool and a client on the fixture's database that log in as role.
func (f fixture) as(t *testing.T, role string) (*pgxpool.Pool, *annals.Client) {
	t.Helper()
	pool := connect(t, f.pool.Config().ConnString(), "", role)
	return pool, annals.New(pool, annals.ClientOptions{})
}

func TestRoles(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("roles")
	_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "Seeded", 3)...)
	require.NoError(t, err)

	// The statements no application role may run: table access in annals_internal and the
	// administrator's configure.
	internal := []string{
		"SELECT count(*) FROM annals_internal.events",
		"SELECT count(*) FROM annals_internal.streams",
		"SELECT count(*) FROM annals_internal.events_p0",
		`INSERT INTO annals_internal.events (stream_id, stream_version, event_id, event_type, schema_version,
		    data, metadata, transaction_id, recorded_at)
		 VALUES ('x', 1, gen_random_uuid(), 'T', 1, '{}', '{}', pg_catalog.pg_current_xact_id(), now())`,
		"UPDATE annals_internal.settings SET max_event_bytes = 1",
		"SELECT annals_internal.append_replay('x', 0, '[]', 0)",
		"SELECT annals.configure(max_event_bytes => 1)",
	}
	requireDenied := func(t *testing.T, pool *pgxpool.Pool, statements ...string) {
		t.Helper()
		for _, q := range statements {
			_, err := pool.Exec(f.ctx, q)
			requirePgError(t, err, "42501")
		}
	}
	readWorks := func(t *testing.T, client *annals.Client) {
		t.Helper()
		got := collect(t, client.ReadStream(f.ctx, s, annals.ReadOptions{}))
		require.Len(t, got, 3)
		got = collect(t, client.ReadStreamAsOf(f.ctx, s, annals.AtVersion(2)))
		require.Len(t, got, 2)
		info, err := client.StreamInfo(f.ctx, s)
		require.NoError(t, err)
		require.GreaterOrEqual(t, info.StreamVersion, int64(3))
		require.NoError(t, client.CheckSchema(f.ctx))
	}

	t.Run("as", func(t *testing.T) {
		t.Run("writer", func(t *testing.T) {
			t.Parallel()
			role := loginRole(t, f, "annals_writer")
			pool, client := f.as(t, role)

			readWorks(t, client)
			mine := stream("roles")
			res, err := client.Append(f.ctx, mine, annals.NoStream, events(t, "ByWriter", 2)...)
			require.NoError(t, err)
			require.EqualValues(t, 2, res.StreamVersion)
			_, err = pool.Exec(f.ctx, "SELECT * FROM annals.append_events($1, NULL, '[{\"type\":\"Raw\"}]')", mine)
			require.NoError(t, err)
			v, err := client.DeleteStream(f.ctx, mine, annals.Exact(3), "cleanup")
			require.NoError(t, err)
			require.EqualValues(t, 3, v)
			info, err := client.StreamInfo(f.ctx, mine)
			require.NoError(t, err)
			require.Equal(t, "deleted", info.State)
			var by string
			require.NoError(t, f.pool.QueryRow(f.ctx,
				"SELECT performed_by FROM annals_internal.lifecycle_log WHERE stream_id = $1", mine).Scan(&by))
			require.Equal(t, role, by, "the audit names the session's role, not the definer")

			requireDenied(t, pool, internal...)
		})

		t.Run("reader", func(t *testing.T) {
			t.Parallel()
			role := loginRole(t, f, "annals_reader")
			pool, client := f.as(t, role)

			readWorks(t, client)
			_, err := client.Append(f.ctx, s, annals.Any, ev(t, "ByReader", nil))
			requirePgError(t, err, "42501")
			_, err = client.DeleteStream(f.ctx, s, annals.Any, "")
			requirePgError(t, err, "42501")
			requireDenied(t, pool, internal...)
			requireDenied(t, pool, "SELECT * FROM annals.append_events('x', NULL, '[]')")
		})

		t.Run("bi", func(t *testing.T) {
			t.Parallel()
			role := loginRole(t, f, "annals_bi")
			pool, client := f.as(t, role)

			var v int64
			require.NoError(t, pool.QueryRow(f.ctx, "SELECT annals.schema_version()").Scan(&v))
			require.Equal(t, annals.SchemaVersion(), v)
			require.NoError(t, client.CheckSchema(f.ctx))

			_, err := client.Append(f.ctx, s, annals.Any, ev(t, "ByBI", nil))
			requirePgError(t, err, "42501")
			_, err = client.StreamInfo(f.ctx, s)
			requirePgError(t, err, "42501")
			for _, err := range client.ReadStream(f.ctx, s, annals.ReadOptions{}) {
				requirePgError(t, err, "42501")
			}
			requireDenied(t, pool, internal...)
			requireDenied(t, pool,
				"SELECT count(*) FROM annals.read_stream('x')",
				"SELECT count(*) FROM annals.stream_info('x')",
				"SELECT annals.stream_version_at('x', now())")
		})

		t.Run("no grants", func(t *testing.T) {
			t.Parallel()
			role := loginRole(t, f)
			pool, client := f.as(t, role)

			err := client.CheckSchema(f.ctx)
			pgErr := requirePgError(t, err, "42501")
			require.Contains(t, pgErr.Message, "schema annals", "denied at the schema")
			_, err = client.Append(f.ctx, s, annals.Any, ev(t, "ByNobody", nil))
			requirePgError(t, err, "42501")
			requireDenied(t, pool, internal...)
			requireDenied(t, pool, "SELECT count(*) FROM annals.read_stream('x')")
		})
	})
	require.EqualValues(t, 3, f.countRows(t, s), "no denied call wrote anything")
}

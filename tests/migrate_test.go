package tests

import (
	"context"
	"io/fs"
	"sync"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/annals-db/annals/migrations"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// emptyDB creates a database with nothing of Annals in it (the roles are cluster-wide and may
// exist) and returns the server's URL and the database's name; it is dropped when the test ends.
func emptyDB(t *testing.T) (admin, name string) {
	t.Helper()
	admin = annalstest.AdminURL(t)
	name = "annals_t_empty_" + pgutil.RandomHex(6)
	conn, err := pgx.Connect(t.Context(), admin)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), "CREATE DATABASE "+name+" TEMPLATE template0")
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return admin, name
}

// catalog lists the objects Annals owns in a database, to compare two installs.
func catalog(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text
		  FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
		 WHERE n.nspname IN ('annals', 'annals_internal')
		UNION ALL
		SELECT p.oid::pg_catalog.regprocedure::text || ':' || pg_catalog.md5(p.prosrc)
		  FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
		 WHERE n.nspname IN ('annals', 'annals_internal')
		UNION ALL
		SELECT t.tgrelid::pg_catalog.regclass::text || '.' || t.tgname
		  FROM pg_catalog.pg_trigger AS t JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
		  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'annals_internal' AND NOT t.tgisinternal
		 ORDER BY 1`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func TestMigrateEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	admin, name := emptyDB(t)
	pool := connect(t, admin, name, "")
	store := annals.New(pool, annals.ClientOptions{})

	// Not installed: every call says so.
	require.ErrorIs(t, store.CheckSchema(ctx), annals.ErrSchemaNotInstalled)
	_, err := store.Append(ctx, "s-1", annals.Any, annals.EventData{Type: "T"})
	require.ErrorIs(t, err, annals.ErrSchemaNotInstalled)
	requirePgError(t, err, "3F000")
	_, err = store.StreamInfo(ctx, "s-1")
	require.ErrorIs(t, err, annals.ErrSchemaNotInstalled)
	for _, err := range store.ReadStream(ctx, "s-1", annals.ReadOptions{}) {
		require.ErrorIs(t, err, annals.ErrSchemaNotInstalled)
	}

	// Several replicas start at once: every Migrate succeeds, exactly one does the work.
	const installers = 4
	results := make([]annals.MigrateResult, installers)
	errs := make([]error, installers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range installers {
		p := connect(t, admin, name, "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = annals.Migrate(ctx, p)
		}()
	}
	close(start)
	wg.Wait()
	var workers int
	for i, err := range errs {
		require.NoError(t, err, "installer %d", i)
		res := results[i]
		require.Equal(t, annals.SchemaVersion(), res.ToVersion)
		if len(res.Applied) > 0 {
			workers++
			require.Zero(t, res.FromVersion)
			require.True(t, res.FunctionsApplied)
			require.Len(t, res.Applied, migrationCount(t), "every versioned migration, once")
		} else {
			require.Equal(t, annals.SchemaVersion(), res.FromVersion)
			require.False(t, res.FunctionsApplied)
		}
	}
	require.Equal(t, 1, workers, "exactly one installer applied the migrations")

	// One consistent install.
	var dupes, infoRows, recorded int64
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM (SELECT v.version_id FROM annals_internal.goose_db_version AS v
		                               GROUP BY v.version_id HAVING count(*) > 1) AS d),
		       (SELECT count(*) FROM annals_internal.schema_info),
		       (SELECT max(i.schema_version) FROM annals_internal.schema_info AS i)`).Scan(&dupes, &infoRows, &recorded))
	require.Zero(t, dupes)
	require.EqualValues(t, 1, infoRows)
	require.Equal(t, annals.SchemaVersion(), recorded)
	var installed int64
	require.NoError(t, pool.QueryRow(ctx, "SELECT annals.schema_version()").Scan(&installed))
	require.Equal(t, annals.SchemaVersion(), installed)
	require.NoError(t, store.CheckSchema(ctx))
	require.Equal(t, catalog(t, annalstest.NewDB(t)), catalog(t, pool), "same objects as the test template")

	// A second run is a no-op.
	again, err := annals.Migrate(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, annals.MigrateResult{FromVersion: annals.SchemaVersion(), ToVersion: annals.SchemaVersion(), HistoryGuard: true}, again)

	res, err := store.Append(ctx, "s-1", annals.NoStream, annals.EventData{Type: "Installed"})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.StreamVersion)
}

func TestCheckSchemaVersions(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.NoError(t, f.store.CheckSchema(f.ctx))

	// A newer release installed the schema: this build must refuse to touch it.
	_, err := f.pool.Exec(f.ctx,
		"INSERT INTO annals_internal.goose_db_version (version_id, is_applied) VALUES ($1, true)", annals.SchemaVersion()+1)
	require.NoError(t, err)
	require.ErrorIs(t, f.store.CheckSchema(f.ctx), annals.ErrSchemaTooNew)
	_, err = annals.Migrate(f.ctx, f.pool)
	require.ErrorIs(t, err, annals.ErrSchemaTooNew)

	// An older one: the schema is behind this build.
	_, err = f.pool.Exec(f.ctx, "DELETE FROM annals_internal.goose_db_version WHERE version_id >= $1", annals.SchemaVersion())
	require.NoError(t, err)
	require.ErrorIs(t, f.store.CheckSchema(f.ctx), annals.ErrSchemaNotInstalled)
}

// migrationCount is how many versioned migrations there are. Not SchemaVersion: the numbers
// may skip (parallel branches reserve ranges), and the version is the highest one.
func migrationCount(t *testing.T) int {
	t.Helper()
	files, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)
	return len(files)
}

// TestMigrateRefusesPgcryptoInAnUntrustedSchema: appends and reads call pgcrypto by its schema's
// name with annals_owner's rights, so a pgcrypto installed beforehand in a schema that a role
// outside annals_owner owns (who could swap its functions) stops the install with 42501.
func TestMigrateRefusesPgcryptoInAnUntrustedSchema(t *testing.T) {
	t.Parallel()
	admin, name := emptyDB(t)
	pool := connect(t, admin, name, "")
	role := "annals_t_crypto_" + name[len(name)-12:]
	_, err := pool.Exec(t.Context(), "CREATE ROLE "+role)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA IF EXISTS untrusted CASCADE")
		_, _ = pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	_, err = pool.Exec(t.Context(), "CREATE SCHEMA untrusted AUTHORIZATION "+role+"; CREATE EXTENSION pgcrypto SCHEMA untrusted")
	require.NoError(t, err)

	_, err = annals.Migrate(t.Context(), pool)
	pgErr := requirePgError(t, err, "42501")
	require.Contains(t, pgErr.Message, "pgcrypto is installed in schema untrusted")
}

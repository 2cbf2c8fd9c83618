package annals

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/annals-db/annals/functions"
	"github.com/annals-db/annals/migrations"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// VersionTable is where goose records applied migrations. It lives in annals_internal so it never
// collides with an application's own goose_db_version.
const VersionTable = "annals_internal.goose_db_version"

// migrateLockKey serializes concurrent Migrate calls across processes: a transaction-level
// advisory lock held by a transaction that stays open for the whole migration (see lockMigrate).
// Older releases took it as a session lock; the two kinds conflict, so old and new exclude each
// other too.
const migrateLockKey = int64(0x616e6e616c73) // "annals"

// MigrateResult reports what Migrate did.
type MigrateResult struct {
	// FromVersion and ToVersion are the migration versions before and after.
	FromVersion, ToVersion int64
	// Applied lists the versioned migrations applied by this call, in order.
	Applied []string
	// FunctionsApplied is true when the functions pass ran (the function files changed or were
	// never applied, or a superuser migrated a database without the history guard); false when
	// the installed functions already match this build.
	FunctionsApplied bool
	// HistoryGuard is true when the history guard is installed and enabled after the call: the
	// event trigger that keeps members of annals_owner who are not superusers from disabling,
	// dropping or altering the append-only triggers. Only a superuser's Migrate installs it.
	HistoryGuard bool
}

// SchemaVersion is the newest migration version this build of the package embeds.
func SchemaVersion() int64 {
	v, err := latestVersion(migrations.FS)
	if err != nil {
		panic(err) // embedded files are fixed at build time; a bad name is a build defect
	}
	return v
}

// Migrate installs or upgrades Annals in the pool's database: the versioned migrations, then every
// function file, all under one advisory lock so concurrent callers (several replicas starting at
// once) apply each step exactly once. The lock is a transaction-level lock held by a transaction
// that stays open until Migrate returns: an open transaction keeps its server connection in every
// connection pooler (PgBouncer's transaction mode included), and the lock ends with it, so none
// is ever left behind, not even when the process dies. Callers that find the lock taken wait
// without holding a connection. It is idempotent: a second call changes nothing.
// The functions pass is skipped when a checksum of the embedded function files matches the
// installed one. It finishes by checking the installed version (ErrSchemaNotInstalled if it is
// behind, ErrSchemaTooNew if a newer release installed it).
//
// The connecting role must be a superuser, or have CREATEROLE and CREATE on the database (it
// creates the annals_owner, annals_writer, annals_reader and annals_bi roles if missing). Only a
// superuser installs the history guard (see MigrateResult.HistoryGuard), and once it is installed
// a migration or function file that changes the guarded tables or triggers needs a superuser too:
// for anyone else it fails with SQLSTATE ST401. Migrate uses two connections of the pool at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (MigrateResult, error) {
	var res MigrateResult
	lock, err := lockMigrate(ctx, pool)
	if err != nil {
		return res, err
	}
	// Ending the transaction releases the lock; on a fresh context, as the caller's may be
	// cancelled. (Were the rollback lost with its connection, the server ends the transaction.)
	defer lock.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck

	// Everything else runs on other connections, each statement committing on its own: the lock's
	// transaction writes nothing, so it holds no transaction id (the feed's barrier ignores it)
	// and no lock a migration could wait for.
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS annals_internal"); err != nil {
		return res, wrapf(err, "migrate: create schema annals_internal")
	}

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()

	versioned, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithTableName(VersionTable), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return res, wrapf(err, "migrate")
	}
	if res.FromVersion, err = versioned.GetDBVersion(ctx); err != nil {
		return res, wrapf(err, "migrate: read version")
	}
	if res.FromVersion > SchemaVersion() {
		return res, fmt.Errorf("%w: database is at migration %d, this build knows up to %d",
			ErrSchemaTooNew, res.FromVersion, SchemaVersion())
	}
	results, err := versioned.Up(ctx)
	for _, r := range results {
		res.Applied = append(res.Applied, r.Source.Path)
	}
	if err != nil {
		return res, wrapf(err, "migrate")
	}
	if res.ToVersion, err = versioned.GetDBVersion(ctx); err != nil {
		return res, wrapf(err, "migrate: read version")
	}

	sum, err := checksum(functions.FS)
	if err != nil {
		return res, wrapf(err, "migrate")
	}
	var installed string
	err = pool.QueryRow(ctx,
		"SELECT functions_checksum FROM annals_internal.schema_info").Scan(&installed)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return res, wrapf(err, "migrate: read schema_info")
	}
	// A superuser re-applies the functions when the history guard is missing or disabled (say the
	// database was installed by a non-superuser): the guard's file installs it.
	var superuser bool
	if err := pool.QueryRow(ctx, guardQuery).Scan(&superuser, &res.HistoryGuard); err != nil {
		return res, wrapf(err, "migrate: check the history guard")
	}
	if installed != sum || len(res.Applied) > 0 || (superuser && !res.HistoryGuard) {
		if err := applyFunctions(ctx, db); err != nil {
			return res, err
		}
		res.FunctionsApplied = true
		_, err = pool.Exec(ctx, `
			INSERT INTO annals_internal.schema_info (schema_version, functions_checksum, installed_at)
			VALUES ($1, $2, pg_catalog.clock_timestamp())
			ON CONFLICT (singleton) DO UPDATE
			   SET schema_version = excluded.schema_version,
			       functions_checksum = excluded.functions_checksum,
			       installed_at = excluded.installed_at`, res.ToVersion, sum)
		if err != nil {
			return res, wrapf(err, "migrate: record schema_info")
		}
		if err := pool.QueryRow(ctx, guardQuery).Scan(&superuser, &res.HistoryGuard); err != nil {
			return res, wrapf(err, "migrate: check the history guard")
		}
	}
	// A superuser's migrate accepts the guarded state as it finds it (each superuser DDL command
	// pins it anyway; this also covers changes no event trigger sees, such as a renamed role).
	if superuser && res.HistoryGuard {
		if _, err := pool.Exec(ctx, "SELECT annals_guard.pin()"); err != nil {
			return res, wrapf(err, "migrate: pin the history guard's state")
		}
	}
	return res, nil
}

// lockMigrate begins a transaction that holds migrateLockKey, waiting while another migrate holds
// it. It polls pg_try_advisory_xact_lock instead of blocking in pg_advisory_xact_lock, so a waiter
// keeps no server connection busy: behind a pooler with few server connections, blocked waiters
// could otherwise starve the migration they wait for. The transaction turns off
// idle_in_transaction_session_timeout for itself, as it idles while the migration runs.
func lockMigrate(ctx context.Context, pool *pgxpool.Pool) (pgx.Tx, error) {
	wait := 10 * time.Millisecond
	for {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return nil, wrapf(err, "migrate: take lock")
		}
		var locked bool
		err = tx.QueryRow(ctx, `SELECT pg_catalog.set_config('idle_in_transaction_session_timeout', '0', true) IS NOT NULL
			AND pg_catalog.pg_try_advisory_xact_lock($1)`, migrateLockKey).Scan(&locked)
		if err == nil && locked {
			return tx, nil
		}
		_ = tx.Rollback(context.WithoutCancel(ctx))
		if err != nil {
			return nil, wrapf(err, "migrate: take lock")
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("annals: migrate: wait for another migrate to finish: %w", ctx.Err())
		case <-time.After(wait + rand.N(wait)):
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// guardQuery says whether the session's login is a superuser and whether both event triggers of
// the history guard (functions/011_history_guard.sql) exist and are enabled.
const guardQuery = `
	SELECT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = session_user), false),
	       (SELECT count(*) = 2 FROM pg_catalog.pg_event_trigger AS e
	         WHERE e.evtname IN ('annals_history_guard', 'annals_history_guard_rewrite') AND e.evtenabled <> 'D')`

// applyFunctions runs every function file, in order, without version tracking.
func applyFunctions(ctx context.Context, db *sql.DB) error {
	p, err := goose.NewProvider(goose.DialectPostgres, db, functions.FS,
		goose.WithDisableVersioning(true), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return wrapf(err, "migrate functions")
	}
	if _, err := p.Up(ctx); err != nil {
		return wrapf(err, "migrate functions")
	}
	return nil
}

// FunctionsChecksum identifies this build's function files: Migrate records it in schema_info
// and skips the functions pass when the installed checksum matches.
func FunctionsChecksum() (string, error) { return checksum(functions.FS) }

// SchemaChecksum identifies this build's migrations and function files together, for caches
// keyed by schema content (annalstest's template databases).
func SchemaChecksum() (string, error) { return checksum(migrations.FS, functions.FS) }

// checksum hashes file names and contents, each file system in turn, files in name order.
func checksum(fsyss ...fs.FS) (string, error) {
	h := sha256.New()
	for _, fsys := range fsyss {
		names, err := fs.Glob(fsys, "*.sql")
		if err != nil {
			return "", err
		}
		sort.Strings(names)
		for _, n := range names {
			b, err := fs.ReadFile(fsys, n)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func latestVersion(fsys fs.FS) (int64, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, n := range names {
		v, err := goose.NumericComponent(n)
		if err != nil {
			return 0, fmt.Errorf("migration %q: %w", n, err)
		}
		latest = max(latest, v)
	}
	return latest, nil
}

// CheckSchema verifies that Annals is installed in the pool's database at the version this build
// expects. It returns ErrSchemaNotInstalled when it is missing or behind (run Migrate) and
// ErrSchemaTooNew when a newer release installed it (upgrade this program). Any Annals role may
// call it.
func (c *Client) CheckSchema(ctx context.Context) error {
	return checkSchema(ctx, c.pool)
}

// CheckSchemaTx is CheckSchema inside the caller's transaction.
func (c *Client) CheckSchemaTx(ctx context.Context, tx pgx.Tx) error {
	return checkSchema(ctx, tx)
}

func checkSchema(ctx context.Context, db dbtx) error {
	var v int64
	if err := db.QueryRow(ctx, "SELECT annals.schema_version()").Scan(&v); err != nil {
		return mapError(err)
	}
	switch {
	case v < SchemaVersion():
		return fmt.Errorf("%w: installed migration %d is behind this build's %d; run annals.Migrate or `annals migrate`",
			ErrSchemaNotInstalled, v, SchemaVersion())
	case v > SchemaVersion():
		return fmt.Errorf("%w: installed migration %d is newer than this build's %d; upgrade this program",
			ErrSchemaTooNew, v, SchemaVersion())
	}
	return nil
}

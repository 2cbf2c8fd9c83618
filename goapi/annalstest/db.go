// Package annalstest gives integration tests a fresh, migrated Annals database each, cheaply:
// the first call migrates a template database (once per schema content, shared across test
// processes), every call clones it with CREATE DATABASE ... TEMPLATE and drops the clone when the
// test ends.
//
// The server comes from TEST_DATABASE_URL; without it, a PostgreSQL on 127.0.0.1:5432 or the
// local socket; without one, a testcontainers PostgreSQL when Docker is available. When none is
// reachable the test is skipped, unless the CI environment variable is set: then it fails, so a
// CI run can never pass by skipping.
package annalstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// localCandidates are tried, in order, when TEST_DATABASE_URL is unset.
var localCandidates = []string{
	"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
	"host=/var/run/postgresql user=postgres dbname=postgres",
}

var server struct {
	once     sync.Once
	adminURL string
	template string
	err      error
	skip     string
}

// NewDB returns a pool on a fresh database holding a migrated Annals schema, dropped when the test
// ends. The pool's search_path is empty, so any unqualified name in a query fails loudly.
func NewDB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := NewDBURL(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("annalstest: %v", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = ""
	cfg.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("annalstest: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewDBURL is NewDB for tests that need a connection URL (to run a command, say) instead of a pool.
func NewDBURL(t testing.TB) string {
	t.Helper()
	admin, template := setup(t)
	name, err := cloneTemplate(admin, template)
	if err != nil {
		t.Fatalf("annalstest: %v", err)
	}
	t.Cleanup(func() { dropDatabase(admin, name) })
	return withDatabase(t, admin, name)
}

// ErrNoServer is returned by NewDBForMain when no PostgreSQL is reachable and CI is unset: the
// caller should skip its database tests (exit 0 with a message), not fail.
var ErrNoServer = errors.New("annalstest: no PostgreSQL available")

// NewDBForMain is NewDBURL for code that has no *testing.T, such as a TestMain running Example
// tests: it returns the URL of a fresh migrated database and a cleanup that drops it. When no
// server is reachable it returns an error wrapping ErrNoServer, unless the CI environment
// variable is set: then the error does not wrap ErrNoServer, so a CI run cannot pass by skipping.
func NewDBForMain() (url string, cleanup func(), err error) {
	admin, template, err := setupServer()
	if err != nil {
		return "", nil, err
	}
	name, err := cloneTemplate(admin, template)
	if err != nil {
		return "", nil, fmt.Errorf("annalstest: %w", err)
	}
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		dropDatabase(admin, name)
		return "", nil, fmt.Errorf("annalstest: %w", err)
	}
	return databaseURL(cfg, name), func() { dropDatabase(admin, name) }, nil
}

// RunMain is a TestMain for packages with Example tests, which cannot take a *testing.T: it runs
// the package's tests with one fresh migrated database published as DATABASE_URL, so examples
// read like application code, and exits. With no PostgreSQL reachable it skips the package
// (exit 0 with a message naming pkg), unless CI is set: then it fails.
func RunMain(m *testing.M, pkg string) {
	url, cleanup, err := NewDBForMain()
	if errors.Is(err, ErrNoServer) {
		fmt.Fprintf(os.Stderr, "%s: skipping tests and examples: %v\n", pkg, err)
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", pkg, err)
		os.Exit(1)
	}
	if err := os.Setenv("DATABASE_URL", url); err != nil {
		cleanup()
		fmt.Fprintf(os.Stderr, "%s: %v\n", pkg, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// cloneTemplate creates a uniquely named database from the migrated template.
func cloneTemplate(admin, template string) (string, error) {
	name := "annals_t_" + pgutil.RandomHex(6)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", fmt.Errorf("connect admin: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template)); err != nil {
		return "", fmt.Errorf("create database from template: %w", err)
	}
	// The creation time lets a later process sweep clones a killed test run left behind.
	_, _ = conn.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS '%s%d'",
		pgx.Identifier{name}.Sanitize(), clonePrefix, time.Now().Unix()))
	return name, nil
}

// clonePrefix starts the comment that records when a per-test database was created.
const clonePrefix = "annalstest clone, created at unix "

// dropLeakedClones removes per-test databases that a killed test process never dropped: created
// more than staleAfter ago (no test runs that long) and with nobody connected; best effort.
func dropLeakedClones(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, `
		SELECT d.datname, coalesce(pg_catalog.shobj_description(d.oid, 'pg_database'), '')
		  FROM pg_catalog.pg_database AS d
		 WHERE d.datname LIKE 'annals\_t\_%'
		   AND NOT EXISTS (SELECT FROM pg_catalog.pg_stat_activity AS a WHERE a.datid = d.oid)`)
	if err != nil {
		return
	}
	type clone struct{ Name, Comment string }
	clones, err := pgx.CollectRows(rows, pgx.RowToStructByPos[clone])
	if err != nil {
		return
	}
	for _, c := range clones {
		var createdAt int64
		if _, err := fmt.Sscanf(c.Comment, clonePrefix+"%d", &createdAt); err != nil ||
			time.Since(time.Unix(createdAt, 0)) < staleAfter {
			continue // not ours to judge, or possibly still in use
		}
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{c.Name}.Sanitize())
	}
}

// AdminURL returns the URL of the server's maintenance database, for tests that create roles or
// databases themselves.
func AdminURL(t testing.TB) string {
	t.Helper()
	admin, _ := setup(t)
	return admin
}

func setup(t testing.TB) (adminURL, template string) {
	t.Helper()
	adminURL, template, err := setupServer()
	if errors.Is(err, ErrNoServer) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err.Error())
	}
	return adminURL, template
}

// setupServer finds the server and builds the template once per process. No server is an error
// wrapping ErrNoServer when CI is unset, and a plain error when it is set.
func setupServer() (adminURL, template string, err error) {
	server.once.Do(func() {
		server.adminURL, server.skip, server.err = findServer()
		if server.err == nil && server.skip == "" {
			server.template, server.err = ensureTemplate(server.adminURL)
		}
	})
	if server.err != nil {
		return "", "", fmt.Errorf("annalstest: %w", server.err)
	}
	if server.skip != "" {
		if os.Getenv("CI") != "" {
			return "", "", fmt.Errorf("annalstest: no PostgreSQL available and CI is set, refusing to skip: %s", server.skip)
		}
		return "", "", fmt.Errorf("%w (%s); set TEST_DATABASE_URL", ErrNoServer, server.skip)
	}
	return server.adminURL, server.template, nil
}

func findServer() (url, skip string, err error) {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		if err := ping(u); err != nil {
			return "", "", fmt.Errorf("TEST_DATABASE_URL is set but unreachable: %w", err)
		}
		return u, "", nil
	}
	var tried []string
	for _, u := range localCandidates {
		err := ping(u)
		if err == nil {
			return u, "", nil
		}
		tried = append(tried, err.Error())
	}
	u, err := startContainer()
	if err == nil {
		return u, "", nil
	}
	tried = append(tried, err.Error())
	return "", fmt.Sprintf("tried %d local servers and testcontainers: %v", len(localCandidates), errors.Join(asErrs(tried)...)), nil
}

func asErrs(msgs []string) []error {
	out := make([]error, len(msgs))
	for i, m := range msgs {
		out[i] = errors.New(m)
	}
	return out
}

func ping(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// ensureTemplate migrates a template database named after the schema files' checksum, once per
// content; concurrent test processes serialize on an advisory lock. IS_TEMPLATE marks it complete.
func ensureTemplate(adminURL string) (string, error) {
	sum, err := annals.SchemaChecksum()
	if err != nil {
		return "", err
	}
	name := "annals_tmpl_" + sum[:16]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect admin: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended('annalstest:template', 0))"); err != nil {
		return "", err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtextextended('annalstest:template', 0))") //nolint:errcheck

	var complete *bool
	err = conn.QueryRow(ctx, "SELECT datistemplate FROM pg_database WHERE datname = $1", name).Scan(&complete)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", err
	}
	dropLeakedClones(ctx, conn)
	if complete != nil && *complete {
		markUsed(ctx, conn, name)
		return name, nil
	}
	if complete != nil { // a crashed earlier attempt left it half-built
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			return "", err
		}
	}
	dropStaleTemplates(ctx, conn, name)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	pool, err := pgxpool.New(ctx, withDatabase(nil, adminURL, name))
	if err != nil {
		return "", err
	}
	_, err = annals.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" IS_TEMPLATE true"); err != nil {
		return "", err
	}
	markUsed(ctx, conn, name)
	return name, nil
}

// templatePrefix starts the comment that records when a test process last took up a template.
const templatePrefix = "annalstest template, last used at unix "

// staleAfter is how long a template of other schema files must have gone unused before another
// process drops it: longer than a test binary may run (go test's default timeout is 10 minutes),
// so a concurrent run from another checkout or an edited tree never loses its template mid-run.
const staleAfter = 30 * time.Minute

// markUsed records that this process clones name from now on; best effort.
func markUsed(ctx context.Context, conn *pgx.Conn, name string) {
	_, _ = conn.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS '%s%d'",
		pgx.Identifier{name}.Sanitize(), templatePrefix, time.Now().Unix()))
}

// dropStaleTemplates removes templates built from other schema files that no test process has
// taken up for staleAfter; best effort.
func dropStaleTemplates(ctx context.Context, conn *pgx.Conn, keep string) {
	rows, err := conn.Query(ctx, `
		SELECT d.datname, coalesce(pg_catalog.shobj_description(d.oid, 'pg_database'), '')
		  FROM pg_catalog.pg_database AS d
		 WHERE d.datname LIKE 'annals\_tmpl\_%' AND d.datname <> $1`, keep)
	if err != nil {
		return
	}
	type template struct{ Name, Comment string }
	templates, err := pgx.CollectRows(rows, pgx.RowToStructByPos[template])
	if err != nil {
		return
	}
	for _, tmpl := range templates {
		var usedAt int64
		if _, err := fmt.Sscanf(tmpl.Comment, templatePrefix+"%d", &usedAt); err == nil &&
			time.Since(time.Unix(usedAt, 0)) < staleAfter {
			continue
		}
		_, _ = conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{tmpl.Name}.Sanitize()+" IS_TEMPLATE false")
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{tmpl.Name}.Sanitize()+" WITH (FORCE)")
	}
}

func dropDatabase(adminURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

// withDatabase returns adminURL pointing at database name.
func withDatabase(t testing.TB, adminURL, name string) string {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		if t != nil {
			t.Fatalf("annalstest: %v", err)
		}
		panic(err)
	}
	return databaseURL(cfg, name)
}

func databaseURL(cfg *pgx.ConnConfig, name string) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable%s",
		userinfo(cfg), hostForURL(cfg.Host), cfg.Port, name, passwordParam(cfg))
}

func userinfo(cfg *pgx.ConnConfig) string { return cfg.User }

func passwordParam(cfg *pgx.ConnConfig) string {
	if cfg.Password == "" {
		return ""
	}
	return "&password=" + cfg.Password
}

// hostForURL keeps unix socket directories usable in a URL (host given as a query parameter is
// not needed: pgx accepts a percent-encoded path as the host).
func hostForURL(host string) string {
	if len(host) > 0 && host[0] == '/' {
		out := make([]byte, 0, len(host)+8)
		for i := 0; i < len(host); i++ {
			if host[i] == '/' {
				out = append(out, "%2F"...)
			} else {
				out = append(out, host[i])
			}
		}
		return string(out)
	}
	return host
}

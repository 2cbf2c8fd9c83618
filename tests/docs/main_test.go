// Package docs_test checks that the outputs the Markdown files show are what the code prints
// today. Every *.md file of the repository is read (hidden directories aside); the checks are
// driven by its fenced blocks, so a new example is checked as soon as it is written, and a change
// that alters an output fails until the docs follow.
//
// Which blocks are checked:
//
//   - A block with lines starting with "=# " is a psql session (TestDocsSQL). Its statements run
//     in order, in one fresh Annals database per file (sections build on each other), as a
//     superuser. A statement starts at "=# " and ends at the first ";" outside quotes and
//     comments; "=# -- text" alone is a comment. The lines after it, up to the next statement,
//     are its output: an optional header (the line before a "---+---" separator) whose names must
//     equal the columns, then rows, compared cell by cell after splitting on "|" and trimming
//     ("..." stands for any number of rows; "(N rows)" is optional). No rows shown means the
//     statement returns none. An error is shown as its ERROR, DETAIL and HINT lines, all of which
//     must be there and equal the server's; CONTEXT, NOTICE and WARNING lines are compared only
//     when shown. A line "-- session NAME: SQL" runs SQL unchecked in another connection NAME and
//     switches the following statements to it (until the block ends; a text without ";" only
//     switches). A statement ending in "-- as a member of ROLE" runs as a login that is a member
//     of ROLE and no superuser ("-- as a superuser" is the default).
//   - A block with lines starting with "$ " is a shell session (TestDocsCommands): each command
//     runs in order, from the repository root, with bash; the blocks of one file share one
//     session. The lines after a command, up to the next one, must appear in its output (stdout
//     and stderr as a terminal shows them) in that order; other lines may come in between, so an
//     excerpt may skip lines, and "..." or a line starting with "…" marks elided lines. Blank
//     lines are not compared. A command exits 0 unless its shown output has an error line
//     (starting "annals: ", "ERROR:", "psql: " or "curl: "); one ending in `; echo "exit $?"`
//     shows its exit code as a line instead, compared like the rest. Commands are annals ("go run
//     ./cmd/annals" means the same, built once), psql, curl and export; any other fails the test.
//     "export DATABASE_URL=..." points at a fresh empty database of the test's own (one per URL
//     shown); without one, DATABASE_URL is the test server's maintenance database. A command
//     whose shown output ends with "^C" runs until those lines appeared (at most 30 s), then
//     gets SIGINT. curl commands to localhost:8080 or 127.0.0.1:8080 reach the inventory example
//     service, which the test runs with --migrate on a fresh empty database and a free port.
//
// Values that differ between runs are compared by kind, never by value: transaction ids (a
// number in the range of transaction ids the server handed out during the test), UUIDs,
// timestamps and dates, durations (48ms, 1.69s, 1m0s, 00:00:00.041783, JSON keys naming a
// duration), the PostgreSQL minor version and build after "PostgreSQL N.", the demo's
// annals_demo_<hex> database, and the example service's address. Runs of spaces count as one.
// Within one file, a transaction id, UUID or database name shown twice must be the same value
// in the run, and different ones must differ. A timestamp, UUID or transaction id in a command
// or statement that an earlier output showed is replaced by the run's value; a timestamp less
// than an hour after a shown one (and before the next shown one) by the run's value plus 1µs.
//
// HTML comments right before a block (anything between the previous block and it) tune it:
//
//	<!-- docs-test: skip REASON -->         the block is not checked
//	<!-- docs-test: varies REGEXP -->       a shown line and an output line that both match
//	                                        REGEXP (whole line, spaces collapsed) are equal:
//	                                        for output that depends on the machine or a race
//	<!-- docs-test: setup SQL -->           SQL (psql block) or commands, one per line (shell
//	                                        block), run unchecked before the block
//	<!-- docs-test: new-database -->        this psql block and the later ones get a fresh database
//	<!-- docs-test: meanwhile COMMANDS -->  shell commands (one per line, "#" starts a comment)
//	                                        run, unchecked, once the block's "^C" command printed
//	                                        its first line, as in another terminal; one such
//	                                        comment per "^C" command, in order
//	<!-- docs-test: log inventory-service --> the block is an excerpt of the example service's
//	                                        log over the file's session, compared like command
//	                                        output after the service stopped on SIGTERM
package docs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// binDir holds the binaries TestMain builds: annals and inventory-service.
var binDir string

// repoRoot is the repository's root directory, where commands run.
var repoRoot string

func TestMain(m *testing.M) {
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "docs tests:", err)
		os.Exit(1)
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "annals-docs-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "docs tests:", err)
		os.Exit(1)
	}
	binDir = dir
	for name, pkg := range map[string]string{
		"annals":            "github.com/annals-db/annals/cmd/annals",
		"inventory-service": "github.com/annals-db/annals/examples/inventory/cmd/inventory-service",
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "docs tests: go build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// xidFloor is the server's next transaction id when the first test asked: every transaction id
// an output shows lies between it and the next id at the time of the comparison.
var xidFloor struct {
	once sync.Once
	v    uint64
	err  error
}

// xidRange returns the range of transaction ids handed out since the tests began.
func xidRange(t *testing.T) (lo, hi uint64) {
	t.Helper()
	admin := annalstest.AdminURL(t)
	xidFloor.once.Do(func() { xidFloor.v, xidFloor.err = nextXid(admin) })
	require.NoError(t, xidFloor.err)
	hi, err := nextXid(admin)
	require.NoError(t, err)
	return xidFloor.v, hi
}

func nextXid(url string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text").Scan(&s); err != nil {
		return 0, err
	}
	return strconv.ParseUint(s, 10, 64)
}

// emptyDB creates an empty database (no Annals) beside the test server's maintenance database
// and returns its URL; it is dropped when the test ends.
func emptyDB(t *testing.T) string {
	t.Helper()
	admin := annalstest.AdminURL(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	name := "annals_docs_" + pgutil.RandomHex(6)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return withDatabase(t, admin, name)
}

// withDatabase is url pointing at database name.
func withDatabase(t *testing.T, url, name string) string {
	t.Helper()
	return withUser(t, url, name, "")
}

// withUser is url pointing at database (unless empty) and logging in as user (unless empty).
func withUser(t *testing.T, url, database, user string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	if user == "" {
		user = cfg.User
	}
	if database == "" {
		database = cfg.Database
	}
	host := cfg.Host
	if len(host) > 0 && host[0] == '/' {
		host = urlEscapePath(host)
	}
	u := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", user, host, cfg.Port, database)
	if cfg.Password != "" && user == cfg.User {
		u += "&password=" + cfg.Password
	}
	return u
}

func urlEscapePath(s string) string {
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			out = append(out, "%2F"...)
		} else {
			out = append(out, s[i])
		}
	}
	return string(out)
}

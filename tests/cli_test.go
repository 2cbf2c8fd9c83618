package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestCLI builds the annals command once and runs it as a user would. The binary lives in the
// parent test's TempDir, which outlives every parallel subtest.
func TestCLI(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "annals")
	build := exec.Command("go", "build", "-o", bin, "github.com/annals-db/annals/cmd/annals")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/annals: %s", out)

	t.Run("Demo", func(t *testing.T) {
		t.Parallel()
		admin := annalstest.AdminURL(t)
		res := runCLI(t, bin, nil, "demo", "--database-url", admin)
		require.Equal(t, 0, res.code, "demo failed:\n%s\n%s", res.stdout, res.stderr)
		o := res.stdout

		// Each step's key facts.
		require.Contains(t, o, "installed by annals.Migrate")
		require.Contains(t, o, "SELECT * FROM annals.append_events('inventory-42', 0,")
		require.Contains(t, o, "version 1, global position")
		require.Contains(t, o, "version 3: 15 - 3 = 12 in stock")
		require.Regexp(t, `selling 20 REJECTED \(ErrInsufficientInventory: 20 requested, 12 available\); nothing appended`, o)
		require.Contains(t, o, "still version 3")
		require.Contains(t, o, "ST409 wrong expected version, expected 3, actual 4")
		require.Contains(t, o, `DETAIL:  {"actual": 4, "expected": 3, "stream_id": "inventory-42"}`)
		require.Regexp(t, `[AB] reloaded: version 4, \d+ in stock, still enough; retried expecting 4: version 5`, o)
		require.Equal(t, 2, strings.Count(o, "replayed, nothing written"), o)
		require.Contains(t, o, "ST412 event id conflict")
		require.Contains(t, o, "the stream still has 6 events")
		require.Regexp(t, `(?m)^\s+1\s+ItemAdded\s+\{"sku": "42", "name": "Blue widget", "count": 10\}`, o)
		require.Regexp(t, `(?m)^\s+6\s+ItemAdjusted\s+\{"delta": 7, "reason": "restock"\}`, o)
		require.Regexp(t, `folded by inventory.Decider: Blue widget, 13 in stock at version 6`, o)
		require.Contains(t, o, "as of version 3: 12 in stock (now 13)")
		require.Contains(t, o, "as of that time: 15 in stock")
		require.Regexp(t, `inventory-42\s+6\s+\S+ \S+\s+\S+ \S+\s+active`, o)

		// Read models: the install projects the history; an append's row is there inside its
		// transaction and invisible to other sessions until COMMIT.
		require.Regexp(t, `(?m)^\s+42\s+Blue widget\s+13\s+6\s+\S+ \S+$`, o)
		require.Regexp(t, `(?m)^\s+7\s+Red gear\s+500\s+1$`, o)
		require.Contains(t, o, "0: another session sees nothing of the append until COMMIT")
		// The materialized view: refreshed, agrees with the projection, 0 events behind.
		require.Regexp(t, `(?m)^\s+inventory.movements_per_day\s+t\s+\S+`, o)
		require.Contains(t, o, "units in minus units out per item: what inventory.item_counts says is in stock")
		require.Regexp(t, `(?m)^\s+inventory.movements_per_day\s+\S+ \S+\s+0$`, o)
		// A snapshot at version 100 of 121 events, loaded with its tail.
		require.Regexp(t, `(?m)^\s+100\s+\{"sku": "7", "name": "Red gear", "count": \d+, "exists": true\}$`, o)
		require.Regexp(t, `(?m)^\s+tail\n\s+21$`, o)
		require.Contains(t, o, "snapshot + 21 events = 572 in stock at version 121, as a full replay")
		// Upcasting: read as version 2, raw as stored, decoded by Go.
		require.Regexp(t, `(?m)^\s+1\s+2\s+\{"cents": 1299, "currency": "EUR"\}$`, o)
		require.Regexp(t, `(?m)^\s+1\s+1\s+\{"cents": 1299\}$`, o)
		require.Contains(t, o, "decodes both: 12.99 EUR, 14.99 USD")
		// The subscription catches up on every inventory event (6 + 121), each handled once.
		require.Regexp(t, `(?m)^\s+demo-mailer\s+\{inventory\}\s+127\s+0$`, o)
		require.Regexp(t, `(?m)^\s+demo-mailer\s+\{inventory\}\s+0\s+0$`, o)
		require.Regexp(t, `(?m)^\s+mails\n\s+127$`, o)
		// The rebuild replays them all and gives the same table.
		require.Contains(t, o, "127 events replayed in")
		require.Regexp(t, `(?m)^\s+7\s+Red gear\s+572\s+121\s+\S+ \S+$`, o)
		require.Contains(t, o, "identical to the table the appends had kept current")
		require.Regexp(t, `(?m)^\s+inventory_item_counts\s+inline\s+active\s+\S+`, o)
		// Read replicas, on a throwaway primary and standby of the step's own (skipped only
		// where none can start, and CI has the binaries).
		if !strings.Contains(o, "skipped: cannot start") {
			require.Regexp(t, `version 1, transaction \d+: the token`, o)
			require.Contains(t, o, "f: the async projection has not run yet")
			require.Regexp(t, `t on the standby \S+ later; its demo.stock_moves has 1 row\(s\)`, o)
			require.Contains(t, o, "send writes to the primary")
		} else {
			require.Empty(t, os.Getenv("CI"), "the demo skipped its replica step in CI:\n%s", o)
		}
		require.Contains(t, o, "Summary")
		require.Regexp(t, `finished in \d`, o)

		name := demoDatabase(t, o)
		require.Contains(t, o, "Dropped the scratch database "+name+".")
		require.False(t, databaseExists(t, admin, name), "scratch database %s is still there", name)
	})

	t.Run("DemoKeep", func(t *testing.T) {
		t.Parallel()
		admin := annalstest.AdminURL(t)
		res := runCLI(t, bin, nil, "demo", "--keep", "--database-url", admin)
		require.Equal(t, 0, res.code, "demo --keep failed:\n%s\n%s", res.stdout, res.stderr)
		name := demoDatabase(t, res.stdout)
		t.Cleanup(func() { dropDB(t, admin, name) })
		require.True(t, databaseExists(t, admin, name), "demo --keep dropped %s", name)
		require.Contains(t, res.stdout, "Kept the scratch database "+name)
		require.Contains(t, res.stdout, "psql ")
		require.Contains(t, res.stdout, "DROP DATABASE "+name)

		// The kept database holds the story.
		ctx := t.Context()
		conn, err := pgx.Connect(ctx, cliDBURL(t, admin, name))
		require.NoError(t, err)
		defer conn.Close(ctx)
		var version int64
		var state string
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT stream_version, state FROM annals.stream_info('inventory-42')").Scan(&version, &state))
		require.Equal(t, int64(6), version)
		require.Equal(t, "active", state)
		// And the read models, the upcaster and the subscription, ready to query.
		var counts, behind int64
		require.NoError(t, conn.QueryRow(ctx, "SELECT sum(count) FROM inventory.item_counts").Scan(&counts))
		require.Equal(t, int64(13+572), counts)
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT events_behind FROM annals.subscription_status WHERE subscription_name = 'demo-mailer'").Scan(&behind))
		require.Zero(t, behind)
		var currency string
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT data ->> 'currency' FROM annals.read_stream('price-42') WHERE stream_version = 1").Scan(&currency))
		require.Equal(t, "EUR", currency)
		require.Contains(t, res.stdout, "SELECT * FROM inventory.item_counts;")
	})

	t.Run("DemoThrowawayCluster", func(t *testing.T) {
		t.Parallel()
		if !serverBinariesInstalled() {
			t.Skip("no initdb/pg_ctl in /usr/lib/postgresql/*/bin or PATH")
		}
		if os.Geteuid() == 0 {
			if _, err := user.Lookup("postgres"); err != nil {
				t.Skip("running as root without a postgres OS user: initdb cannot run")
			}
		}
		start := time.Now()
		res := runCLI(t, bin, []string{"ANNALS_DEMO_NO_LOCAL=1"}, "demo")
		require.Equal(t, 0, res.code, "demo on a throwaway cluster failed:\n%s\n%s", res.stdout, res.stderr)
		require.Contains(t, res.stdout, "throwaway cluster at postgres@127.0.0.1:")
		require.Contains(t, res.stdout, "folded by inventory.Decider: Blue widget, 13 in stock at version 6")
		require.Contains(t, res.stdout, "identical to the table the appends had kept current")
		require.Contains(t, res.stdout, "and stopped the throwaway cluster.")
		m := regexp.MustCompile(`(?m)^\s+cluster\s+(\S+) \(initdb from `).FindStringSubmatch(res.stdout)
		require.NotNil(t, m, "no cluster directory in:\n%s", res.stdout)
		_, err := os.Stat(m[1])
		require.True(t, errors.Is(err, os.ErrNotExist), "cluster directory %s left behind (stat: %v)", m[1], err)
		t.Logf("throwaway-cluster demo took %v", time.Since(start))
	})

	t.Run("DemoUnreachableServer", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, bin, nil, "demo", "--database-url", "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2")
		require.Equal(t, 1, res.code, res.stderr)
		require.Contains(t, res.stderr, "annals: cannot use --database-url")
		require.Equal(t, 1, strings.Count(strings.TrimSpace(res.stderr), "\n")+1, "want one line, got:\n%s", res.stderr)
	})

	t.Run("Migrate", func(t *testing.T) {
		t.Parallel()
		admin := annalstest.AdminURL(t)
		name := fmt.Sprintf("annals_cli_%d", time.Now().UnixNano())
		ctx := t.Context()
		conn, err := pgx.Connect(ctx, admin)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
		conn.Close(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { dropDB(t, admin, name) })
		dbURL := cliDBURL(t, admin, name)

		check := runCLI(t, bin, nil, "migrate", "--check", "--database-url", dbURL)
		require.Equal(t, 1, check.code, "check before install:\n%s%s", check.stdout, check.stderr)
		require.Contains(t, check.stderr, "annals migrate")

		first := runCLI(t, bin, []string{"DATABASE_URL=" + dbURL}, "migrate")
		require.Equal(t, 0, first.code, first.stderr)
		require.Contains(t, first.stdout, "applied 001_roles_and_schemas.sql")
		require.Regexp(t, `annals migrated from version 0 to \d+`, first.stdout)

		second := runCLI(t, bin, []string{"DATABASE_URL=" + dbURL}, "migrate")
		require.Equal(t, 0, second.code, second.stderr)
		require.Regexp(t, `^annals is up to date at version \d+\n$`, second.stdout)

		check = runCLI(t, bin, nil, "migrate", "--check", "--database-url", dbURL)
		require.Equal(t, 0, check.code, check.stderr)
		require.Regexp(t, `annals schema is at version \d+, as this build expects`, check.stdout)
	})

	t.Run("MigrateWithoutDatabaseURL", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, bin, nil, "migrate")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, "no database: set DATABASE_URL or pass --database-url")
		require.Empty(t, res.stdout)
	})

	t.Run("Help", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{"help"}, {}, {"--help"}} {
			res := runCLI(t, bin, nil, args...)
			require.Equal(t, 0, res.code, "%v: %s", args, res.stderr)
			require.Contains(t, res.stdout, "usage: annals COMMAND")
			require.Regexp(t, `(?m)^\s+demo\s+Play the inventory story`, res.stdout)
			require.Regexp(t, `(?m)^\s+migrate\s+Install or upgrade Annals`, res.stdout)
		}
		for _, args := range [][]string{{"demo", "--help"}, {"help", "demo"}} {
			res := runCLI(t, bin, nil, args...)
			require.Equal(t, 0, res.code, "%v: %s", args, res.stderr)
			require.Contains(t, res.stdout, "usage: annals demo [--keep] [--database-url URL]")
			require.Contains(t, res.stdout, "-keep")
			require.Contains(t, res.stdout, "-database-url")
			require.Contains(t, res.stdout, "throwaway cluster")
		}
		res := runCLI(t, bin, nil, "migrate", "--help")
		require.Equal(t, 0, res.code)
		require.Contains(t, res.stdout, "-check")
	})

	t.Run("UsageErrors", func(t *testing.T) {
		t.Parallel()
		res := runCLI(t, bin, nil, "frobnicate")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, `unknown command "frobnicate"`)

		res = runCLI(t, bin, nil, "demo", "--no-such-flag")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, "no-such-flag")

		res = runCLI(t, bin, nil, "demo", "extra")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, "demo takes no arguments")
	})
}

type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs the binary with the test's environment minus DATABASE_URL and ANNALS_*, plus env.
func runCLI(t *testing.T, bin string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "ANNALS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else {
		require.NoError(t, err, "run annals %v", args)
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// demoDatabase is the scratch database named in the demo's header.
func demoDatabase(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s+database\s+(annals_demo_[0-9a-f]+) `).FindStringSubmatch(out)
	require.NotNil(t, m, "no scratch database in the demo's output:\n%s", out)
	return m[1]
}

func databaseExists(t *testing.T, admin, name string) bool {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists))
	return exists
}

func dropDB(t *testing.T, admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Logf("drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Logf("drop %s: %v", name, err)
	}
}

// cliDBURL points admin (a URL or a keyword/value string) at database name.
func cliDBURL(t *testing.T, admin, name string) string {
	t.Helper()
	if strings.Contains(admin, "://") {
		u, err := url.Parse(admin)
		require.NoError(t, err)
		u.Path = "/" + name
		return u.String()
	}
	return admin + " dbname=" + name
}

func serverBinariesInstalled() bool {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return true
		}
	}
	_, err := exec.LookPath("initdb")
	return err == nil
}

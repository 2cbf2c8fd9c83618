// Package bench measures Annals on the machine it runs on, each figure next to a baseline
// measured in the same run (a plain INSERT or SELECT on a table of the same shape, the same
// workload with a feature off, ...), so that the ratios hold on a small, noisy machine where the
// absolute numbers do not.
//
// A run creates a scratch database (annals_bench_<random>) on the server it is given, installs
// Annals there with annals.Migrate, runs the chosen scenarios and drops the database again.
// Every scenario warms up, then repeats its measurement several times, alternating the subject
// and its baseline (ABBA order, so a drift in machine load hits both alike), and reports medians.
// Throughput of single statements is measured with pgbench when it is installed (a C client that
// leaves the CPU to the server), else with Go goroutines over pgx; everything that needs the Go
// wrapper (hot-stream retries, feed paging, the subscriber) is measured in Go.
//
// Use it as
//
//	b, err := bench.Open(ctx, bench.Config{DatabaseURL: url, Quick: true})
//	defer b.Close(ctx)
//	bench.WriteSettings(os.Stdout, b.Settings())
//	results, err := b.Run(ctx)
//	bench.WriteTable(os.Stdout, results)
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultDatabaseURL is the server used when neither Config.DatabaseURL nor DATABASE_URL is set.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Config selects what a run measures and how long. The zero value is a full run of the default
// scenarios against DATABASE_URL (or DefaultDatabaseURL).
type Config struct {
	// DatabaseURL is any database on the server to measure; the scratch database is created
	// beside it. The role must be allowed to create databases; loading stored events directly
	// (growth, feed-catchup) and resetting the store between scenarios need a superuser.
	DatabaseURL string
	// Quick shrinks every scenario so the whole run takes about a minute.
	Quick bool
	// Scenarios to run, by name (see ScenarioNames); empty means the default set.
	Scenarios []string
	// Duration of one measured repetition of a throughput scenario (default 5s, quick 1s).
	Duration time.Duration
	// Reps is the number of measured repetitions per side (default 5, quick 2).
	Reps int
	// Clients are the client counts of the single-event append scenario (default 1, 8, 32).
	// The other concurrent scenarios use 8 when it is listed, else the largest count listed.
	Clients []int
	// FeedEvents is how many events feed-catchup pages through (default 1,000,000; quick 50,000).
	FeedEvents int
	// FullGrowth adds the 10,000,000-event step to the growth scenario (it loads for minutes).
	FullGrowth bool
	// Driver picks the load generator of the statement-throughput scenarios: "pgbench", "go" or
	// "" (pgbench when found, else go).
	Driver string
	// Keep keeps the scratch database instead of dropping it.
	Keep bool
	// Progress receives the progress bar (typically os.Stderr); nil means no progress output.
	Progress io.Writer
}

// Bench is an open run: a scratch database with Annals installed.
type Bench struct {
	cfg       Config
	reps      int
	dur       time.Duration
	clients   []int
	conc      int
	adminURL  string
	admin     *pgx.Conn
	db        string
	pool      *pgxpool.Pool
	connCfg   *pgx.ConnConfig
	libpq     string
	pgbench   string
	superuser bool
	settings  Settings
	prog      *progress
	stored    int // events the loader put in since the last reset
	loadTag   int
	loaded    []loadedSet
	// growthNotes holds, per growth step, what one append writes and one read touches.
	growthNotes []string
}

// Open creates the scratch database, installs Annals and the baseline tables, and reads the
// server settings. Close drops it again.
func Open(ctx context.Context, cfg Config) (*Bench, error) {
	b := &Bench{cfg: cfg}
	if err := b.configure(); err != nil {
		return nil, err
	}
	b.prog = newProgress(cfg.Progress)
	admin, err := pgx.Connect(ctx, b.adminURL)
	if err != nil {
		return nil, fmt.Errorf("bench: connect to %s: %w", displayURL(b.adminURL), err)
	}
	b.admin = admin
	var canCreate bool
	err = admin.QueryRow(ctx, `SELECT r.rolsuper, r.rolsuper OR r.rolcreatedb FROM pg_catalog.pg_roles AS r
		WHERE r.rolname = current_user`).Scan(&b.superuser, &canCreate)
	if err != nil {
		admin.Close(ctx)
		return nil, fmt.Errorf("bench: check role: %w", err)
	}
	if !canCreate {
		admin.Close(ctx)
		return nil, errors.New("bench: the role may not create databases; use a superuser (or CREATEDB) login")
	}
	b.db = "annals_bench_" + pgutil.RandomHex(4)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+b.db); err != nil {
		admin.Close(ctx)
		return nil, fmt.Errorf("bench: create scratch database %s: %w", b.db, err)
	}
	if err := b.install(ctx); err != nil {
		_ = b.Close(ctx)
		return nil, err
	}
	return b, nil
}

func (b *Bench) configure() error {
	b.adminURL = b.cfg.DatabaseURL
	if b.adminURL == "" {
		b.adminURL = os.Getenv("DATABASE_URL")
	}
	if b.adminURL == "" {
		b.adminURL = DefaultDatabaseURL
	}
	b.reps, b.dur = 5, 5*time.Second
	if b.cfg.Quick {
		b.reps, b.dur = 2, time.Second
	}
	if b.cfg.Reps > 0 {
		b.reps = b.cfg.Reps
	}
	if b.cfg.Duration > 0 {
		b.dur = b.cfg.Duration
	}
	b.clients = b.cfg.Clients
	if len(b.clients) == 0 {
		b.clients = []int{1, 8, 32}
	}
	for _, c := range b.clients {
		if c < 1 || c > 1000 {
			return fmt.Errorf("bench: client count %d out of range 1..1000", c)
		}
	}
	b.conc = slices.Max(b.clients)
	if slices.Contains(b.clients, 8) {
		b.conc = 8
	}
	if _, err := selectScenarios(b.cfg.Scenarios); err != nil {
		return err
	}
	switch b.cfg.Driver {
	case "", "pgbench", "go":
	default:
		return fmt.Errorf("bench: driver %q: want pgbench or go", b.cfg.Driver)
	}
	return nil
}

// install migrates the scratch database, creates the baseline tables and finds pgbench.
func (b *Bench) install(ctx context.Context) error {
	pcfg, err := pgxpool.ParseConfig(b.adminURL)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	pcfg.ConnConfig.Database = b.db
	pcfg.ConnConfig.RuntimeParams["application_name"] = "annals bench"
	pcfg.MaxConns = int32(max(slices.Max(b.clients), b.conc) + 8)
	b.connCfg = pcfg.ConnConfig.Copy()
	if b.libpq, err = libpqConnString(b.adminURL, b.db); err != nil {
		return err
	}
	b.pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("bench: connect to scratch database: %w", err)
	}
	b.prog.step("install Annals into "+b.db, 3*time.Second)
	if _, err := annals.Migrate(ctx, b.pool); err != nil {
		return fmt.Errorf("bench: install Annals: %w", err)
	}
	if err := b.createBaselineTables(ctx); err != nil {
		return err
	}
	if err := b.setNotify(ctx, false); err != nil {
		return fmt.Errorf("bench: switch NOTIFY off: %w", err)
	}
	if b.settings, err = readSettings(ctx, b.pool); err != nil {
		return err
	}
	b.settings.Database = b.db
	b.settings.Server = displayURL(b.adminURL)
	b.settings.ClientCPUs = runtime.NumCPU()
	b.pgbench = ""
	if b.cfg.Driver != "go" {
		b.pgbench = findPgbench()
		if b.pgbench == "" && b.cfg.Driver == "pgbench" {
			return errors.New("bench: pgbench not found on PATH or in /usr/lib/postgresql/*/bin (use --driver go)")
		}
	}
	b.settings.Driver = "Go (pgx, one connection per client)"
	if b.pgbench != "" {
		b.settings.Driver = b.pgbench + " -M prepared"
	}
	return nil
}

// createBaselineTables creates bench.raw_events, a table of the same shape as
// annals_internal.events (columns, generated column, checks, unique keys, feed indexes, the same
// number of hash partitions), for the plain-INSERT baselines.
func (b *Bench) createBaselineTables(ctx context.Context) error {
	var parts int
	err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_inherits AS i
		WHERE i.inhparent = 'annals_internal.events'::regclass`).Scan(&parts)
	if err != nil {
		return fmt.Errorf("bench: count partitions: %w", err)
	}
	sql := []string{
		"CREATE SCHEMA bench",
		"CREATE SEQUENCE bench.raw_version_seq",
		guideTable,
	}
	if parts > 0 {
		sql = append(sql, "CREATE TABLE bench.raw_events (LIKE annals_internal.events INCLUDING ALL) PARTITION BY HASH (stream_id)")
		for i := range parts {
			sql = append(sql, fmt.Sprintf("CREATE TABLE bench.raw_events_p%d PARTITION OF bench.raw_events FOR VALUES WITH (MODULUS %d, REMAINDER %d)", i, parts, i))
		}
	} else {
		sql = append(sql, "CREATE TABLE bench.raw_events (LIKE annals_internal.events INCLUDING ALL)")
	}
	for _, s := range sql {
		if _, err := b.pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("bench: baseline tables: %s: %w", s, err)
		}
	}
	return nil
}

// Settings returns the server settings in effect for the run.
func (b *Bench) Settings() Settings { return b.settings }

// Run runs the configured scenarios in their fixed order and returns every figure. It stops at
// the first error (or cancellation), returning the figures measured so far with it.
func (b *Bench) Run(ctx context.Context) ([]Result, error) {
	sel, _ := selectScenarios(b.cfg.Scenarios)
	var total time.Duration
	for _, s := range sel {
		total += s.estimate(b)
	}
	b.prog.start(total)
	defer b.prog.finish()
	var out []Result
	for _, s := range sel {
		if s.needsSuperuser && !b.superuser {
			out = append(out, Result{Scenario: s.name, Unit: "-", Method: "skipped",
				Note: "skipped: needs a superuser (it loads events directly into annals_internal.events)"})
			continue
		}
		rs, err := s.run(ctx, b)
		out = append(out, rs...)
		if err != nil {
			return out, fmt.Errorf("bench: %s: %w", s.name, err)
		}
	}
	return out, nil
}

// Close drops the scratch database (unless Config.Keep) and closes the connections. It uses a
// context of its own, so it cleans up after a cancelled run too.
func (b *Bench) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if b.pool != nil {
		b.pool.Close()
	}
	if b.admin == nil {
		return nil
	}
	defer b.admin.Close(ctx)
	if b.cfg.Keep {
		return nil
	}
	if _, err := b.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+b.db+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("bench: drop scratch database %s: %w", b.db, err)
	}
	return nil
}

// ScratchDatabase names the scratch database and says how to connect to it (for --keep).
func (b *Bench) ScratchDatabase() (name, conn string) { return b.db, b.libpq }

// ScenarioNames lists every scenario in run order, with a one-line summary; opt-in ones (not in
// the default set) are marked.
func ScenarioNames() []string {
	var names []string
	for _, s := range allScenarios() {
		n := fmt.Sprintf("%-16s %s", s.name, s.summary)
		if s.optIn {
			n += " (opt-in)"
		}
		names = append(names, n)
	}
	return names
}

// selectScenarios returns the named scenarios in run order; none named means the default set.
func selectScenarios(names []string) ([]scenario, error) {
	all := allScenarios()
	if len(names) == 0 {
		var out []scenario
		for _, s := range all {
			if !s.optIn {
				out = append(out, s)
			}
		}
		return out, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if n == "all" {
			for _, s := range all {
				want[s.name] = true
			}
			continue
		}
		if !slices.ContainsFunc(all, func(s scenario) bool { return s.name == n }) {
			var known []string
			for _, s := range all {
				known = append(known, s.name)
			}
			return nil, fmt.Errorf("bench: unknown scenario %q (known: %s, all)", n, strings.Join(known, ", "))
		}
		want[n] = true
	}
	var out []scenario
	for _, s := range all {
		if want[s.name] {
			out = append(out, s)
		}
	}
	return out, nil
}

// scenario is one measured topic. run returns its figures.
type scenario struct {
	name, summary  string
	optIn          bool
	needsSuperuser bool
	estimate       func(b *Bench) time.Duration
	run            func(ctx context.Context, b *Bench) ([]Result, error)
}

func allScenarios() []scenario {
	return []scenario{
		appendScenario(),
		batchScenario(),
		notifyScenario(),
		projectionScenario(),
		hotStreamScenario(),
		readStreamScenario(),
		liveFeedScenario(),
		growthScenario(),
		feedCatchupScenario(),
		rebuildUnderLoadScenario(),
		variantsScenario(),
		shardScenario(),
		coldStorageScenario(),
		multiScenario(),
		tagsScenario(),
		personalDataScenario(),
		tenancyScenario(), // M15
		replicaScenario(),
	}
}

// Help is the command's description for `annals help bench`.
func Help() string {
	return `Measure Annals on this machine, every figure next to a baseline measured in the same run.

Creates a scratch database (annals_bench_<random>) on the server of --database-url or
DATABASE_URL (default: ` + DefaultDatabaseURL + `), installs Annals, runs the
scenarios (warm-up, repetitions alternated with the baseline, medians) and drops it. The role
must be able to create databases; a superuser also gets the growth and feed-catchup scenarios.
It measures the server itself: point it at PostgreSQL directly, not through a connection pooler
(pgbench -M prepared and per-session settings need sessions of their own, which a pooler in
transaction mode does not give).
Progress goes to stderr, the settings and the table (or --json) to stdout. Scenarios:
  ` + strings.Join(ScenarioNames(), "\n  ")
}

// ParseList splits a comma-separated flag value into its non-empty, trimmed items.
func ParseList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// ParseClients parses a comma-separated list of client counts such as "1,8,32".
func ParseClients(s string) ([]int, error) {
	var out []int
	for _, item := range ParseList(s) {
		n, err := strconv.Atoi(item)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("client count %q: want a positive number", item)
		}
		out = append(out, n)
	}
	return out, nil
}

// Package replicas_test is the M12 suite: annals.wait_for and annals.wait_for_projection, and
// reads served by real streaming hot standbys (internal/pgcluster starts a throwaway primary and
// standbys; no replication is mocked): the gap-free feed read on a standby, read-your-writes
// across primary and standby, writes refused by a standby, replicas that are down or lagging
// skipped by the Go client.
//
// Tests that need no standby run on a fresh database of the test server (annalstest.NewDB).
// Tests with a standby share one primary and one standby started on first use; each test works in
// its own database created on the primary from a migrated template, which the standby replays.
// A test that stops or pauses a standby starts its own. Without the server binaries they skip,
// unless CI is set: then they fail.
package replicas_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgcluster"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// waitTimeout bounds every poll for something that must happen.
const waitTimeout = 30 * time.Second

// pair is a primary with a streaming hot standby, and a migrated template database on them.
type pair struct {
	primary, standby *pgcluster.Cluster
}

var (
	sharedOnce sync.Once
	shared     *pair
	sharedErr  error
	dbSeq      atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		_ = shared.standby.Stop()
		_ = shared.primary.Stop()
	}
	os.Exit(code)
}

// startPair starts a primary, migrates a template database on it and starts a standby.
func startPair(ctx context.Context) (*pair, error) {
	p, err := pgcluster.Start(ctx, pgcluster.Options{Settings: map[string]string{
		"max_connections": "100", "max_prepared_transactions": "10"}})
	if err != nil {
		return nil, err
	}
	if err := migrateTemplate(ctx, p); err != nil {
		_ = p.Stop()
		return nil, err
	}
	s, err := p.StartStandby(ctx)
	if err != nil {
		_ = p.Stop()
		return nil, err
	}
	return &pair{primary: p, standby: s}, nil
}

func migrateTemplate(ctx context.Context, p *pgcluster.Cluster) error {
	admin, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return err
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE annals_tmpl"); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, p.URL("annals_tmpl"))
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = annals.Migrate(ctx, pool)
	return err
}

func unavailable(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("replicas: cannot start a primary and a standby, and CI is set: %v", err)
	}
	t.Skipf("replicas: cannot start a primary and a standby: %v", err)
}

// sharedPair returns the package's primary and standby, starting them on first use.
func sharedPair(t *testing.T) *pair {
	t.Helper()
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared, sharedErr = startPair(ctx)
	})
	if sharedErr != nil {
		unavailable(t, sharedErr)
	}
	return shared
}

// ownPair starts a primary and standby for one test (one that stops or pauses the standby).
func ownPair(t *testing.T) *pair {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := startPair(ctx)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		_ = p.standby.Stop()
		_ = p.primary.Stop()
	})
	return p
}

// env is one test's database on a pair: pools on the primary and on the standby.
type env struct {
	ctx             context.Context
	pair            *pair
	db              string
	primary, replay *pgxpool.Pool
}

// newEnv creates a database from the template on the primary and waits until the standby has it.
func newEnv(t *testing.T, p *pair) env {
	t.Helper()
	ctx := t.Context()
	name := fmt.Sprintf("m12_%d_%d", os.Getpid(), dbSeq.Add(1))
	admin, err := pgx.Connect(ctx, p.primary.URL("postgres"))
	require.NoError(t, err)
	defer admin.Close(context.Background())
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE annals_tmpl")
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), p.primary.URL("postgres"))
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(context.Background())
		}
	})
	e := env{ctx: ctx, pair: p, db: name, primary: newPool(t, p.primary.URL(name))}
	replayed(t, e)
	e.replay = newPool(t, p.standby.URL(name))
	return e
}

func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// replayed waits until the standby has replayed everything the primary wrote so far.
func replayed(t *testing.T, e env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	require.NoError(t, pgcluster.WaitForReplay(ctx, e.pair.primary.URL("postgres"), e.pair.standby.URL("postgres")))
}

func eventJSON(typ string, n int) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":%q,"data":{"i":%d}}`, typ, i)
	}
	b.WriteByte(']')
	return b.String()
}

type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type appended struct {
	version, position int64
	xid               uint64
}

// appendN appends n events to stream (any expected version) through db (a pool or a transaction).
func appendN(t *testing.T, ctx context.Context, db queryer, stream string, n int) appended {
	t.Helper()
	var a appended
	require.NoError(t, db.QueryRow(ctx, `SELECT r.stream_version, r.global_position, r.transaction_id::text::bigint
		FROM annals.append_events($1, NULL, $2::jsonb) AS r`, stream, eventJSON("Happened", n)).Scan(&a.version, &a.position, &a.xid))
	return a
}

// feedRow is an event as the feed orders it.
type feedRow struct {
	xid uint64
	pos int64
}

// readFeed drains annals.read_all on db after a checkpoint, in pages of size.
func readFeed(t *testing.T, ctx context.Context, db queryer, after feedRow, size int) []feedRow {
	t.Helper()
	var out []feedRow
	for {
		rows, err := db.Query(ctx, `SELECT e.transaction_id::text::bigint, e.global_position
			FROM annals.read_all($1::text::xid8, $2, $3) AS e`, fmt.Sprint(after.xid), after.pos, size)
		require.NoError(t, err)
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (feedRow, error) {
			var f feedRow
			return f, r.Scan(&f.xid, &f.pos)
		})
		require.NoError(t, err)
		out = append(out, page...)
		if len(page) < size {
			return out
		}
		after = page[len(page)-1]
	}
}

func scalar[T any](t *testing.T, ctx context.Context, db queryer, sql string, args ...any) T {
	t.Helper()
	var v T
	require.NoError(t, db.QueryRow(ctx, sql, args...).Scan(&v), "SQL:\n%s", sql)
	return v
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/annals-db/annals/internal/pgbouncertest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// queryModes are pgx's query execution modes by the name default_query_exec_mode gives them.
var queryModes = []struct {
	name string
	mode pgx.QueryExecMode
}{
	{"cache_statement", pgx.QueryExecModeCacheStatement},
	{"cache_describe", pgx.QueryExecModeCacheDescribe},
	{"describe_exec", pgx.QueryExecModeDescribeExec},
	{"exec", pgx.QueryExecModeExec},
	{"simple_protocol", pgx.QueryExecModeSimpleProtocol},
}

// feedWait bounds how long committed events may take to become readable in the gap-free feed:
// tests of this package run in parallel, and any of their writing transactions holds it back.
const feedWait = 60 * time.Second

// The whole Go API works in every pgx query mode on a direct connection: JSON arguments travel
// as text, which every mode sends in a form the server casts to jsonb.
func TestGoAPIEveryQueryModeDirect(t *testing.T) {
	t.Parallel()
	for _, m := range queryModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			direct := annalstest.NewDBURL(t)
			exerciseAPI(t, direct, direct, m.mode)
		})
	}
}

// Through PgBouncer in transaction mode, every query mode but pgx's default (cached named
// statements, which PgBouncer 1.18 does not track: see TestCLICachedStatementsThroughPgBouncerHint)
// runs the whole Go API; in session mode the default mode does too.
func TestGoAPIThroughPgBouncer(t *testing.T) {
	t.Parallel()
	admin := annalstest.AdminURL(t)
	transaction := pgbouncertest.Start(t, admin, pgbouncertest.Options{})
	session := pgbouncertest.Start(t, admin, pgbouncertest.Options{PoolMode: "session"})
	for _, m := range queryModes[1:] {
		t.Run("transaction/"+m.name, func(t *testing.T) {
			t.Parallel()
			direct := annalstest.NewDBURL(t)
			exerciseAPI(t, direct, transaction.URL(t, direct), m.mode)
		})
	}
	t.Run("session/"+queryModes[0].name, func(t *testing.T) {
		t.Parallel()
		direct := annalstest.NewDBURL(t)
		exerciseAPI(t, direct, session.URL(t, direct), queryModes[0].mode)
	})
}

// modePool opens a pool on url in one query mode. No search_path: PgBouncer refuses startup
// parameters it does not track.
func modePool(t *testing.T, url string, mode pgx.QueryExecMode) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.DefaultQueryExecMode = mode
	cfg.MaxConns = 6
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// pmCounter is the state of the repository's test streams.
type pmCounter struct {
	Total int `json:"total"`
}

type pmAdded struct {
	N int `json:"n"`
}

// exerciseAPI calls every part of the Go API through a pool on apiURL in mode: appends (plain,
// in a transaction, with each kind of Data), typed errors, stream reads, temporal reads, the
// feed, subscriptions and a Subscriber, snapshots, async projections and views, a repository
// with snapshots, and deleting a stream. directURL is the same database without a pooler, for
// setup as the superuser.
func exerciseAPI(t *testing.T, directURL, apiURL string, mode pgx.QueryExecMode) {
	ctx := t.Context()
	setupPool := connect(t, directURL, "", "")
	_, err := setupPool.Exec(ctx, `
		CREATE SCHEMA pm;
		CREATE TABLE pm.counts (stream_id text PRIMARY KEY, n bigint NOT NULL);
		CREATE FUNCTION pm.count_events(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			INSERT INTO pm.counts AS c (stream_id, n)
			SELECT e.stream_id, count(*) FROM pg_catalog.unnest(events) AS e GROUP BY e.stream_id
			ON CONFLICT (stream_id) DO UPDATE SET n = c.n + excluded.n
		$fn$;
		GRANT USAGE ON SCHEMA pm TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pm TO annals_owner;
		SELECT annals.register_projection('pm_counts', 'pm.count_events(annals.event[])'::regprocedure,
			'{pm.counts}'::regclass[], categories => '{acct}', mode => 'async');`)
	require.NoError(t, err)

	pool := modePool(t, apiURL, mode)
	store := annals.New(pool, annals.ClientOptions{})
	require.NoError(t, store.CheckSchema(ctx))

	// Appends: Data as a map, a json.RawMessage, a []byte, a struct; metadata; an id of ours.
	id := uuid.New()
	res, err := store.Append(ctx, "acct-1", annals.NoStream,
		annals.EventData{ID: id, Type: "Opened", Data: map[string]any{"owner": "ann", "note": `quote " and \ backslash`},
			Metadata: domain.Metadata{Actor: "test", CorrelationID: "c-1"}},
		annals.EventData{Type: "Deposited", Data: json.RawMessage(`{"amount": 10}`)})
	require.NoError(t, err)
	require.EqualValues(t, 2, res.StreamVersion)
	require.Equal(t, id, res.EventIDs[0])
	_, err = store.Append(ctx, "acct-1", annals.Exact(2), annals.EventData{Type: "Deposited", Data: []byte(`{"amount": 5}`)})
	require.NoError(t, err)
	replay, err := store.Append(ctx, "acct-1", annals.NoStream,
		annals.EventData{ID: id, Type: "Opened", Data: map[string]any{"owner": "ann", "note": `quote " and \ backslash`},
			Metadata: domain.Metadata{Actor: "test", CorrelationID: "c-1"}},
		annals.EventData{ID: res.EventIDs[1], Type: "Deposited", Data: json.RawMessage(`{"amount": 10}`)})
	require.NoError(t, err, "a resent batch is a replay")
	require.Equal(t, res.GlobalPosition, replay.GlobalPosition)

	// Typed errors.
	_, err = store.Append(ctx, "acct-1", annals.Exact(1), annals.EventData{Type: "Late", Data: pmAdded{N: 1}})
	var wev *annals.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	require.EqualValues(t, 3, wev.Actual)
	_, err = store.Append(ctx, "acct-1", annals.Any, annals.EventData{ID: id, Type: "Other", Data: map[string]any{}})
	require.ErrorIs(t, err, annals.ErrEventIDConflict)
	_, err = store.Append(ctx, "$acct", annals.Any, annals.EventData{Type: "T"})
	require.ErrorIs(t, err, annals.ErrReserved)

	// AppendTx commits with the caller's own write, and rolls back with it.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	_, err = store.AppendTx(ctx, tx, "acct-2", annals.NoStream, annals.EventData{Type: "Opened", Data: pmAdded{N: 2}})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO pm.counts (stream_id, n) VALUES ('own-row', 0)")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	_, err = store.AppendTx(ctx, tx, "acct-3", annals.NoStream, annals.EventData{Type: "Opened"})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	// Stream reads.
	var got []annals.RecordedEvent
	for e, err := range store.ReadStream(ctx, "acct-1", annals.ReadOptions{}) {
		require.NoError(t, err)
		got = append(got, e)
	}
	require.Len(t, got, 3)
	require.JSONEq(t, `{"owner": "ann", "note": "quote \" and \\ backslash"}`, string(got[0].Data))
	require.JSONEq(t, `{"actor": "test", "correlation_id": "c-1"}`, string(got[0].Metadata))
	require.JSONEq(t, `{"amount": 5}`, string(got[2].Data))
	require.NotZero(t, got[2].TransactionID)
	var back []int64
	for e, err := range store.ReadStream(ctx, "acct-1", annals.ReadOptions{Backwards: true, Limit: 2}) {
		require.NoError(t, err)
		back = append(back, e.StreamVersion)
	}
	require.Equal(t, []int64{3, 2}, back)
	n := 0
	for _, err := range store.ReadStreamAsOf(ctx, "acct-1", annals.AtVersion(2)) {
		require.NoError(t, err)
		n++
	}
	require.Equal(t, 2, n)
	for _, err := range store.ReadStreamAsOf(ctx, "acct-1", annals.AtTime(got[2].RecordedAt)) {
		require.NoError(t, err)
	}
	v, err := store.StreamVersionAt(ctx, "acct-1", time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 3, v)
	info, err := store.StreamInfo(ctx, "acct-1")
	require.NoError(t, err)
	require.EqualValues(t, 3, info.StreamVersion)
	_, err = store.StreamInfo(ctx, "acct-3")
	require.ErrorIs(t, err, annals.ErrStreamNotFound, "the rolled-back append left nothing")

	// Snapshots, plain and in a transaction.
	saved, err := store.SaveSnapshot(ctx, annals.Snapshot{StreamID: "acct-1", Type: "balance", SchemaVersion: 1,
		StreamVersion: 2, State: json.RawMessage(`{"balance": 10, "owner": "ann"}`)})
	require.NoError(t, err)
	require.True(t, saved)
	snap, ok, err := store.LoadSnapshot(ctx, "acct-1", "balance", 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.JSONEq(t, `{"balance": 10, "owner": "ann"}`, string(snap.State))
	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	saved, err = store.SaveSnapshotTx(ctx, tx, annals.Snapshot{StreamID: "acct-1", Type: "balance", SchemaVersion: 1,
		StreamVersion: 3, State: json.RawMessage(`[1, "two", null]`)})
	require.NoError(t, err)
	require.True(t, saved)
	snap, ok, err = store.LoadSnapshotTx(ctx, tx, "acct-1", "balance", 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 3, snap.StreamVersion)
	require.NoError(t, tx.Commit(ctx))

	// A repository with snapshots every 2 events.
	reg := domain.NewRegistry()
	domain.Register[pmAdded](reg, "Added")
	counters := domain.NewRepository(store, reg, domain.Decider[pmCounter, int]{
		Initial: func() pmCounter { return pmCounter{} },
		Decide:  func(_ pmCounter, n int) ([]any, error) { return []any{pmAdded{N: n}}, nil },
		Evolve: func(s pmCounter, ev any) pmCounter {
			s.Total += ev.(pmAdded).N
			return s
		},
	}, domain.RepositoryOptions{SnapshotEvery: 2, SnapshotType: "counter"})
	for i := 1; i <= 5; i++ {
		_, err := counters.Handle(ctx, "counter-1", i)
		require.NoError(t, err)
	}
	state, version, err := counters.Load(ctx, "counter-1")
	require.NoError(t, err)
	require.Equal(t, 15, state.Total)
	require.EqualValues(t, 5, version)
	state, _, err = counters.LoadAt(ctx, "counter-1", annals.AtVersion(3))
	require.NoError(t, err)
	require.Equal(t, 6, state.Total)
	_, ok, err = store.LoadSnapshot(ctx, "counter-1", "counter", 1)
	require.NoError(t, err)
	require.True(t, ok, "the repository saved snapshots")

	// The feed, a category's feed, and the head.
	var all []annals.RecordedEvent
	require.Eventually(t, func() bool {
		all, err = store.ReadAll(ctx, annals.Checkpoint{}, annals.FeedOptions{Categories: []string{"acct"}})
		require.NoError(t, err)
		return len(all) == 4
	}, feedWait, 20*time.Millisecond, "acct-1's 3 events and acct-2's one reach the feed")
	cat, err := store.ReadCategory(ctx, "acct", all[0].Checkpoint(), annals.FeedOptions{MaxCount: 10, Group: annals.ConsumerGroup{Member: 0, Size: 1}})
	require.NoError(t, err)
	require.Len(t, cat, 3)
	head, err := store.FeedHead(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, head.LastPosition, all[3].GlobalPosition)

	// Subscriptions and a Subscriber: every acct event handled once, in its transaction.
	created, err := store.CreateSubscription(ctx, "pm-sub", annals.SubscriptionOptions{Categories: []string{"acct"}})
	require.NoError(t, err)
	require.True(t, created)
	_, err = setupPool.Exec(ctx, "CREATE TABLE pm.handled (event_id uuid PRIMARY KEY)")
	require.NoError(t, err)
	runSubscriber := func(want int) {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sub := &annals.Subscriber{Client: store, Name: "pm-sub", PollInterval: 50 * time.Millisecond,
			Handler: func(ctx context.Context, tx pgx.Tx, ev annals.RecordedEvent) error {
				_, err := tx.Exec(ctx, "INSERT INTO pm.handled (event_id) VALUES ($1)", ev.EventID)
				return err
			}}
		var wg sync.WaitGroup
		wg.Add(1)
		var runErr error
		go func() { defer wg.Done(); runErr = sub.Run(sctx) }()
		require.Eventually(t, func() bool { return sub.Stats().Processed >= int64(want) }, feedWait, 10*time.Millisecond)
		cancel()
		wg.Wait()
		require.NoError(t, runErr)
		require.EqualValues(t, want, sub.Stats().Processed)
	}
	runSubscriber(4)
	cp, err := store.SubscriptionCheckpoint(ctx, "pm-sub", 0)
	require.NoError(t, err)
	require.False(t, all[3].Checkpoint().After(cp), "the checkpoint is at the last event or past it (idle reads move it to the barrier)")
	status, err := store.SubscriptionStatus(ctx, "pm-sub")
	require.NoError(t, err)
	require.Len(t, status, 1)
	moved, err := store.ResetSubscription(ctx, "pm-sub", all[1].Checkpoint(), -1)
	require.NoError(t, err)
	require.Equal(t, 1, moved)
	_, err = setupPool.Exec(ctx, "TRUNCATE pm.handled")
	require.NoError(t, err)
	runSubscriber(2)
	var handled int
	require.NoError(t, setupPool.QueryRow(ctx, "SELECT count(*) FROM pm.handled").Scan(&handled))
	require.Equal(t, 2, handled)
	require.NoError(t, store.DropSubscription(ctx, "pm-sub"))

	// Async projections, views, the projection list.
	var applied int64
	require.Eventually(t, func() bool {
		n, err := store.RunAsyncProjections(ctx, 100)
		require.NoError(t, err)
		applied += n
		return applied >= 4
	}, feedWait, 20*time.Millisecond)
	projections, err := store.Projections(ctx)
	require.NoError(t, err)
	require.Len(t, projections, 1)
	require.Equal(t, "pm_counts", projections[0].Name)
	_, err = store.RefreshViews(ctx, true)
	require.NoError(t, err)
	var counted int64
	require.NoError(t, setupPool.QueryRow(ctx, "SELECT n FROM pm.counts WHERE stream_id = 'acct-1'").Scan(&counted))
	require.EqualValues(t, 3, counted)

	// Deleting a stream.
	final, err := store.DeleteStream(ctx, "acct-2", annals.Exact(1), "closed by the test")
	require.NoError(t, err)
	require.EqualValues(t, 1, final)
	_, err = store.Append(ctx, "acct-2", annals.Any, annals.EventData{Type: "Deposited"})
	require.ErrorIs(t, err, annals.ErrStreamDeleted)
	require.False(t, errors.Is(err, annals.ErrNotFound))
}

// Four processes migrating one empty database at once, directly and through PgBouncer in
// transaction mode: each step is applied once, every caller succeeds, no advisory lock is left
// behind on any server connection, and a later migrate finishes.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	bouncer := pgbouncertest.Start(t, annalstest.AdminURL(t), pgbouncertest.Options{PoolSize: 4})
	for _, through := range []string{"direct", "pgbouncer"} {
		t.Run(through, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			admin, name := emptyDB(t)
			direct := withDB(t, admin, name)
			url := direct
			if through == "pgbouncer" {
				url = bouncer.URL(t, direct)
			}
			results := make([]annals.MigrateResult, 4)
			errs := make([]error, 4)
			var wg sync.WaitGroup
			for i := range results {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// A pool of its own, like a separate process.
					pool := modePool(t, url, pgx.QueryExecModeCacheDescribe)
					results[i], errs[i] = annals.Migrate(ctx, pool)
				}()
			}
			wg.Wait()
			applied, functions := 0, 0
			for i, res := range results {
				require.NoError(t, errs[i], "migrate %d", i)
				require.Equal(t, annals.SchemaVersion(), res.ToVersion)
				if len(res.Applied) > 0 {
					applied++
					require.Len(t, res.Applied, int(annals.SchemaVersion()), "one caller applies every migration")
				}
				if res.FunctionsApplied {
					functions++
				}
			}
			require.Equal(t, 1, applied, "exactly one caller applied the migrations")
			require.Equal(t, 1, functions, "exactly one caller applied the functions")

			check := connect(t, direct, "", "")
			var versions, distinct int
			require.NoError(t, check.QueryRow(ctx, `SELECT count(*), count(DISTINCT version_id)
				FROM annals_internal.goose_db_version WHERE version_id > 0`).Scan(&versions, &distinct))
			require.Equal(t, int(annals.SchemaVersion()), versions, "each migration recorded once")
			require.Equal(t, versions, distinct)
			requireNoMigrateLock(t, check, name)

			// No lock hides on an idle pooled server connection: a later migrate through the same
			// pooler finishes at once and changes nothing.
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			res, err := annals.Migrate(lctx, modePool(t, url, pgx.QueryExecModeExec))
			require.NoError(t, err)
			require.Empty(t, res.Applied)
			require.False(t, res.FunctionsApplied)
			requireNoMigrateLock(t, check, name)
		})
	}
}

// requireNoMigrateLock checks that no session of database holds Annals' migrate lock.
func requireNoMigrateLock(t *testing.T, pool *pgxpool.Pool, database string) {
	t.Helper()
	var held int
	require.NoError(t, pool.QueryRow(t.Context(), `
		SELECT count(*) FROM pg_catalog.pg_locks AS l JOIN pg_catalog.pg_database AS d ON d.oid = l.database
		 WHERE l.locktype = 'advisory' AND d.datname = $1 AND l.objsubid = 1
		   AND (l.classid::int8 << 32 | l.objid::int8) = x'616e6e616c73'::int8`, database).Scan(&held))
	require.Zero(t, held, "the migrate lock is held by nobody")
}

// withDB returns the server URL admin pointing at database name.
func withDB(t *testing.T, admin, name string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(admin)
	require.NoError(t, err)
	u := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), name)
	if cfg.Password != "" {
		u += "&password=" + cfg.Password
	}
	return u
}

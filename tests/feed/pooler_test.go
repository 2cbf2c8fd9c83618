package feed_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgbouncertest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// directURL is the URL of the env's database on the server, without a pooler.
func directURL(e env) string {
	cfg := e.pool.Config().ConnConfig
	u := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)), cfg.Database)
	if cfg.Password != "" {
		u += "&password=" + cfg.Password
	}
	return u
}

// pooledClient opens a pool on url in cache_describe mode (a mode that works through PgBouncer
// 1.18 in transaction mode) and a client over it.
func pooledClient(t *testing.T, url string) (*annals.Client, *pgxpool.Pool) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	cfg.MaxConns = 6
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return annals.New(pool, annals.ClientOptions{}), pool
}

// logBuffer is a slog destination a test reads.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

const cannotListen = "notifications cannot reach the listening connection"

// The listener knows whether notifications can arrive: directly and through PgBouncer in session
// mode they do; through PgBouncer in transaction mode they cannot, and it says so once, with the
// remedy, and stops.
func TestListenerDetectsTransactionPooling(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	direct := directURL(e)
	transaction := pgbouncertest.Start(t, direct, pgbouncertest.Options{})
	session := pgbouncertest.Start(t, direct, pgbouncertest.Options{PoolMode: "session"})

	for _, c := range []struct {
		name   string
		url    string
		listen bool
	}{
		{"direct", direct, true},
		{"pgbouncer session mode", session.URL(t, direct), true},
		{"pgbouncer transaction mode", transaction.URL(t, direct), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			store, _ := pooledClient(t, c.url)
			var log logBuffer
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			l := store.ListenEvents(ctx, annals.ListenOptions{Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if c.listen {
				eventually(t, l.Listening, "the listener never listened")
				cancel()
				<-l.Done()
				require.NoError(t, l.Err())
				require.NotContains(t, log.String(), cannotListen)
				return
			}
			select {
			case <-l.Done():
			case <-time.After(waitTimeout):
				t.Fatal("the listener did not give up")
			}
			require.ErrorIs(t, l.Err(), annals.ErrListenUnavailable)
			require.False(t, l.Listening())
			require.Equal(t, 1, strings.Count(log.String(), cannotListen), log.String())
			require.Contains(t, log.String(), "--listen-url")
			requireNoEventsListener(t, transaction, direct, true)
		})
	}
}

// requireNoEventsListener checks every server connection PgBouncer holds: none LISTENs on
// annals_events, and with strict none LISTENs at all (the probe unlistens its private channel on
// the server connection that listened, best effort: strict needs a pooler no one else uses). A server connection serves one open transaction at a time, so as many open
// transactions as PgBouncer has server connections visit each of them (nothing else may be using
// the pooler meanwhile).
func requireNoEventsListener(t *testing.T, bouncer *pgbouncertest.PgBouncer, direct string, strict bool) {
	t.Helper()
	ctx := t.Context()
	cfg, err := pgx.ParseConfig(bouncer.URL(t, direct))
	require.NoError(t, err)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	// Wait until every server connection is back in the pool: none serving a client, none
	// sending a cancel request (a connection of its own, gone once sent).
	var servers []pgbouncertest.ServerConn
	eventually(t, func() bool {
		servers, err = bouncer.ServerConns(ctx, cfg.User, cfg.Database)
		require.NoError(t, err)
		for _, s := range servers {
			if s.State != "idle" && s.State != "used" {
				return false
			}
		}
		return true
	}, "server connections still busy: %v", servers)
	seen := map[int32][]string{}
	var txs []pgx.Tx
	for range max(len(servers), 1) {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		require.NoError(t, err)
		defer conn.Close(context.Background())
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		txs = append(txs, tx)
		var pid int32
		var channels []string
		require.NoError(t, tx.QueryRow(ctx, "SELECT pg_catalog.pg_backend_pid(), array(SELECT pg_catalog.pg_listening_channels())").
			Scan(&pid, &channels))
		seen[pid] = channels
	}
	for _, tx := range txs {
		require.NoError(t, tx.Rollback(ctx))
	}
	for _, s := range servers {
		require.Contains(t, seen, int32(s.Pid), "server connection %d visited", s.Pid)
	}
	for pid, channels := range seen {
		require.NotContains(t, channels, "annals_events", "server connection %d listens for Annals", pid)
		if strict {
			require.Empty(t, channels, "server connection %d listens", pid)
		}
		if len(channels) > 0 {
			t.Logf("server connection %d still listens on %v (the probe's private channel)", pid, channels)
		}
	}
}

// Through PgBouncer in transaction mode, two members of a consumer group handle every event
// exactly once by polling, while appends go on through the pooler; the listener says once that
// it cannot receive and leaves no LISTEN on the pooler's server connections.
func TestSubscriberThroughPgBouncer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	direct := directURL(e)
	bouncer := pgbouncertest.Start(t, direct, pgbouncertest.Options{PoolSize: 4})
	store, _ := pooledClient(t, bouncer.URL(t, direct))
	_, err := store.CreateSubscription(e.ctx, "pooled", annals.SubscriptionOptions{GroupSize: 2})
	require.NoError(t, err)

	var log logBuffer
	subs := make([]*annals.Subscriber, 2)
	runs := make([]*running, 2)
	for m := range subs {
		subs[m] = &annals.Subscriber{Client: store, Name: "pooled", Member: m, Handler: applier(fmt.Sprint(m)),
			BatchSize: 7, Logger: slog.New(slog.NewTextHandler(&log, nil))}
		runs[m] = start(t, subs[m])
	}

	var want []annals.AppendResult
	for i := range 40 {
		res, err := store.Append(e.ctx, fmt.Sprintf("pooled-%d", i%9), annals.Any,
			annals.EventData{Type: "Happened", Data: map[string]any{"i": i}},
			annals.EventData{Type: "Happened", Data: map[string]any{"i": i, "second": true}})
		require.NoError(t, err)
		want = append(want, res)
	}
	var ids []string
	for _, r := range want {
		for _, id := range r.EventIDs {
			ids = append(ids, id.String())
		}
	}
	eventually(t, func() bool { return appliedCount(t, e) >= len(ids) }, "applied %d of %d events", appliedCount(t, e), len(ids))
	rows, err := e.pool.Query(e.ctx, "SELECT a.event_id::text FROM public.applied AS a")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.ElementsMatch(t, ids, got, "every event applied exactly once")
	require.Positive(t, subs[0].Stats().Processed)
	require.Positive(t, subs[1].Stats().Processed)

	eventually(t, func() bool { return strings.Count(log.String(), cannotListen) == 2 }, "each subscriber warns once:\n%s", log.String())
	require.Contains(t, log.String(), "Subscriber.ListenConfig")
	require.Contains(t, log.String(), "poll_interval=200ms")
	for _, r := range runs {
		require.NoError(t, r.stop())
	}
	requireNoEventsListener(t, bouncer, direct, false)
}

// With ListenConfig, a subscriber whose pool goes through PgBouncer in transaction mode listens
// on a direct connection and wakes on notifications: with polls an hour apart, only a
// notification gets an event handled.
func TestSubscriberListensDirectlyBesidePgBouncer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	direct := directURL(e)
	bouncer := pgbouncertest.Start(t, direct, pgbouncertest.Options{})
	store, _ := pooledClient(t, bouncer.URL(t, direct))
	_, err := store.CreateSubscription(e.ctx, "beside", annals.SubscriptionOptions{})
	require.NoError(t, err)
	listenCfg, err := pgx.ParseConfig(direct)
	require.NoError(t, err)
	var log logBuffer
	s := &annals.Subscriber{Client: store, Name: "beside", Handler: applier("one"), PollInterval: time.Hour,
		FallbackPollInterval: time.Hour, ListenConfig: listenCfg, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	start(t, s)
	waitListening(t, e)
	eventually(t, func() bool { return leaseHolder(t, e, "beside", 0) != nil }, "the subscriber never took its lease")

	_, err = store.Append(e.ctx, "beside-1", annals.NoStream, annals.EventData{Type: "Happened"})
	require.NoError(t, err)
	// As in TestSubscriberWakesOnNotify: once the event is past the barrier, one more hint must
	// get it handled; the bound only tells "woken" from "polled an hour later" apart.
	drain(t, e.pool, annals.Checkpoint{}, 10, 1)
	readable := time.Now()
	if appliedCount(t, e) == 0 {
		_, err := e.pool.Exec(e.ctx, "NOTIFY annals_events")
		require.NoError(t, err)
	}
	for appliedCount(t, e) == 0 {
		require.Less(t, time.Since(readable), time.Minute, "not woken by the notification")
		time.Sleep(10 * time.Millisecond)
	}
	require.NotContains(t, log.String(), cannotListen)
	require.EqualValues(t, 1, s.Stats().Processed)
}

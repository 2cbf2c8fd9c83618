// Package shard_test covers milestone M14: a sharded store, one proxy database routing Annals'
// stream calls with PL/Proxy to three shard databases, each a fresh Annals install on the test
// server (plus one test with shards on two throwaway clusters of their own). Every test builds
// its own proxy and shards, so none shares a map with another.
//
// The feed barrier is cluster-wide (see tests/feed): a test never expects an event in a shard's
// feed the instant it commits; it polls with a generous deadline.
package shard_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/goapi/shard"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

const waitTimeout = 30 * time.Second

// store is a sharded store for one test: the proxy's pool and client, and each shard's pool
// (shards[0] is shard 1).
type store struct {
	ctx      context.Context
	proxyURL string
	proxy    *pgxpool.Pool
	client   *annals.Client
	shards   []*pgxpool.Pool
	names    []string
}

// newStore makes n shard databases and a proxy database on the test server and runs shard.Init.
func newStore(t *testing.T, n int) store {
	t.Helper()
	requirePlproxy(t)
	ctx := t.Context()
	s := store{ctx: ctx}
	var specs []shard.Shard
	for i := range n {
		url := annalstest.NewDBURL(t)
		pool := connect(t, url)
		info, err := shard.Conninfo(url)
		require.NoError(t, err)
		name := "s" + string(rune('1'+i)) + "-" + pgutil.RandomHex(3)
		specs = append(specs, shard.Shard{Name: name, Pool: pool, Conninfo: info})
		s.shards = append(s.shards, pool)
		s.names = append(s.names, name)
	}
	s.proxyURL = newEmptyDB(t)
	s.proxy = connect(t, s.proxyURL)
	res, err := shard.Init(ctx, s.proxy, specs, shard.InitOptions{Partitions: 16})
	require.NoError(t, err)
	require.True(t, res.MapCreated)
	s.client = annals.New(s.proxy, annals.ClientOptions{})
	return s
}

// newEmptyDB creates an empty database on the test server (the proxy's), dropped at the end.
func newEmptyDB(t *testing.T) string {
	t.Helper()
	admin := annalstest.AdminURL(t)
	name := "annals_t_proxy_" + pgutil.RandomHex(6)
	conn, err := pgx.Connect(t.Context(), admin)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(admin)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

func connect(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["search_path"] = ""
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// event is a small event for appends.
func event(typ string, n int) annals.EventData {
	return annals.EventData{Type: typ, Data: json.RawMessage(`{"n": ` + strconv.Itoa(n) + `}`)}
}

// shardOf asks the proxy where a stream lives.
func (s store) shardOf(t *testing.T, streamID string) int {
	t.Helper()
	n, err := shard.Of(s.ctx, s.proxy, streamID)
	require.NoError(t, err)
	return n
}

// drainShard reads shard's feed through the proxy until it has want events or the deadline.
func (s store) drainShard(t *testing.T, shardNo, want int) []annals.RecordedEvent {
	t.Helper()
	var out []annals.RecordedEvent
	cp := annals.Checkpoint{}
	deadline := time.Now().Add(waitTimeout)
	for len(out) < want && time.Now().Before(deadline) {
		page, err := s.client.ReadShard(s.ctx, shardNo, cp, annals.FeedOptions{MaxCount: 100})
		require.NoError(t, err)
		if len(page) == 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		out = append(out, page...)
		cp = page[len(page)-1].Checkpoint()
	}
	return out
}

func readStream(t *testing.T, c *annals.Client, id string) []annals.RecordedEvent {
	t.Helper()
	var out []annals.RecordedEvent
	for ev, err := range c.ReadStream(t.Context(), id, annals.ReadOptions{}) {
		require.NoError(t, err)
		out = append(out, ev)
	}
	return out
}

// requirePlproxy skips the test when the server lacks the plproxy extension (Debian:
// postgresql-15-plproxy), unless CI is set: then it fails, so CI never passes by skipping.
func requirePlproxy(t *testing.T) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), annalstest.AdminURL(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var ok bool
	require.NoError(t, conn.QueryRow(t.Context(),
		"SELECT EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'plproxy')").Scan(&ok))
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("the plproxy extension is not installed and CI is set: install postgresql-15-plproxy (tests/scripts/deps.sh)")
	}
	t.Skip("the plproxy extension is not installed: install postgresql-15-plproxy (tests/scripts/deps.sh)")
}

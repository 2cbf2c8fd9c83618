package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annals-db/annals/goapi/shard"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// shardScenario measures a sharded store on this server: the PL/Proxy proxy's cost per append
// against calling the shard directly (one client, the same shard database receiving both), and
// append throughput through proxies mapping 1, 2 and 3 shards against one shard called directly.
// All databases share this server's cores, so the second figure shows the routing's cost and
// that it spreads the streams, not the scaling separate machines would give.
func shardScenario() scenario {
	return scenario{
		name:           "sharding",
		summary:        "append through a PL/Proxy proxy vs the shard directly; throughput with 1, 2, 3 shards",
		optIn:          true,
		needsSuperuser: true, // CREATE EXTENSION plproxy
		estimate: func(b *Bench) time.Duration {
			return 6*b.warmEstimate(1, 1) + time.Duration(2*b.reps)*b.measureEstimate() + time.Duration(4*b.reps)*b.measureEstimate()
		},
		run: runShardScenario,
	}
}

// shardAppendSQL is the single-event append the Go client sends, on streams spread by hash.
const shardAppendSQL = `SELECT annals.append_event('sh-' || $1::text || '-' || $2::text, NULL, 'BenchEvent', '` + benchData + `'::jsonb)`

func runShardScenario(ctx context.Context, b *Bench) ([]Result, error) {
	var available bool
	if err := b.pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'plproxy')").Scan(&available); err != nil {
		return nil, err
	}
	if !available {
		return []Result{{Scenario: "sharding", Unit: "-", Method: "skipped",
			Note: "skipped: the plproxy extension is not installed (Debian: postgresql-15-plproxy)"}}, nil
	}
	b.prog.step("sharding: create 3 shards and 3 proxies", 10*time.Second)
	var dbs []string
	defer func() {
		for _, db := range dbs {
			_, _ = b.admin.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		}
	}()
	newDB := func(suffix string) (*pgx.ConnConfig, error) {
		name := b.db + "_" + suffix
		if _, err := b.admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return nil, err
		}
		dbs = append(dbs, name)
		cfg := b.connCfg.Copy()
		cfg.Database = name
		return cfg, nil
	}
	var shardCfgs, proxyCfgs []*pgx.ConnConfig
	var specs []shard.Shard
	for i := 1; i <= 3; i++ {
		cfg, err := newDB(fmt.Sprintf("s%d", i))
		if err != nil {
			return nil, err
		}
		pool, err := poolFor(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer pool.Close()
		info := fmt.Sprintf("host=%s port=%d dbname=%s", cfg.Host, cfg.Port, cfg.Database)
		if cfg.Password != "" {
			info += " password=" + pgutil.QuoteConninfo(cfg.Password)
		}
		shardCfgs = append(shardCfgs, cfg)
		specs = append(specs, shard.Shard{Name: fmt.Sprintf("s%d", i), Pool: pool, Conninfo: info})
	}
	for n := 1; n <= 3; n++ {
		cfg, err := newDB(fmt.Sprintf("proxy%d", n))
		if err != nil {
			return nil, err
		}
		pool, err := poolFor(ctx, cfg)
		if err != nil {
			return nil, err
		}
		_, err = shard.Init(ctx, pool, specs[:n], shard.InitOptions{})
		pool.Close()
		if err != nil {
			return nil, err
		}
		proxyCfgs = append(proxyCfgs, cfg)
	}
	streams := b.streamsPerClient()

	// Overhead: one client, proxy mapping only shard 1 vs shard 1 directly.
	b.prog.step("sharding: warm-up", 6*b.warmEstimate(1, 1))
	for _, cfg := range []*pgx.ConnConfig{shardCfgs[0], proxyCfgs[0], proxyCfgs[1], proxyCfgs[2]} {
		if _, err := closedLoop(ctx, cfg, shardAppendSQL, streams, b.conc, b.dur/2); err != nil {
			return nil, err
		}
	}
	one, err := b.alternate(ctx, "sharding, 1 client", side{"shard directly", b.measureEstimate(), func(ctx context.Context) (float64, error) {
		return closedLoop(ctx, shardCfgs[0], shardAppendSQL, streams, 1, b.dur)
	}}, side{"through the proxy", b.measureEstimate(), func(ctx context.Context) (float64, error) {
		return closedLoop(ctx, proxyCfgs[0], shardAppendSQL, streams, 1, b.dur)
	}})
	if err != nil {
		return nil, err
	}
	method := func(clients int) string {
		return fmt.Sprintf("Go/pgx closed loop, %d client%s, %d x %s per side, ABBA-alternated, median", clients, plural(clients), b.reps, b.dur)
	}
	direct, proxied := median(one[0]), median(one[1])
	res := []Result{figure("sharding: append_event through the proxy, 1 client", "events/s", one[1], one[0],
		"append_event on the shard directly (the same shard database)", method(1), nil)}
	res[0].Note = fmt.Sprintf("the proxy adds %.0f µs per append (1/proxied - 1/direct)", (1/proxied-1/direct)*1e6)

	// Throughput: b.conc clients through proxies of 1, 2, 3 shards vs one shard directly.
	sides := []side{{"1 shard directly", b.measureEstimate(), func(ctx context.Context) (float64, error) {
		return closedLoop(ctx, shardCfgs[0], shardAppendSQL, streams, b.conc, b.dur)
	}}}
	for n := 1; n <= 3; n++ {
		cfg := proxyCfgs[n-1]
		sides = append(sides, side{fmt.Sprintf("proxy, %d shard%s", n, plural(n)), b.measureEstimate(), func(ctx context.Context) (float64, error) {
			return closedLoop(ctx, cfg, shardAppendSQL, streams, b.conc, b.dur)
		}})
	}
	many, err := b.alternate(ctx, fmt.Sprintf("sharding, %d clients", b.conc), sides...)
	if err != nil {
		return res, err
	}
	for n := 1; n <= 3; n++ {
		r := figure(fmt.Sprintf("sharding: append_event through the proxy, %d shard%s, %d clients", n, plural(n), b.conc),
			"events/s", many[n], many[0], "append_event on one shard directly, same clients", method(b.conc), nil)
		r.Note = "all shards on this one server: shows the routing's cost, not the scaling of separate machines"
		res = append(res, r)
	}
	return res, nil
}

func poolFor(ctx context.Context, cfg *pgx.ConnConfig) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, err
	}
	pcfg.ConnConfig = cfg.Copy()
	pcfg.MaxConns = 4
	return pgxpool.NewWithConfig(ctx, pcfg)
}

// closedLoop runs sql ($1 the client number, $2 a random stream number in 1..streams) from
// clients connections to cfg's database for d and returns executions per second.
func closedLoop(ctx context.Context, cfg *pgx.ConnConfig, sql string, streams, clients int, d time.Duration) (float64, error) {
	conns := make([]*pgx.Conn, 0, clients)
	defer closeAll(conns)
	for range clients {
		c, err := pgx.ConnectConfig(ctx, cfg.Copy())
		if err != nil {
			closeAll(conns)
			return 0, fmt.Errorf("connect to %s: %w", cfg.Database, err)
		}
		conns = append(conns, c)
	}
	defer closeAll(conns)
	var ops atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			cid := strconv.Itoa(i)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if _, err := c.Exec(ctx, sql, cid, strconv.Itoa(1+r.IntN(max(streams, 1)))); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(ops.Load()) / time.Since(start).Seconds(), ctx.Err()
}

package shard_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/shard"
	"github.com/annals-db/annals/internal/pgcluster"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// Shards on two separate servers (throwaway clusters with password authentication), the proxy
// on the first: Init migrates both over the network, the proxy routes by the same hash, each
// shard's feed is its own, and shard.Migrate upgrades proxy and shards from the proxy's map.
// The shards' passwords are in their conninfo, which only annals_owner can read on the proxy.
func TestShardsOnTwoSeparateClusters(t *testing.T) {
	t.Parallel()
	requirePlproxy(t)
	ctx := t.Context()
	clusters := []*pgcluster.Cluster{
		pgcluster.ForTest(t, pgcluster.Options{Prefix: "annals-shard1-"}),
		pgcluster.ForTest(t, pgcluster.Options{Prefix: "annals-shard2-"}),
	}
	for i, c := range clusters {
		admin := connect(t, c.URL("postgres"))
		_, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE shard%d", i+1))
		require.NoError(t, err)
		if i == 0 {
			_, err = admin.Exec(ctx, "CREATE DATABASE proxy")
			require.NoError(t, err)
		}
	}
	var specs []shard.Shard
	for i, c := range clusters {
		url := c.URL(fmt.Sprintf("shard%d", i+1))
		info, err := shard.Conninfo(url)
		require.NoError(t, err)
		specs = append(specs, shard.Shard{Name: fmt.Sprintf("server%d", i+1), Pool: connect(t, url),
			Conninfo: info + " password=" + c.Password})
	}
	proxy := connect(t, clusters[0].URL("proxy"))
	res, err := shard.Init(ctx, proxy, specs, shard.InitOptions{Partitions: 8})
	require.NoError(t, err)
	require.Len(t, res.Shards, 2)
	for _, r := range res.Shards {
		require.EqualValues(t, annals.SchemaVersion(), r.ToVersion)
	}
	again, err := shard.Init(ctx, proxy, specs, shard.InitOptions{Partitions: 8})
	require.NoError(t, err)
	require.False(t, again.MapCreated, "a second Init with the same map changes nothing")
	_, err = shard.Init(ctx, proxy, specs[:1], shard.InitOptions{Partitions: 8})
	require.ErrorContains(t, err, "already has another map")

	client := annals.New(proxy, annals.ClientOptions{})
	perShard := map[int]int{}
	for i := range 20 {
		id := fmt.Sprintf("cart-%d", i)
		_, err := client.Append(ctx, id, annals.NoStream, event("Created", i))
		require.NoError(t, err)
		sh, err := shard.Of(ctx, proxy, id)
		require.NoError(t, err)
		perShard[sh]++
		_, err = annals.New(specs[sh-1].Pool, annals.ClientOptions{}).StreamInfo(ctx, id)
		require.NoError(t, err, "stream %s is on server %d", id, sh)
		_, err = annals.New(specs[2-sh].Pool, annals.ClientOptions{}).StreamInfo(ctx, id)
		require.ErrorIs(t, err, annals.ErrStreamNotFound)
	}
	require.Len(t, perShard, 2)
	for sh, want := range perShard {
		var got []annals.RecordedEvent
		cp := annals.Checkpoint{}
		for deadline := time.Now().Add(waitTimeout); len(got) < want && time.Now().Before(deadline); {
			page, err := client.ReadShard(ctx, sh, cp, annals.FeedOptions{})
			require.NoError(t, err)
			if len(page) > 0 {
				got = append(got, page...)
				cp = page[len(page)-1].Checkpoint()
			}
		}
		require.Len(t, got, want, "each server's feed has its own streams' events")
	}

	// Migrate from the proxy's map: the shards are current, the proxy's functions are re-applied
	// when their recorded checksum differs.
	_, err = proxy.Exec(ctx, "UPDATE annals_proxy.info SET files_checksum = 'old'")
	require.NoError(t, err)
	mig, err := shard.Migrate(ctx, proxy, func(ctx context.Context, conninfo string) (*pgxpool.Pool, error) {
		cfg, err := pgxpool.ParseConfig(conninfo)
		if err != nil {
			return nil, err
		}
		cfg.ConnConfig.User = "postgres"
		return pgxpool.NewWithConfig(ctx, cfg)
	})
	require.NoError(t, err)
	require.True(t, mig.ProxyApplied)
	require.Len(t, mig.Shards, 2)
	for name, r := range mig.Shards {
		require.Empty(t, r.Applied, "shard %s was current", name)
	}
	health, err := shard.Status(ctx, proxy)
	require.NoError(t, err)
	for _, h := range health {
		require.True(t, h.Available, h.Problem)
	}
	var n int
	require.NoError(t, proxy.QueryRow(ctx, "SELECT count(*) FROM annals.list_streams(max_count => 100)").Scan(&n))
	require.Equal(t, 20, n)
}

package cli_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// annals shard init / status and annals migrate on a proxy, as an operator runs them: two shards
// and a proxy database, stream commands through the proxy, and a shard that goes down.
func TestCLIShardInitStatusMigrate(t *testing.T) {
	t.Parallel()
	s1, s2 := annalstest.NewDBURL(t), annalstest.NewDBURL(t)
	proxyURL := emptyDB(t)

	out := ok(t, "", "shard", "init", "--proxy", proxyURL, "--shard", s1, "--shard", s2, "--name", "east", "--name", "west", "--partitions", "4")
	require.Contains(t, out, "shard 1 (east): annals is up to date at version")
	require.Contains(t, out, "proxy: 4 partitions over 2 shards, map created")
	out = ok(t, "", "shard", "init", "--proxy", proxyURL, "--shard", s1, "--shard", s2, "--name", "east", "--name", "west", "--partitions", "4")
	require.Contains(t, out, "map unchanged")
	r := annals(t, "", "shard", "init", "--proxy", proxyURL, "--shard", s1, "--partitions", "4")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "already has another map")
	r = annals(t, "", "shard", "init", "--proxy", proxyURL, "--shard", s1, "--partitions", "3")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "power of two")

	out = ok(t, proxyURL, "shard", "status")
	require.Regexp(t, `(?m)^1\s+east\s+0,2\s+up\s+\d+\s+0$`, out)
	require.Regexp(t, `(?m)^2\s+west\s+1,3\s+up\s+\d+\s+0$`, out)

	ok(t, proxyURL, "append", "order-1", "--expected", "no-stream", "--type", "Placed", "--data", `{"sku": "A"}`)
	r = annals(t, proxyURL, "append", "order-1", "--expected", "no-stream", "--type", "Placed", "--data", `{}`)
	require.Equal(t, 4, r.code, r.stderr)
	require.Contains(t, r.stderr, "SQLSTATE ST409")
	require.Contains(t, ok(t, proxyURL, "read", "order-1"), `{"sku": "A"}`)

	out = ok(t, proxyURL, "migrate")
	require.Contains(t, out, "shard 2 (west): annals is up to date")
	require.Contains(t, out, "proxy: routing functions up to date")

	require.Contains(t, ok(t, proxyURL, "migrate", "--check"), "as this build expects")
	r = annals(t, proxyURL, "worker", "--metrics-addr", "", "--retention-every", "1h")
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "--retention-every works on one database")

	proxy, err := pgx.Connect(t.Context(), proxyURL)
	require.NoError(t, err)
	defer proxy.Close(context.Background())
	_, err = proxy.Exec(t.Context(), `UPDATE annals_proxy.shards SET conninfo = 'host=127.0.0.1 port=1 dbname=gone' WHERE shard = 2`)
	require.NoError(t, err)
	_, err = proxy.Exec(t.Context(), `SELECT annals_proxy.apply_map()`)
	require.NoError(t, err)
	r = annals(t, proxyURL, "shard", "status")
	require.Equal(t, 1, r.code, r.stderr)
	require.Regexp(t, `(?m)^2\s+west\s+1,3\s+down\s+-\s+-$`, r.stdout)
	require.Contains(t, r.stdout, "shard 2: shard 2 (west) is unavailable")
	require.Contains(t, r.stderr, "1 of 2 shards unavailable")
}

// emptyDB creates an empty database on the test server, dropped when the test ends.
func emptyDB(t *testing.T) string {
	t.Helper()
	admin := annalstest.AdminURL(t)
	name := "annals_t_proxy_" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_")[:20]
	conn, err := pgx.Connect(t.Context(), admin)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(admin)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

package shard_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProxySignaturesMatchTheShards: every function of the proxy's public schema that a shard
// also has takes the shard's arguments (names, types, defaults), after a leading shard argument
// for the calls that name a shard, and returns what the shard's returns. The routed calls are
// generated from the single-node signatures (functions/proxy/020_routed_calls.sql); this checks
// the installed result, and the hand-written fan-out wrappers (list_streams, read_event) too.
func TestProxySignaturesMatchTheShards(t *testing.T) {
	t.Parallel()
	s := newStore(t, 1)
	const q = `SELECT p.proname, pg_catalog.pg_get_function_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid)
	             FROM pg_catalog.pg_proc AS p WHERE p.pronamespace = 'annals'::regnamespace`
	type sig struct{ args, result string }
	shardSigs := map[string][]sig{}
	rows, err := s.shards[0].Query(s.ctx, q)
	require.NoError(t, err)
	for rows.Next() {
		var name string
		var g sig
		require.NoError(t, rows.Scan(&name, &g.args, &g.result))
		shardSigs[name] = append(shardSigs[name], g)
	}
	require.NoError(t, rows.Err())

	rows, err = s.proxy.Query(s.ctx, q)
	require.NoError(t, err)
	compared := 0
	for rows.Next() {
		var name string
		var g sig
		require.NoError(t, rows.Scan(&name, &g.args, &g.result))
		on, ok := shardSigs[name]
		if !ok {
			continue // the proxy's own (shards, shard_of, shard_health, the fan-out feed reads)
		}
		require.Len(t, on, 1, "annals.%s has one signature on a shard", name)
		want := on[0]
		if g.args != want.args {
			withShard := "shard integer"
			if want.args != "" {
				withShard += ", " + want.args
			}
			require.Equal(t, withShard, g.args, "annals.%s on the proxy takes the shard's arguments (after a shard argument)", name)
		}
		require.Equal(t, want.result, g.result, "annals.%s on the proxy returns what it returns on a shard", name)
		compared++
	}
	require.NoError(t, rows.Err())
	require.GreaterOrEqual(t, compared, 17, "the routed calls, the fan-out reads and schema_version")
	t.Logf("%d functions of the proxy compared with the shard's", compared)
}

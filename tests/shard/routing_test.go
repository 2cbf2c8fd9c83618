package shard_test

import (
	"fmt"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/shard"
	"github.com/stretchr/testify/require"
)

// Streams appended through the proxy land on the shard annals.shard_of names, computed from the
// same hash a shard computes (hashtext(stream_id) & 15), and only there; reads through the proxy
// find them; every shard gets some.
func TestRoutingPutsEachStreamOnTheShardOfItsHash(t *testing.T) {
	t.Parallel()
	s := newStore(t, 3)

	infos, err := shard.Shards(s.ctx, s.proxy)
	require.NoError(t, err)
	require.Len(t, infos, 3)
	for i, in := range infos {
		require.Equal(t, i+1, in.Shard)
		require.Equal(t, s.names[i], in.Name)
		require.Len(t, in.Partitions, 16/3+map[bool]int{true: 1}[i < 16%3], "round-robin: partition p on shard p mod 3 + 1")
		for _, p := range in.Partitions {
			require.Equal(t, i, p%3)
		}
	}

	// The proxy's schema version is its shards' lowest: a schema check there checks them all.
	require.NoError(t, s.client.CheckSchema(s.ctx))

	perShard := map[int]int{}
	for i := range 60 {
		id := fmt.Sprintf("order-%d", i)
		res, err := s.client.Append(s.ctx, id, annals.NoStream, event("Placed", i), event("Paid", i))
		require.NoError(t, err)
		require.EqualValues(t, 2, res.StreamVersion)

		var part, viaShard int
		require.NoError(t, s.proxy.QueryRow(s.ctx, "SELECT annals.partition_of($1)", id).Scan(&part))
		require.NoError(t, s.shards[0].QueryRow(s.ctx, "SELECT pg_catalog.hashtext($1) & 15", id).Scan(&viaShard))
		require.Equal(t, viaShard, part, "the proxy and a shard compute the same partition")

		owner := s.shardOf(t, id)
		require.Equal(t, part%3+1, owner)
		perShard[owner]++
		for n, pool := range s.shards {
			info, err := annals.New(pool, annals.ClientOptions{}).StreamInfo(s.ctx, id)
			if n+1 == owner {
				require.NoError(t, err)
				require.EqualValues(t, 2, info.StreamVersion)
			} else {
				require.ErrorIs(t, err, annals.ErrStreamNotFound, "stream %s must live on shard %d only", id, owner)
			}
		}
		evs := readStream(t, s.client, id)
		require.Len(t, evs, 2)
		require.Equal(t, "Paid", evs[1].EventType)
	}
	require.Len(t, perShard, 3, "60 streams spread over all three shards: %v", perShard)

	// list_streams fans out and merges in stream id order, with keyset paging.
	var ids []string
	for info, err := range s.client.ListStreams(s.ctx, annals.ListStreamsOptions{Category: "order"}) {
		require.NoError(t, err)
		ids = append(ids, info.StreamID)
	}
	require.Len(t, ids, 60)
	require.IsIncreasing(t, ids)
	// Keyset paging across shards: a page of 7 after the 10th id is ids[10:17].
	var page []string
	for info, err := range s.client.ListStreams(s.ctx, annals.ListStreamsOptions{After: ids[9], Limit: 7}) {
		require.NoError(t, err)
		page = append(page, info.StreamID)
	}
	require.Equal(t, ids[10:17], page)

	// read_event asks each shard in turn.
	evs := readStream(t, s.client, "order-17")
	got, err := s.client.ReadEvent(s.ctx, evs[0].EventID, annals.ReadEventOptions{})
	require.NoError(t, err)
	require.Equal(t, "order-17", got.StreamID)
}

package shard_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/shard"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// A shard that is down: calls for its streams fail with ST502 naming it (ErrShardUnavailable in
// Go), calls for the other shards' streams are served, status reports it, fan-out reads name it,
// and a ShardedSubscriber keeps consuming the other shards. Once it is back, everything works.
func TestAShardThatIsDownIsNamedAndTheOthersServe(t *testing.T) {
	t.Parallel()
	s := newStore(t, 3)
	onShard := map[int]string{}
	for i := 0; len(onShard) < 3; i++ {
		id := fmt.Sprintf("acct-%d", i)
		if _, ok := onShard[s.shardOf(t, id)]; !ok {
			onShard[s.shardOf(t, id)] = id
			_, err := s.client.Append(s.ctx, id, annals.NoStream, event("Opened", i))
			require.NoError(t, err)
		}
	}

	// Shard 2 "goes down": the proxy's map points it at a port nobody listens on.
	var conninfo string
	require.NoError(t, s.proxy.QueryRow(s.ctx, "SELECT conninfo FROM annals_proxy.shards WHERE shard = 2").Scan(&conninfo))
	setConninfo(t, s, 2, fmt.Sprintf("host=127.0.0.1 port=%d dbname=gone connect_timeout=5", closedPort(t)))

	_, err := s.client.Append(s.ctx, onShard[2], annals.Any, event("Deposited", 1))
	require.ErrorIs(t, err, annals.ErrShardUnavailable)
	var down *annals.ShardUnavailableError
	require.ErrorAs(t, err, &down)
	require.Equal(t, 2, down.Shard)
	require.Equal(t, s.names[1], down.Name)
	require.Contains(t, err.Error(), fmt.Sprintf("shard 2 (%s) is unavailable", s.names[1]))
	pe := pgErr(t, s.proxy, fmt.Sprintf(`SELECT * FROM annals.read_stream('%s')`, onShard[2]))
	require.Equal(t, "ST502", pe.Code)
	require.JSONEq(t, fmt.Sprintf(`{"shard": 2, "name": %q}`, s.names[1]), pe.Detail)

	for _, sh := range []int{1, 3} {
		res, err := s.client.Append(s.ctx, onShard[sh], annals.Exact(1), event("Deposited", 2))
		require.NoError(t, err, "shard %d keeps serving", sh)
		require.EqualValues(t, 2, res.StreamVersion)
	}

	health, err := shard.Status(s.ctx, s.proxy)
	require.NoError(t, err)
	require.Len(t, health, 3)
	require.True(t, health[0].Available)
	require.False(t, health[1].Available)
	require.Contains(t, health[1].Problem, "shard 2 ("+s.names[1]+") is unavailable")
	require.True(t, health[2].Available)

	require.ErrorIs(t, s.client.CheckSchema(s.ctx), annals.ErrShardUnavailable)

	var listErr error
	for _, err := range s.client.ListStreams(s.ctx, annals.ListStreamsOptions{}) {
		if err != nil {
			listErr = err
		}
	}
	require.ErrorIs(t, listErr, annals.ErrShardUnavailable, "list_streams asks every shard")

	sub := &annals.ShardedSubscriber{Proxy: s.client, Target: s.shards[0], Name: "while-down",
		CheckpointTable: "public.checkpoints",
		Handler:         func(context.Context, pgx.Tx, annals.RecordedEvent) error { return nil }}
	n := 0
	// Shards 1 and 3 hold 2 events each; their feeds may lag the commits briefly.
	for deadline := time.Now().Add(waitTimeout); n < 4 && time.Now().Before(deadline); {
		got, err := sub.Poll(s.ctx)
		require.ErrorIs(t, err, annals.ErrShardUnavailable)
		require.Contains(t, err.Error(), "shard 2")
		n += got
	}
	require.Equal(t, 4, n)

	// Back up: the same calls work again.
	setConninfo(t, s, 2, conninfo)
	res, err := s.client.Append(s.ctx, onShard[2], annals.Exact(1), event("Deposited", 3))
	require.NoError(t, err)
	require.EqualValues(t, 2, res.StreamVersion)
	health, err = shard.Status(s.ctx, s.proxy)
	require.NoError(t, err)
	for _, h := range health {
		require.True(t, h.Available, "shard %d: %s", h.Shard, h.Problem)
		require.Equal(t, annals.SchemaVersion(), h.SchemaVersion)
	}
}

func setConninfo(t *testing.T, s store, shardNo int, conninfo string) {
	t.Helper()
	_, err := s.proxy.Exec(s.ctx, "UPDATE annals_proxy.shards SET conninfo = $2 WHERE shard = $1", shardNo, conninfo)
	require.NoError(t, err)
	_, err = s.proxy.Exec(s.ctx, "SELECT annals_proxy.apply_map()")
	require.NoError(t, err)
}

// closedPort returns a port on 127.0.0.1 that nothing listens on (it was free a moment ago).
func closedPort(t *testing.T) int {
	t.Helper()
	port, err := pgutil.FreePort()
	require.NoError(t, err)
	return port
}

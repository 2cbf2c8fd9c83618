package replicas_test

import (
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

type added struct{ N int }

type counter struct{ Total int }

// Repositories load on the primary even when the client has a replica: with the standby's replay
// paused (so it is stale), every command decides on the current state at its first attempt, and
// snapshots are read from the primary too.
func TestRepositoryLoadsOnThePrimary(t *testing.T) {
	t.Parallel()
	p := ownPair(t) // pauses replay
	e := newEnv(t, p)
	store := annals.New(e.primary, annals.ClientOptions{Replicas: []*pgxpool.Pool{e.replay}})
	reg := domain.NewRegistry()
	domain.Register[added](reg, "Added")
	counters := domain.NewRepository(store, reg, domain.Decider[counter, int]{
		Initial: func() counter { return counter{} },
		Decide:  func(_ counter, n int) ([]any, error) { return []any{added{N: n}}, nil },
		Evolve: func(s counter, ev any) counter {
			s.Total += ev.(added).N
			return s
		},
	}, domain.RepositoryOptions{SnapshotEvery: 2, SnapshotType: "counter", MaxAttempts: 1})

	_, err := e.replay.Exec(e.ctx, "SELECT pg_wal_replay_pause()")
	require.NoError(t, err)
	total := 0
	for i := 1; i <= 5; i++ {
		res, err := counters.Handle(e.ctx, "counter-1", i)
		require.NoError(t, err, "with one attempt, a stale load would be a conflict")
		require.Equal(t, 1, res.Attempts)
		total += i
		require.Equal(t, total, res.State.Total)
	}
	state, version, err := counters.Load(e.ctx, "counter-1")
	require.NoError(t, err)
	require.Equal(t, 15, state.Total)
	require.EqualValues(t, 5, version)
	require.Zero(t, store.ReplicaStats().Replicas[0].Reads, "the repository never read on the standby")
	// The standby really is behind: an eventual read there does not find the stream (unless a
	// probe already found it lagging and the primary answered).
	_, err = store.StreamInfo(e.ctx, "counter-1")
	if err == nil {
		require.Zero(t, store.ReplicaStats().Replicas[0].Reads, "the stream was found, so the primary answered")
	} else {
		require.ErrorIs(t, err, annals.ErrStreamNotFound)
		require.EqualValues(t, 1, store.ReplicaStats().Replicas[0].Reads)
	}
}

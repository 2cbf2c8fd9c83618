package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
)

func TestLoadAt(t *testing.T) {
	t.Parallel()
	_, client := domainDB(t)
	ctx := t.Context()
	reg := tallyRegistry()
	d := tallyDecider()
	s := streamName("tally")
	writer := domain.NewRepository(client, reg, d, domain.RepositoryOptions{SnapshotEvery: 3})
	commands := [][]any{
		{Added{N: 5}}, {Scaled{Factor: 3}, Named{Name: "x"}}, {Added{N: 1}}, {Tagged{Tag: "a"}},
		{Scaled{Factor: 2}}, {Added{N: 7}, Added{N: 1}}, {Named{Name: "y"}},
	}
	var history []any
	for _, evs := range commands {
		res, err := writer.Handle(ctx, s, TallyCmd{Events: evs})
		require.NoError(t, err)
		history = append(history, res.Events...)
	}
	snap, ok, err := client.LoadSnapshot(ctx, s, "aggregate", 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(9), snap.StreamVersion, "as-of loads below it must not use it")
	// Two events past the snapshot: loads as of 10 and 11 start from it and read a bounded tail.
	for _, ev := range []any{Added{N: 2}, Scaled{Factor: 5}} {
		data, err := reg.Encode(ev, domain.Metadata{})
		require.NoError(t, err)
		_, err = client.Append(ctx, s, annals.Exact(int64(len(history))), data)
		require.NoError(t, err)
		history = append(history, ev)
	}

	recordedAt := map[int64]time.Time{}
	for ev, err := range client.ReadStream(ctx, s, annals.ReadOptions{}) {
		require.NoError(t, err)
		recordedAt[ev.StreamVersion] = ev.RecordedAt
	}

	repos := map[string]*domain.Repository[Tally, TallyCmd]{
		"snapshots on":  writer,
		"snapshots off": domain.NewRepository(client, reg, d, domain.RepositoryOptions{SnapshotEvery: -1}),
	}
	for name, repo := range repos {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for v := int64(1); v <= int64(len(history)); v++ {
				want := d.Fold(d.Initial(), history[:v]...)
				got, version, err := repo.LoadAt(ctx, s, annals.AtVersion(v))
				require.NoError(t, err, "version %d", v)
				require.Equal(t, v, version)
				require.Equal(t, want, got, "as of version %d", v)

				// As of the time event v was recorded: the whole append it belongs to.
				got, version, err = repo.LoadAt(ctx, s, annals.AtTime(recordedAt[v]))
				require.NoError(t, err, "time of version %d", v)
				require.GreaterOrEqual(t, version, v)
				require.Equal(t, recordedAt[v], recordedAt[version], "same append")
				require.Equal(t, d.Fold(d.Initial(), history[:version]...), got)
			}

			_, _, err := repo.LoadAt(ctx, s, annals.AtVersion(0))
			require.ErrorIs(t, err, annals.ErrStreamNotFound, "before the first event it did not exist")
			_, _, err = repo.LoadAt(ctx, s, annals.AtTime(recordedAt[1].Add(-time.Microsecond)))
			require.ErrorIs(t, err, annals.ErrStreamNotFound)

			got, version, err := repo.LoadAt(ctx, s, annals.AtVersion(1000))
			require.NoError(t, err)
			require.Equal(t, int64(len(history)), version, "past the end is now")
			require.Equal(t, d.Fold(d.Initial(), history...), got)
			got, version, err = repo.LoadAt(ctx, s, annals.AtTime(time.Now().Add(time.Hour)))
			require.NoError(t, err)
			require.Equal(t, int64(len(history)), version)
			require.Equal(t, d.Fold(d.Initial(), history...), got)

			_, _, err = repo.LoadAt(ctx, s, annals.AsOf{})
			require.ErrorIs(t, err, annals.ErrInvalidArgument)
			_, _, err = repo.LoadAt(ctx, s, annals.AtVersion(-1))
			require.ErrorIs(t, err, annals.ErrInvalidArgument)
		})
	}

	t.Run("aggregates", func(t *testing.T) {
		t.Parallel()
		s := streamName("account")
		repo := domain.NewAggregateRepository(client, accountRegistry(), newAccount, domain.RepositoryOptions{SnapshotEvery: 2})
		a, err := repo.Handle(ctx, s, func(a *Account) error { return a.OpenFor("ann") })
		require.NoError(t, err)
		for _, amount := range []int{10, 20, 30, 40} {
			require.NoError(t, a.Deposit(amount))
			require.NoError(t, repo.Save(ctx, a))
		}
		for v, balance := range []int{0, 10, 30, 60, 100} {
			at, err := repo.LoadAt(ctx, s, annals.AtVersion(int64(v+1)))
			require.NoError(t, err)
			require.Equal(t, balance, at.Balance, "version %d", v+1)
			require.Equal(t, int64(v+1), at.Version())
			require.Equal(t, s, at.ID())
		}
		_, err = repo.LoadAt(ctx, s, annals.AtVersion(0))
		require.ErrorIs(t, err, annals.ErrStreamNotFound)

		// A past state is read-only in practice: saving it conflicts with the present.
		old, err := repo.LoadAt(ctx, s, annals.AtVersion(2))
		require.NoError(t, err)
		require.NoError(t, old.Deposit(1))
		require.ErrorIs(t, repo.Save(ctx, old), annals.ErrWrongExpectedVersion)
	})
}

// A planted snapshot with a marker value shows when LoadAt uses a snapshot: only at or below
// the target version.
func TestLoadAtUsesSnapshotsOnlyAtOrBelowTheTarget(t *testing.T) {
	t.Parallel()
	_, client := domainDB(t)
	ctx := t.Context()
	s := streamName("tally")
	repo := domain.NewRepository(client, tallyRegistry(), tallyDecider(), domain.RepositoryOptions{SnapshotEvery: -1, SnapshotType: "t"})
	batch := make([]any, 6)
	for i := range batch {
		batch[i] = Added{N: 1}
	}
	_, err := repo.Handle(ctx, s, TallyCmd{Events: batch})
	require.NoError(t, err)
	_, err = client.SaveSnapshot(ctx, annals.Snapshot{StreamID: s, Type: "t", SchemaVersion: 1, StreamVersion: 4,
		State: []byte(`{"value": 1000, "events": 4}`)})
	require.NoError(t, err)

	on := domain.NewRepository(client, tallyRegistry(), tallyDecider(), domain.RepositoryOptions{SnapshotType: "t"})
	for v, want := range map[int64]int64{3: 3, 4: 1000, 5: 1001, 6: 1002} {
		got, version, err := on.LoadAt(ctx, s, annals.AtVersion(v))
		require.NoError(t, err)
		require.Equal(t, v, version)
		require.Equal(t, want, got.Value, "as of %d", v)
	}
}

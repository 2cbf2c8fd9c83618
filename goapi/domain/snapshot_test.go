package domain_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
)

func TestClientSnapshots(t *testing.T) {
	t.Parallel()
	_, client := domainDB(t)
	ctx := t.Context()
	s := streamName("snap")
	_, err := client.Append(ctx, s, annals.NoStream, annals.EventData{Type: "A"}, annals.EventData{Type: "B"}, annals.EventData{Type: "C"})
	require.NoError(t, err)
	snap := func(version int64, schema int, state string) annals.Snapshot {
		return annals.Snapshot{StreamID: s, Type: "counter", SchemaVersion: schema, StreamVersion: version, State: json.RawMessage(state)}
	}

	_, ok, err := client.LoadSnapshot(ctx, s, "counter", 1)
	require.NoError(t, err)
	require.False(t, ok)

	saved, err := client.SaveSnapshot(ctx, snap(2, 1, `{"n": 2}`))
	require.NoError(t, err)
	require.True(t, saved)
	got, ok, err := client.LoadSnapshot(ctx, s, "counter", 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(2), got.StreamVersion)
	require.JSONEq(t, `{"n": 2}`, string(got.State))
	require.Equal(t, s, got.StreamID)
	require.Equal(t, "counter", got.Type)

	saved, err = client.SaveSnapshot(ctx, snap(1, 1, `{"n": 1}`))
	require.NoError(t, err)
	require.False(t, saved, "an older snapshot is a no-op")
	got, _, _ = client.LoadSnapshot(ctx, s, "counter", 1)
	require.Equal(t, int64(2), got.StreamVersion)

	_, err = client.SaveSnapshot(ctx, snap(4, 1, `{"n": 4}`))
	var inv *annals.InvalidArgumentError
	require.ErrorAs(t, err, &inv, "ahead of the stream")
	require.Equal(t, "stream_version", inv.Argument)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "ST422", pgErr.Code)

	_, ok, err = client.LoadSnapshot(ctx, s, "counter", 2)
	require.NoError(t, err)
	require.False(t, ok, "another schema version is not returned")

	saved, err = client.SaveSnapshot(ctx, snap(2, 2, `{"count": 2}`))
	require.NoError(t, err)
	require.True(t, saved, "the same version in a new schema replaces it")
	got, ok, _ = client.LoadSnapshot(ctx, s, "counter", 2)
	require.True(t, ok)
	require.JSONEq(t, `{"count": 2}`, string(got.State))

	_, err = client.SaveSnapshot(ctx, snap(3, 1, ``))
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, err = client.SaveSnapshot(ctx, snap(3, 0, `{}`))
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, _, err = client.LoadSnapshot(ctx, "", "counter", 1)
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
}

func TestSnapshotPolicy(t *testing.T) {
	t.Parallel()
	_, client := domainDB(t)
	ctx := t.Context()
	reg := tallyRegistry()
	add := TallyCmd{Events: []any{Added{N: 1}}}

	t.Run("every N events, after the commit", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		repo := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{SnapshotEvery: 3, SnapshotType: "tally"})
		want := []int64{0, 0, 3, 3, 3, 6, 6, 6, 9}
		for i, w := range want {
			_, err := repo.Handle(ctx, s, add)
			require.NoError(t, err)
			snap, ok, err := client.LoadSnapshot(ctx, s, "tally", 1)
			require.NoError(t, err)
			require.Equal(t, w > 0, ok, "after event %d", i+1)
			require.Equal(t, w, snap.StreamVersion, "after event %d", i+1)
		}
		snap, _, _ := client.LoadSnapshot(ctx, s, "tally", 1)
		require.JSONEq(t, `{"value": 9, "name": "", "tags": null, "events": 9}`, string(snap.State))

		// A batch that jumps past the threshold snapshots at its end.
		_, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 1}, Added{N: 1}, Added{N: 1}, Added{N: 1}}})
		require.NoError(t, err)
		snap, _, _ = client.LoadSnapshot(ctx, s, "tally", 1)
		require.Equal(t, int64(13), snap.StreamVersion)
	})

	t.Run("the default is every 100 events", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		repo := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{})
		batch := make([]any, 99)
		for i := range batch {
			batch[i] = Added{N: 1}
		}
		_, err := repo.Handle(ctx, s, TallyCmd{Events: batch})
		require.NoError(t, err)
		_, ok, _ := client.LoadSnapshot(ctx, s, "aggregate", 1)
		require.False(t, ok)
		_, err = repo.Handle(ctx, s, add)
		require.NoError(t, err)
		snap, ok, _ := client.LoadSnapshot(ctx, s, "aggregate", 1)
		require.True(t, ok)
		require.Equal(t, int64(100), snap.StreamVersion)
	})

	t.Run("off: none written, none read", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		off := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{SnapshotEvery: -1, SnapshotType: "tally"})
		for range 5 {
			_, err := off.Handle(ctx, s, add)
			require.NoError(t, err)
		}
		_, ok, _ := client.LoadSnapshot(ctx, s, "tally", 1)
		require.False(t, ok)
		// A planted wrong snapshot is not read when snapshots are off, and is when they are on.
		_, err := client.SaveSnapshot(ctx, annals.Snapshot{StreamID: s, Type: "tally", SchemaVersion: 1, StreamVersion: 5, State: json.RawMessage(`{"value": -1}`)})
		require.NoError(t, err)
		state, _, err := off.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(5), state.Value)
		on := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{SnapshotType: "tally"})
		state, _, err = on.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(-1), state.Value, "proves loads start from the snapshot")
	})

	t.Run("a failing snapshot never fails the command; it is logged", func(t *testing.T) {
		t.Parallel()
		var logs lockedBuffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		s := streamName("tally")
		bad := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{SnapshotEvery: 1, SnapshotType: " padded", Logger: logger})
		res, err := bad.Handle(ctx, s, add)
		require.NoError(t, err)
		require.Equal(t, int64(1), res.Version)
		require.Contains(t, logs.String(), "snapshot not saved")
		require.Contains(t, logs.String(), s)

		// A state that does not encode to JSON.
		type Weird struct{ F func() }
		d := domain.Decider[Weird, TallyCmd]{
			Initial: func() Weird { return Weird{F: func() {}} },
			Decide:  func(_ Weird, c TallyCmd) ([]any, error) { return c.Events, nil },
			Evolve:  func(w Weird, _ any) Weird { return w },
		}
		weird := domain.NewRepository(client, reg, d, domain.RepositoryOptions{SnapshotEvery: 1, Logger: logger})
		s2 := streamName("tally")
		_, err = weird.Handle(ctx, s2, add)
		require.NoError(t, err)
		require.Contains(t, logs.String(), "encode state")
	})

	t.Run("a snapshot that no longer decodes is ignored and logged", func(t *testing.T) {
		t.Parallel()
		var logs lockedBuffer
		s := streamName("tally")
		repo := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{SnapshotType: "tally", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		_, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 4}, Named{Name: "x"}}})
		require.NoError(t, err)
		_, err = client.SaveSnapshot(ctx, annals.Snapshot{StreamID: s, Type: "tally", SchemaVersion: 1, StreamVersion: 2, State: json.RawMessage(`{"value": "not a number"}`)})
		require.NoError(t, err)
		state, version, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, Tally{Value: 4, Name: "x", Events: 2}, state)
		require.Equal(t, int64(2), version)
		require.Contains(t, logs.String(), "snapshot ignored")
	})

	t.Run("a new snapshot version ignores old snapshots", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		v1 := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{SnapshotEvery: 1, SnapshotType: "tally"})
		_, err := v1.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 2}}})
		require.NoError(t, err)
		_, err = client.SaveSnapshot(ctx, annals.Snapshot{StreamID: s, Type: "tally", SchemaVersion: 1, StreamVersion: 1, State: json.RawMessage(`{"value": 999}`)})
		require.NoError(t, err) // same version and schema: ignored, the stored one stays
		v2 := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{SnapshotEvery: 1, SnapshotType: "tally", SnapshotVersion: 2})
		state, _, err := v2.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(2), state.Value)
		_, err = v2.Handle(ctx, s, add)
		require.NoError(t, err)
		snap, ok, _ := client.LoadSnapshot(ctx, s, "tally", 2)
		require.True(t, ok)
		require.Equal(t, int64(2), snap.StreamVersion)
	})

	t.Run("aggregates snapshot too", func(t *testing.T) {
		t.Parallel()
		s := streamName("account")
		repo := domain.NewAggregateRepository(client, accountRegistry(), newAccount, domain.RepositoryOptions{SnapshotEvery: 2, SnapshotType: "account"})
		a, err := repo.Handle(ctx, s, func(a *Account) error { return a.OpenFor("ann") })
		require.NoError(t, err)
		for range 4 {
			require.NoError(t, a.Deposit(5))
			require.NoError(t, repo.Save(ctx, a))
		}
		snap, ok, err := client.LoadSnapshot(ctx, s, "account", 1)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, int64(4), snap.StreamVersion, "at 2 and 4; the same instance tracks its last snapshot")
		require.JSONEq(t, `{"owner": "ann", "balance": 15, "open": true}`, string(snap.State))
		loaded, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(5), loaded.Version())
		require.Equal(t, 20, loaded.Balance)
		require.Equal(t, s, loaded.ID())
	})
}

// propertySeed is the random seed of a property test: ANNALS_PROPERTY_SEED when set (to replay
// a failure), a fresh one otherwise; it is printed when the test fails.
func propertySeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if env := os.Getenv("ANNALS_PROPERTY_SEED"); env != "" {
		var err error
		seed, err = strconv.ParseUint(env, 10, 64)
		require.NoError(t, err, "ANNALS_PROPERTY_SEED")
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("property test seed: %d (replay with ANNALS_PROPERTY_SEED=%d)", seed, seed)
		}
	})
	return seed
}

// randomEvents returns 1..4 random tally events.
func randomEvents(rng *rand.Rand) []any {
	evs := make([]any, 1+rng.IntN(4))
	for i := range evs {
		switch rng.IntN(4) {
		case 0:
			evs[i] = Added{N: rng.Int64N(1000)}
		case 1:
			evs[i] = Scaled{Factor: 2 + rng.Int64N(9)}
		case 2:
			evs[i] = Named{Name: fmt.Sprintf("n%d", rng.IntN(100))}
		default:
			evs[i] = Tagged{Tag: fmt.Sprintf("t%d", rng.IntN(10))}
		}
	}
	return evs
}

// Loading with snapshots equals a full replay, now and as of every version, over random
// histories written through repositories with random snapshot intervals, raw appends that
// bypass the snapshot policy, and rejected commands.
func TestPropertySnapshotsEqualFullReplay(t *testing.T) {
	t.Parallel()
	seed := propertySeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	_, client := domainDB(t)
	ctx := t.Context()
	reg := tallyRegistry()
	d := tallyDecider()
	full := domain.NewRepository(client, reg, d, domain.RepositoryOptions{SnapshotEvery: -1})

	for stream := range 12 {
		s := streamName("prop")
		// Writers with different intervals share one snapshot type: the policy must hold
		// whichever wrote last.
		writers := make([]*domain.Repository[Tally, TallyCmd], 1+rng.IntN(3))
		for i := range writers {
			writers[i] = domain.NewRepository(client, reg, d, domain.RepositoryOptions{SnapshotEvery: 1 + rng.IntN(8), SnapshotType: "prop"})
		}
		var history []any
		steps := rng.IntN(40)
		for step := range steps {
			where := fmt.Sprintf("seed %d, stream %d, step %d", seed, stream, step)
			switch r := rng.IntN(10); {
			case r < 7:
				res, err := writers[rng.IntN(len(writers))].Handle(ctx, s, TallyCmd{Events: randomEvents(rng)})
				require.NoError(t, err, where)
				history = append(history, res.Events...)
				require.Equal(t, d.Fold(d.Initial(), history...), res.State, where)
			case r < 9: // another service appends without the repository
				evs := randomEvents(rng)
				data := make([]annals.EventData, len(evs))
				for i, ev := range evs {
					var err error
					data[i], err = reg.Encode(ev, domain.Metadata{})
					require.NoError(t, err)
				}
				_, err := client.Append(ctx, s, annals.Exact(int64(len(history))), data...)
				require.NoError(t, err, where)
				history = append(history, evs...)
			default:
				_, err := writers[0].Handle(ctx, s, TallyCmd{Fail: true})
				require.ErrorIs(t, err, errRejected, where)
			}

			want := d.Fold(d.Initial(), history...)
			for i, w := range writers {
				got, version, err := w.Load(ctx, s)
				if len(history) == 0 {
					require.ErrorIs(t, err, annals.ErrStreamNotFound, where)
					continue
				}
				require.NoError(t, err, where)
				require.Equal(t, int64(len(history)), version, "%s, writer %d", where, i)
				require.Equal(t, want, got, "%s, writer %d", where, i)
			}
			if len(history) > 0 {
				replayed, _, err := full.Load(ctx, s)
				require.NoError(t, err, where)
				require.Equal(t, want, replayed, where)
			}
		}

		// As of every version, with and without snapshots.
		for v := 0; v <= len(history); v++ {
			where := fmt.Sprintf("seed %d, stream %d, as of version %d", seed, stream, v)
			want := d.Fold(d.Initial(), history[:v]...)
			for _, r := range []*domain.Repository[Tally, TallyCmd]{writers[0], full} {
				got, version, err := r.LoadAt(ctx, s, annals.AtVersion(int64(v)))
				if v == 0 {
					require.ErrorIs(t, err, annals.ErrStreamNotFound, where)
					continue
				}
				require.NoError(t, err, where)
				require.Equal(t, int64(v), version, where)
				require.Equal(t, want, got, where)
			}
		}
	}
}

// The Tx forms save and load inside the caller's transaction: the snapshot is visible there
// before commit, to nobody else, and gone after a rollback.
func TestClientSnapshotsTx(t *testing.T) {
	t.Parallel()
	_, client := domainDB(t)
	ctx := t.Context()
	s := streamName("snaptx")
	tx, err := client.Pool().Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = client.AppendTx(ctx, tx, s, annals.NoStream, annals.EventData{Type: "A"}, annals.EventData{Type: "B"})
	require.NoError(t, err)
	saved, err := client.SaveSnapshotTx(ctx, tx, annals.Snapshot{StreamID: s, Type: "counter", SchemaVersion: 1,
		StreamVersion: 2, State: json.RawMessage(`{"n": 2}`)})
	require.NoError(t, err)
	require.True(t, saved)

	got, ok, err := client.LoadSnapshotTx(ctx, tx, s, "counter", 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(2), got.StreamVersion)
	_, ok, err = client.LoadSnapshot(ctx, s, "counter", 1)
	require.NoError(t, err)
	require.False(t, ok, "not visible outside the transaction before commit")

	require.NoError(t, tx.Rollback(ctx))
	_, ok, err = client.LoadSnapshot(ctx, s, "counter", 1)
	require.NoError(t, err)
	require.False(t, ok, "rolled back with the events")
}

package domain_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
)

func TestRepositoryLoadAndHandle(t *testing.T) {
	t.Parallel()
	_, client := domainDB(t)
	ctx := t.Context()
	repo := domain.NewRepository(client, tallyRegistry(), tallyDecider(), domain.RepositoryOptions{})

	t.Run("a missing stream is ErrStreamNotFound, not an empty state", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		state, version, err := repo.Load(ctx, s)
		require.ErrorIs(t, err, annals.ErrStreamNotFound)
		require.ErrorContains(t, err, s)
		require.Equal(t, int64(0), version)
		require.Equal(t, Tally{}, state, "Initial's state comes with the error")

		// A stream whose events fold back to the initial value exists.
		_, err = repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 0}}})
		require.NoError(t, err)
		state, version, err = repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(1), version)
		require.Equal(t, int64(0), state.Value)
	})

	t.Run("handle appends decided events expecting the loaded version", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		res, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 2}, Scaled{Factor: 5}, Named{Name: "five"}}})
		require.NoError(t, err)
		require.Equal(t, int64(3), res.Version)
		require.Equal(t, 1, res.Attempts)
		require.Equal(t, Tally{Value: 10, Name: "five", Events: 3}, res.State)
		require.Equal(t, []any{Added{N: 2}, Scaled{Factor: 5}, Named{Name: "five"}}, res.Events)
		require.Equal(t, int64(3), res.Appended.StreamVersion)
		require.Len(t, res.Appended.EventIDs, 3)

		res, err = repo.Handle(ctx, s, TallyCmd{Events: []any{&Added{N: 1}}}) // a pointer is fine
		require.NoError(t, err)
		require.Equal(t, int64(11), res.State.Value)
		require.Equal(t, Added{N: 1}, res.Events[0], "events come back as a reload sees them")

		state, version, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, res.State, state)
		require.Equal(t, int64(4), version)

		var types []string
		for ev, err := range client.ReadStream(ctx, s, annals.ReadOptions{}) {
			require.NoError(t, err)
			types = append(types, ev.EventType)
		}
		require.Equal(t, []string{"tally.added", "tally.scaled", "tally.named", "tally.added"}, types)
	})

	t.Run("nothing decided appends nothing; a rejection appends nothing", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		res, err := repo.Handle(ctx, s, TallyCmd{})
		require.NoError(t, err)
		require.Empty(t, res.Events)
		require.Equal(t, int64(0), res.Version)
		_, err = repo.Handle(ctx, s, TallyCmd{Fail: true})
		require.ErrorIs(t, err, errRejected)
		_, err = client.StreamInfo(ctx, s)
		require.ErrorIs(t, err, annals.ErrStreamNotFound)
	})

	t.Run("an unregistered event fails the command before anything is written", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		type Stray struct{ X int }
		_, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 1}, Stray{}}})
		require.ErrorIs(t, err, domain.ErrUnknownEventType)
		_, err = client.StreamInfo(ctx, s)
		require.ErrorIs(t, err, annals.ErrStreamNotFound)
	})

	t.Run("an event the registry cannot decode fails the load clearly", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		_, err := client.Append(ctx, s, annals.NoStream, annals.EventData{Type: "tally.added", Data: map[string]any{"n": "many"}})
		require.NoError(t, err)
		_, _, err = repo.Load(ctx, s)
		var de *domain.DecodeError
		require.ErrorAs(t, err, &de)
		require.Equal(t, s, de.StreamID)
		require.Equal(t, int64(1), de.StreamVersion)
		_, err = repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 1}}})
		require.ErrorIs(t, err, domain.ErrDecode)
	})

	t.Run("events carry the context's metadata", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		mdCtx := domain.ContextWithMetadata(ctx, domain.Metadata{CorrelationID: "req-42", Actor: "ann"})
		_, err := repo.Handle(mdCtx, s, TallyCmd{Events: []any{Added{N: 1}, Added{N: 2}}})
		require.NoError(t, err)
		for ev, err := range client.ReadStream(ctx, s, annals.ReadOptions{}) {
			require.NoError(t, err)
			md, err := domain.ParseMetadata(ev.Metadata)
			require.NoError(t, err)
			require.Equal(t, domain.Metadata{CorrelationID: "req-42", Actor: "ann"}, md)
		}
	})

}

func TestRepositoryRetriesConflicts(t *testing.T) {
	t.Parallel()
	_, client := domainDB(t)
	ctx := t.Context()
	reg := tallyRegistry()
	interfering := func(s string, conflicts int, decides *atomic.Int32) domain.Decider[Tally, TallyCmd] {
		return interferingDecider(t, client, s, conflicts, decides)
	}

	t.Run("reload and decide again", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		var decides atomic.Int32
		repo := domain.NewRepository(client, reg, interfering(s, 2, &decides), domain.RepositoryOptions{})
		res, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Scaled{Factor: 2}}})
		require.NoError(t, err)
		require.Equal(t, 3, res.Attempts)
		require.Equal(t, int64(3), res.Version)
		require.Equal(t, int64(400), res.State.Value, "decided on the state with both rival events")
	})

	t.Run("bounded: the conflict comes back after MaxAttempts", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		var decides atomic.Int32
		repo := domain.NewRepository(client, reg, interfering(s, 100, &decides), domain.RepositoryOptions{MaxAttempts: 4})
		_, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Scaled{Factor: 2}}})
		var conflict *annals.WrongExpectedVersionError
		require.ErrorAs(t, err, &conflict)
		require.Equal(t, int32(4), decides.Load())
		state, version, err := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{}).Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(4), version, "only the rival's events")
		require.Equal(t, int64(400), state.Value)
	})

	t.Run("the default is 3 attempts", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		var decides atomic.Int32
		repo := domain.NewRepository(client, reg, interfering(s, 100, &decides), domain.RepositoryOptions{})
		_, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 1}}})
		require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
		require.Equal(t, int32(3), decides.Load())
	})

	t.Run("concurrent writers lose no update", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		repo := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{MaxAttempts: 100, SnapshotEvery: 3})
		const writers = 16
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Go(func() {
				_, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 1}}})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		state, version, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(writers), version)
		require.Equal(t, int64(writers), state.Value)
	})

	t.Run("without retries, every append that succeeded counts exactly once", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		repo := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{MaxAttempts: 1})
		var wg sync.WaitGroup
		var ok, conflicts atomic.Int64
		for range 12 {
			wg.Go(func() {
				_, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 1}}})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, annals.ErrWrongExpectedVersion):
					conflicts.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			})
		}
		wg.Wait()
		require.Equal(t, int64(12), ok.Load()+conflicts.Load())
		state, version, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, ok.Load(), version)
		require.Equal(t, ok.Load(), state.Value)
	})
}

func TestRepositoryHandleTx(t *testing.T) {
	t.Parallel()
	pool, client := domainDB(t)
	ctx := t.Context()
	_, err := pool.Exec(ctx, "CREATE TABLE public.receipts (stream_id text PRIMARY KEY, value bigint NOT NULL)")
	require.NoError(t, err)
	repo := domain.NewRepository(client, tallyRegistry(), tallyDecider(), domain.RepositoryOptions{SnapshotEvery: 2})

	run := func(t *testing.T, s string, commit bool) domain.HandleResult[Tally] {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		res, err := repo.HandleTx(ctx, tx, s, TallyCmd{Events: []any{Added{N: 7}, Added{N: 1}}})
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "INSERT INTO public.receipts VALUES ($1, $2)", s, res.State.Value)
		require.NoError(t, err)
		if commit {
			require.NoError(t, tx.Commit(ctx))
		}
		return res
	}
	receipt := func(s string) (int64, error) {
		var v int64
		return v, pool.QueryRow(ctx, "SELECT value FROM public.receipts WHERE stream_id = $1", s).Scan(&v)
	}

	t.Run("commit: events, the caller's row and the snapshot together", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		res := run(t, s, true)
		require.Equal(t, int64(2), res.Version)
		v, err := receipt(s)
		require.NoError(t, err)
		require.Equal(t, int64(8), v)
		snap, ok, err := client.LoadSnapshot(ctx, s, "aggregate", 1)
		require.NoError(t, err)
		require.True(t, ok, "a due snapshot is written in the transaction")
		require.Equal(t, int64(2), snap.StreamVersion)
	})

	t.Run("rollback: nothing at all", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		run(t, s, false)
		_, err := receipt(s)
		require.Error(t, err)
		_, _, err = repo.Load(ctx, s)
		require.ErrorIs(t, err, annals.ErrStreamNotFound)
		_, ok, err := client.LoadSnapshot(ctx, s, "aggregate", 1)
		require.NoError(t, err)
		require.False(t, ok)
	})

	t.Run("a conflict is returned, not retried, and aborts the transaction", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		state, version, err := repo.LoadTx(ctx, tx, s)
		require.ErrorIs(t, err, annals.ErrStreamNotFound)
		require.Equal(t, Tally{}, state)
		require.Equal(t, int64(0), version)

		var decides atomic.Int32
		d := tallyDecider()
		decide := d.Decide
		d.Decide = func(st Tally, c TallyCmd) ([]any, error) {
			decides.Add(1)
			_, err := client.Append(ctx, s, annals.Any, annals.EventData{Type: "tally.added", Data: Added{N: 1}})
			require.NoError(t, err)
			return decide(st, c)
		}
		rival := domain.NewRepository(client, tallyRegistry(), d, domain.RepositoryOptions{})
		_, err = rival.HandleTx(ctx, tx, s, TallyCmd{Events: []any{Added{N: 1}}})
		require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
		require.Equal(t, int32(1), decides.Load())
	})

	t.Run("a failing snapshot leaves the transaction usable", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		bad := domain.NewRepository(client, tallyRegistry(), tallyDecider(),
			domain.RepositoryOptions{SnapshotEvery: 1, SnapshotType: " padded", Logger: discardLogger()})
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = bad.HandleTx(ctx, tx, s, TallyCmd{Events: []any{Added{N: 3}}})
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "INSERT INTO public.receipts VALUES ($1, 3)", s)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		_, version, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(1), version)
	})

	t.Run("a nil transaction is an invalid argument", func(t *testing.T) {
		t.Parallel()
		_, err := repo.HandleTx(ctx, nil, streamName("tally"), TallyCmd{})
		require.ErrorIs(t, err, annals.ErrInvalidArgument)
	})
}

// Event ids are fixed before the first append attempt: what Handle returns is what is stored.
func TestRepositoryEventIDs(t *testing.T) {
	t.Parallel()
	_, client := domainDB(t)
	ctx := t.Context()
	repo := domain.NewRepository(client, tallyRegistry(), tallyDecider(), domain.RepositoryOptions{})
	s := streamName("tally")
	res, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 1}, Tagged{Tag: "x"}}})
	require.NoError(t, err)
	var stored []uuid.UUID
	for ev, err := range client.ReadStream(ctx, s, annals.ReadOptions{}) {
		require.NoError(t, err)
		stored = append(stored, ev.EventID)
		require.Equal(t, 7, int(ev.EventID.Version()), "UUIDv7")
	}
	require.Equal(t, res.Appended.EventIDs, stored)
}

func TestRepositoryHandleAt(t *testing.T) {
	t.Parallel()
	_, client := domainDB(t)
	ctx := t.Context()
	reg := tallyRegistry()
	repo := domain.NewRepository(client, reg, tallyDecider(), domain.RepositoryOptions{})

	t.Run("runs at the expected version, refuses any other and appends nothing", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		res, err := repo.HandleAt(ctx, s, 0, TallyCmd{Events: []any{Added{N: 2}}})
		require.NoError(t, err, "0: the stream has no events yet")
		require.Equal(t, int64(1), res.Version)

		_, err = repo.HandleAt(ctx, s, 0, TallyCmd{Events: []any{Added{N: 5}}})
		var wrong *annals.WrongExpectedVersionError
		require.ErrorAs(t, err, &wrong)
		require.Equal(t, int64(1), wrong.Actual)
		require.Equal(t, s, wrong.StreamID)

		res, err = repo.HandleAt(ctx, s, 1, TallyCmd{Events: []any{Scaled{Factor: 3}}})
		require.NoError(t, err)
		require.Equal(t, int64(2), res.Version)
		require.Equal(t, int64(6), res.State.Value)

		state, version, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(2), version, "the refused command appended nothing")
		require.Equal(t, int64(6), state.Value)
	})

	t.Run("a writer slipping in between load and append wins; no retry", func(t *testing.T) {
		t.Parallel()
		s := streamName("tally")
		_, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 1}}})
		require.NoError(t, err)
		var decides atomic.Int32
		rival := domain.NewRepository(client, reg, interferingDecider(t, client, s, 100, &decides), domain.RepositoryOptions{MaxAttempts: 5})
		_, err = rival.HandleAt(ctx, s, 1, TallyCmd{Events: []any{Scaled{Factor: 2}}})
		var wrong *annals.WrongExpectedVersionError
		require.ErrorAs(t, err, &wrong)
		require.Equal(t, int64(2), wrong.Actual, "the version the rival left")
		require.Equal(t, int32(1), decides.Load(), "decided once: MaxAttempts does not apply")
		state, version, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(2), version)
		require.Equal(t, int64(101), state.Value, "only the rival's event")
	})

	t.Run("a negative version is an invalid argument", func(t *testing.T) {
		t.Parallel()
		_, err := repo.HandleAt(ctx, streamName("tally"), -1, TallyCmd{Events: []any{Added{N: 1}}})
		require.ErrorIs(t, err, annals.ErrInvalidArgument)
	})
}

// interferingDecider returns a tally decider whose Decide first lets a rival append an Added{100}
// to stream s, the first conflicts times, so the repository's append loses the race.
func interferingDecider(t *testing.T, client *annals.Client, s string, conflicts int, decides *atomic.Int32) domain.Decider[Tally, TallyCmd] {
	d := tallyDecider()
	decide := d.Decide
	d.Decide = func(st Tally, c TallyCmd) ([]any, error) {
		if int(decides.Add(1)) <= conflicts {
			_, err := client.Append(t.Context(), s, annals.Any, annals.EventData{Type: "tally.added", Data: Added{N: 100}})
			require.NoError(t, err)
		}
		return decide(st, c)
	}
	return d
}

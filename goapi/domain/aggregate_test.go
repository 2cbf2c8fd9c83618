package domain_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
)

func TestAggregateRaise(t *testing.T) {
	t.Parallel()
	a := newAccount()
	require.NoError(t, a.OpenFor("ann"))
	require.NoError(t, a.Deposit(30))
	require.Equal(t, 30, a.Balance, "Raise applies at once")
	require.Equal(t, []any{Opened{Owner: "ann"}, Deposited{Amount: 30}}, a.Pending())
	require.Equal(t, int64(0), a.Version(), "pending events do not count")
	a.Pending()[0] = nil
	require.Equal(t, Opened{Owner: "ann"}, a.Pending()[0], "Pending returns a copy")

	domain.Rehydrate(a, "account-9", Opened{Owner: "bo"}, Deposited{Amount: 5})
	require.Equal(t, "account-9", a.ID())
	require.Equal(t, int64(2), a.Version())
	require.Empty(t, a.Pending())
	require.Equal(t, 5+30, a.Balance, "Rehydrate applies to the aggregate as it is")
}

func TestAggregateRepository(t *testing.T) {
	t.Parallel()
	pool, client := domainDB(t)
	ctx := t.Context()
	reg := accountRegistry()
	repo := domain.NewAggregateRepository(client, reg, newAccount, domain.RepositoryOptions{})

	t.Run("new, save, load", func(t *testing.T) {
		t.Parallel()
		s := streamName("account")
		_, err := repo.Load(ctx, s)
		require.ErrorIs(t, err, annals.ErrStreamNotFound)

		a := repo.New(s)
		require.Equal(t, s, a.ID())
		require.NoError(t, a.OpenFor("ann"))
		require.NoError(t, a.Deposit(50))
		require.NoError(t, repo.Save(ctx, a))
		require.Empty(t, a.Pending(), "cleared after the commit")
		require.Equal(t, int64(2), a.Version())
		require.NoError(t, repo.Save(ctx, a), "nothing pending: a no-op")

		b, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(2), b.Version())
		require.Equal(t, 50, b.Balance)
		require.Equal(t, "ann", b.Owner)
		require.Empty(t, b.Pending())

		require.NoError(t, a.Withdraw(20))
		require.NoError(t, repo.Save(ctx, a), "the same instance saves again from its new version")
		b, err = repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, 30, b.Balance)
		require.Equal(t, int64(3), b.Version())
	})

	t.Run("a failed append keeps the pending events; a later save stores them once", func(t *testing.T) {
		t.Parallel()
		s := streamName("account")
		a := repo.New(s)
		require.NoError(t, a.OpenFor("ann"))
		require.NoError(t, a.Deposit(10))

		// Someone else creates the stream first: the save must fail and lose nothing.
		_, err := client.Append(ctx, s, annals.NoStream, annals.EventData{Type: "account.opened", Data: Opened{Owner: "rival"}})
		require.NoError(t, err)
		err = repo.Save(ctx, a)
		require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
		require.Equal(t, []any{Opened{Owner: "ann"}, Deposited{Amount: 10}}, a.Pending())
		require.Equal(t, int64(0), a.Version())
	})

	t.Run("ids are fixed at the first attempt, so a resend after an unknown outcome is a replay", func(t *testing.T) {
		t.Parallel()
		s := streamName("account")
		a := repo.New(s)
		require.NoError(t, a.OpenFor("ann"))
		require.NoError(t, a.Deposit(10))

		// The first attempt fails without an answer (here: a canceled context).
		canceled, cancel := context.WithCancel(ctx)
		cancel()
		require.Error(t, repo.Save(canceled, a))
		require.Len(t, a.Pending(), 2)
		ids := domain.PendingIDs(a)
		require.NotContains(t, ids, uuid.Nil)

		// Suppose it did commit and only the reply was lost: the batch is stored with those ids.
		_, err := client.Append(ctx, s, annals.NoStream,
			annals.EventData{ID: ids[0], Type: "account.opened", Data: Opened{Owner: "ann"}},
			annals.EventData{ID: ids[1], Type: "account.deposited", Data: Deposited{Amount: 10}})
		require.NoError(t, err)

		// Saving again resends the same ids at the same positions: a replay, nothing doubled.
		require.NoError(t, repo.Save(ctx, a))
		require.Equal(t, ids, eventIDs(t, client, s))
		require.Equal(t, int64(2), a.Version())
		require.Empty(t, a.Pending())
	})

	t.Run("handle reloads and runs the command again after a conflict", func(t *testing.T) {
		t.Parallel()
		s := streamName("account")
		_, err := repo.Handle(ctx, s, func(a *Account) error {
			if err := a.OpenFor("ann"); err != nil {
				return err
			}
			return a.Deposit(50)
		})
		require.NoError(t, err)

		// rival makes another writer append between the command's load and its append, once.
		rival := func(ev annals.EventData) func(*Account) {
			var once sync.Once
			return func(*Account) {
				once.Do(func() {
					_, err := client.Append(ctx, s, annals.Any, ev)
					require.NoError(t, err)
				})
			}
		}

		var runs atomic.Int32
		deposit := rival(annals.EventData{Type: "account.deposited", Data: Deposited{Amount: 100}})
		a, err := repo.Handle(ctx, s, func(a *Account) error {
			runs.Add(1)
			deposit(a)
			return a.Withdraw(40)
		})
		require.NoError(t, err)
		require.Equal(t, int32(2), runs.Load())
		require.Equal(t, 110, a.Balance, "decided again on the state with the rival's deposit")
		require.Equal(t, int64(4), a.Version())
		require.Empty(t, a.Pending())

		// The second run sees the rival's withdrawal and refuses: the stale decision never lands.
		withdraw := rival(annals.EventData{Type: "account.withdrawn", Data: Withdrawn{Amount: 100}})
		_, err = repo.Handle(ctx, s, func(a *Account) error {
			withdraw(a)
			return a.Withdraw(40)
		})
		require.ErrorIs(t, err, errInsufficientFunds)
		b, err := repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(5), b.Version(), "only the rival's event")
		require.Equal(t, 10, b.Balance)
	})

	t.Run("concurrent handlers lose no update", func(t *testing.T) {
		t.Parallel()
		s := streamName("account")
		busy := domain.NewAggregateRepository(client, reg, newAccount, domain.RepositoryOptions{MaxAttempts: 100, SnapshotEvery: 4})
		_, err := busy.Handle(ctx, s, func(a *Account) error { return a.OpenFor("ann") })
		require.NoError(t, err)
		var wg sync.WaitGroup
		for range 12 {
			wg.Go(func() {
				_, err := busy.Handle(ctx, s, func(a *Account) error { return a.Deposit(1) })
				if err != nil {
					t.Errorf("deposit: %v", err)
				}
			})
		}
		wg.Wait()
		a, err := busy.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, 12, a.Balance)
		require.Equal(t, int64(13), a.Version())
	})

	t.Run("save and handle in the caller's transaction", func(t *testing.T) {
		t.Parallel()
		s := streamName("account")
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		a := repo.New(s)
		require.NoError(t, a.OpenFor("ann"))
		require.NoError(t, repo.SaveTx(ctx, tx, a))
		require.Equal(t, int64(1), a.Version())
		b, err := repo.HandleTx(ctx, tx, s, func(a *Account) error { return a.Deposit(5) })
		require.NoError(t, err)
		require.Equal(t, int64(2), b.Version())
		loaded, err := repo.LoadTx(ctx, tx, s)
		require.NoError(t, err)
		require.Equal(t, 5, loaded.Balance)
		_, err = repo.Load(ctx, s)
		require.ErrorIs(t, err, annals.ErrStreamNotFound, "invisible outside until the commit")
		require.NoError(t, tx.Commit(ctx))
		loaded, err = repo.Load(ctx, s)
		require.NoError(t, err)
		require.Equal(t, int64(2), loaded.Version())

		require.ErrorIs(t, repo.SaveTx(ctx, nil, a), annals.ErrInvalidArgument)
		_, err = repo.HandleTx(ctx, nil, s, func(*Account) error { return nil })
		require.ErrorIs(t, err, annals.ErrInvalidArgument)
	})

	t.Run("an aggregate not made by the repository has no stream", func(t *testing.T) {
		t.Parallel()
		a := newAccount()
		require.NoError(t, a.OpenFor("x"))
		require.ErrorIs(t, repo.Save(ctx, a), annals.ErrInvalidArgument)
		require.Len(t, a.Pending(), 1)
	})

	t.Run("a deleted stream refuses the save and keeps the events", func(t *testing.T) {
		t.Parallel()
		s := streamName("account")
		a, err := repo.Handle(ctx, s, func(a *Account) error { return a.OpenFor("ann") })
		require.NoError(t, err)
		_, err = client.DeleteStream(ctx, s, annals.Exact(1), "closed")
		require.NoError(t, err)
		require.NoError(t, a.Deposit(1))
		require.True(t, errors.Is(repo.Save(ctx, a), annals.ErrStreamDeleted))
		require.Equal(t, []any{Deposited{Amount: 1}}, a.Pending())
	})
}

func eventIDs(t *testing.T, client *annals.Client, s string) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	for ev, err := range client.ReadStream(t.Context(), s, annals.ReadOptions{}) {
		require.NoError(t, err)
		ids = append(ids, ev.EventID)
	}
	return ids
}

package domain_test

import (
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/stretchr/testify/require"
)

// Two aggregates saved in one multi-append: a transfer commits both or neither, and a failed
// save keeps both aggregates' events pending.
func TestSaveTogether(t *testing.T) {
	t.Parallel()
	_, client := domainDB(t)
	ctx := t.Context()
	repo := domain.NewAggregateRepository(client, accountRegistry(), newAccount, domain.RepositoryOptions{})

	from, to := repo.New(streamName("account")), repo.New(streamName("account"))
	require.NoError(t, from.OpenFor("ann"))
	require.NoError(t, from.Deposit(100))
	require.NoError(t, to.OpenFor("bob"))
	pa, err := repo.Pending(ctx, from)
	require.NoError(t, err)
	pb, err := repo.Pending(ctx, to)
	require.NoError(t, err)
	require.NoError(t, domain.SaveTogether(ctx, client, pa, pb))
	require.EqualValues(t, 2, from.Version())
	require.EqualValues(t, 1, to.Version())
	require.Empty(t, from.Pending())

	// A concurrent change to one stream fails the whole save; nothing is written to the other.
	require.NoError(t, from.Withdraw(30))
	require.NoError(t, to.Deposit(30))
	other, err := repo.Load(ctx, to.ID())
	require.NoError(t, err)
	require.NoError(t, other.Deposit(1))
	require.NoError(t, repo.Save(ctx, other))
	pa, err = repo.Pending(ctx, from)
	require.NoError(t, err)
	pb, err = repo.Pending(ctx, to)
	require.NoError(t, err)
	err = domain.SaveTogether(ctx, client, pa, pb)
	var wev *annals.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	require.Equal(t, to.ID(), wev.StreamID)
	require.Len(t, from.Pending(), 1, "kept pending")
	reloaded, err := repo.Load(ctx, from.ID())
	require.NoError(t, err)
	require.Equal(t, 100, reloaded.Balance, "the withdrawal was not written")
}

package domain_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/goapi/domain"
)

// appendCounter counts the append statements (append_events, or append_event for one event) a pool sends.
type appendCounter struct{ n atomic.Int32 }

func (c *appendCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.Contains(data.SQL, "annals.append_events(") || strings.Contains(data.SQL, "annals.append_event(") {
		c.n.Add(1)
	}
	return ctx
}

func (c *appendCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// One retry loop: a repository sends at most MaxAttempts appends per call, whatever failed and
// whatever the client's ClientOptions.AppendAttempts, never the product of two loops.
func TestRepositoryOneRetryLoop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := annalstest.NewDBURL(t)
	newPool := func(t *testing.T, tracer pgx.QueryTracer) *pgxpool.Pool {
		cfg, err := pgxpool.ParseConfig(url)
		require.NoError(t, err)
		cfg.ConnConfig.RuntimeParams["search_path"] = ""
		cfg.ConnConfig.RuntimeParams["lock_timeout"] = "50ms" // a held lock fails fast: 55P03
		cfg.ConnConfig.Tracer = tracer
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		return pool
	}
	other := annals.New(newPool(t, nil), annals.ClientOptions{}) // the rival writer, not counted
	const clientTries = 4                                        // Append's own loop, which repositories must not use
	counted := func(t *testing.T) (*annals.Client, *appendCounter) {
		var c appendCounter
		return annals.New(newPool(t, &c), annals.ClientOptions{AppendAttempts: clientTries}), &c
	}
	// blockAppends holds a lock every append needs (rows in the events table) until the test
	// ends, so each append fails with 55P03 (retryable) after lock_timeout.
	blockAppends := func(t *testing.T) {
		tx, err := other.Pool().Begin(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
		_, err = tx.Exec(ctx, "LOCK TABLE annals_internal.events IN SHARE MODE")
		require.NoError(t, err)
	}

	// Not parallel: blockAppends locks the whole events table.
	t.Run("conflicts: MaxAttempts appends, each decided anew", func(t *testing.T) {
		client, appends := counted(t)
		s := streamName("tally")
		var decides atomic.Int32
		repo := domain.NewRepository(client, tallyRegistry(), interferingDecider(t, other, s, 100, &decides),
			domain.RepositoryOptions{MaxAttempts: 5})
		_, err := repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 1}}})
		require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
		require.Equal(t, int32(5), appends.n.Load())
		require.Equal(t, int32(5), decides.Load())
	})

	t.Run("transient failures: MaxAttempts appends of the same decision", func(t *testing.T) {
		client, appends := counted(t)
		s := streamName("tally")
		_, err := other.Append(ctx, s, annals.NoStream, annals.EventData{Type: "tally.added", Data: Added{N: 1}})
		require.NoError(t, err)
		var decides atomic.Int32
		repo := domain.NewRepository(client, tallyRegistry(), interferingDecider(t, other, s, 0, &decides),
			domain.RepositoryOptions{MaxAttempts: 3})
		blockAppends(t)
		_, err = repo.Handle(ctx, s, TallyCmd{Events: []any{Added{N: 1}}})
		require.Error(t, err)
		require.True(t, annals.IsRetryable(err), "the lock timeout comes back: %v", err)
		require.Equal(t, int32(3), appends.n.Load(), "not %d (Append's loop) nor %d (both)", clientTries, 3*clientTries)
		require.Equal(t, int32(1), decides.Load(), "a resend does not decide again")
	})

	t.Run("HandleAt and Save resend too, never more than MaxAttempts", func(t *testing.T) {
		client, appends := counted(t)
		s := streamName("tally")
		_, err := other.Append(ctx, s, annals.NoStream, annals.EventData{Type: "tally.added", Data: Added{N: 1}})
		require.NoError(t, err)
		opts := domain.RepositoryOptions{MaxAttempts: 2}
		repo := domain.NewRepository(client, tallyRegistry(), tallyDecider(), opts)
		accounts := domain.NewAggregateRepository(client, accountRegistry(), newAccount, opts)
		acc := accounts.New(streamName("account"))
		require.NoError(t, acc.OpenFor("ann"))
		blockAppends(t)

		_, err = repo.HandleAt(ctx, s, 1, TallyCmd{Events: []any{Added{N: 1}}})
		require.True(t, annals.IsRetryable(err), "%v", err)
		require.Equal(t, int32(2), appends.n.Load())

		err = accounts.Save(ctx, acc)
		require.True(t, annals.IsRetryable(err), "%v", err)
		require.Equal(t, int32(4), appends.n.Load())
		require.Len(t, acc.Pending(), 1, "still pending, with its id, for a later save")
	})

	t.Run("an aggregate's Handle resends without running the command again", func(t *testing.T) {
		client, appends := counted(t)
		accounts := domain.NewAggregateRepository(client, accountRegistry(), newAccount, domain.RepositoryOptions{MaxAttempts: 3})
		var runs int
		blockAppends(t)
		_, err := accounts.Handle(ctx, streamName("account"), func(a *Account) error {
			runs++
			return a.OpenFor("ann")
		})
		require.True(t, annals.IsRetryable(err), "%v", err)
		require.Equal(t, int32(3), appends.n.Load())
		require.Equal(t, 1, runs)
	})
}

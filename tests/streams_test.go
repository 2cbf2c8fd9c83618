package tests

import (
	"strings"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// streamIDs collects a ListStreams iterator's ids, failing on an error.
func streamIDs(t *testing.T, seq func(func(annals.StreamInfo, error) bool)) []string {
	t.Helper()
	var out []string
	for s, err := range seq {
		require.NoError(t, err)
		out = append(out, s.StreamID)
	}
	return out
}

func TestListStreams(t *testing.T) {
	t.Parallel()
	// Pages of two: every listing below crosses page boundaries.
	f := setup(t, annals.ClientOptions{ReadPageSize: 2})
	for _, s := range []string{"cart-1", "cart-2", "cart-3", "user-1", "user-2", "cart"} {
		_, err := f.store.Append(f.ctx, s, annals.NoStream, ev(t, "Created", nil))
		require.NoError(t, err)
	}
	_, err := f.store.Append(f.ctx, "cart-1", annals.Exact(1), ev(t, "Emptied", nil))
	require.NoError(t, err)
	_, err = f.store.DeleteStream(f.ctx, "user-2", annals.Any, "")
	require.NoError(t, err)

	all := annals.ListStreamsOptions{}
	require.Equal(t, []string{"cart", "cart-1", "cart-2", "cart-3", "user-1", "user-2"}, streamIDs(t, f.store.ListStreams(f.ctx, all)))
	require.Equal(t, []string{"cart", "cart-1", "cart-2", "cart-3"},
		streamIDs(t, f.store.ListStreams(f.ctx, annals.ListStreamsOptions{Category: "cart"})), "a stream id without '-' is its own category")
	require.Equal(t, []string{"cart-2", "cart-3", "user-1"},
		streamIDs(t, f.store.ListStreams(f.ctx, annals.ListStreamsOptions{After: "cart-1", Limit: 3})))
	require.Equal(t, []string{"cart-3"},
		streamIDs(t, f.store.ListStreams(f.ctx, annals.ListStreamsOptions{Category: "cart", After: "cart-2"})))
	require.Empty(t, streamIDs(t, f.store.ListStreams(f.ctx, annals.ListStreamsOptions{Category: "order"})))

	// Rows are stream_info's: version and state, deleted streams included.
	byID := map[string]annals.StreamInfo{}
	for s, err := range f.store.ListStreams(f.ctx, all) {
		require.NoError(t, err)
		byID[s.StreamID] = s
	}
	require.EqualValues(t, 2, byID["cart-1"].StreamVersion)
	require.Equal(t, "active", byID["cart-1"].State)
	require.Equal(t, "deleted", byID["user-2"].State)
	info, err := f.store.StreamInfo(f.ctx, "cart-1")
	require.NoError(t, err)
	require.Equal(t, info, byID["cart-1"])

	// Breaking out of the loop stops the paging.
	n := 0
	for range f.store.ListStreams(f.ctx, all) {
		n++
		if n == 3 {
			break
		}
	}
	require.Equal(t, 3, n)

	// An invalid category fails with the database's ST422.
	for _, err := range f.store.ListStreams(f.ctx, annals.ListStreamsOptions{Category: " cart"}) {
		require.ErrorIs(t, err, annals.ErrInvalidArgument)
	}
}

func TestStreamStats(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("stats")
	_, err := f.store.Append(f.ctx, s, annals.NoStream, events(t, "Filled", 5)...)
	require.NoError(t, err)

	st, err := f.store.StreamStats(f.ctx, s)
	require.NoError(t, err)
	require.EqualValues(t, 5, st.EventCount)
	require.Positive(t, st.SizeBytes)

	_, err = f.store.Append(f.ctx, s, annals.Exact(5), ev(t, "Filled", map[string]string{"note": strings.Repeat("x", 300)}))
	require.NoError(t, err)
	bigger, err := f.store.StreamStats(f.ctx, s)
	require.NoError(t, err)
	require.EqualValues(t, 6, bigger.EventCount)
	require.Greater(t, bigger.SizeBytes-st.SizeBytes, int64(300), "the new event's row counts")

	// A stream without events has zero stats; whether it exists is StreamInfo's question.
	st, err = f.store.StreamStats(f.ctx, stream("stats"))
	require.NoError(t, err)
	require.Zero(t, st)
	_, err = f.store.StreamStats(f.ctx, "$all")
	require.ErrorIs(t, err, annals.ErrReserved)
}

func TestReadEvent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s := stream("price")
	first, second := ev(t, "PriceSet", map[string]any{"cents": 1299}), ev(t, "PriceSet", map[string]any{"cents": 1499})
	first.SchemaVersion = 1
	_, err := f.store.Append(f.ctx, s, annals.NoStream, first, second)
	require.NoError(t, err)

	got, err := f.store.ReadEvent(f.ctx, second.ID, annals.ReadEventOptions{})
	require.NoError(t, err)
	require.Equal(t, f.readAll(t, s)[1], got, "the same event ReadStream returns")

	// Upcast like every read; Raw returns the stored bytes.
	_, err = f.pool.Exec(f.ctx, `
		CREATE FUNCTION public.price_v1_to_v2(data jsonb) RETURNS jsonb
		LANGUAGE sql IMMUTABLE SET search_path = pg_catalog RETURN data || '{"currency": "EUR"}';
		GRANT EXECUTE ON FUNCTION public.price_v1_to_v2(jsonb) TO annals_owner;
		SELECT annals.register_upcaster('PriceSet', 1, 'public.price_v1_to_v2(jsonb)');`)
	require.NoError(t, err)
	got, err = f.store.ReadEvent(f.ctx, first.ID, annals.ReadEventOptions{})
	require.NoError(t, err)
	require.Equal(t, 2, got.SchemaVersion)
	require.JSONEq(t, `{"cents": 1299, "currency": "EUR"}`, string(got.Data))
	raw, err := f.store.ReadEvent(f.ctx, first.ID, annals.ReadEventOptions{Raw: true})
	require.NoError(t, err)
	require.Equal(t, 1, raw.SchemaVersion)
	require.JSONEq(t, `{"cents": 1299}`, string(raw.Data))

	// An unknown id is ErrEventNotFound.
	_, err = f.store.ReadEvent(f.ctx, uuid.Must(uuid.NewV7()), annals.ReadEventOptions{})
	require.ErrorIs(t, err, annals.ErrEventNotFound)
	require.Equal(t, annals.ErrEventNotFound, annals.Kind(err))

	// Ids are unique per stream only: an id reused in another stream finds the oldest event.
	copied := second
	copied.Type = "PriceCopied"
	_, err = f.store.Append(f.ctx, stream("mirror"), annals.NoStream, copied)
	require.NoError(t, err)
	got, err = f.store.ReadEvent(f.ctx, second.ID, annals.ReadEventOptions{})
	require.NoError(t, err)
	require.Equal(t, s, got.StreamID)
	require.Equal(t, "PriceSet", got.EventType)
	var n int
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM annals.read_event($1)", second.ID).Scan(&n))
	require.Equal(t, 2, n, "annals.read_event returns both")
}

// The Tx twins run in the caller's transaction: they see its uncommitted writes, their own
// writes roll back with it, and the pool-based calls see none of it meanwhile.
func TestClientTxTwins(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := f.ctx
	committed := stream("tx")
	_, err := f.store.Append(ctx, committed, annals.NoStream, ev(t, "Opened", nil))
	require.NoError(t, err)
	_, err = f.pool.Exec(ctx, `
		CREATE TABLE public.seen (event_id uuid PRIMARY KEY);
		CREATE FUNCTION public.see(events annals.event[]) RETURNS void LANGUAGE sql
			AS $$ INSERT INTO public.seen SELECT e.event_id FROM unnest(events) AS e ON CONFLICT DO NOTHING $$;
		GRANT USAGE ON SCHEMA public TO annals_owner;
		GRANT SELECT, INSERT, UPDATE, DELETE ON public.seen TO annals_owner;
		SELECT annals.register_projection('seen', 'public.see(annals.event[])', ARRAY['public.seen']::regclass[], mode => 'async');`)
	require.NoError(t, err)

	tx, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck

	s := stream("tx")
	opened := ev(t, "Opened", map[string]int{"n": 1})
	_, err = f.store.AppendTx(ctx, tx, s, annals.NoStream, opened, ev(t, "Closed", nil))
	require.NoError(t, err)

	info, err := f.store.StreamInfoTx(ctx, tx, s)
	require.NoError(t, err)
	require.EqualValues(t, 2, info.StreamVersion)
	_, err = f.store.StreamInfo(ctx, s)
	require.ErrorIs(t, err, annals.ErrStreamNotFound, "the pool does not see the uncommitted stream")

	st, err := f.store.StreamStatsTx(ctx, tx, s)
	require.NoError(t, err)
	require.EqualValues(t, 2, st.EventCount)
	require.Contains(t, streamIDsTx(t, f, tx), s)
	require.NotContains(t, streamIDs(t, f.store.ListStreams(ctx, annals.ListStreamsOptions{})), s)

	got, err := f.store.ReadEventTx(ctx, tx, opened.ID, annals.ReadEventOptions{})
	require.NoError(t, err)
	require.Equal(t, s, got.StreamID)
	_, err = f.store.ReadEvent(ctx, opened.ID, annals.ReadEventOptions{})
	require.ErrorIs(t, err, annals.ErrEventNotFound)

	require.Len(t, collect(t, f.store.ReadStreamAsOfTx(ctx, tx, s, annals.AtVersion(1))), 1)
	v, err := f.store.StreamVersionAtTx(ctx, tx, s, info.UpdatedAt)
	require.NoError(t, err)
	require.EqualValues(t, 2, v)

	final, err := f.store.DeleteStreamTx(ctx, tx, committed, annals.Exact(1), "tx test")
	require.NoError(t, err)
	require.EqualValues(t, 1, final)

	created, err := f.store.CreateSubscriptionTx(ctx, tx, "tx-sub", annals.SubscriptionOptions{GroupSize: 2})
	require.NoError(t, err)
	require.True(t, created)
	members, err := f.store.SubscriptionStatusTx(ctx, tx, "tx-sub")
	require.NoError(t, err)
	require.Len(t, members, 2)
	moved, err := f.store.ResetSubscriptionTx(ctx, tx, "tx-sub", annals.Checkpoint{TransactionID: 1, GlobalPosition: 1}, 1)
	require.NoError(t, err)
	require.Equal(t, 1, moved)
	cp, err := f.store.SubscriptionCheckpointTx(ctx, tx, "tx-sub", 1)
	require.NoError(t, err)
	require.Equal(t, annals.Checkpoint{TransactionID: 1, GlobalPosition: 1}, cp)
	require.NoError(t, f.store.DropSubscriptionTx(ctx, tx, "tx-sub"))
	require.ErrorIs(t, f.store.DropSubscriptionTx(ctx, tx, "tx-sub"), annals.ErrNotFound)
	// That error aborted the transaction; a savepoint would have kept it. Start again.
	require.NoError(t, tx.Rollback(ctx))

	tx, err = f.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	require.NoError(t, f.store.CheckSchemaTx(ctx, tx))
	head, err := f.store.FeedHeadTx(ctx, tx)
	require.NoError(t, err)
	require.Positive(t, head.Barrier)
	_, err = f.store.ReadAllTx(ctx, tx, annals.Checkpoint{}, annals.FeedOptions{})
	require.NoError(t, err)
	_, err = f.store.ReadCategoryTx(ctx, tx, "tx", annals.Checkpoint{}, annals.FeedOptions{MaxCount: 10})
	require.NoError(t, err)
	_, err = f.store.RefreshViewsTx(ctx, tx, true)
	require.NoError(t, err)

	require.NoError(t, f.store.SetProjectionEnabledTx(ctx, tx, "seen", false))
	ps, err := f.store.ProjectionsTx(ctx, tx)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	require.False(t, ps[0].Enabled)
	require.NoError(t, f.store.SetProjectionEnabledTx(ctx, tx, "seen", true))
	_, err = f.store.RunAsyncProjectionsTx(ctx, tx, 100)
	require.NoError(t, err)
	_, err = f.store.RebuildProjectionTx(ctx, tx, "seen", nil, 0)
	require.NoError(t, err)
	require.NoError(t, f.store.DropProjectionTx(ctx, tx, "seen"))
	ps, err = f.store.ProjectionsTx(ctx, tx)
	require.NoError(t, err)
	require.Empty(t, ps)
	require.NoError(t, tx.Rollback(ctx))

	// Nothing of either transaction stayed.
	_, err = f.store.StreamInfo(ctx, s)
	require.ErrorIs(t, err, annals.ErrStreamNotFound)
	info, err = f.store.StreamInfo(ctx, committed)
	require.NoError(t, err)
	require.Equal(t, "active", info.State)
	members, err = f.store.SubscriptionStatus(ctx, "tx-sub")
	require.NoError(t, err)
	require.Empty(t, members)
	ps, err = f.store.Projections(ctx)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	require.True(t, ps[0].Enabled)
}

func streamIDsTx(t *testing.T, f fixture, tx pgx.Tx) []string {
	t.Helper()
	return streamIDs(t, f.store.ListStreamsTx(f.ctx, tx, annals.ListStreamsOptions{}))
}

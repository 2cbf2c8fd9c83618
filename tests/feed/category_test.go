package feed_test

import (
	"fmt"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// readCategory pages through one member's share of a category until it has want events.
func readCategory(t *testing.T, e env, category string, group annals.ConsumerGroup, pageSize, want int) []annals.RecordedEvent {
	t.Helper()
	return drainWith(t, annals.Checkpoint{}, pageSize, want, func(cp annals.Checkpoint) []annals.RecordedEvent {
		page, err := e.store.ReadCategory(e.ctx, category, cp, annals.FeedOptions{MaxCount: pageSize, Group: group})
		require.NoError(t, err)
		return page
	})
}

func TestReadCategoryReturnsOnlyThatCategory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var want []uuid.UUID
	for i := range 4 {
		want = append(want, appendEvents(t, e.pool, fmt.Sprintf("order-%d", i), "Placed", 2).IDs...)
		appendEvents(t, e.pool, fmt.Sprintf("orders-%d", i), "Placed", 1)  // another category with the same prefix
		appendEvents(t, e.pool, fmt.Sprintf("invoice-%d", i), "Issued", 1) // another category
	}
	// A stream id without '-' is its own category; one with several dashes belongs to the first part.
	want = append(want, appendEvents(t, e.pool, "order", "Placed", 1).IDs...)
	want = append(want, appendEvents(t, e.pool, "order-x-y", "Placed", 1).IDs...)
	appendEvents(t, e.pool, "orderx", "Placed", 1)

	// Wait until everything is readable, so every category read below sees the same prefix.
	drain(t, e.pool, annals.Checkpoint{}, 100, 8+4+4+2+1)

	got := readCategory(t, e, "order", annals.ConsumerGroup{}, 3, len(want))
	require.Equal(t, want, ids(got))
	for _, ev := range got {
		require.True(t, ev.StreamID == "order" || ev.StreamID[:6] == "order-", ev.StreamID)
	}
	sqlGot := collectEvents(t, e.pool, "SELECT "+eventColumns+" FROM annals.read_category('order') AS e")
	require.Equal(t, want, ids(sqlGot), "the SQL defaults read the whole category from the start")

	// read_all's categories filter agrees.
	filtered, err := e.store.ReadAll(e.ctx, annals.Checkpoint{}, annals.FeedOptions{Categories: []string{"order"}})
	require.NoError(t, err)
	require.Equal(t, want, ids(filtered))
	none, err := e.store.ReadCategory(e.ctx, "nosuch", annals.Checkpoint{}, annals.FeedOptions{MaxCount: 10})
	require.NoError(t, err)
	require.Empty(t, none)
}

// A consumer group of three: disjoint shares, complete together, each stream on one member
// only, every stream in version order.
func TestReadCategoryConsumerGroupSharesAreDisjointAndComplete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const streams = 30
	var all []uuid.UUID
	for round := range 3 {
		for i := range streams {
			all = append(all, appendEvents(t, e.pool, fmt.Sprintf("grp-%d", i), "Moved", 1+round).IDs...)
		}
	}
	appendEvents(t, e.pool, "other-1", "Moved", 5)
	whole := readCategory(t, e, "grp", annals.ConsumerGroup{}, 1000, len(all))
	require.ElementsMatch(t, all, ids(whole))

	// Each share's size, from the whole category and the member hash, so each drain is exact.
	shareSize := map[int]int{}
	for _, ev := range whole {
		var m int
		require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals_internal.member_of($1, 3)", ev.StreamID).Scan(&m))
		shareSize[m]++
	}

	owner := map[string]int{}
	union := map[uuid.UUID]int{}
	total := 0
	for member := range 3 {
		share := readCategory(t, e, "grp", annals.ConsumerGroup{Member: member, Size: 3}, 7, shareSize[member])
		require.NotEmpty(t, share, "30 streams over 3 members: every member gets some")
		last := map[string]int64{}
		for _, ev := range share {
			if o, ok := owner[ev.StreamID]; ok {
				require.Equal(t, o, member, "stream %s went to members %d and %d", ev.StreamID, o, member)
			}
			owner[ev.StreamID] = member
			union[ev.EventID]++
			require.Equal(t, last[ev.StreamID]+1, ev.StreamVersion, "stream %s out of order", ev.StreamID)
			last[ev.StreamID] = ev.StreamVersion
		}
		total += len(share)

		// The SQL function agrees with the Go wrapper.
		sqlShare := collectEvents(t, e.pool, "SELECT "+eventColumns+" FROM annals.read_category('grp', '0', 0, 1000, $1, 3) AS e", member)
		require.Equal(t, ids(share), ids(sqlShare))
	}
	require.Len(t, owner, streams, "every stream lands on a member")
	require.Equal(t, len(all), total, "the shares do not overlap")
	require.Len(t, union, len(all), "together the shares are the whole category")
	for id, n := range union {
		require.Equal(t, 1, n, "event %s delivered to %d members", id, n)
	}
}

func TestReadCategoryRejectsInvalidArguments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, g := range []annals.ConsumerGroup{{Member: 3, Size: 3}, {Member: -1, Size: 3}, {Member: 0, Size: 1025}} {
		_, err := e.store.ReadCategory(e.ctx, "grp", annals.Checkpoint{}, annals.FeedOptions{MaxCount: 10, Group: g})
		require.ErrorIs(t, err, annals.ErrInvalidArgument, "%+v", g)
		var ia *annals.InvalidArgumentError
		require.ErrorAs(t, err, &ia)
		require.Contains(t, []string{"consumer_member", "consumer_size"}, ia.Argument)
	}
	for _, sql := range []string{
		"SELECT count(*) FROM annals.read_category('grp', '0', 0, 10, 0, 0)",
		"SELECT count(*) FROM annals.read_category('grp', '0', 0, 10, NULL, 3)",
		"SELECT count(*) FROM annals.read_category('grp-1', '0', 0, 10, 0, 1)",
		"SELECT count(*) FROM annals.read_category('', '0', 0, 10, 0, 1)",
		"SELECT count(*) FROM annals.read_category('grp', '0', -1, 10, 0, 1)",
		"SELECT count(*) FROM annals.read_category('grp', '0', 0, 0, 0, 1)",
		"SELECT count(*) FROM annals.read_all(NULL, 0, 10)",
		"SELECT count(*) FROM annals.read_all('0', 0, 0)",
	} {
		var n int
		err := e.pool.QueryRow(e.ctx, sql).Scan(&n)
		requirePgCode(t, err, "ST422")
	}
	_, err := e.store.ReadCategory(e.ctx, "grp-1", annals.Checkpoint{}, annals.FeedOptions{MaxCount: 10})
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
}

// ReadCategory takes ReadAll's options: raw reads included; each refuses what only the other does.
func TestReadCategoryTakesFeedOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.store.Append(e.ctx, "price-1", annals.NoStream,
		annals.EventData{Type: "PriceSet", SchemaVersion: 1, Data: map[string]any{"cents": 1299}})
	require.NoError(t, err)
	_, err = e.pool.Exec(e.ctx, `
		CREATE FUNCTION public.price_v1_to_v2(data jsonb) RETURNS jsonb
		LANGUAGE sql IMMUTABLE SET search_path = pg_catalog RETURN data || '{"currency": "EUR"}';
		GRANT EXECUTE ON FUNCTION public.price_v1_to_v2(jsonb) TO annals_owner;
		SELECT annals.register_upcaster('PriceSet', 1, 'public.price_v1_to_v2(jsonb)');`)
	require.NoError(t, err)
	drain(t, e.pool, annals.Checkpoint{}, 10, 1)

	upcast, err := e.store.ReadCategory(e.ctx, "price", annals.Checkpoint{}, annals.FeedOptions{})
	require.NoError(t, err)
	require.Len(t, upcast, 1)
	require.Equal(t, 2, upcast[0].SchemaVersion)
	require.JSONEq(t, `{"cents": 1299, "currency": "EUR"}`, string(upcast[0].Data))
	raw, err := e.store.ReadCategory(e.ctx, "price", annals.Checkpoint{}, annals.FeedOptions{Raw: true})
	require.NoError(t, err)
	require.Len(t, raw, 1)
	require.Equal(t, 1, raw[0].SchemaVersion)
	require.JSONEq(t, `{"cents": 1299}`, string(raw[0].Data))
	rawAll, err := e.store.ReadAll(e.ctx, annals.Checkpoint{}, annals.FeedOptions{Raw: true})
	require.NoError(t, err)
	require.Equal(t, raw, rawAll)

	for name, opts := range map[string]annals.FeedOptions{
		"event_types": {EventTypes: []string{"PriceSet"}},
		"categories":  {Categories: []string{"price"}},
	} {
		_, err := e.store.ReadCategory(e.ctx, "price", annals.Checkpoint{}, opts)
		var ia *annals.InvalidArgumentError
		require.ErrorAs(t, err, &ia, name)
		require.Equal(t, name, ia.Argument)
	}
	_, err = e.store.ReadAll(e.ctx, annals.Checkpoint{}, annals.FeedOptions{Group: annals.ConsumerGroup{Member: 0, Size: 2}})
	var ia *annals.InvalidArgumentError
	require.ErrorAs(t, err, &ia)
	require.Equal(t, "group", ia.Argument)
}

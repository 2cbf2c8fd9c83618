package cold

import (
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/stretchr/testify/require"
)

// TestTaggedEventsStayHot: the cold tier keeps no tags, so compress_events stops at the first
// tagged event in feed order and archive_stream refuses a stream with one (ST422); tagged reads
// and the append's replay (tags are content) keep working.
func TestTaggedEventsStayHot(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, err := f.store.Append(f.ctx, "plain-1", annals.NoStream, ev("ItemsReceived", 1), ev("ItemsShipped", 2))
	require.NoError(t, err)
	tagged := ev("Enrolled", 3)
	tagged.Tags = []string{"course:7"}
	r, err := f.store.Append(f.ctx, "course-7", annals.NoStream, tagged)
	require.NoError(t, err)
	_, err = f.store.Append(f.ctx, "plain-2", annals.NoStream, ev("ItemsReceived", 4))
	require.NoError(t, err)

	waitBarrier(t, f)
	moved := scalar[int64](t, f, "SELECT annals.compress_events('0 seconds')")
	require.EqualValues(t, 2, moved, "the events before the tagged one move, the rest wait")
	require.EqualValues(t, 2, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events"))

	_, err = f.store.ArchiveStream(f.ctx, "course-7", annals.Any)
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	require.ErrorContains(t, err, "tags")

	again, err := f.store.Append(f.ctx, "course-7", annals.NoStream, tagged)
	require.NoError(t, err, "a resent tagged batch is a replay")
	require.Equal(t, r, again)
	retagged := tagged
	retagged.Tags = []string{"course:8"}
	_, err = f.store.Append(f.ctx, "course-7", annals.NoStream, retagged)
	require.ErrorIs(t, err, annals.ErrEventIDConflict, "other tags under a stored id are other content")

	require.EqualValues(t, 1, scalar[int64](t, f,
		`SELECT count(*) FROM annals.read_tagged('[{"tags": ["course:7"]}]') AS e`))
}

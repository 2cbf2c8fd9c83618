package cold

import (
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/stretchr/testify/require"
)

// Tagged events move to cold storage like the others; their tags stay searchable beside the
// segments (annals_internal.cold_tags). read_tagged returns the same rows, tags included, hot or
// cold; a conditional append sees a cold event that matches its condition; the append's replay
// compares the tags of a cold event; archive_stream takes a tagged stream; a purge takes the
// kept tags with the segments.
func TestTaggedEventsGoCold(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tag := func(e annals.EventData, tags ...string) annals.EventData {
		e.Tags = tags
		return e
	}
	_, err := f.store.Append(f.ctx, "plain-1", annals.NoStream, ev("ItemsReceived", 1), ev("ItemsShipped", 2))
	require.NoError(t, err)
	enrolled, noted := tag(ev("Enrolled", 3), "course:7", "student:42"), ev("CourseNoted", 4)
	r, err := f.store.Append(f.ctx, "course-7", annals.NoStream, enrolled, noted)
	require.NoError(t, err)
	_, err = f.store.Append(f.ctx, "plain-2", annals.NoStream, ev("ItemsReceived", 5))
	require.NoError(t, err)
	_, err = f.store.Append(f.ctx, "course-8", annals.NoStream, tag(ev("Enrolled", 6), "course:8", "student:42"),
		tag(ev("Dropped", 7), "course:8", "student:42"))
	require.NoError(t, err)
	_, err = f.store.Append(f.ctx, "course-7", annals.Exact(2), tag(ev("Dropped", 8), "course:7", "student:43"))
	require.NoError(t, err)

	queries := []string{
		`[{"tags": ["course:7"]}]`,
		`[{"tags": ["student:42"]}]`,
		`[{"types": ["Dropped"], "tags": ["student:42"]}, {"types": ["Enrolled"], "tags": ["course:7"]}]`,
		`[{"tags": ["course:7", "student:43"]}, {"tags": ["course:8"]}]`,
		`[{"tags": ["nobody"]}]`,
	}
	tagged := func() []string {
		var out []string
		for _, q := range queries {
			out = append(out, rowsText(t, f.ctx, f.pool, `SELECT * FROM annals.read_tagged($1::jsonb)`, q))
			// Paged after the first match: the checkpoint works across the tiers too.
			out = append(out, rowsText(t, f.ctx, f.pool, `
				SELECT r.* FROM (SELECT * FROM annals.read_tagged($1::jsonb) LIMIT 1) AS p,
				       annals.read_tagged($1::jsonb, p.transaction_id, p.global_position, 2) AS r`, q))
		}
		return out
	}
	waitBarrier(t, f) // read_tagged, like the feed, returns what is below the barrier
	hot := tagged()
	require.Contains(t, hot[0], "student:42", "tags come with the events")
	hotStream := rowsText(t, f.ctx, f.pool, `SELECT * FROM annals_internal.stored_events('course-7', ARRAY(SELECT r.event_id FROM annals.read_stream('course-7', raw => true) AS r)) ORDER BY stream_version`)

	waitBarrier(t, f)
	require.EqualValues(t, 8, scalar[int64](t, f, "SELECT annals.compress_events('0 seconds')"), "tagged events move too")
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events"))
	require.EqualValues(t, 4, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.cold_tags"), "one row per tagged event")
	require.Equal(t, hot, tagged(), "read_tagged, cold")
	require.Equal(t, hotStream, rowsText(t, f.ctx, f.pool, `SELECT * FROM annals_internal.stored_events('course-7', ARRAY(SELECT r.event_id FROM annals.read_stream('course-7', raw => true) AS r)) ORDER BY stream_version`),
		"the replay check's view of a stream, tags included")

	// The append's replay: tags are content, hot or cold.
	resent, err := f.store.Append(f.ctx, "course-7", annals.NoStream, enrolled, noted)
	require.NoError(t, err, "a resent tagged batch, now cold, is a replay")
	require.Equal(t, r, resent)
	_, err = f.store.Append(f.ctx, "course-7", annals.NoStream, tag(enrolled, "course:9"), noted)
	require.ErrorIs(t, err, annals.ErrEventIDConflict, "other tags under a stored id are other content")

	// A conditional append decided before a cold matching event fails, naming it; decided after
	// it, it passes.
	all, err := f.store.ReadTagged(f.ctx, annals.Tags("course:7"), annals.Checkpoint{}, annals.FeedOptions{})
	require.NoError(t, err)
	require.Len(t, all, 2)
	_, err = f.store.AppendConditional(f.ctx, annals.Condition{Query: annals.Tags("course:7"), After: all[0].Checkpoint()},
		annals.StreamAppend{StreamID: "course-7", Events: []annals.EventData{tag(ev("Enrolled", 9), "course:7", "student:44")}})
	var cf *annals.ConditionFailedError
	require.ErrorAs(t, err, &cf)
	require.Equal(t, all[1].Checkpoint(), cf.Conflict)
	require.Equal(t, "course-7", cf.StreamID)
	require.EqualValues(t, 3, cf.StreamVersion)
	_, err = f.store.AppendConditional(f.ctx, annals.Condition{Query: annals.Tags("course:7"), After: all[1].Checkpoint()},
		annals.StreamAppend{StreamID: "course-7", Events: []annals.EventData{tag(ev("Enrolled", 9), "course:7", "student:44")}})
	require.NoError(t, err)

	// archive_stream takes a stream with tagged events; reads stay the same.
	waitBarrier(t, f)
	before := rowsText(t, f.ctx, f.pool, `SELECT * FROM annals.read_tagged('[{"tags": ["course:7"]}]')`)
	require.EqualValues(t, 1, scalar[int64](t, f, "SELECT annals.archive_stream('course-7')"))
	require.Equal(t, before, rowsText(t, f.ctx, f.pool, `SELECT * FROM annals.read_tagged('[{"tags": ["course:7"]}]')`))
	require.Contains(t, before, "student:44")

	// A purge removes the stream's cold events and their kept tags (logged, as for segments);
	// nothing else may delete them.
	_, err = f.pool.Exec(f.ctx, "DELETE FROM annals_internal.cold_tags")
	require.Equal(t, "ST405", sqlState(err))
	_, err = f.pool.Exec(f.ctx, "UPDATE annals_internal.cold_tags SET tags = '{x}'")
	require.Equal(t, "ST405", sqlState(err))
	_, err = f.store.PurgeStream(f.ctx, "course-7", annals.Any, "test")
	require.NoError(t, err)
	require.Zero(t, scalar[int64](t, f, "SELECT count(*) FROM annals_internal.cold_tags WHERE stream_id = 'course-7'"))
	require.Equal(t, rowsText(t, f.ctx, f.pool, `SELECT * FROM annals.read_tagged('[{"tags": ["course:8"]}]')`),
		rowsText(t, f.ctx, f.pool, `SELECT * FROM annals.read_tagged('[{"tags": ["student:42"]}]')`),
		"only course-8's events carry student:42 now")
}

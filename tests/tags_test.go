package tests

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func tagged(t *testing.T, typ string, tags ...string) annals.EventData {
	t.Helper()
	e := ev(t, typ, map[string]any{})
	e.Tags = tags
	return e
}

func TestTagsStoredAndRead(t *testing.T) {
	t.Parallel()
	f := setup(t)
	s1, s2 := stream("enrolment"), stream("enrolment")
	_, err := f.store.Append(f.ctx, s1, annals.NoStream, tagged(t, "Enrolled", "course:1", "student:1"))
	require.NoError(t, err)
	_, err = f.store.Append(f.ctx, s2, annals.NoStream,
		tagged(t, "Enrolled", "course:2", "student:1"), tagged(t, "Dropped", "course:2", "student:1"), ev(t, "Untagged", nil))
	require.NoError(t, err)

	got := waitTagged(t, f, annals.Tags("student:1"), 3)
	require.Len(t, got, 3)
	require.Equal(t, []string{"course:1", "student:1"}, got[0].Tags, "stored and returned as given")
	require.Equal(t, "Dropped", got[2].EventType)

	// Types narrow an item; items are ORed; an event matching two items comes once.
	got, err = f.store.ReadTagged(f.ctx, annals.TagQuery{
		{Types: []string{"Enrolled"}, Tags: []string{"student:1", "course:2"}},
		{Tags: []string{"course:1"}},
		{Tags: []string{"student:1", "course:1"}},
	}, annals.Checkpoint{}, annals.FeedOptions{})
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, s1, got[0].StreamID)
	require.Equal(t, s2, got[1].StreamID)
	require.Equal(t, "Enrolled", got[1].EventType)

	// Paging by checkpoint.
	page, err := f.store.ReadTagged(f.ctx, annals.Tags("student:1"), annals.Checkpoint{}, annals.FeedOptions{MaxCount: 2})
	require.NoError(t, err)
	require.Len(t, page, 2)
	rest, err := f.store.ReadTagged(f.ctx, annals.Tags("student:1"), page[1].Checkpoint(), annals.FeedOptions{MaxCount: 2})
	require.NoError(t, err)
	require.Len(t, rest, 1)
	require.Equal(t, "Dropped", rest[0].EventType)

	// A tagged single event goes through append_events; a replay compares the tags too.
	e := tagged(t, "Enrolled", "course:3")
	s3 := stream("enrolment")
	_, err = f.store.Append(f.ctx, s3, annals.NoStream, e)
	require.NoError(t, err)
	_, err = f.store.Append(f.ctx, s3, annals.NoStream, e)
	require.NoError(t, err, "replay")
	e.Tags = []string{"course:4"}
	_, err = f.store.Append(f.ctx, s3, annals.NoStream, e)
	require.ErrorIs(t, err, annals.ErrEventIDConflict)
}

func TestTagQueriesInvalid(t *testing.T) {
	t.Parallel()
	f := setup(t)
	queries := []struct{ query, argument string }{
		{`null`, "query"},
		{`{}`, "query"},
		{`[]`, "query"},
		{`[1]`, "query[0]"},
		{`[{"tags":["a"],"kinds":[]}]`, "query[0]"},
		{`[{}]`, "query[0].tags"},
		{`[{"tags":[]}]`, "query[0].tags"},
		{`[{"tags":"a"}]`, "query[0].tags"},
		{`[{"tags":[1]}]`, "query[0].tags[0]"},
		{`[{"tags":["ok",""]}]`, "query[0].tags[1]"},
		{`[{"tags":["a"],"types":[]}]`, "query[0].types"},
		{`[{"tags":["a"],"types":"X"}]`, "query[0].types"},
		{`[{"tags":["a"],"types":[null]}]`, "query[0].types[0]"},
		{`[{"tags":["a"]},{"tags":["b"],"types":[" X"]}]`, "query[1].types[0]"},
	}
	for _, q := range queries {
		_, err := f.pool.Exec(f.ctx, "SELECT * FROM annals.read_tagged($1::jsonb)", q.query)
		pgErr := requirePgError(t, err, "ST422")
		require.Equal(t, q.argument, detailOf(t, pgErr)["argument"], "read_tagged %s", q.query)

		cond := `{"query":` + q.query + `}`
		_, err = f.pool.Exec(f.ctx, `SELECT * FROM annals.append_conditional('[{"stream_id":"a-1","events":[]}]', $1::jsonb)`, cond)
		pgErr = requirePgError(t, err, "ST422")
		require.Equal(t, "condition."+q.argument, detailOf(t, pgErr)["argument"], "append_conditional %s", q.query)
	}
	hundredOne := "["
	for i := range 101 {
		if i > 0 {
			hundredOne += ","
		}
		hundredOne += `{"tags":["a"]}`
	}
	_, err := f.pool.Exec(f.ctx, "SELECT * FROM annals.read_tagged($1::jsonb)", hundredOne+"]")
	requirePgError(t, err, "ST422")
	_, err = f.pool.Exec(f.ctx, `SELECT * FROM annals.read_tagged('[{"tags":["a"]}]', NULL)`)
	requirePgError(t, err, "ST422")
	_, err = f.pool.Exec(f.ctx, `SELECT * FROM annals.read_tagged('[{"tags":["a"]}]', '0', 0, 0)`)
	requirePgError(t, err, "ST422")

	conditions := []string{
		`null`, `[]`, `{"query":[{"tags":["a"]}],"before":{}}`,
		`{"query":[{"tags":["a"]}],"after":1}`,
		`{"query":[{"tags":["a"]}],"after":{"transaction_id":"x","position":0}}`,
		`{"query":[{"tags":["a"]}],"after":{"transaction_id":"1","position":-1}}`,
		`{"query":[{"tags":["a"]}],"after":{"transaction_id":"1"}}`,
		`{"query":[{"tags":["a"]}],"after":{"transaction_id":"1","position":0,"x":1}}`,
	}
	for _, c := range conditions {
		_, err := f.pool.Exec(f.ctx, `SELECT * FROM annals.append_conditional('[{"stream_id":"a-1","events":[]}]', $1::jsonb)`, c)
		pgErr := requirePgError(t, err, "ST422")
		require.Regexp(t, `^condition`, detailOf(t, pgErr)["argument"], c)
	}
	_, err = f.pool.Exec(f.ctx, `SELECT * FROM annals.append_events('a-1', NULL, '[{"type":"X","tags":{}}]')`)
	pgErr := requirePgError(t, err, "ST422")
	require.Equal(t, "events[0].tags", detailOf(t, pgErr)["argument"])
}

func TestAppendConditional(t *testing.T) {
	t.Parallel()
	f := setup(t)
	course := annals.TagQuery{{Types: []string{"Enrolled"}, Tags: []string{"course:9"}}}
	s := stream("enrolment")
	res, err := f.store.AppendConditional(f.ctx, annals.Condition{Query: course},
		annals.StreamAppend{StreamID: s, Expected: annals.NoStream, Events: []annals.EventData{tagged(t, "Enrolled", "course:9", "student:1")}})
	require.NoError(t, err)
	pos := annals.Checkpoint{TransactionID: res[0].TransactionID, GlobalPosition: res[0].GlobalPosition}

	// Decided on the empty history: the event just appended conflicts, and is named.
	_, err = f.store.AppendConditional(f.ctx, annals.Condition{Query: course},
		annals.StreamAppend{StreamID: stream("enrolment"), Expected: annals.NoStream, Events: []annals.EventData{tagged(t, "Enrolled", "course:9", "student:2")}})
	var cf *annals.ConditionFailedError
	require.ErrorAs(t, err, &cf)
	require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
	require.Equal(t, pos, cf.Conflict)
	require.Equal(t, s, cf.StreamID)
	require.EqualValues(t, 1, cf.StreamVersion)
	require.Equal(t, "Enrolled", cf.EventType)
	requirePgError(t, err, "ST409")

	// Decided after it: passes. Another type or tag does not match.
	_, err = f.store.AppendConditional(f.ctx, annals.Condition{Query: course, After: pos},
		annals.StreamAppend{StreamID: stream("enrolment"), Expected: annals.NoStream, Events: []annals.EventData{tagged(t, "Enrolled", "course:9", "student:2")}})
	require.NoError(t, err)
	_, err = f.store.AppendConditional(f.ctx, annals.Condition{Query: annals.TagQuery{{Types: []string{"Dropped"}, Tags: []string{"course:9"}}}},
		annals.StreamAppend{StreamID: stream("enrolment"), Events: []annals.EventData{tagged(t, "Dropped", "course:9")}})
	require.NoError(t, err)
	_, err = f.store.AppendConditional(f.ctx, annals.Condition{Query: annals.Tags("course:9", "student:7")},
		annals.StreamAppend{StreamID: stream("enrolment"), Events: []annals.EventData{tagged(t, "Enrolled", "course:9", "student:7")}})
	require.NoError(t, err)
	// A version conflict is still a version conflict.
	_, err = f.store.AppendConditional(f.ctx, annals.Condition{Query: annals.Tags("nothing")},
		annals.StreamAppend{StreamID: s, Expected: annals.NoStream, Events: events(t, "X", 1)})
	var wev *annals.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
}

// Many concurrent conditional appends decided on the same (empty) facts: exactly one wins.
func TestConditionalAppendsOnTheSameFactsOneWins(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{AppendAttempts: 1})
	q := annals.Tags("seat:1A")
	errs := race(24, func(i int) error {
		_, err := f.store.AppendConditional(f.ctx, annals.Condition{Query: q},
			annals.StreamAppend{StreamID: fmt.Sprintf("booking-%d-%d", streamSeq.Add(1), i), Expected: annals.NoStream,
				Events: []annals.EventData{tagged(t, "SeatBooked", "seat:1A")}})
		return err
	})
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		var cf *annals.ConditionFailedError
		require.ErrorAs(t, err, &cf)
	}
	require.Equal(t, 1, won)
}

// The course/student rule: a course takes at most courseLimit students, a student at most
// studentLimit courses. Many concurrent enrolments through DecideTagged; afterwards the events
// themselves must keep both limits.
func TestEnrolmentLimitsUnderConcurrency(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{AppendAttempts: 1})
	const courses, students, courseLimit, studentLimit = 3, 8, 4, 2
	prefix := fmt.Sprintf("t%d", streamSeq.Add(1))
	courseTag := func(c int) string { return fmt.Sprintf("%s-course:%d", prefix, c) }
	studentTag := func(s int) string { return fmt.Sprintf("%s-student:%d", prefix, s) }

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for range 10 {
				c, s := rnd.IntN(courses), rnd.IntN(students)
				query := annals.TagQuery{
					{Types: []string{"Enrolled"}, Tags: []string{courseTag(c)}},
					{Types: []string{"Enrolled"}, Tags: []string{studentTag(s)}},
				}
				_, err := f.store.DecideTagged(f.ctx, query, 50, func(evs []annals.TaggedEvent) ([]annals.StreamAppend, error) {
					inCourse, ofStudent := 0, 0
					for _, e := range evs {
						hasC, hasS := false, false
						for _, tg := range e.Tags {
							hasC = hasC || tg == courseTag(c)
							hasS = hasS || tg == studentTag(s)
						}
						if hasC && hasS {
							return nil, nil // already enrolled
						}
						if hasC {
							inCourse++
						}
						if hasS {
							ofStudent++
						}
					}
					if inCourse >= courseLimit || ofStudent >= studentLimit {
						return nil, nil
					}
					return []annals.StreamAppend{{StreamID: fmt.Sprintf("enrolment-%s-%d-%d", prefix, c, s), Expected: annals.NoStream,
						Events: []annals.EventData{tagged(t, "Enrolled", courseTag(c), studentTag(s))}}}, nil
				})
				if err != nil && !errors.Is(err, annals.ErrWrongExpectedVersion) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	perCourse, perStudent := map[string]int{}, map[string]int{}
	total := 0
	for c := range courses {
		evs, err := f.store.ReadTagged(f.ctx, annals.Tags(courseTag(c)), annals.Checkpoint{}, annals.FeedOptions{})
		require.NoError(t, err)
		for _, e := range evs {
			total++
			perCourse[e.Tags[0]]++
			perStudent[e.Tags[1]]++
		}
	}
	t.Logf("%d enrolments: per course %v, per student %v", total, perCourse, perStudent)
	require.NotZero(t, total)
	for k, n := range perCourse {
		require.LessOrEqual(t, n, courseLimit, k)
	}
	for k, n := range perStudent {
		require.LessOrEqual(t, n, studentLimit, k)
	}
}

// Overlapping conditional appends wait for each other; disjoint ones do not. Measured by what
// blocks, not by time: the first append's transaction stays open while the second runs.
func TestConditionalAppendsBlockOnlyWhenOverlapping(t *testing.T) {
	t.Parallel()
	f := setup(t, annals.ClientOptions{AppendAttempts: 1})
	p := fmt.Sprintf("b%d", streamSeq.Add(1))
	tx, err := f.pool.Begin(f.ctx)
	require.NoError(t, err)
	defer tx.Rollback(f.ctx) //nolint:errcheck
	_, err = f.store.AppendConditionalTx(f.ctx, tx, annals.Condition{Query: annals.Tags(p + ":a")},
		annals.StreamAppend{StreamID: stream("held"), Events: []annals.EventData{tagged(t, "X", p+":a")}})
	require.NoError(t, err)

	// Disjoint query and tags: completes while tx holds its locks (a wait would hang here until
	// the lock_timeout fails it with 55P03).
	conn, err := f.pool.Acquire(f.ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(f.ctx, "SET lock_timeout = '60s'")
	require.NoError(t, err)
	_, err = f.store.AppendConditionalTx(f.ctx, mustBegin(t, f, conn.Conn()), annals.Condition{Query: annals.Tags(p + ":b")},
		annals.StreamAppend{StreamID: stream("free"), Events: []annals.EventData{tagged(t, "X", p+":b")}})
	require.NoError(t, err, "a disjoint conditional append does not wait")
	var waiting int
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT count(*) FROM pg_catalog.pg_stat_activity
		WHERE datname = current_database() AND wait_event = 'advisory'`).Scan(&waiting))
	require.Zero(t, waiting)

	// Overlapping: waits for tx, then fails on tx's event.
	done := make(chan error, 1)
	go func() {
		_, err := f.store.AppendConditional(f.ctx, annals.Condition{Query: annals.TagQuery{{Types: []string{"X"}, Tags: []string{p + ":a"}}}},
			annals.StreamAppend{StreamID: stream("late"), Events: []annals.EventData{tagged(t, "X", p+":a")}})
		done <- err
	}()
	waitForAdvisoryWaiter(t, f)
	select {
	case err := <-done:
		t.Fatalf("the overlapping append finished while the first was open: %v", err)
	default:
	}
	require.NoError(t, tx.Commit(f.ctx))
	var cf *annals.ConditionFailedError
	require.ErrorAs(t, <-done, &cf)
}

func mustBegin(t *testing.T, f fixture, conn *pgx.Conn) pgx.Tx {
	t.Helper()
	tx, err := conn.Begin(f.ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(f.ctx) })
	return tx
}

// At REPEATABLE READ (and SERIALIZABLE) the snapshot predates the locks: a conflicting append
// that committed in between must not pass the check unseen.
func TestConditionalAppendAtRepeatableRead(t *testing.T) {
	t.Parallel()
	for _, iso := range []pgx.TxIsoLevel{pgx.RepeatableRead, pgx.Serializable} {
		f := setup(t, annals.ClientOptions{AppendAttempts: 1})
		for _, first := range []bool{true, false} { // the key rows new, then existing
			q := annals.Tags(fmt.Sprintf("rr%d:%v", streamSeq.Add(1), first))
			if !first {
				_, err := f.store.AppendConditional(f.ctx, annals.Condition{Query: q},
					annals.StreamAppend{StreamID: stream("rr"), Events: []annals.EventData{tagged(t, "X", q[0].Tags[0])}})
				require.NoError(t, err)
			}
			seen, pos := readAllTagged(t, f, q, map[bool]int{true: 0, false: 1}[first])
			tx, err := f.pool.BeginTx(f.ctx, pgx.TxOptions{IsoLevel: iso})
			require.NoError(t, err)
			t.Cleanup(func() { _ = tx.Rollback(f.ctx) }) // before the pool closes, should a check fail
			_, err = tx.Exec(f.ctx, "SELECT 1")          // the snapshot
			require.NoError(t, err)
			_, err = f.store.AppendConditional(f.ctx, annals.Condition{Query: q, After: pos},
				annals.StreamAppend{StreamID: stream("rr"), Events: []annals.EventData{tagged(t, "X", q[0].Tags[0])}})
			require.NoError(t, err)
			_, err = f.store.AppendConditionalTx(f.ctx, tx, annals.Condition{Query: q, After: pos},
				annals.StreamAppend{StreamID: stream("rr"), Events: []annals.EventData{tagged(t, "X", q[0].Tags[0])}})
			require.Error(t, err, "%v, %d events seen: the stale snapshot must not pass", iso, len(seen))
			require.True(t, annals.IsRetryable(err) || errors.Is(err, annals.ErrWrongExpectedVersion), "%v", err)
			require.NoError(t, tx.Rollback(f.ctx))
		}
	}
}

// readAllTagged waits until the gap-free read shows at least n events matching q (other tests'
// transactions on the cluster hold the feed barrier back for a while) and returns them with the
// last one's position.
func readAllTagged(t *testing.T, f fixture, q annals.TagQuery, n int) ([]annals.TaggedEvent, annals.Checkpoint) {
	t.Helper()
	evs := waitTagged(t, f, q, n)
	if len(evs) == 0 {
		return evs, annals.Checkpoint{}
	}
	return evs, evs[len(evs)-1].Checkpoint()
}

// waitTagged reads the events matching q until there are at least n.
func waitTagged(t *testing.T, f fixture, q annals.TagQuery, n int) []annals.TaggedEvent {
	t.Helper()
	for i := 0; ; i++ {
		evs, err := f.store.ReadTagged(f.ctx, q, annals.Checkpoint{}, annals.FeedOptions{})
		require.NoError(t, err)
		if len(evs) >= n {
			return evs
		}
		require.Less(t, i, 6000, "the feed barrier did not pass %d tagged events within a minute", n)
		time.Sleep(10 * time.Millisecond)
	}
}

package feed_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// committedEvent is where a writer saw an event land.
type committedEvent struct {
	stream  string
	version int64
}

// Concurrent writers on overlapping streams, some transactions rolled back on purpose, some
// refused with 40001 by the early-id rule, while readers with page sizes 1, 7, 50 and 500 page
// through the feed from the start: every reader sees exactly the committed events, each once,
// every stream in version order.
func TestFeedStressWritersRollbacksAndReaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const (
		writers  = 6
		duration = 3 * time.Second
	)
	streams := make([]string, 10)
	for i := range streams {
		streams[i] = fmt.Sprintf("stress%d-%d", i%3, i)
	}

	var (
		mu        sync.Mutex
		committed = map[uuid.UUID]committedEvent{}
		rolled    atomic.Int64 // events in transactions rolled back on purpose
		refused   atomic.Int64 // transactions refused by a retryable error
	)
	record := func(as ...appended) {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range as {
			for i, id := range a.IDs {
				committed[id] = committedEvent{a.Stream, a.firstVersion() + int64(i)}
			}
		}
	}

	wctx, stop := context.WithTimeout(e.ctx, duration)
	defer stop()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for wctx.Err() == nil {
				if err := writeOnce(e.ctx, e, rng, streams, record, &rolled, &refused); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}

	expected := atomic.Int64{}
	expected.Store(-1)
	type readerResult struct {
		size   int
		events []annals.RecordedEvent
		err    error
	}
	results := make(chan readerResult, 4)
	for i, size := range []int{1, 7, 50, 500} {
		go func() {
			evs, err := readFeedUntil(e, size, i%2 == 0, &expected)
			results <- readerResult{size, evs, err}
		}()
	}

	wg.Wait()
	require.False(t, t.Failed())
	expected.Store(int64(len(committed)))
	t.Logf("writers committed %d events, rolled back %d on purpose, %d transactions refused as retryable",
		len(committed), rolled.Load(), refused.Load())
	require.Greater(t, len(committed), 100, "the writers did too little to stress anything")
	require.Positive(t, rolled.Load(), "some transactions must have rolled back")

	for range 4 {
		r := <-results
		require.NoError(t, r.err, "reader with page size %d", r.size)
		require.Len(t, r.events, len(committed), "reader with page size %d", r.size)
		last := map[string]int64{}
		for _, ev := range r.events {
			c, ok := committed[ev.EventID]
			require.True(t, ok, "reader %d saw an event no writer committed: %+v", r.size, ev)
			require.Equal(t, c, committedEvent{ev.StreamID, ev.StreamVersion}, "reader %d", r.size)
			require.Equal(t, last[ev.StreamID]+1, ev.StreamVersion, "reader %d: stream %s out of order", r.size, ev.StreamID)
			last[ev.StreamID] = ev.StreamVersion
		}
	}
}

// writeOnce does one random unit of work: an autocommit append, or a transaction appending to
// one or two streams that commits or (a third of the time) rolls back.
func writeOnce(ctx context.Context, e env, rng *rand.Rand, streams []string, record func(...appended),
	rolled, refused *atomic.Int64) error {
	pick := func() string { return streams[rng.IntN(len(streams))] }
	if rng.IntN(2) == 0 {
		a, err := tryAppend(ctx, e.pool, pick(), "Auto", 1+rng.IntN(3))
		if err != nil {
			if annals.IsRetryable(err) {
				refused.Add(1)
				return nil
			}
			return err
		}
		record(a)
		return nil
	}

	targets := []string{pick()}
	if rng.IntN(2) == 0 {
		if s := pick(); s != targets[0] {
			targets = append(targets, s)
		}
	}
	slices.Sort(targets) // one lock order: no deadlocks between writers
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	var done []appended
	for _, s := range targets {
		a, err := tryAppend(ctx, tx, s, "InTx", 1+rng.IntN(4))
		if err != nil {
			if annals.IsRetryable(err) {
				refused.Add(1) // an older id met a younger appender: the 40001 rule at work
				return nil
			}
			return err
		}
		done = append(done, a)
		if rng.IntN(3) == 0 {
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond) // widen the interleavings
		}
	}
	if rng.IntN(3) == 0 {
		for _, a := range done {
			rolled.Add(int64(len(a.IDs)))
		}
		return tx.Rollback(ctx)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	record(done...)
	return nil
}

// readFeedUntil pages through the feed from the start (through the Go API or plain SQL) until
// the writers are done and it has as many events as they committed; it checks on the way that
// nothing repeats and the feed order and every stream's version order hold.
func readFeedUntil(e env, size int, viaGo bool, expected *atomic.Int64) ([]annals.RecordedEvent, error) {
	ctx := e.ctx
	var (
		after annals.Checkpoint
		out   []annals.RecordedEvent
		seen  = map[uuid.UUID]bool{}
		last  = map[string]int64{}
	)
	read := func() ([]annals.RecordedEvent, error) {
		if viaGo {
			return e.store.ReadAll(ctx, after, annals.FeedOptions{MaxCount: size})
		}
		return queryEvents(ctx, e.pool, "SELECT "+eventColumns+" FROM annals.read_all($1, $2, $3) AS e",
			after.TransactionID, after.GlobalPosition, size)
	}
	deadline := time.Time{}
	for {
		page, err := read()
		if err != nil {
			return out, err
		}
		if len(page) > size {
			return out, fmt.Errorf("page of %d events for max_count %d", len(page), size)
		}
		for _, ev := range page {
			switch {
			case !ev.Checkpoint().After(after):
				return out, fmt.Errorf("feed went backwards: %+v after %+v", ev.Checkpoint(), after)
			case seen[ev.EventID]:
				return out, fmt.Errorf("event %s delivered twice", ev.EventID)
			case ev.StreamVersion != last[ev.StreamID]+1:
				return out, fmt.Errorf("stream %s: version %d after %d", ev.StreamID, ev.StreamVersion, last[ev.StreamID])
			}
			seen[ev.EventID] = true
			last[ev.StreamID] = ev.StreamVersion
			after = ev.Checkpoint()
		}
		out = append(out, page...)
		want := expected.Load()
		if want >= 0 && int64(len(out)) > want {
			return out, fmt.Errorf("read %d events, only %d were committed", len(out), want)
		}
		if len(page) == size {
			continue
		}
		if want >= 0 {
			if int64(len(out)) == want {
				// Drained: the writers are done, so one more read must find nothing.
				extra, err := read()
				if err == nil && len(extra) > 0 {
					err = fmt.Errorf("%d events after the drained feed", len(extra))
				}
				return out, err
			}
			if deadline.IsZero() {
				deadline = time.Now().Add(waitTimeout)
			} else if time.Now().After(deadline) {
				return out, fmt.Errorf("feed stalled at %d of %d events", len(out), want)
			}
		}
		time.Sleep(time.Millisecond)
	}
}

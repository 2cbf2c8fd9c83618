package cold

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/stretchr/testify/require"
)

// Readers running while events move (compress_events in small steps, archive_stream, appends
// going on, to archived streams too) never see an event missing or twice, and every event they
// see is byte for byte the one they saw hot.
func TestReadersDuringMoves(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const streams = 40
	for round := range 30 {
		for s := range streams {
			batch := []annals.EventData{ev("ItemsReceived", round), ev("ItemsShipped", round+s)}
			_, err := f.store.Append(f.ctx, fmt.Sprintf("stock-%d", s), annals.Exact(int64(2*round)), batch...)
			require.NoError(t, err)
		}
	}
	// The seeded events as read hot, by position (once the feed shows them all: another
	// session's long transaction on the cluster holds the barrier back for a while).
	hot := map[int64]string{}
	for try := 0; len(hot) < streams*60; try++ {
		require.Less(t, try, 600, "the feed shows %d of the %d seeded events", len(hot), streams*60)
		if try > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		hot = map[int64]string{}
		rows, err := f.pool.Query(f.ctx, "SELECT e.global_position, e::text FROM annals.read_all('0', 0, 100000) AS e")
		require.NoError(t, err)
		for rows.Next() {
			var pos int64
			var line string
			require.NoError(t, rows.Scan(&pos, &line))
			hot[pos] = line
		}
		require.NoError(t, rows.Err())
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
		stop.Store(true)
	}
	var passes, streamReads atomic.Int64

	// Feed readers: full passes in small pages.
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				seen := map[int64]bool{}
				xid, pos := "0", int64(0)
				for !stop.Load() {
					rows, err := f.pool.Query(f.ctx, `SELECT e.global_position, e::text, e.transaction_id::text
						FROM annals.read_all($1::xid8, $2, $3) AS e`, xid, pos, 13+r*20)
					if err != nil {
						fail(err)
						return
					}
					n := 0
					for rows.Next() {
						var p int64
						var line string
						if err := rows.Scan(&p, &line, &xid); err != nil {
							fail(err)
							return
						}
						n++
						pos = p
						if seen[p] {
							fail(fmt.Errorf("reader %d: position %d twice", r, p))
							return
						}
						seen[p] = true
						if want, ok := hot[p]; ok && want != line {
							fail(fmt.Errorf("reader %d: position %d reads %s, hot it was %s", r, p, line, want))
							return
						}
					}
					if err := rows.Err(); err != nil {
						fail(err)
						return
					}
					if n == 0 {
						break
					}
				}
				if stop.Load() {
					return
				}
				for p := range hot {
					if !seen[p] {
						fail(fmt.Errorf("reader %d: position %d missing from a full pass", r, p))
						return
					}
				}
				passes.Add(1)
			}
		}()
	}
	// Stream readers: every stream is versions 1..n, the seeded ones as they were hot.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			s := fmt.Sprintf("stock-%d", i%streams)
			rows, err := f.pool.Query(f.ctx, "SELECT e.stream_version, e.global_position, e::text FROM annals.read_stream($1, NULL, 100000) AS e", s)
			if err != nil {
				fail(err)
				return
			}
			v := int64(0)
			for rows.Next() {
				var ver, p int64
				var line string
				if err := rows.Scan(&ver, &p, &line); err != nil {
					fail(err)
					return
				}
				v++
				if ver != v {
					fail(fmt.Errorf("%s: version %d where %d was due", s, ver, v))
					return
				}
				if want, ok := hot[p]; ok && want != line {
					fail(fmt.Errorf("%s: position %d differs from hot", s, p))
					return
				}
			}
			if err := rows.Err(); err != nil {
				fail(err)
				return
			}
			if v < 60 {
				fail(fmt.Errorf("%s: %d events, 60 were seeded", s, v))
				return
			}
			streamReads.Add(1)
		}
	}()
	// An appender, to every stream including archived ones: 400 events while the moves run (a
	// bounded number, so the feed readers' passes reach the head).
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 400 && !stop.Load(); i++ {
			if _, err := f.store.Append(f.ctx, fmt.Sprintf("stock-%d", i%streams), annals.Any, ev("ItemsReceived", i)); err != nil {
				fail(err)
				return
			}
		}
	}()

	// The mover: small compress steps with archives in between, until everything seeded is cold.
	// Every few steps it waits for a reader's full pass to end, so passes overlap the moves.
	for i := 0; !stop.Load(); i++ {
		if i%5 == 4 {
			for p := passes.Load(); !stop.Load() && passes.Load() == p; {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if i%4 == 3 {
			if _, err := f.store.ArchiveStream(f.ctx, fmt.Sprintf("stock-%d", (i*7)%streams), annals.Any); err != nil {
				fail(err)
				break
			}
			continue
		}
		n, err := f.store.CompressEvents(f.ctx, 0, 97)
		if err != nil {
			fail(err)
			break
		}
		if n == 0 && scalar[int64](t, f, "SELECT count(*) FROM annals_internal.events WHERE global_position <= $1", maxKey(hot)) == 0 {
			break
		}
	}
	// A few more passes over the cold history, the appender's last events moving too.
	target := passes.Load() + 3
	for !stop.Load() && passes.Load() < target {
		if _, err := f.store.CompressEvents(f.ctx, 0, 50); err != nil {
			fail(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d full feed passes, %d stream reads during the moves", passes.Load(), streamReads.Load())
	require.Positive(t, streamReads.Load())
	require.Positive(t, passes.Load())
}

func maxKey(m map[int64]string) int64 {
	var mx int64
	for k := range m {
		mx = max(mx, k)
	}
	return mx
}

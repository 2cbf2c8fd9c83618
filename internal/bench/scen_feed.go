package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// feedPages are the page sizes of the catch-up reads: the Go client's default, and a larger one
// that shows what the per-page round trip costs.
var feedPages = []int{annalsDefaultPage, 10_000}

// annalsDefaultPage is Client.ReadAll's default page size.
const annalsDefaultPage = 1000

func (b *Bench) feedEvents() int {
	switch {
	case b.cfg.FeedEvents > 0:
		return b.cfg.FeedEvents
	case b.cfg.Quick:
		return 50_000
	}
	return 1_000_000
}

// catchUp pages through the first n events of the feed with read and returns events per second.
func catchUp(ctx context.Context, n int, read func(ctx context.Context, after annals.Checkpoint) ([]annals.RecordedEvent, error)) (float64, error) {
	t0 := time.Now()
	var after annals.Checkpoint
	got := 0
	for got < n {
		page, err := read(ctx, after)
		if err != nil {
			return 0, err
		}
		if len(page) == 0 {
			return 0, fmt.Errorf("the feed ended after %d of %d events (a long transaction elsewhere may hold the barrier)", got, n)
		}
		got += len(page)
		after = page[len(page)-1].Checkpoint()
	}
	return float64(got) / time.Since(t0).Seconds(), nil
}

func feedCatchupScenario() scenario {
	return scenario{
		name:           "feed-catchup",
		summary:        "paging the gap-free feed (Client.ReadAll) through N stored events, decoded in Go, vs a plain keyset SELECT",
		needsSuperuser: true,
		estimate: func(b *Bench) time.Duration {
			n := b.feedEvents()
			return loadEstimate(n) + vacuumEstimate(n) + time.Duration(2*len(feedPages)*b.reps*n)*8*time.Microsecond
		},
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			n := b.feedEvents()
			label := fmt.Sprintf("feed catch-up, %s events", formatNumber(float64(n)))
			if b.stored < n { // growth may have loaded enough already
				if err := b.reset(ctx); err != nil {
					return nil, err
				}
				if _, err := b.load(ctx, n, label); err != nil {
					return nil, err
				}
			}
			client := annals.New(b.pool, annals.ClientOptions{})
			viaAPI := func(page int) func(context.Context, annals.Checkpoint) ([]annals.RecordedEvent, error) {
				return func(ctx context.Context, after annals.Checkpoint) ([]annals.RecordedEvent, error) {
					return client.ReadAll(ctx, after, annals.FeedOptions{MaxCount: page})
				}
			}
			plain := func(page int) func(context.Context, annals.Checkpoint) ([]annals.RecordedEvent, error) {
				return func(ctx context.Context, after annals.Checkpoint) ([]annals.RecordedEvent, error) {
					rows, err := b.pool.Query(ctx, "SELECT "+eventSQL+` FROM annals_internal.events AS e
						WHERE (e.transaction_id, e.global_position) > ($1::text::xid8, $2)
						ORDER BY e.transaction_id, e.global_position LIMIT $3`,
						strconv.FormatUint(after.TransactionID, 10), after.GlobalPosition, page)
					if err != nil {
						return nil, err
					}
					return pgx.CollectRows(rows, pgx.RowToStructByName[annals.RecordedEvent])
				}
			}
			b.prog.step(label+": warm-up", time.Second)
			for _, page := range feedPages {
				for _, f := range []func(context.Context, annals.Checkpoint) ([]annals.RecordedEvent, error){viaAPI(page), plain(page)} {
					if _, err := catchUp(ctx, min(n, 2*page), f); err != nil {
						return nil, err
					}
				}
			}
			est := time.Duration(n) * 8 * time.Microsecond
			var sides []side
			for _, page := range feedPages {
				sides = append(sides,
					side{fmt.Sprintf("plain SELECT, pages of %d", page), est, func(ctx context.Context) (float64, error) { return catchUp(ctx, n, plain(page)) }},
					side{fmt.Sprintf("Client.ReadAll, pages of %d", page), est, func(ctx context.Context) (float64, error) { return catchUp(ctx, n, viaAPI(page)) }})
			}
			s, err := b.alternate(ctx, label, sides...)
			if err != nil {
				return nil, err
			}
			var out []Result
			for i, page := range feedPages {
				r := figure(fmt.Sprintf("%s, pages of %s", label, formatNumber(float64(page))), "events/s", s[2*i+1], s[2*i],
					"plain keyset SELECT on annals_internal.events ORDER BY (transaction_id, global_position), same page size and decoding",
					fmt.Sprintf("Go client annals.Client.ReadAll(FeedOptions{MaxCount: %d}) into []annals.RecordedEvent, one goroutine; %d reps per side, ABBA-alternated, median",
						page, b.reps), valueAtLeast(200_000))
				r.Note = fmt.Sprintf("the store holds %s loaded events (streams of %d, interleaved), vacuumed and analyzed", formatNumber(float64(b.stored)), streamLen)
				if page == annalsDefaultPage {
					r.Note += "; 1,000 is the Client's default page size"
				}
				out = append(out, r)
			}
			return out, nil
		},
	}
}

// latencies collects, per event id (or ping id), when the writer sent the committing call and
// when the receiver got it.
type latencies struct {
	mu      sync.Mutex
	sentAt  map[string]time.Time
	arrived map[string]time.Time
}

func newLatencies() *latencies {
	return &latencies{sentAt: map[string]time.Time{}, arrived: map[string]time.Time{}}
}

func (l *latencies) sent(id string, t time.Time) {
	l.mu.Lock()
	l.sentAt[id] = t
	l.mu.Unlock()
}

func (l *latencies) got(id string, t time.Time) {
	l.mu.Lock()
	if _, ok := l.arrived[id]; !ok {
		l.arrived[id] = t
	}
	l.mu.Unlock()
}

// samples returns arrival minus sending in ms for every id sent in [from, to), and how many of
// those never arrived.
func (l *latencies) samples(from, to time.Time) (ms []float64, missing int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, a := range l.sentAt {
		if a.Before(from) || !a.Before(to) {
			continue
		}
		r, ok := l.arrived[id]
		if !ok {
			missing++
			continue
		}
		ms = append(ms, float64(r.Sub(a))/float64(time.Millisecond))
	}
	return ms, missing
}

func liveFeedScenario() scenario {
	rate := func(b *Bench) int {
		if b.cfg.Quick {
			return 200
		}
		return 500
	}
	return scenario{
		name:     "live-feed",
		summary:  "append-to-handler latency of the Go Subscriber under a steady append load, vs a plain write + NOTIFY",
		estimate: func(b *Bench) time.Duration { return time.Duration(2*b.reps)*b.dur + 3*time.Second },
		run: func(ctx context.Context, b *Bench) (_ []Result, err error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			if err := b.setNotifyMode(ctx, notifyGated); err != nil { // the subscriber wakes on it
				return nil, err
			}
			defer func() {
				if e := b.setNotifyMode(context.WithoutCancel(ctx), notifyOff); e != nil && err == nil {
					err = e
				}
			}()
			client := annals.New(b.pool, annals.ClientOptions{AppendAttempts: 1})
			const sub = "bench_live"
			if _, err := client.CreateSubscription(ctx, sub, annals.SubscriptionOptions{FromNow: true}); err != nil {
				return nil, err
			}
			defer func() {
				if e := client.DropSubscription(context.WithoutCancel(ctx), sub); e != nil && err == nil {
					err = e
				}
			}()
			feed, ping := newLatencies(), newLatencies()
			// recvCtx runs the receivers (subscriber, listener, sampler), loadCtx the senders; the
			// senders stop first so the receivers can drain what was sent.
			recvCtx, stopRecv := context.WithCancel(ctx)
			loadCtx, stopLoad := context.WithCancel(recvCtx)
			var wg sync.WaitGroup
			var bgErr error
			var once sync.Once
			fail := func(e error) {
				if recvCtx.Err() == nil {
					once.Do(func() { bgErr = e })
				}
				stopRecv()
			}
			defer func() { stopLoad(); stopRecv(); wg.Wait() }()

			// The subscriber: its handler notes when each event arrives.
			s := &annals.Subscriber{Client: client, Name: sub,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Handler: func(_ context.Context, _ pgx.Tx, ev annals.RecordedEvent) error {
					feed.got(ev.EventID.String(), time.Now())
					return nil
				}}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Run(recvCtx); err != nil {
					fail(fmt.Errorf("subscriber: %w", err))
				}
			}()

			// The steady load: writers appending single events at a fixed total rate.
			const writers = 4
			perWriter := time.Duration(float64(time.Second) * writers / float64(rate(b)))
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t := time.NewTicker(perWriter)
					defer t.Stop()
					for i := 0; ; i++ {
						select {
						case <-loadCtx.Done():
							return
						case <-t.C:
						}
						id := uuid.Must(uuid.NewV7())
						feed.sent(id.String(), time.Now())
						_, err := client.Append(loadCtx, fmt.Sprintf("live-%d-%d", w, i%50), annals.Any,
							annals.EventData{ID: id, Type: "BenchEvent", Data: json.RawMessage(benchData)})
						if err != nil && loadCtx.Err() == nil {
							fail(fmt.Errorf("append: %w", err))
							return
						}
					}
				}()
			}

			// The baseline: a transaction that writes a row and notifies, 20 times a second, and a
			// listener on another connection: the floor of any push delivery of a commit.
			conns, err := b.connect(ctx, 3, nil)
			if err != nil {
				return nil, err
			}
			defer closeAll(conns)
			if _, err := conns[1].Exec(ctx, "CREATE TABLE IF NOT EXISTS bench.pings (ping_id text PRIMARY KEY)"); err != nil {
				return nil, err
			}
			if _, err := conns[0].Exec(ctx, "LISTEN annals_bench_ping"); err != nil {
				return nil, err
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				receive(recvCtx, conns[0], func(n *pgconn.Notification) { ping.got(n.Payload, time.Now()) })
			}()
			go func() {
				defer wg.Done()
				t := time.NewTicker(50 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-loadCtx.Done():
						return
					case <-t.C:
					}
					id := uuid.NewString()
					ping.sent(id, time.Now())
					_, err := conns[1].Exec(loadCtx, `WITH w AS (INSERT INTO bench.pings VALUES ($1) RETURNING ping_id)
						SELECT pg_notify('annals_bench_ping', w.ping_id) FROM w`, id)
					if err != nil && loadCtx.Err() == nil {
						fail(fmt.Errorf("ping: %w", err))
						return
					}
				}
			}()

			// Evidence for the tail: how old the oldest transaction holding an id is, anywhere in
			// the cluster; the gap-free feed cannot move past it.
			var ageMu sync.Mutex
			var ages []float64
			otherDB := 0
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.NewTicker(25 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-loadCtx.Done():
						return
					case <-t.C:
					}
					var age float64
					var db *string
					err := conns[2].QueryRow(loadCtx, `SELECT coalesce(extract(epoch FROM max(clock_timestamp() - a.xact_start)) * 1000, 0)::float8,
						(array_agg(a.datname::text ORDER BY a.xact_start))[1]
						FROM pg_catalog.pg_stat_activity AS a WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_catalog.pg_backend_pid()`).Scan(&age, &db)
					if err != nil {
						return
					}
					ageMu.Lock()
					ages = append(ages, age)
					if db != nil && *db != b.db {
						otherDB++
					}
					ageMu.Unlock()
				}
			}()

			label := fmt.Sprintf("live feed, %d appends/s", rate(b))
			b.prog.step(label+": warm-up", time.Second)
			sleep(recvCtx, time.Second)
			// Windows with the gated NOTIFY (Annals' default) and, where the bench may add a
			// trigger, with a NOTIFY on every append as before M9, alternated ABBA.
			type window struct {
				from, to time.Time
				mode     string
			}
			modes := []string{notifyGated}
			if b.canUngate() {
				modes = append(modes, notifyUngated)
			}
			var windows []window
			for rep := range b.reps {
				for k := range modes {
					m := modes[k]
					if rep%2 == 1 {
						m = modes[len(modes)-1-k]
					}
					if len(modes) > 1 {
						if err := b.setNotifyMode(recvCtx, m); err != nil {
							return nil, err
						}
						sleep(recvCtx, 200*time.Millisecond) // what was sent before the switch arrives
					}
					b.prog.step(fmt.Sprintf("%s, notify %s (%d/%d)", label, m, rep+1, b.reps), b.dur)
					from := time.Now()
					sleep(recvCtx, b.dur)
					windows = append(windows, window{from, time.Now(), m})
				}
			}
			// Stop sending; give what was sent in the windows time to arrive.
			stopLoad()
			grace := 10 * time.Second
			if b.cfg.Quick {
				grace = 2 * time.Second
			}
			b.prog.step(label+": drain", grace/3)
			for deadline := time.Now().Add(grace); time.Now().Before(deadline) && recvCtx.Err() == nil; {
				_, m1 := feed.samples(windows[0].from, windows[len(windows)-1].to)
				_, m2 := ping.samples(windows[0].from, windows[len(windows)-1].to)
				if m1+m2 == 0 {
					break
				}
				sleep(recvCtx, 100*time.Millisecond)
			}
			stopRecv()
			wg.Wait()
			if bgErr != nil {
				return nil, bgErr
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			var feedP50, feedP99, pingP50, pingP99 []float64
			var ungP50, ungP99 []float64
			var allFeed, allPing, allUng []float64
			missing, empty := 0, 0
			for _, w := range windows {
				f, m := feed.samples(w.from, w.to)
				if w.mode == notifyUngated {
					missing += m
					if len(f) > 0 {
						ungP50, ungP99 = append(ungP50, percentile(f, 50)), append(ungP99, percentile(f, 99))
						allUng = append(allUng, f...)
					}
					continue
				}
				p, _ := ping.samples(w.from, w.to)
				missing += m
				if len(f) == 0 || len(p) == 0 {
					empty++
					continue
				}
				feedP50, feedP99 = append(feedP50, percentile(f, 50)), append(feedP99, percentile(f, 99))
				pingP50, pingP99 = append(pingP50, percentile(p, 50)), append(pingP99, percentile(p, 99))
				allFeed, allPing = append(allFeed, f...), append(allPing, p...)
			}
			method := fmt.Sprintf("Go annals.Subscriber (LISTEN + feed reads, batch 100) under %d single-event appends/s from 4 writers (Client.Append, synchronous_commit as configured); "+
				"latency = handler call - start of the Append call that committed the event; %d windows of %s per NOTIFY mode (alternated with the every-append mode where measured), median of per-window percentiles",
				rate(b), b.reps, b.dur)
			baseLabel := "the same percentile for a transaction that inserts a row and calls pg_notify, start of the call to the listener's receipt, under the same load"
			r50 := figure(label+": p50", "ms", feedP50, pingP50, baseLabel, method, nil)
			r99 := figure(label+": p99", "ms", feedP99, pingP99, baseLabel, method, nil)
			r50.Note = fmt.Sprintf("%d events, %d pings measured; over all windows p50 %.2f ms, p99 %.2f ms",
				len(allFeed), len(allPing), percentile(allFeed, 50), percentile(allFeed, 99))
			r99.Note = fmt.Sprintf("oldest transaction holding an id anywhere on the server while measuring (the feed waits for it): p50 %.1f ms, p99 %.1f ms; in another database %d of %d samples",
				percentile(ages, 50), percentile(ages, 99), otherDB, len(ages))
			if missing > 0 {
				r50.Note += fmt.Sprintf("; %d events had not reached the handler %s after the load stopped (not counted)", missing, grace)
			}
			if empty > 0 {
				r50.Note += fmt.Sprintf("; %d of %d windows had no arrivals at all", empty, len(windows))
			}
			out := []Result{r50, r99}
			if len(ungP50) > 0 {
				ungLabel := "the same Subscriber latency in the alternated windows where every append notifies (a statement trigger calling pg_notify, as before M9)"
				u50 := figure(label+", gated vs every append notifying: p50", "ms", feedP50, ungP50, ungLabel, method, nil)
				u99 := figure(label+", gated vs every append notifying: p99", "ms", feedP99, ungP99, ungLabel, method, nil)
				u50.Note = fmt.Sprintf("over all windows, every append notifying: p50 %.2f ms, p99 %.2f ms (%d events)",
					percentile(allUng, 50), percentile(allUng, 99), len(allUng))
				out = append(out, u50, u99)
			}
			return out, nil
		},
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

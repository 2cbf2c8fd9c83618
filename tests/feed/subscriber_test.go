package feed_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// applyTable creates the table the handlers write to, in the handler's transaction. Duplicates
// are allowed on purpose: an event applied twice must show, not fail.
func applyTable(t *testing.T, e env) {
	t.Helper()
	_, err := e.pool.Exec(e.ctx, `CREATE TABLE public.applied (
		event_id uuid NOT NULL, stream_id text NOT NULL, stream_version bigint NOT NULL, consumer text NOT NULL)`)
	require.NoError(t, err)
}

func insertApplied(ctx context.Context, tx pgx.Tx, ev annals.RecordedEvent, consumer string) error {
	_, err := tx.Exec(ctx, "INSERT INTO public.applied (event_id, stream_id, stream_version, consumer) VALUES ($1, $2, $3, $4)",
		ev.EventID, ev.StreamID, ev.StreamVersion, consumer)
	return err
}

// applier is a handler that records each event in public.applied.
func applier(consumer string) annals.HandlerFunc {
	return func(ctx context.Context, tx pgx.Tx, ev annals.RecordedEvent) error {
		return insertApplied(ctx, tx, ev, consumer)
	}
}

func appliedCount(t *testing.T, e env) int {
	t.Helper()
	var n int
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT count(*) FROM public.applied").Scan(&n))
	return n
}

// requireAppliedOnce waits until public.applied has as many rows as want, then requires that
// it holds exactly want, each event once.
func requireAppliedOnce(t *testing.T, e env, want []uuid.UUID) {
	t.Helper()
	eventually(t, func() bool { return appliedCount(t, e) >= len(want) }, "applied %d of %d events", appliedCount(t, e), len(want))
	rows, err := e.pool.Query(e.ctx, "SELECT a.event_id FROM public.applied AS a")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	require.ElementsMatch(t, want, got, "every event applied exactly once")
}

// testLogger sends a subscriber's log to the test log until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.closed.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	t      *testing.T
	closed atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.closed.Load() {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// running is a Subscriber.Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start runs s until the test ends or stop is called.
func start(t *testing.T, s *annals.Subscriber) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	return startWith(ctx, cancel, t, s)
}

// startWith runs s under ctx, which cancel ends.
func startWith(ctx context.Context, cancel context.CancelFunc, t *testing.T, s *annals.Subscriber) *running {
	t.Helper()
	if s.Logger == nil {
		s.Logger = testLogger(t)
	}
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		if err := r.stop(); errors.Is(err, errNoReturn) {
			t.Error(err)
		}
	})
	return r
}

var errNoReturn = errors.New("the subscriber's Run did not return within 10s of its context's end")

// stop cancels Run and returns its result; Run must return promptly.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(10 * time.Second):
			r.err = errNoReturn
		}
	})
	return r.err
}

// wait waits for Run to return by itself.
func (r *running) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.once.Do(func() { r.err = err })
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %v", within)
		return nil
	}
}

func leaseHolder(t *testing.T, e env, name string, member int) *string {
	t.Helper()
	st, err := e.store.SubscriptionStatus(e.ctx, name)
	require.NoError(t, err)
	require.Greater(t, len(st), member)
	if !st[member].LeaseActive {
		return nil
	}
	return st[member].LeaseHolder
}

func TestSubscriberAppliesEveryEventOnceWhileAppending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "apply", annals.SubscriptionOptions{})
	require.NoError(t, err)

	var want []uuid.UUID
	for i := range 3 {
		want = append(want, appendEvents(t, e.pool, fmt.Sprintf("acct-%d", i), "Opened", 10).IDs...)
	}
	s := &annals.Subscriber{Client: e.store, Name: "apply", Handler: applier("one"), BatchSize: 7,
		PollInterval: 50 * time.Millisecond}
	r := start(t, s)

	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				a, err := tryAppend(e.ctx, e.pool, fmt.Sprintf("acct-%d", (w+i)%4), "Moved", 1+i%3)
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				want = append(want, a.IDs...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	requireAppliedOnce(t, e, want)

	all := drain(t, e.pool, annals.Checkpoint{}, 1000, len(want))
	eventually(t, func() bool { return s.Stats().Checkpoint == all[len(all)-1].Checkpoint() }, "stats checkpoint")
	st := s.Stats()
	require.EqualValues(t, len(want), st.Processed)
	require.Zero(t, st.Parked)
	require.Positive(t, st.Batches)
	cp, err := e.store.SubscriptionCheckpoint(e.ctx, "apply", 0)
	require.NoError(t, err)
	// At the last event, or past it once an idle read moved the member up to the feed barrier.
	lastCP := all[len(all)-1].Checkpoint()
	require.True(t, cp == lastCP || cp.After(lastCP), "checkpoint %+v is behind the last event %+v", cp, lastCP)

	// Per-stream order of application follows versions.
	rows, err := e.pool.Query(e.ctx, "SELECT a.stream_id, a.stream_version FROM public.applied AS a ORDER BY a.ctid")
	require.NoError(t, err)
	last := map[string]int64{}
	for rows.Next() {
		var stream string
		var version int64
		require.NoError(t, rows.Scan(&stream, &version))
		require.Equal(t, last[stream]+1, version, "stream %s applied out of order", stream)
		last[stream] = version
	}
	require.NoError(t, rows.Err())
	require.NoError(t, r.stop())
}

// waitListening waits until some session of this database LISTENs on annals_events.
func waitListening(t *testing.T, e env) {
	t.Helper()
	eventually(t, func() bool {
		var n int
		require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT count(*) FROM pg_catalog.pg_stat_activity AS a
			WHERE a.datname = pg_catalog.current_database() AND a.query = 'LISTEN annals_events'`).Scan(&n))
		return n > 0
	}, "the subscriber never listened")
}

// With a 30s poll interval, only the notification can make the subscriber handle an event
// quickly.
func TestSubscriberWakesOnNotify(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "wake", annals.SubscriptionOptions{})
	require.NoError(t, err)
	s := &annals.Subscriber{Client: e.store, Name: "wake", Handler: applier("one"), PollInterval: time.Hour}
	start(t, s)
	waitListening(t, e)
	eventually(t, func() bool { return leaseHolder(t, e, "wake", 0) != nil }, "the subscriber never took its lease")

	a := appendEvents(t, e.pool, "wake-1", "Happened", 1)
	// The append's notification is a hint: if another transaction on the server held the
	// cluster-wide barrier as it arrived, the subscriber read nothing and went back to sleep.
	// Once the event is past the barrier it stays readable, so from then on one more hint (a
	// bare NOTIFY, exactly what an append sends) must get it handled; polling would take an hour.
	// The bound only tells "woken" from "polled" apart: it is generous, not a speed assertion.
	drain(t, e.pool, annals.Checkpoint{}, 10, 1)
	readable := time.Now()
	if appliedCount(t, e) == 0 {
		_, err := e.pool.Exec(e.ctx, "NOTIFY annals_events")
		require.NoError(t, err)
		t.Log("the append's own notification came while the barrier was held; hinted again")
	}
	for appliedCount(t, e) == 0 {
		require.Less(t, time.Since(readable), time.Minute, "the event was not handled after its notification; only polling (an hour) would get it")
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("handled %v after the event became readable", time.Since(readable))
	requireAppliedOnce(t, e, a.IDs)
}

func TestSubscriberPollsWithoutListen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "poll", annals.SubscriptionOptions{})
	require.NoError(t, err)
	s := &annals.Subscriber{Client: e.store, Name: "poll", Handler: applier("one"),
		PollInterval: 50 * time.Millisecond, DisableListen: true}
	start(t, s)
	eventually(t, func() bool { return leaseHolder(t, e, "poll", 0) != nil }, "lease")
	a := appendEvents(t, e.pool, "poll-1", "Happened", 3)
	b := appendEvents(t, e.pool, "poll-2", "Happened", 2)
	requireAppliedOnce(t, e, concat(a.IDs, b.IDs))

	var listeners int
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT count(*) FROM pg_catalog.pg_stat_activity AS a
		WHERE a.datname = pg_catalog.current_database() AND a.query = 'LISTEN annals_events'`).Scan(&listeners))
	require.Zero(t, listeners, "DisableListen opens no listener")
}

func TestSubscriberPollsWithNotifyOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.pool.Exec(e.ctx, "SELECT annals.configure(notify => false)")
	require.NoError(t, err)
	_, err = e.store.CreateSubscription(e.ctx, "quiet", annals.SubscriptionOptions{})
	require.NoError(t, err)
	s := &annals.Subscriber{Client: e.store, Name: "quiet", Handler: applier("one"), PollInterval: 100 * time.Millisecond}
	start(t, s)
	waitListening(t, e)
	a := appendEvents(t, e.pool, "quiet-1", "Happened", 4)
	requireAppliedOnce(t, e, a.IDs)
}

// A handler that fails twice, then succeeds: the event is applied once, the retries counted.
func TestSubscriberRetriesAFailingHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "flaky", annals.SubscriptionOptions{})
	require.NoError(t, err)
	a := appendEvents(t, e.pool, "flaky-1", "Fine", 2)
	f := appendEvents(t, e.pool, "flaky-2", "Flaky", 1)
	b := appendEvents(t, e.pool, "flaky-1", "Fine", 1)

	var failures atomic.Int32
	handler := func(ctx context.Context, tx pgx.Tx, ev annals.RecordedEvent) error {
		if err := insertApplied(ctx, tx, ev, "one"); err != nil {
			return err
		}
		if ev.EventType == "Flaky" && failures.Load() < 2 {
			failures.Add(1)
			return errors.New("flaky: not yet") // after a write: the retry must undo it
		}
		return nil
	}
	s := &annals.Subscriber{Client: e.store, Name: "flaky", Handler: handler, PollInterval: 50 * time.Millisecond,
		MaxAttempts: 5, RetryDelay: time.Millisecond}
	r := start(t, s)
	requireAppliedOnce(t, e, concat(a.IDs, f.IDs, b.IDs))
	eventually(t, func() bool { return s.Stats().Processed == 4 }, "processed: %+v", s.Stats())
	require.NoError(t, r.stop())

	st := s.Stats()
	require.EqualValues(t, 2, failures.Load())
	require.EqualValues(t, 2, st.Retried, "two failed attempts, two retries")
	require.Zero(t, st.Parked)
	var parked int
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT count(*) FROM annals.dead_letters").Scan(&parked))
	require.Zero(t, parked)
}

// A poison event is parked after MaxAttempts attempts while the feed moves on; an operator's
// retry_dead_letters with a fixed handler resolves it, applied exactly once.
func TestSubscriberParksPoisonEventsAndReplaysThem(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "poison", annals.SubscriptionOptions{})
	require.NoError(t, err)

	var poisoned atomic.Bool
	poisoned.Store(true)
	var poisonCalls atomic.Int32
	handler := func(ctx context.Context, tx pgx.Tx, ev annals.RecordedEvent) error {
		if err := insertApplied(ctx, tx, ev, "one"); err != nil {
			return err
		}
		if ev.EventType == "Poison" {
			poisonCalls.Add(1)
			if poisoned.Load() {
				return fmt.Errorf("cannot digest %s@%d", ev.StreamID, ev.StreamVersion)
			}
		}
		return nil
	}
	const maxAttempts = 3
	s := &annals.Subscriber{Client: e.store, Name: "poison", Handler: handler, PollInterval: 50 * time.Millisecond,
		MaxAttempts: maxAttempts, RetryDelay: time.Millisecond}
	start(t, s)

	ok1 := appendEvents(t, e.pool, "meal-1", "Tasty", 2)
	bad := appendEvents(t, e.pool, "meal-2", "Poison", 1)
	ok2 := appendEvents(t, e.pool, "meal-1", "Tasty", 1)
	requireAppliedOnce(t, e, concat(ok1.IDs, ok2.IDs))

	type deadLetter struct {
		ID        int64  `db:"dead_letter_id"`
		StreamID  string `db:"stream_id"`
		Version   int64  `db:"stream_version"`
		EventType string `db:"event_type"`
		Attempts  int    `db:"attempts"`
		LastError string `db:"last_error"`
		Status    string `db:"status"`
	}
	letters := func() []deadLetter {
		rows, err := e.pool.Query(e.ctx, `SELECT d.dead_letter_id, d.stream_id, d.stream_version, d.event_type, d.attempts,
			d.last_error, d.status FROM annals.dead_letters AS d WHERE d.subscription_name = 'poison'`)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowToStructByName[deadLetter])
		require.NoError(t, err)
		return out
	}
	dl := letters()
	require.Len(t, dl, 1)
	require.Equal(t, "meal-2", dl[0].StreamID)
	require.EqualValues(t, 1, dl[0].Version)
	require.Equal(t, "Poison", dl[0].EventType)
	require.Equal(t, "parked", dl[0].Status)
	require.Contains(t, dl[0].LastError, "cannot digest meal-2@1")
	require.Equal(t, maxAttempts, dl[0].Attempts)
	require.EqualValues(t, maxAttempts-1, s.Stats().Retried, "the last failed attempt is not retried")
	require.EqualValues(t, maxAttempts, poisonCalls.Load(), "MaxAttempts is how often the event is tried")
	require.EqualValues(t, 1, s.Stats().Parked)

	// The checkpoint moved past the poison event, and later events still flow.
	all := drain(t, e.pool, annals.Checkpoint{}, 100, 4)
	cp, err := e.store.SubscriptionCheckpoint(e.ctx, "poison", 0)
	require.NoError(t, err)
	require.True(t, cp == all[3].Checkpoint() || cp.After(all[3].Checkpoint()), "checkpoint %+v is behind %+v", cp, all[3].Checkpoint())
	ok3 := appendEvents(t, e.pool, "meal-3", "Tasty", 1)
	requireAppliedOnce(t, e, concat(ok1.IDs, ok2.IDs, ok3.IDs))
	st, err := e.store.SubscriptionStatus(e.ctx, "poison")
	require.NoError(t, err)
	require.EqualValues(t, 1, st[0].DeadLetters)

	// Fixed handler, operator asks for a retry.
	poisoned.Store(false)
	var queued int
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals.retry_dead_letters('poison')").Scan(&queued))
	require.Equal(t, 1, queued)
	eventually(t, func() bool { return letters()[0].Status == "resolved" }, "the dead letter was never resolved")
	requireAppliedOnce(t, e, concat(ok1.IDs, ok2.IDs, ok3.IDs, bad.IDs))
	st, err = e.store.SubscriptionStatus(e.ctx, "poison")
	require.NoError(t, err)
	require.Zero(t, st[0].DeadLetters)
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals.retry_dead_letters('poison')").Scan(&queued))
	require.Zero(t, queued, "a resolved dead letter is not queued again")
}

// Two instances on the same subscription member: the lease lets one work; when it stops, the
// other takes over. Every event is applied exactly once.
func TestSubscriberCompetingInstancesApplyEachEventOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "pair", annals.SubscriptionOptions{})
	require.NoError(t, err)
	subs := map[string]*annals.Subscriber{}
	runs := map[string]*running{}
	for _, name := range []string{"one", "two"} {
		subs[name] = &annals.Subscriber{Client: e.store, Name: "pair", Consumer: name, Handler: applier(name),
			BatchSize: 5, PollInterval: 50 * time.Millisecond}
		runs[name] = start(t, subs[name])
	}

	var want []uuid.UUID
	appendSome := func(n int) {
		for i := range n {
			want = append(want, appendEvents(t, e.pool, fmt.Sprintf("pair-%d", i%5), "Happened", 1+i%2).IDs...)
		}
	}
	appendSome(30)
	requireAppliedOnce(t, e, want)
	holder := leaseHolder(t, e, "pair", 0)
	require.NotNil(t, holder)
	var others int
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT count(*) FROM public.applied AS a WHERE a.consumer <> $1", *holder).Scan(&others))
	require.Zero(t, others, "only the lease holder processes")

	require.NoError(t, runs[*holder].stop(), "the holder stops cleanly")
	appendSome(30)
	requireAppliedOnce(t, e, want)
	next := leaseHolder(t, e, "pair", 0)
	require.NotNil(t, next)
	require.NotEqual(t, *holder, *next, "the other instance took over")
	var consumers int
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT count(DISTINCT a.consumer) FROM public.applied AS a").Scan(&consumers))
	require.Equal(t, 2, consumers)
	require.EqualValues(t, len(want), subs["one"].Stats().Processed+subs["two"].Stats().Processed)
}

// A subscriber dies after its handler wrote but before the commit: the write rolls back with
// the checkpoint, and a new instance applies every event exactly once.
func TestSubscriberKilledBeforeCommitAppliesEachEventOnceAfterRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "crash", annals.SubscriptionOptions{})
	require.NoError(t, err)
	var want []uuid.UUID
	for i := range 5 {
		want = append(want, appendEvents(t, e.pool, fmt.Sprintf("crash-%d", i%2), "Happened", 2).IDs...)
	}
	drain(t, e.pool, annals.Checkpoint{}, 100, len(want))

	ctx, kill := context.WithCancel(context.Background())
	var wrote atomic.Int32
	victim := &annals.Subscriber{Client: e.store, Name: "crash", Consumer: "victim", PollInterval: 50 * time.Millisecond,
		Handler: func(hctx context.Context, tx pgx.Tx, ev annals.RecordedEvent) error {
			if err := insertApplied(hctx, tx, ev, "victim"); err != nil {
				return err
			}
			if wrote.Add(1) == 5 {
				kill() // the process "dies" between the handler's write and the commit
			}
			return nil
		}}
	r := startWith(ctx, kill, t, victim)
	require.NoError(t, r.wait(t, 10*time.Second), "Run returns nil when its context ends")
	require.GreaterOrEqual(t, wrote.Load(), int32(5))
	require.Zero(t, appliedCount(t, e), "the dead instance's writes rolled back")
	cp, err := e.store.SubscriptionCheckpoint(e.ctx, "crash", 0)
	require.NoError(t, err)
	require.Equal(t, annals.Checkpoint{}, cp, "and so did its checkpoint")
	require.Nil(t, leaseHolder(t, e, "crash", 0), "the dying instance released its lease")

	restarted := &annals.Subscriber{Client: e.store, Name: "crash", Consumer: "restarted", Handler: applier("restarted"),
		PollInterval: 50 * time.Millisecond}
	start(t, restarted)
	requireAppliedOnce(t, e, want)
	more := appendEvents(t, e.pool, "crash-9", "Happened", 3)
	requireAppliedOnce(t, e, append(want, more.IDs...))
}

func TestSubscriberStopsOnCancelAndReleasesItsLease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "stop", annals.SubscriptionOptions{GroupSize: 2})
	require.NoError(t, err)
	s := &annals.Subscriber{Client: e.store, Name: "stop", Member: 1, Consumer: "stopper", Handler: applier("stopper"),
		PollInterval: 30 * time.Second}
	r := start(t, s)
	eventually(t, func() bool {
		h := leaseHolder(t, e, "stop", 1)
		return h != nil && *h == "stopper"
	}, "the subscriber never took its lease")

	began := time.Now()
	require.NoError(t, r.stop(), "Run returns nil on cancel")
	require.Less(t, time.Since(began), 5*time.Second, "Run returns promptly, not after its 30s poll interval")
	require.Nil(t, leaseHolder(t, e, "stop", 1), "the lease is released")
}

func TestSubscriberRunErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	missing := &annals.Subscriber{Client: e.store, Name: "nosuch", Handler: applier("x"), PollInterval: 50 * time.Millisecond}
	r := start(t, missing)
	require.ErrorIs(t, r.wait(t, 10*time.Second), annals.ErrNotFound)

	_, err := e.store.CreateSubscription(e.ctx, "small", annals.SubscriptionOptions{})
	require.NoError(t, err)
	outOfRange := &annals.Subscriber{Client: e.store, Name: "small", Member: 3, Handler: applier("x")}
	r = start(t, outOfRange)
	require.ErrorIs(t, r.wait(t, 10*time.Second), annals.ErrInvalidArgument)

	noHandler := &annals.Subscriber{Client: e.store, Name: "small"}
	require.ErrorIs(t, noHandler.Run(e.ctx), annals.ErrInvalidArgument)
}

// When the acknowledgement fails (here the handler itself moves the checkpoint, or hands the
// lease to another consumer, inside the batch's transaction), the whole batch rolls back and is
// redone: Stats().LastError carries the typed error, and every event is still applied once.
func TestSubscriberRedoesABatchWhoseAcknowledgementFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		sabotage string
		want     error
	}{
		{"checkpoint moved", "SELECT annals.reset_subscription('sabotage', '0', 1)", annals.ErrCheckpointConflict},
		{"lease taken", "SELECT annals.release_lease('sabotage', 0, 'victim'), annals.acquire_lease('sabotage', 0, 'thief')", annals.ErrLeaseHeld},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			applyTable(t, e)
			_, err := e.store.CreateSubscription(e.ctx, "sabotage", annals.SubscriptionOptions{})
			require.NoError(t, err)
			a := appendEvents(t, e.pool, "sab-1", "Happened", 3)

			var sabotaged atomic.Bool
			s := &annals.Subscriber{Client: e.store, Name: "sabotage", Consumer: "victim", PollInterval: 50 * time.Millisecond,
				Handler: func(ctx context.Context, tx pgx.Tx, ev annals.RecordedEvent) error {
					if err := insertApplied(ctx, tx, ev, "victim"); err != nil {
						return err
					}
					if ev.StreamVersion == 3 && sabotaged.CompareAndSwap(false, true) {
						_, err := tx.Exec(ctx, tc.sabotage)
						return err
					}
					return nil
				}}
			start(t, s)
			requireAppliedOnce(t, e, a.IDs)
			require.True(t, sabotaged.Load())
			require.ErrorIs(t, s.Stats().LastError, tc.want)
			eventually(t, func() bool { return s.Stats().Processed == 3 }, "the batch was redone: %+v", s.Stats())
		})
	}
}

// A handler that appends events (AppendTx in the batch's transaction) meets the early-id rule
// when another writer appended to the same stream during the batch: 40001. Retrying under a
// savepoint cannot help (the batch's transaction id stays older), so the batch is redone in a
// new transaction instead; the event is applied once and never parked.
func TestSubscriberRedoesABatchOnSerializationFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "emit", annals.SubscriptionOptions{Categories: []string{"cmd"}})
	require.NoError(t, err)
	cmd := appendEvents(t, e.pool, "cmd-1", "Reserve", 1)
	appendEvents(t, e.pool, "out-1", "Seeded", 1)

	var interfered atomic.Int32
	s := &annals.Subscriber{Client: e.store, Name: "emit", PollInterval: 50 * time.Millisecond,
		MaxAttempts: 3, RetryDelay: time.Millisecond,
		Handler: func(ctx context.Context, tx pgx.Tx, ev annals.RecordedEvent) error {
			if err := insertApplied(ctx, tx, ev, "one"); err != nil {
				return err
			}
			if interfered.Add(1) <= 2 { // another writer appends to out-1 during the first two tries
				if _, err := tryAppend(ctx, e.pool, "out-1", "Competing", 1); err != nil {
					return err
				}
			}
			_, err := e.store.AppendTx(ctx, tx, "out-1", annals.Any, annals.EventData{Type: "Reserved"})
			return err
		}}
	start(t, s)
	requireAppliedOnce(t, e, cmd.IDs)
	eventually(t, func() bool { return s.Stats().Processed == 1 }, "processed: %+v", s.Stats())
	require.Zero(t, s.Stats().Parked, "a serialization failure is not the event's fault")
	var reserved int
	require.NoError(t, e.pool.QueryRow(e.ctx,
		"SELECT count(*) FROM annals.read_stream('out-1') AS e WHERE e.event_type = 'Reserved'").Scan(&reserved))
	require.Equal(t, 1, reserved, "the handler's append committed once, with the checkpoint")
}

package feed_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// shutNotifyGate sets the gate's clock ahead of now, so appends skip their NOTIFY until the clock
// catches up (the gate reopens at once only when the clock lags more than a minute).
func shutNotifyGate(t *testing.T, e env, ahead time.Duration) {
	t.Helper()
	_, err := e.pool.Exec(e.ctx, `SELECT setval('annals_internal.notify_clock',
		(extract(epoch FROM clock_timestamp()) * 1000)::bigint + $1)`, ahead.Milliseconds())
	require.NoError(t, err)
}

// A commit the gate lets pass without a notification is not lost: the Subscriber's poll finds
// it. With the gate shut no notification arrives at all; reopened, the next append notifies.
func TestNotifyGateSkippedCommitsReachSubscriberByPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "gated", annals.SubscriptionOptions{FromNow: true})
	require.NoError(t, err)
	listener := e.dedicated(t, nil)
	_, err = listener.Exec(e.ctx, "LISTEN annals_events")
	require.NoError(t, err)

	s := &annals.Subscriber{Client: e.store, Name: "gated", Handler: applier("gated"),
		PollInterval: 300 * time.Millisecond}
	start(t, s)

	shutNotifyGate(t, e, 50*time.Second)
	var want []uuid.UUID
	for i := range 10 {
		want = append(want, appendEvents(t, e.pool, fmt.Sprintf("gated-%d", i%3), "Gated", 1).IDs...)
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	n, err := listener.WaitForNotification(ctx)
	cancel()
	require.True(t, errors.Is(err, context.DeadlineExceeded), "the shut gate let a notification through: %+v (err %v)", n, err)
	requireAppliedOnce(t, e, want)

	// Reopened (a clock far behind also reopens it), the next append notifies again.
	_, err = e.pool.Exec(e.ctx, "SELECT setval('annals_internal.notify_clock', 0)")
	require.NoError(t, err)
	appendEvents(t, e.pool, "gated-0", "Loud", 1)
	ctx, cancel = context.WithTimeout(e.ctx, 5*time.Second)
	got, err := listener.WaitForNotification(ctx)
	cancel()
	require.NoError(t, err)
	require.Equal(t, "annals_events", got.Channel)
}

// Appends spaced closer than the gate's 20 ms, then silence: the Subscriber sees every event,
// woken by the notifications that passed the gate and the listener's trailing wake-up (its poll
// is the safety net). The test logs how many notifications the burst sent; it asserts no timing.
func TestNotifyGateBurstThenSilenceDeliversEverything(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	applyTable(t, e)
	_, err := e.store.CreateSubscription(e.ctx, "burst", annals.SubscriptionOptions{FromNow: true})
	require.NoError(t, err)
	listener := e.dedicated(t, nil)
	_, err = listener.Exec(e.ctx, "LISTEN annals_events")
	require.NoError(t, err)
	var notes atomic.Int64
	lctx, stopListening := context.WithCancel(e.ctx)
	listened := make(chan struct{})
	go func() {
		defer close(listened)
		for {
			if _, err := listener.WaitForNotification(lctx); err != nil {
				return
			}
			notes.Add(1)
		}
	}()

	s := &annals.Subscriber{Client: e.store, Name: "burst", Handler: applier("burst"),
		PollInterval: 2 * time.Second}
	start(t, s)

	const appends = 60
	var want []uuid.UUID
	t0 := time.Now()
	for i := range appends {
		want = append(want, appendEvents(t, e.pool, fmt.Sprintf("burst-%d", i%4), "Burst", 1).IDs...)
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(t0)
	requireAppliedOnce(t, e, want)
	time.Sleep(100 * time.Millisecond)
	stopListening()
	<-listened
	t.Logf("%d appends over %v sent %d notifications", appends, took.Round(time.Millisecond), notes.Load())
	require.Positive(t, notes.Load(), "the gate let no notification through at all")
}

package feed_test

import (
	"context"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/stretchr/testify/require"
)

// returnsWithin runs wait and fails the test when it has not returned within a minute: the
// intervals the cases below give are an hour, so only the event under test ends the wait.
func returnsWithin(t *testing.T, what string, wait func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("Wait did not return on %s", what)
	}
}

// TestEventListenerWait: the one wait of every consumer that follows the feed (Subscriber, annals
// tail, annals worker) ends on a notification, on ctx's end, or after the fallback interval when
// nothing listens.
func TestEventListenerWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	var none *annals.EventListener
	returnsWithin(t, "the fallback interval of a nil listener", func() { none.Wait(e.ctx, time.Hour, time.Millisecond) })

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	l := e.store.ListenEvents(ctx, annals.ListenOptions{})
	eventually(t, l.Listening, "the listener never listened")
	<-l.Wake() // the wake-up it sends once LISTEN took effect

	_, err := e.pool.Exec(e.ctx, "NOTIFY annals_events")
	require.NoError(t, err)
	returnsWithin(t, "a notification", func() { l.Wait(e.ctx, time.Hour, time.Hour) })

	ended, stop := context.WithCancel(e.ctx)
	stop()
	returnsWithin(t, "its context's end", func() { none.Wait(ended, time.Hour, time.Hour) })
}

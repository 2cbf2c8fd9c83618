package annals

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// eventsChannel is the channel Annals notifies after each append when notifications are on
// (annals.configure(notify => true)), for consumers to wake up instead of waiting for their next
// poll.
const eventsChannel = "annals_events"

// trailingWake is how long after the last notification the listener wakes its consumers once
// more. Appends notify at most about once per 20 ms (functions/150_notify.sql): a commit skipped
// by that gate follows, by at most 20 ms plus its own commit, the notification that closed the
// gate, so a read this long after that notification arrived finds it even when it arrived before
// the skipped commit. Anything later still (the gate's notifier rolled back, or committed long
// after its append) waits for the next notification or the consumer's next poll.
const trailingWake = 50 * time.Millisecond

// ErrListenUnavailable means notifications sent to the database never reached the listening
// connection, so LISTEN cannot wake anyone there. The usual cause is a connection pooler in
// transaction mode (PgBouncer's pool_mode = transaction) between the program and PostgreSQL: it
// hands the server connection that ran LISTEN to other clients as soon as the statement ends.
var ErrListenUnavailable = errors.New("annals: LISTEN cannot receive notifications on this connection")

// listenRemedy is what to do when LISTEN cannot receive, as the listeners log it.
const listenRemedy = "give the listener a direct connection to PostgreSQL (Subscriber.ListenConfig, " +
	"ListenOptions.ConnConfig, or --listen-url for annals tail and worker), or turn LISTEN off " +
	"(Subscriber.DisableListen, --no-listen) to poll without this check"

// ListenOptions configure ListenEvents.
type ListenOptions struct {
	// ConnConfig, when set, opens the listening connection with this configuration instead of
	// taking one from the Client's pool: point it at PostgreSQL directly (or at a pooler in
	// session mode) when the pool goes through a pooler in transaction mode. It must reach the
	// same database as the pool, which sends the probe notification.
	ConnConfig *pgx.ConnConfig
	// ProbeTimeout bounds the wait for the probe notification at start and after each reconnect
	// (default 2s).
	ProbeTimeout time.Duration
	// Logger receives a warning when LISTEN cannot receive (once) and when the connection is lost
	// (default slog.Default()).
	Logger *slog.Logger
}

// EventListener forwards NOTIFY annals_events to a wake-up channel, and wakes it once more 50 ms
// after the last notification (appends notify at most about once per 20 ms; the trailing
// wake-up covers the commits in between). Notifications are only hints: consumers always read
// the feed again, and poll as well. See Client.ListenEvents.
type EventListener struct {
	wake      chan struct{}
	done      chan struct{}
	listening atomic.Bool
	mu        sync.Mutex
	err       error
}

// ListenEvents starts a listener for NOTIFY annals_events on a connection of its own (taken out
// of the Client's pool for good, or opened with opts.ConnConfig) that runs until ctx ends,
// reconnecting with backoff when the connection is lost.
//
// Before it listens, it checks that notifications can reach that connection: it listens on a
// private channel and notifies that channel through the Client's pool. Behind a pooler in
// transaction mode the probe never arrives, as the server connection that ran LISTEN serves
// other clients as soon as the statement ends. Then the listener logs one warning with the
// remedy and stops, Err returns ErrListenUnavailable and consumers should poll at a brisker pace;
// it never issues LISTEN annals_events there, which would stay on a server connection that other
// clients share (delivering Annals' notifications to them). The probe's own channel is private
// and unlistened again, best effort.
//
// A nil *EventListener is valid: it never wakes and never listens.
func (c *Client) ListenEvents(ctx context.Context, opts ListenOptions) *EventListener {
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &EventListener{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go l.run(ctx, c, opts)
	return l
}

// Wake receives a value after notifications arrived (several coalesce into one).
func (l *EventListener) Wake() <-chan struct{} {
	if l == nil {
		return nil
	}
	return l.wake
}

// Wait is how a consumer that found nothing new waits before it reads again: until a
// notification arrives, ctx ends, or the poll interval passes. The interval is listening while
// notifications arrive (Listening), fallback otherwise: while the listener starts or reconnects,
// after it found that LISTEN cannot receive, and always for a nil listener (polling only).
func (l *EventListener) Wait(ctx context.Context, listening, fallback time.Duration) {
	d := fallback
	if l.Listening() {
		d = listening
	}
	sleep(ctx, d, l.Wake())
}

// Listening reports whether notifications currently arrive: the probe came through and the
// connection listens. It is false while the listener starts or reconnects, and after it stopped.
func (l *EventListener) Listening() bool { return l != nil && l.listening.Load() }

// Done is closed when the listener has stopped for good (its context ended, or LISTEN cannot
// receive) and closed its connection.
func (l *EventListener) Done() <-chan struct{} {
	if l == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return l.done
}

// Err returns why the listener stopped: ErrListenUnavailable, or nil when its context ended or it
// still runs.
func (l *EventListener) Err() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *EventListener) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *EventListener) run(ctx context.Context, c *Client, opts ListenOptions) {
	defer close(l.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.session(ctx, c, opts, &backoff)
		l.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrListenUnavailable) {
			l.mu.Lock()
			l.err = err
			l.mu.Unlock()
			opts.Logger.Warn("annals: notifications cannot reach the listening connection "+
				"(a pooler in transaction mode, such as PgBouncer, in between? or a listen connection "+
				"to another database?); polling instead",
				"remedy", listenRemedy)
			l.signal() // consumers waiting for a notification switch to polling now
			return
		}
		opts.Logger.Warn("annals: listener lost; polling meanwhile", "error", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, 10*time.Second)
	}
}

// session connects, probes, listens and forwards notifications until the connection fails, ctx
// ends or the probe does not arrive (ErrListenUnavailable).
func (l *EventListener) session(ctx context.Context, c *Client, opts ListenOptions, backoff *time.Duration) error {
	var conn *pgx.Conn
	if opts.ConnConfig != nil {
		cfg := opts.ConnConfig.Copy()
		cfg.OnNotification = nil // pgx buffers notifications for WaitForNotification only without a handler
		var err error
		if conn, err = pgx.ConnectConfig(ctx, cfg); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	} else {
		pooled, err := c.pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("acquire: %w", err)
		}
		// A listening connection must never go back to the pool: take it out for good.
		conn = pooled.Hijack()
	}
	listening := false
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if listening {
			_, _ = conn.Exec(cctx, "UNLISTEN *") // for a session pooler that does not reset connections
		}
		_ = conn.Close(cctx)
	}()

	if err := probe(ctx, c, conn, opts.ProbeTimeout); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+eventsChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening = true
	l.listening.Store(true)
	*backoff = 100 * time.Millisecond
	l.signal() // anything appended before LISTEN took effect is read now
	trail := time.AfterFunc(time.Hour, l.signal)
	trail.Stop()
	defer trail.Stop()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n != nil && n.Channel == eventsChannel {
			l.signal()
			trail.Reset(trailingWake) // and once more for the commits the gate let pass silently
		}
	}
}

// probe listens on a private channel of conn and notifies it through the pool, twice if need be,
// within timeout. It returns ErrListenUnavailable when the notification does not arrive.
func probe(ctx context.Context, c *Client, conn *pgx.Conn, timeout time.Duration) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	channel := "annals_probe_" + hex.EncodeToString(b)
	quoted := pgx.Identifier{channel}.Sanitize()
	// The backend that runs LISTEN, so that a failed probe can unlisten on that same backend.
	listener, err := backendAfter(ctx, conn, "LISTEN "+quoted)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	start := time.Now()
	for attempt := 1; attempt <= 2; attempt++ {
		// No parameters: the simple protocol, which works in every query mode behind every pooler.
		if _, err := c.pool.Exec(ctx, "SELECT pg_catalog.pg_notify('"+channel+"', 'probe')"); err != nil {
			return fmt.Errorf("probe notification: %w", mapError(err))
		}
		wctx, cancel := context.WithDeadline(ctx, start.Add(timeout*time.Duration(attempt)/2))
		arrived, err := waitFor(wctx, conn, channel)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && wctx.Err() == nil {
			return err // the connection failed
		}
		if arrived {
			if _, err := conn.Exec(ctx, "UNLISTEN "+quoted); err != nil {
				return fmt.Errorf("unlisten: %w", err)
			}
			return nil
		}
	}
	// Behind a transaction pooler each statement may run on another server connection: unlisten
	// until the statement reaches the one that listened (PgBouncer hands out the most recently
	// used one first, so that is usually the first try). Best effort, within a second.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	for cctx.Err() == nil {
		if pid, err := backendAfter(cctx, conn, "UNLISTEN "+quoted); err != nil || pid == listener {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return ErrListenUnavailable
}

// backendAfter runs sql and then reports the backend's pid, in one simple-protocol round trip
// (which a pooler serves from one server connection).
func backendAfter(ctx context.Context, conn *pgx.Conn, sql string) (string, error) {
	results, err := conn.PgConn().Exec(ctx, sql+"; SELECT pg_catalog.pg_backend_pid()").ReadAll()
	if err != nil {
		return "", err
	}
	if len(results) != 2 || len(results[1].Rows) != 1 || len(results[1].Rows[0]) != 1 {
		return "", errors.New("unexpected result of pg_backend_pid()")
	}
	return string(results[1].Rows[0][0]), nil
}

// waitFor waits until a notification on channel arrives on conn (true) or ctx ends (false, with
// the error).
func waitFor(ctx context.Context, conn *pgx.Conn, channel string) (bool, error) {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return false, err
		}
		if n != nil && n.Channel == channel {
			return true, nil
		}
	}
}

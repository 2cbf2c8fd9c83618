package demo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/progress"
)

const subscriptionStatusSQL = "SELECT subscription_name, categories, events_behind, dead_letters\n  FROM annals.subscription_status;"

func (s *story) subscription(ctx context.Context) error {
	s.heading("A subscription catches up")
	s.say("A subscription is a named, durable checkpoint in the gap-free global feed, for work outside",
		"the read models: e-mails, other services. A Go annals.Subscriber reads a batch, runs a handler",
		"per event and moves the checkpoint in one transaction, so the handler's writes happen exactly",
		"once. Here a mailer that logs every inventory movement:")
	err := s.exec(ctx, `CREATE TABLE demo.mailer_log (stream_id text, stream_version bigint, event_type text,
                              PRIMARY KEY (stream_id, stream_version));
SELECT annals.create_subscription('demo-mailer', 'beginning', categories => '{inventory}');`)
	if err != nil {
		return err
	}
	before, err := s.query(ctx, subscriptionStatusSQL)
	if err != nil {
		return err
	}
	behind, err := strconv.ParseInt(before.get(0, "events_behind"), 10, 64)
	if err != nil || behind == 0 {
		return fmt.Errorf("a new subscription from the beginning is %s events behind, want every inventory event", before.get(0, "events_behind"))
	}

	s.sql(`sub := &annals.Subscriber{Client: client, Name: "demo-mailer",
    Handler: func(ctx context.Context, tx pgx.Tx, ev annals.RecordedEvent) error {
        _, err := tx.Exec(ctx, "INSERT INTO demo.mailer_log VALUES ($1, $2, $3)",
            ev.StreamID, ev.StreamVersion, ev.EventType)
        return err
    }}
go sub.Run(ctx)  // until ctx is cancelled`)
	var handled atomic.Int64
	sub := &annals.Subscriber{
		Client: s.store, Name: "demo-mailer", PollInterval: 20 * time.Millisecond,
		Handler: func(ctx context.Context, tx pgx.Tx, ev annals.RecordedEvent) error {
			_, err := tx.Exec(ctx, "INSERT INTO demo.mailer_log VALUES ($1, $2, $3)", ev.StreamID, ev.StreamVersion, ev.EventType)
			if err == nil {
				handled.Add(1)
			}
			return err
		},
	}
	t0 := time.Now()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sub.Run(runCtx) }()
	// Caught up when the acknowledged count reaches what was behind (nothing else appends now).
	deadline := time.After(15 * time.Second)
	for caughtUp := false; !caughtUp; {
		select {
		case err := <-done:
			stop()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("the subscriber stopped before catching up: %v", err)
		case <-deadline:
			stop()
			runErr := <-done // nil when it stopped as told
			return errors.Join(fmt.Errorf("the subscriber handled %d of %d events in 15s", sub.Stats().Processed, behind), runErr)
		case <-time.After(10 * time.Millisecond):
			caughtUp = sub.Stats().Processed >= behind
		}
	}
	took := time.Since(t0)
	stop()
	if err := <-done; err != nil {
		return err
	}
	st := sub.Stats()
	s.result("handled %d events in %d batches, %s; then stopped", st.Processed, st.Batches, progress.Duration(took))

	after, err := s.query(ctx, subscriptionStatusSQL)
	if err != nil {
		return err
	}
	if after.get(0, "events_behind") != "0" {
		return fmt.Errorf("after catching up annals.subscription_status says %v, want 0 events behind", after.rows)
	}
	logged, err := s.query(ctx, "SELECT count(*) AS mails FROM demo.mailer_log;")
	if err != nil {
		return err
	}
	if n := strconv.FormatInt(behind, 10); logged.rows[0][0] != n || handled.Load() != behind {
		return fmt.Errorf("demo.mailer_log has %s rows and the handler ran %d times, want %s", logged.rows[0][0], handled.Load(), n)
	}
	s.result("caught up: one row per event, each handled once")
	s.fact("subscription demo-mailer caught up on %d events, each handled once with its checkpoint", behind)
	return nil
}

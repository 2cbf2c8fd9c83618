package main

import (
	"context"
	"log/slog"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
)

// Polling paces of the commands that follow the feed, when --poll-interval is not given.
const (
	pollListening = time.Second            // a safety net: notifications wake the command
	pollFallback  = 200 * time.Millisecond // no notification can arrive: poll briskly
)

// listenFlags are --listen-url, --no-listen and --poll-interval of the commands that follow the
// feed (tail, worker): how they learn about new events.
type listenFlags struct {
	url  string
	off  bool
	poll time.Duration
}

func addListenFlags(cmd *cobra.Command) *listenFlags {
	l := &listenFlags{}
	f := cmd.Flags()
	f.StringVar(&l.url, "listen-url", "", "LISTEN for new events on a connection to this URL instead (PostgreSQL directly, when --database-url goes through a pooler in transaction mode)")
	f.BoolVar(&l.off, "no-listen", false, "do not LISTEN for new events: poll only")
	f.DurationVar(&l.poll, "poll-interval", 0, "wait between polls for new events (default 1s while notifications arrive, 200ms when none can)")
	return l
}

// check validates the flags before anything connects.
func (l *listenFlags) check() error {
	switch {
	case l.poll < 0:
		return usagef("--poll-interval must be positive")
	case l.off && l.url != "":
		return usagef("--listen-url and --no-listen exclude each other")
	}
	if l.url != "" {
		if _, err := pgx.ParseConfig(l.url); err != nil {
			return usagef("bad --listen-url: %v", err)
		}
	}
	return nil
}

// start starts the listener (nil with --no-listen). Without --listen-url it uses a connection of
// client's pool. When notifications cannot reach it (a pooler in transaction mode), it logs so
// once with the remedy and the command polls instead.
func (l *listenFlags) start(ctx context.Context, client *annals.Client, log *slog.Logger) *annals.EventListener {
	if l.off {
		return nil
	}
	opts := annals.ListenOptions{Logger: log}
	if l.url != "" {
		cfg, _ := pgx.ParseConfig(l.url) // checked by check
		if _, ok := cfg.RuntimeParams["application_name"]; !ok {
			cfg.RuntimeParams["application_name"] = client.Pool().Config().ConnConfig.RuntimeParams["application_name"]
		}
		opts.ConnConfig = cfg
	}
	return client.ListenEvents(ctx, opts)
}

// wait waits for new events before the command polls again: a notification from listener (nil:
// none), ctx's end, or the poll interval (--poll-interval, else by whether notifications arrive).
func (l *listenFlags) wait(ctx context.Context, listener *annals.EventListener) {
	listening, fallback := pollListening, pollFallback
	if l.poll > 0 {
		listening, fallback = l.poll, l.poll
	}
	listener.Wait(ctx, listening, fallback)
}

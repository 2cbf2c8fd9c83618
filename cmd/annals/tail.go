package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/annals-db/annals/internal/progress"
)

func newTailCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tail [--category C]... [--type T]... [--from-start] [--until-end] [--json]",
		Short: "Follow the gap-free global feed live, or dump it up to its head, optionally filtered.",
		Long: `Follow the gap-free global feed live, or dump it up to its head, optionally one category or some event
types.

Prints each event as it becomes readable in the feed, in feed order (transaction id, then global
position), from now on, or from the beginning of history with --from-start, until Ctrl-C (exit 0).
It wakes on NOTIFY annals_events (when annals.configure(notify => true) is on) and polls every
--poll-interval either way. Behind a pooler in transaction mode (PgBouncer's pool_mode =
transaction) no notification can arrive: tail finds that out at start, says so once and polls
every 200ms; give it --listen-url (a direct connection to PostgreSQL) to keep the wake-ups, or
--no-listen to poll without the check.

--until-end dumps instead of following: from the beginning of history up to the feed's head when
the command starts (every event of the transactions that had ended by then), then exits 0. Events
appended meanwhile are left for the next run. On a terminal, stderr shows how far it got.

Events appear once every older transaction has ended: a long-running writing transaction anywhere
in the cluster pauses the feed (never skips it). tail says so on stderr when that lasts; see
annals doctor, or SELECT * FROM annals.feed_blocker.`,
		Example: `  annals tail
  annals tail --category inventory --type ItemAdjusted
  annals tail --from-start --json | jq -c '{stream_id, event_type, data}'
  annals tail --until-end --category inventory --json > inventory.jsonl`,
		Args: noArgs,
	}
	db := addDatabaseFlag(cmd)
	f := cmd.Flags()
	categories := f.StringArray("category", nil, "only streams of this category (repeatable)")
	types := f.StringArray("type", nil, "only events of this type (repeatable)")
	fromStart := f.Bool("from-start", false, "start at the beginning of history instead of now")
	untilEnd := f.Bool("until-end", false, "dump from the beginning up to the feed's current head, then exit")
	asJSON := f.Bool("json", false, "one JSON object per event and line")
	batch := f.Int("batch", 500, "events per read")
	width := f.Int("width", 60, "cut data to this many characters (0: never)")
	listen := addListenFlags(cmd)

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *batch <= 0 {
			return usagef("--batch must be positive")
		}
		if err := listen.check(); err != nil {
			return err
		}
		ctx := cmd.Context()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		t := &tailer{
			client: client, pool: pool, out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(),
			opts: annals.FeedOptions{MaxCount: *batch, EventTypes: *types, Categories: *categories},
			json: *asJSON, width: *width, listen: listen,
		}
		if *untilEnd {
			return t.dump(ctx)
		}
		err = t.run(ctx, *fromStart)
		if ctx.Err() != nil {
			return nil // Ctrl-C or SIGTERM: the normal way to stop
		}
		return err
	}
	return cmd
}

type tailer struct {
	client      *annals.Client
	pool        *pgxpool.Pool
	out, errOut io.Writer
	opts        annals.FeedOptions
	json        bool
	width       int
	listen      *listenFlags
	warnedPid   int32
}

// dump prints the feed from the beginning up to its head at the start: every event of a
// transaction older than the barrier then. Those are all readable, in order, so the dump ends at
// the first event of a younger transaction or when the feed has nothing more.
func (t *tailer) dump(ctx context.Context) error {
	head, err := t.client.FeedHead(ctx)
	if err != nil {
		return err
	}
	progress := newCounter(t.errOut, head.LastPosition)
	var cp annals.Checkpoint
	n := 0
	for {
		page, err := t.client.ReadAll(ctx, cp, t.opts)
		if err != nil {
			progress.finish()
			return err
		}
		for _, ev := range page {
			if ev.TransactionID >= head.Barrier {
				progress.finish()
				return t.dumped(ctx, n, head)
			}
			cp = ev.Checkpoint()
			if err := t.print(ev); err != nil {
				progress.finish()
				return err
			}
			n++
		}
		progress.update(n, cp.GlobalPosition)
		if len(page) < t.opts.MaxCount {
			progress.finish()
			return t.dumped(ctx, n, head)
		}
	}
}

// dumped says on stderr what a dump printed (stdout holds only events), and when an old
// transaction held the feed's head back, which one.
func (t *tailer) dumped(ctx context.Context, n int, head annals.FeedHead) error {
	fmt.Fprintf(t.errOut, "printed %d event(s): the feed up to its head when the dump began (global position %d)\n",
		n, head.LastPosition)
	if b, err := feedBlocker(ctx, t.pool); err == nil && b != nil && b.Age >= 5*time.Second {
		fmt.Fprintf(t.errOut, "note: later events wait behind an open transaction: %s\n", b.describe())
	}
	return nil
}

// counter shows a dump's progress on a terminal, redrawn in place: events printed and the
// position reached, of the head's. On a file or pipe it stays silent.
type counter struct {
	w     io.Writer
	last  int64
	tty   bool
	shown bool
}

func newCounter(w io.Writer, last int64) *counter {
	return &counter{w: w, last: last, tty: progress.IsTerminal(w)}
}

func (c *counter) update(events int, position int64) {
	if !c.tty {
		return
	}
	fmt.Fprintf(c.w, "\rdumping the feed: %d event(s), at position %d of %d", events, position, c.last)
	c.shown = true
}

func (c *counter) finish() {
	if c.shown {
		fmt.Fprintln(c.w)
	}
}

func (t *tailer) run(ctx context.Context, fromStart bool) error {
	var cp annals.Checkpoint
	var past *txSnapshot
	if !fromStart {
		// Now is this snapshot: everything below its xmin is history, and so is every transaction
		// it sees as committed above xmin (they committed while an older one was still open).
		var err error
		if past, err = currentSnapshot(ctx, t.pool); err != nil {
			return err
		}
		cp = annals.Checkpoint{TransactionID: past.xmin}
	}
	where := "from now"
	if fromStart {
		where = "from the beginning"
	}
	var filters []string
	if len(t.opts.Categories) > 0 {
		filters = append(filters, "categories "+strings.Join(t.opts.Categories, ", "))
	}
	if len(t.opts.EventTypes) > 0 {
		filters = append(filters, "types "+strings.Join(t.opts.EventTypes, ", "))
	}
	if len(filters) > 0 {
		where += " (" + strings.Join(filters, "; ") + ")"
	}
	fmt.Fprintf(t.errOut, "following the feed %s, after %s; Ctrl-C to stop\n", where, formatCheckpoint(cp))

	listener := t.listen.start(ctx, t.client, slog.New(slog.NewTextHandler(t.errOut, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // a terminal's lines need no timestamp
			}
			return a
		}})))

	idleSince := time.Now()
	for {
		page, err := t.client.ReadAll(ctx, cp, t.opts)
		if err != nil {
			return err
		}
		for _, ev := range page {
			cp = ev.Checkpoint()
			if past != nil && past.sees(ev.TransactionID) {
				continue
			}
			if err := t.print(ev); err != nil {
				return err
			}
		}
		if past != nil && cp.TransactionID >= past.xmax {
			past = nil // every later transaction started after the snapshot
		}
		if len(page) > 0 {
			idleSince = time.Now()
		}
		if len(page) == t.opts.MaxCount {
			continue
		}
		if time.Since(idleSince) > 30*time.Second {
			t.warnIfPaused(ctx)
		}
		t.listen.wait(ctx, listener)
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (t *tailer) print(ev annals.RecordedEvent) error {
	if t.json {
		return writeEventJSON(t.out, ev)
	}
	_, err := fmt.Fprintf(t.out, "%s  %8d  %s@%d  %s  %s\n", formatTime(ev.RecordedAt), ev.GlobalPosition,
		ev.StreamID, ev.StreamVersion, ev.EventType, truncate(oneLineJSON(ev.Data), t.width))
	return err
}

// warnIfPaused tells, once per blocking backend, that an old transaction holds the feed back.
func (t *tailer) warnIfPaused(ctx context.Context) {
	b, err := feedBlocker(ctx, t.pool)
	if err != nil || b == nil || b.Age < 30*time.Second || b.Pid == t.warnedPid {
		return
	}
	t.warnedPid = b.Pid
	fmt.Fprintf(t.errOut, "note: the feed may be paused: %s\n", b.describe())
}

// blocker is the row of annals.feed_blocker: the oldest transaction holding the feed's barrier.
type blocker struct {
	Kind          string
	Pid           int32
	TransactionID string
	Age           time.Duration
	State         string
	Username      string
	Application   string
	Query         string
}

func (b *blocker) describe() string {
	who := fmt.Sprintf("%s %d", b.Kind, b.Pid)
	end := fmt.Sprintf("end it (COMMIT or ROLLBACK in that session, or SELECT pg_terminate_backend(%d))", b.Pid)
	if b.Kind != "backend" {
		who = fmt.Sprintf("prepared transaction %q", b.Query)
		end = fmt.Sprintf("COMMIT PREPARED or ROLLBACK PREPARED %s", pgutil.QuoteLiteral(b.Query))
	}
	return fmt.Sprintf("transaction %s of %s (user %s, %s, state %s) has been open for %s and holds the feed back; %s",
		b.TransactionID, who, orDash(&b.Username), orDash(&b.Application), orDash(&b.State), formatAge(b.Age), end)
}

// feedBlocker reads annals.feed_blocker; nil when no transaction holds the barrier.
func feedBlocker(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (*blocker, error) {
	rows, err := db.Query(ctx, `
		SELECT b.kind, coalesce(b.pid, 0), b.transaction_id::text, coalesce(extract(epoch FROM b.age), 0)::float8,
		       coalesce(b.state, ''), coalesce(b.username, ''), coalesce(b.application_name, ''), coalesce(b.query, '')
		  FROM annals.feed_blocker AS b`)
	if err != nil {
		return nil, err
	}
	var b blocker
	var secs float64
	found := false
	for rows.Next() {
		found = true
		if err := rows.Scan(&b.Kind, &b.Pid, &b.TransactionID, &secs, &b.State, &b.Username, &b.Application, &b.Query); err != nil {
			rows.Close()
			return nil, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	b.Age = time.Duration(secs * float64(time.Second))
	return &b, nil
}

// txSnapshot is a pg_snapshot: transactions below xmin had ended, those from xmax on had not
// started, and in between the ones in xip were running.
type txSnapshot struct {
	xmin, xmax uint64
	xip        map[uint64]bool
}

// sees reports whether the snapshot saw txid's work as done (committed, for a transaction that
// wrote events).
func (s *txSnapshot) sees(txid uint64) bool {
	return txid < s.xmin || txid < s.xmax && !s.xip[txid]
}

func currentSnapshot(ctx context.Context, pool *pgxpool.Pool) (*txSnapshot, error) {
	var text string
	if err := pool.QueryRow(ctx, "SELECT pg_catalog.pg_current_snapshot()::text").Scan(&text); err != nil {
		return nil, err
	}
	return parseSnapshot(text)
}

// parseSnapshot reads pg_snapshot's text form, xmin:xmax:xip,xip,...
func parseSnapshot(text string) (*txSnapshot, error) {
	parts := strings.Split(text, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("unexpected snapshot %q", text)
	}
	s := &txSnapshot{xip: map[uint64]bool{}}
	var err error
	if s.xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", text, err)
	}
	if s.xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", text, err)
	}
	if parts[2] != "" {
		for _, x := range strings.Split(parts[2], ",") {
			v, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("snapshot %q: %w", text, err)
			}
			s.xip[v] = true
		}
	}
	return s, nil
}

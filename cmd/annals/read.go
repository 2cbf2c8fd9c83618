package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newReadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "read STREAM [--from N] [--backwards] [--limit N] [--as-of TIME | --as-of-version N] [--raw] [--json]",
		Short: "Print a stream's events, or the events it had at a past version or time.",
		Long: `Print a stream's events, or the events it had at a past version or time.

By default a table (version, type, data cut to --width characters, recorded at); --json prints
one JSON object per event and line, with every field, for jq and scripts. Events are upcast to
their current schema unless --raw.

--from N starts at version N (inclusive), as annals.read_stream's from_version: versions start at 1,
so --from 0 is refused, as from_version => 0 is in SQL; leave --from out to start at the first
event (or the last with --backwards).

--as-of TIME reads the stream as it was at that time (RFC 3339, "2006-01-02 15:04:05[.000][+07:00]",
a date, or a duration ago such as 10m or 36h); --as-of-version N as it was after its first N
events.

A stream without events is an error (exit code 3, as for annals streams show). A deleted stream's
events are printed, with a note on stderr that it is deleted. The stream's state and its events
are read in one snapshot.`,
		Example: `  annals read inventory-42
  annals read inventory-42 --backwards --limit 1 --json | jq .data
  annals read inventory-42 --as-of '2025-06-01 12:00:00+02:00'
  annals read inventory-42 --as-of-version 3`,
		Args: exactArgs("STREAM"),
	}
	db := addDatabaseFlag(cmd)
	f := cmd.Flags()
	from := f.Int64("from", 0, "first version to read, >= 1 (default the first event, or the last with --backwards)")
	backwards := f.Bool("backwards", false, "newest first")
	limit := f.Int("limit", 0, "at most this many events (default all)")
	asOf := f.String("as-of", "", "read the stream as it was at TIME")
	asOfVersion := f.Int64("as-of-version", 0, "read the stream as it was after its first N events")
	raw := f.Bool("raw", false, "events as stored: no upcasting or alias renaming")
	asJSON := f.Bool("json", false, "one JSON object per event and line")
	width := f.Int("width", 60, "cut data to this many characters in the table (0: never)")

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := exclusive(f, "as-of", "as-of-version"); err != nil {
			return err
		}
		pastRead := f.Changed("as-of") || f.Changed("as-of-version")
		if pastRead {
			for _, other := range []string{"from", "backwards", "raw"} {
				if f.Changed(other) {
					return usagef("--%s cannot be combined with --as-of or --as-of-version", other)
				}
			}
		}
		if f.Changed("from") && *from < 1 {
			return usagef("--from %d: versions start at 1 (annals.read_stream refuses from_version %d too); leave --from out to read from the first event, or the last with --backwards",
				*from, *from)
		}
		if *limit < 0 {
			return usagef("--limit must not be negative")
		}
		var at annals.AsOf
		switch {
		case f.Changed("as-of"):
			t, err := parseTime(*asOf, time.Now())
			if err != nil {
				return err
			}
			at = annals.AtTime(t)
		case f.Changed("as-of-version"):
			if *asOfVersion < 0 {
				return usagef("--as-of-version must be >= 0, got %d", *asOfVersion)
			}
			at = annals.AtVersion(*asOfVersion)
		}

		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		// One snapshot for the stream's state and its events, so the note below agrees with what
		// was printed. Read-only, so it holds no transaction id and never pauses the feed.
		tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only: nothing to keep
		if err := setTenantTx(ctx, cmd, tx); err != nil {
			return err
		}
		stream := args[0]
		info, err := client.StreamInfoTx(ctx, tx, stream)
		if errors.Is(err, annals.ErrStreamNotFound) {
			return streamMissing(stream)
		}
		if err != nil {
			return err
		}
		var events iter.Seq2[annals.RecordedEvent, error]
		if pastRead {
			events = client.ReadStreamAsOfTx(ctx, tx, stream, at)
		} else {
			events = client.ReadStreamTx(ctx, tx, stream, annals.ReadOptions{From: *from, Backwards: *backwards, Limit: *limit, Raw: *raw})
		}
		n, err := printEvents(out, events, *limit, *asJSON, *width)
		if err != nil {
			return err
		}
		errOut := cmd.ErrOrStderr()
		if n == 0 && !*asJSON {
			fmt.Fprintf(errOut, "stream %q has no events in that range (it is at version %d)\n", stream, info.StreamVersion)
		}
		if info.State == "deleted" {
			fmt.Fprintf(errOut, "note: stream %q is %s (since %s, at version %d): its events stay readable, appends are refused\n",
				stream, info.State, formatTime(info.UpdatedAt), info.StreamVersion)
		}
		if info.State == "purged" {
			fmt.Fprintf(errOut, "note: stream %q was purged (%s, at version %d): its events are gone for good, appends are refused\n",
				stream, formatTime(info.UpdatedAt), info.StreamVersion)
		}
		return nil
	}
	return cmd
}

// printEvents writes events as a table or JSON lines, at most limit (0: all); it returns how many.
func printEvents(out io.Writer, events iter.Seq2[annals.RecordedEvent, error], limit int, asJSON bool, width int) (int, error) {
	tw := newTable(out)
	n := 0
	for ev, err := range events {
		if err != nil {
			return n, err
		}
		if limit > 0 && n >= limit {
			break
		}
		if n == 0 && !asJSON {
			fmt.Fprintln(tw, "VERSION\tTYPE\tDATA\tRECORDED_AT")
		}
		n++
		if asJSON {
			if err := writeEventJSON(out, ev); err != nil {
				return n, err
			}
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", ev.StreamVersion, ev.EventType, truncate(oneLineJSON(ev.Data), width), formatTime(ev.RecordedAt))
	}
	return n, tw.Flush()
}

// exclusive fails when more than one of the named flags is set.
func exclusive(f *pflag.FlagSet, names ...string) error {
	var set []string
	for _, n := range names {
		if f.Changed(n) {
			set = append(set, "--"+n)
		}
	}
	if len(set) > 1 {
		return usagef("%s cannot be combined", strings.Join(set, " and "))
	}
	return nil
}

// timeLayouts are the absolute forms --as-of accepts, most specific first.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTime reads an absolute time (local time when it has no zone) or a duration ago.
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, time.Local); err == nil {
			return t, nil
		}
	}
	ago := strings.TrimPrefix(strings.TrimSpace(strings.TrimSuffix(s, "ago")), "-")
	if d, err := time.ParseDuration(ago); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("cannot read time %q: use RFC 3339 (2025-06-01T12:00:00Z), '2025-06-01 12:00:00[+02:00]', a date, or a duration ago (10m, 36h)", s)
}

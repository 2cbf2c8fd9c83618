package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/spf13/cobra"
)

func newStreamsCmd() *cobra.Command {
	return group("streams COMMAND", "List and inspect streams: version, last activity, state, size; delete one.",
		`List and inspect streams: version, last activity, state, size; delete one.

list and show read annals.list_streams, annals.stream_info and annals.stream_stats: the login needs
annals_reader or annals_writer. delete calls annals.delete_stream and needs annals_writer; purge
calls annals.purge_stream and needs annals_owner.`,
		newStreamsListCmd(), newStreamsShowCmd(), newStreamsDeleteCmd(), newStreamsPurgeCmd())
}

// streamRow is an annals.stream row in --json form.
type streamRow struct {
	StreamID      string    `json:"stream_id"`
	StreamVersion int64     `json:"stream_version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	State         string    `json:"state"`
}

func newStreamsListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--category C] [--limit N] [--after STREAM] [--json]",
		Short: "List streams in id order, optionally of one category.",
		Long: `List streams in id order, optionally of one category (the part of the stream id before the first
'-'). Prints at most --limit streams (0: all); when there are more it says how to get the next page.`,
		Example: `  annals streams list --category inventory
  annals streams list --limit 0 --json | jq -r .stream_id`,
		Args: noArgs,
	}
	db := addDatabaseFlag(cmd)
	f := cmd.Flags()
	category := f.String("category", "", "only streams of this category")
	limit := f.Int("limit", 100, "at most this many streams (0: all)")
	after := f.String("after", "", "start after this stream id (the next page)")
	asJSON := f.Bool("json", false, "one JSON object per stream and line")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *limit < 0 {
			return usagef("--limit must not be negative")
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		opts := annals.ListStreamsOptions{Category: *category, After: *after}
		if *limit > 0 {
			opts.Limit = *limit + 1 // one more than shown tells whether there are more
		}
		tw := newTable(out)
		if !*asJSON {
			fmt.Fprintln(tw, "STREAM\tVERSION\tSTATE\tCREATED_AT\tUPDATED_AT")
		}
		n, more, last := 0, false, ""
		for s, err := range client.ListStreams(ctx, opts) {
			if err != nil {
				return err
			}
			if *limit > 0 && n == *limit {
				more = true
				break
			}
			n++
			last = s.StreamID
			if *asJSON {
				if err := writeJSONLine(out, streamRow(s)); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.StreamID, s.StreamVersion, s.State, formatTime(s.CreatedAt), formatTime(s.UpdatedAt))
		}
		if !*asJSON {
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		errOut := cmd.ErrOrStderr()
		switch {
		case n == 0 && *category != "":
			fmt.Fprintf(errOut, "no streams in category %q\n", *category)
		case n == 0:
			fmt.Fprintln(errOut, "no streams")
		case more:
			args := []string{"annals streams list"}
			if *category != "" {
				args = append(args, "--category "+shellQuote(*category))
			}
			args = append(args, "--after "+shellQuote(last))
			fmt.Fprintf(errOut, "(first %d shown; next page: %s)\n", n, strings.Join(args, " "))
		}
		return nil
	}
	return cmd
}

func newStreamsShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show STREAM [--json]",
		Short: "Show one stream: version, created and updated, state, event count and stored size.",
		Long: `Show one stream: version, created and updated, state, event count and stored size (its event rows
after compression, without indexes). Exit code 3 when the stream has no events.`,
		Args: exactArgs("STREAM"),
	}
	db := addDatabaseFlag(cmd)
	asJSON := cmd.Flags().Bool("json", false, "print one JSON object")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		info, err := client.StreamInfo(ctx, args[0])
		if errors.Is(err, annals.ErrStreamNotFound) {
			return streamMissing(args[0])
		}
		if err != nil {
			return err
		}
		stats, err := client.StreamStats(ctx, args[0])
		if err != nil {
			return err
		}
		count, size := stats.EventCount, stats.SizeBytes
		category, _, _ := strings.Cut(info.StreamID, "-")
		if *asJSON {
			return writeJSONLine(out, map[string]any{
				"stream_id": info.StreamID, "category": category, "stream_version": info.StreamVersion,
				"state": info.State, "created_at": info.CreatedAt, "updated_at": info.UpdatedAt,
				"event_count": count, "size_bytes": size,
			})
		}
		tw := newTable(out)
		fmt.Fprintf(tw, "stream\t%s\n", info.StreamID)
		fmt.Fprintf(tw, "category\t%s\n", category)
		fmt.Fprintf(tw, "version\t%d\n", info.StreamVersion)
		fmt.Fprintf(tw, "state\t%s\n", info.State)
		fmt.Fprintf(tw, "created\t%s\n", formatTime(info.CreatedAt))
		fmt.Fprintf(tw, "updated\t%s (%s ago)\n", formatTime(info.UpdatedAt), formatAge(time.Since(info.UpdatedAt)))
		fmt.Fprintf(tw, "events\t%d\n", count)
		fmt.Fprintf(tw, "size\t%s (%d bytes)\n", formatBytes(size), size)
		return tw.Flush()
	}
	return cmd
}

func newStreamsDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete STREAM [--expected N|exists|any] [--reason TEXT]",
		Short: "Delete (close) a stream: appends are refused from then on; its events stay readable.",
		Long: `Delete (close) a stream with annals.delete_stream: later appends fail with ST410, while its events stay
stored and readable (annals read shows them, and says the stream is deleted). The deletion is
recorded with who, when and --reason. Nothing is removed.

--expected guards against deleting a stream that moved on since you looked: N (it must be at
exactly version N), exists, or any (the default). Exit code 3 when the stream has no events, 4 when
it is at another version or already deleted. Needs annals_writer.`,
		Example: `  annals streams delete cart-9 --expected 2 --reason 'abandoned cart'
  annals streams delete cart-9`,
		Args: exactArgs("STREAM"),
	}
	db := addDatabaseFlag(cmd)
	expected := cmd.Flags().String("expected", "any", "the stream's version: N, exists or any")
	reason := cmd.Flags().String("reason", "", "why, recorded in the lifecycle log")
	_ = cmd.RegisterFlagCompletionFunc("expected", cobra.FixedCompletions([]string{"any", "exists"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if strings.TrimSpace(*expected) == "" {
			return usagef("--expected must not be empty: give the stream's version N, exists or any")
		}
		exp, err := parseExpected(*expected)
		if err != nil {
			return err
		}
		if v, ok := exp.Version(); ok && v == 0 {
			return usagef("--expected %s: a stream without events cannot be deleted; give its version N, exists or any", *expected)
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		stream := args[0]
		version, err := client.DeleteStream(ctx, stream, exp, *reason)
		var wev *annals.WrongExpectedVersionError
		switch {
		case errors.As(err, &wev) && wev.Actual == 0:
			return kindError{fmt.Sprintf("stream %q has no events: nothing to delete (annals streams list shows the streams)", stream),
				annals.ErrStreamNotFound}
		case errors.Is(err, annals.ErrStreamDeleted):
			return kindError{fmt.Sprintf("stream %q is already deleted (annals streams show %s says since when)", stream, shellQuote(stream)),
				annals.ErrStreamDeleted}
		case err != nil:
			return err
		}
		fmt.Fprintf(out, "deleted %s at version %d; its events stay readable, appends are refused\n", stream, version)
		return nil
	}
	return cmd
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@=+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
)

func newStreamsCmd() *cobra.Command {
	return group("streams COMMAND", "List and inspect streams: version, last activity, state, size.",
		`List and inspect streams: version, last activity, state, size.

Reads annals.list_streams, annals.stream_info and annals.stream_stats: the login needs annals_reader
or annals_writer.`,
		newStreamsListCmd(), newStreamsShowCmd())
}

// streamRow is an annals.stream row.
type streamRow struct {
	StreamID      string    `db:"stream_id" json:"stream_id"`
	StreamVersion int64     `db:"stream_version" json:"stream_version"`
	CreatedAt     time.Time `db:"created_at" json:"created_at"`
	UpdatedAt     time.Time `db:"updated_at" json:"updated_at"`
	State         string    `db:"state" json:"state"`
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
		pool, err := db.pool(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		var cat, next *string
		if *category != "" {
			cat = category
		}
		if *after != "" {
			next = after
		}
		tw := newTable(out)
		if !*asJSON {
			fmt.Fprintln(tw, "STREAM\tVERSION\tSTATE\tCREATED_AT\tUPDATED_AT")
		}
		n, more := 0, false
		for {
			want := 1000
			if *limit > 0 {
				want = min(1000, *limit-n+1) // one more than needed tells whether there are more
			}
			rows, err := pool.Query(ctx, `SELECT s.stream_id, s.stream_version, s.created_at, s.updated_at, s.state
				FROM annals.list_streams($1, $2, $3) AS s`, cat, next, want)
			if err != nil {
				return err
			}
			page, err := pgx.CollectRows(rows, pgx.RowToStructByName[streamRow])
			if err != nil {
				return err
			}
			for _, s := range page {
				if *limit > 0 && n == *limit {
					more = true
					break
				}
				n++
				last := s.StreamID
				next = &last
				if *asJSON {
					if err := writeJSONLine(out, s); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", s.StreamID, s.StreamVersion, s.State, formatTime(s.CreatedAt), formatTime(s.UpdatedAt))
			}
			if more || len(page) < want {
				break
			}
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
			args = append(args, "--after "+shellQuote(*next))
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
after compression, without indexes). Exit code 1 when the stream has no events.`,
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
		if err != nil {
			return err
		}
		var count, size int64
		if err := pool.QueryRow(ctx, "SELECT s.event_count, s.size_bytes FROM annals.stream_stats($1) AS s", args[0]).Scan(&count, &size); err != nil {
			return err
		}
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

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:@=+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/progress"
	"github.com/spf13/cobra"
)

func newStorageCmd() *cobra.Command {
	return group("storage COMMAND", "Show the hot and cold storage tiers; compress older events, archive a finished stream.",
		`Show the hot and cold storage tiers; compress older events, archive a finished stream.

Cold storage packs older events into compressed segments (up to 100 versions of one stream each)
that every read returns exactly as before. stats reads annals.storage_stats (annals_reader or
annals_writer); compress and archive call annals.compress_events and annals.archive_stream, which
only annals_owner may run.`,
		newStorageStatsCmd(), newStorageCompressCmd(), newStorageArchiveCmd())
}

// parseAge reads a duration that may also be given in days: 30d, 12h, 90m, 1h30m.
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, usagef("cannot read duration %q: use days (30d) or a Go duration (12h, 90m)", s)
	}
	return d, nil
}

func newStorageStatsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats [--json]",
		Short: "Events and bytes on disk per tier (hot, cold), bytes per event and the cold/hot ratio.",
		Long: `Events and bytes on disk per tier: hot (the events table) and cold (compressed segments). Bytes
count heap, TOAST and indexes; rows a move left behind in the hot table count until VACUUM
reclaims them. ratio is a tier's bytes per event over the hot tier's. Counts every hot event.`,
		Args: noArgs,
	}
	db := addDatabaseFlag(cmd)
	asJSON := cmd.Flags().Bool("json", false, "one JSON object per tier and line")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		tiers, err := client.StorageStats(ctx)
		if err != nil {
			return err
		}
		hot := 0.0
		for _, t := range tiers {
			if t.Tier == "hot" {
				hot = t.BytesPerEvent
			}
		}
		ratio := func(t annals.StorageTier) string {
			if hot == 0 || t.Events == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", t.BytesPerEvent/hot)
		}
		if *asJSON {
			for _, t := range tiers {
				if err := writeJSONLine(out, map[string]any{"tier": t.Tier, "events": t.Events, "bytes": t.Bytes,
					"bytes_per_event": t.BytesPerEvent}); err != nil {
					return err
				}
			}
			return nil
		}
		tw := newTable(out)
		fmt.Fprintln(tw, "tier\tevents\tbytes\tbytes/event\tratio")
		for _, t := range tiers {
			per := "-"
			if t.Events > 0 {
				per = fmt.Sprintf("%.1f", t.BytesPerEvent)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", t.Tier, t.Events, formatBytes(t.Bytes), per, ratio(t))
		}
		return tw.Flush()
	}
	return cmd
}

func newStorageCompressCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compress --older-than D [--max-events N] [--batch N]",
		Short: "Move events older than D into compressed cold storage, in steps, with a progress bar.",
		Long: `Move events recorded more than --older-than ago (30d, 12h) into compressed cold storage, oldest
first, with annals.compress_events in steps of --batch events (each step its own transaction:
appends, reads and subscriptions go on; an interrupted run keeps the steps done), at most
--max-events in all (0: until none is left). Reads return the same events before and after.
Needs annals_owner.`,
		Example: `  annals storage compress --older-than 30d
  annals storage compress --older-than 90d --max-events 1000000`,
		Args: noArgs,
	}
	db := addDatabaseFlag(cmd)
	olderThan := cmd.Flags().String("older-than", "", "move events recorded more than this long ago (30d, 12h)")
	maxEvents := cmd.Flags().Int64("max-events", 0, "move at most this many events (0: all that qualify)")
	batch := cmd.Flags().Int64("batch", 50000, "events per annals.compress_events call (one transaction)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *olderThan == "" {
			return usagef("--older-than is required: events recorded more than this long ago move (30d, 12h)")
		}
		age, err := parseAge(*olderThan)
		if err != nil {
			return err
		}
		if *maxEvents < 0 || *batch < 1 {
			return usagef("--max-events must not be negative and --batch must be positive")
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		tiers, err := client.StorageStats(ctx)
		if err != nil {
			return err
		}
		total := tiers[0].Events // at most: every hot event
		if *maxEvents > 0 {
			total = min(total, *maxEvents)
		}
		started := time.Now()
		bar := progress.New(cmd.ErrOrStderr(), "compressing")
		var done int64
		for *maxEvents == 0 || done < *maxEvents {
			step := *batch
			if *maxEvents > 0 {
				step = min(step, *maxEvents-done)
			}
			n, err := client.CompressEvents(ctx, age, step)
			if err != nil {
				bar.Finish(false)
				return err
			}
			done += n
			total = max(total, done)
			if n < step {
				total = done
			}
			bar.Update(done, total)
			if n < step {
				break
			}
		}
		bar.Finish(true)
		fmt.Fprintf(out, "moved %d events to cold storage in %s\n", done, progress.Duration(time.Since(started)))
		return nil
	}
	return cmd
}

func newStorageArchiveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive STREAM [--expected N|exists|any]",
		Short: "Move every event of a finished stream into cold storage now, whatever its age.",
		Long: `Move every hot event of a stream into compressed cold storage now (annals.archive_stream), whatever
its age. Reads return the same events; appends to the stream still work (new events are hot).
--expected guards against archiving a stream that moved on: N (exactly version N), exists or any
(the default). Exit code 3 when the stream does not exist, 4 when it is at another version.
Needs annals_owner.`,
		Example: `  annals storage archive order-1842 --expected 12`,
		Args:    exactArgs("STREAM"),
	}
	db := addDatabaseFlag(cmd)
	expected := cmd.Flags().String("expected", "any", "the stream's version: N, exists or any")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		exp, err := parseExpected(*expected)
		if err != nil {
			return err
		}
		if v, ok := exp.Version(); ok && v == 0 {
			return usagef("--expected %s: give the stream's version N, exists or any", *expected)
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		n, err := client.ArchiveStream(ctx, args[0], exp)
		if errors.Is(err, annals.ErrNotFound) {
			return streamMissing(args[0])
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "archived %s: %d events moved to cold storage\n", args[0], n)
		return nil
	}
	return cmd
}

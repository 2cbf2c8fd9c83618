package main

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/spf13/cobra"
)

// Lifecycle commands (M13): retention rules, purged streams, forgotten subjects. All need
// annals_owner.

func newRetentionCmd() *cobra.Command {
	return group("retention COMMAND", "Retention rules: set, list and apply them (annals_owner).",
		`Retention rules remove old events of a stream or of every stream of a category: older than
--max-age, beyond the newest --max-count, or below version --truncate-before. apply removes what
the rules say, in bounded steps, never a stream's last event and (for max-age and max-count)
never an event above the stream's newest snapshot. Every removal is in the lifecycle log.
set and apply need annals_owner; list needs annals_reader or annals_writer.`,
		newRetentionSetCmd(), newRetentionListCmd(), newRetentionApplyCmd())
}

func formatMaxAge(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func dashIfZero(n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func newRetentionSetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set (--stream S | --category C) [--max-age AGE] [--max-count N] [--truncate-before V] [--remove]",
		Short: "Set, replace or remove the retention rule of a stream or category.",
		Long: `Set or replace the retention rule of one stream (--stream) or of every stream of a category
(--category; a stream's own rule overrides its category's). --max-age takes days (30d) or a
duration (12h); --max-count keeps the newest N events; --truncate-before removes the versions
below V even above a snapshot. --remove deletes the rule. Nothing is removed until apply.`,
		Example: `  annals retention set --category audit --max-age 90d
  annals retention set --stream cart-9 --max-count 100
  annals retention set --category audit --remove`,
		Args: noArgs,
	}
	db := addDatabaseFlag(cmd)
	f := cmd.Flags()
	stream := f.String("stream", "", "the stream the rule is for")
	category := f.String("category", "", "the category the rule is for")
	maxAge := f.String("max-age", "", "remove events older than this: 30d, 12h")
	maxCount := f.Int64("max-count", 0, "keep the newest N events of each stream")
	truncate := f.Int64("truncate-before", 0, "remove the versions below V")
	remove := f.Bool("remove", false, "remove the rule")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if (*stream == "") == (*category == "") {
			return usagef("give exactly one of --stream and --category")
		}
		rule := annals.RetentionRule{StreamID: *stream, Category: *category, MaxCount: *maxCount, TruncateBefore: *truncate}
		if *maxAge != "" {
			d, err := parseAge(*maxAge) // storage.go: days (30d) or a Go duration
			if err != nil {
				return err
			}
			if d <= 0 {
				return usagef("--max-age %s: give a positive age, in days (30d) or as a duration (12h)", *maxAge)
			}
			rule.MaxAge = d
		}
		limits := rule.MaxAge != 0 || rule.MaxCount != 0 || rule.TruncateBefore != 0
		if limits == *remove {
			return usagef("give --max-age, --max-count or --truncate-before, or --remove alone")
		}
		if *maxCount < 0 || *truncate < 0 {
			return usagef("--max-count and --truncate-before must be positive")
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		changed, err := client.SetRetention(ctx, rule)
		if err != nil {
			return err
		}
		switch {
		case *remove && !changed:
			return notFound("no retention rule for %s", rule.Target())
		case *remove:
			fmt.Fprintf(out, "removed the retention rule of %s\n", rule.Target())
		default:
			fmt.Fprintf(out, "retention of %s: max age %s, max count %s, truncate before %s; annals retention apply removes what it says\n",
				rule.Target(), formatMaxAge(rule.MaxAge), dashIfZero(rule.MaxCount), dashIfZero(rule.TruncateBefore))
		}
		return nil
	}
	return cmd
}

func newRetentionListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [--json]",
		Short: "List the retention rules and when retention last ran.",
		Args:  noArgs,
	}
	db := addDatabaseFlag(cmd)
	asJSON := cmd.Flags().Bool("json", false, "one JSON object per rule and line")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		rules, err := client.RetentionRules(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			for _, r := range rules {
				if err := writeJSONLine(out, map[string]any{
					"stream_id": r.StreamID, "category": r.Category, "max_age_seconds": int64(r.MaxAge / time.Second),
					"max_count": r.MaxCount, "truncate_before": r.TruncateBefore, "updated_at": r.UpdatedAt,
				}); err != nil {
					return err
				}
			}
			return nil
		}
		if len(rules) == 0 {
			fmt.Fprintln(out, "no retention rules (annals retention set adds one)")
			return nil
		}
		tw := newTable(out)
		fmt.Fprintln(tw, "TARGET\tMAX_AGE\tMAX_COUNT\tTRUNCATE_BEFORE\tUPDATED_AT")
		for _, r := range rules {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Target(), formatMaxAge(r.MaxAge), dashIfZero(r.MaxCount),
				dashIfZero(r.TruncateBefore), r.UpdatedAt.UTC().Format("2006-01-02 15:04:05Z"))
		}
		return tw.Flush()
	}
	return cmd
}

func newRetentionApplyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apply [--max-events N] [--all]",
		Short: "Remove the events past their retention rule, in bounded steps.",
		Long: `Remove the events past their retention rule with annals.apply_retention: at most --max-events in
one transaction (an interruption removes nothing of that step). --all repeats until nothing more is
due. Schedule it (annals worker, cron or pg_cron) to keep the store within its rules.`,
		Example: `  annals retention apply --all`,
		Args:    noArgs,
	}
	db := addDatabaseFlag(cmd)
	maxEvents := cmd.Flags().Int64("max-events", 100000, "at most this many events per step")
	all := cmd.Flags().Bool("all", false, "repeat until nothing more is due")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *maxEvents < 1 {
			return usagef("--max-events must be at least 1")
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		var total int64
		steps := 0
		for {
			n, err := client.ApplyRetention(ctx, *maxEvents)
			if err != nil {
				return err
			}
			total += n
			steps++
			if !*all || n < *maxEvents {
				break
			}
		}
		fmt.Fprintf(out, "removed %d event(s) in %d step(s)\n", total, steps)
		return nil
	}
	return cmd
}

func newStreamsPurgeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "purge STREAM [--expected N|exists|any] [--reason TEXT]",
		Short: "Purge a stream: its events are removed for good, a tombstone stays (annals_owner).",
		Long: `Purge a stream with annals.purge_stream: its events and snapshots are removed for good, while its
row stays as a tombstone (state purged, last version kept): appends are refused from then on and
the stream id is never reused. Logged with who, when and --reason. Needs annals_owner.
Exit code 3 when the stream has no events, 4 when it is at another version or already purged.`,
		Example: `  annals streams purge cart-9 --expected 2 --reason 'GDPR request 1234'`,
		Args:    exactArgs("STREAM"),
	}
	db := addDatabaseFlag(cmd)
	expected := cmd.Flags().String("expected", "any", "the stream's version: N, exists or any")
	reason := cmd.Flags().String("reason", "", "why, recorded in the lifecycle log")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		exp, err := parseExpected(*expected)
		if err != nil {
			return err
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		stream := args[0]
		n, err := client.PurgeStream(ctx, stream, exp, *reason)
		var wev *annals.WrongExpectedVersionError
		switch {
		case errors.As(err, &wev) && wev.Actual == 0:
			return kindError{fmt.Sprintf("stream %q has no events: nothing to purge", stream), annals.ErrStreamNotFound}
		case errors.Is(err, annals.ErrStreamDeleted):
			return kindError{fmt.Sprintf("stream %q is already purged", stream), annals.ErrStreamDeleted}
		case err != nil:
			return err
		}
		fmt.Fprintf(out, "purged %s: %d event(s) removed; the stream stays as a tombstone and refuses appends\n", stream, n)
		return nil
	}
	return cmd
}

func newSubjectsCmd() *cobra.Command {
	return group("subjects COMMAND", "Personal data subjects: forget one (crypto-shredding, annals_owner).",
		`Personal data registered with annals.register_personal_data is stored encrypted with a key per
subject. forget destroys a subject's key: its fields read as null from then on.`,
		newSubjectsForgetCmd())
}

func newSubjectsForgetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "forget SUBJECT",
		Short: "Erase a subject's personal data for good (its key is destroyed).",
		Long: `Erase a subject's personal data with annals.forget_subject: its key is destroyed, so every read
returns its registered fields as JSON null with "$erased" in the metadata, and the registered
erasure handlers clear projection copies. Logged. Needs annals_owner.`,
		Example: `  annals subjects forget customer-42`,
		Args:    exactArgs("SUBJECT"),
	}
	db := addDatabaseFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		n, err := client.ForgetSubject(ctx, args[0])
		if err != nil {
			return err
		}
		if n == 0 {
			fmt.Fprintf(out, "forgot %s: no personal data of it was stored (erasure handlers were called)\n", args[0])
		} else {
			fmt.Fprintf(out, "forgot %s: %d key(s) destroyed; its personal data now reads as null\n", args[0], n)
		}
		return nil
	}
	return cmd
}

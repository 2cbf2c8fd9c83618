package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
)

func newSubscriptionsCmd() *cobra.Command {
	return group("subscriptions COMMAND", "Create and drop subscriptions, inspect their lag, move their checkpoints, replay dead letters.",
		`Create and drop subscriptions, inspect their lag, move their checkpoints, list and replay dead letters.

A subscription (annals.create_subscription) is a named, durable position in the gap-free feed,
consumed by your code (annals.Subscriber in Go). Events a consumer gave up on are parked as dead
letters; replay queues them for the consumer to try again. list, status and dead-letters read
annals.subscription_status and annals.dead_letters; create, drop, reset and replay need annals_writer.`,
		newSubscriptionsListCmd(), newSubscriptionsStatusCmd(), newSubscriptionsCreateCmd(), newSubscriptionsDropCmd(),
		newSubscriptionsResetCmd(), newSubscriptionsDeadLettersCmd(), newSubscriptionsReplayCmd())
}

func newSubscriptionsCreateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create NAME [--from beginning|now] [--types T,...] [--categories C,...] [--group-size N]",
		Short: "Create a subscription: a durable checkpoint in the feed, optionally filtered and split.",
		Long: `Create a subscription (annals.create_subscription): a named, durable checkpoint in the gap-free feed.

--from beginning (the default) delivers the whole history; now only what is appended from now on.
--types and --categories keep only those event types and stream categories (comma-separated or
repeated; default everything). --group-size N splits it between N consumers, each stream always
going to the same member. Creating a subscription that exists with the same settings changes
nothing (exit 0); with other settings it is refused: drop it first. Names starting with $ are
reserved. Needs annals_writer.`,
		Example: `  annals subscriptions create billing --categories invoice
  annals subscriptions create mailer --from now --types OrderPlaced,OrderShipped --group-size 4`,
		Args: exactArgs("NAME"),
	}
	db := addDatabaseFlag(cmd)
	f := cmd.Flags()
	from := f.String("from", "beginning", "where the subscription starts: beginning or now")
	types := f.StringSlice("types", nil, "only events of these types (comma-separated or repeated)")
	categories := f.StringSlice("categories", nil, "only streams of these categories (comma-separated or repeated)")
	groupSize := f.Int("group-size", 1, "split the subscription between this many consumers (1..1024)")
	_ = cmd.RegisterFlagCompletionFunc("from", cobra.FixedCompletions([]string{"beginning", "now"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *from != "beginning" && *from != "now" {
			return usagef("--from %q: want beginning or now", *from)
		}
		if *groupSize < 1 {
			return usagef("--group-size must be >= 1, got %d", *groupSize)
		}
		for _, list := range []struct {
			flag   string
			values []string
		}{{"types", *types}, {"categories", *categories}} {
			for _, v := range list.values {
				if strings.TrimSpace(v) == "" {
					return usagef("--%s has an empty name", list.flag)
				}
			}
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		name := args[0]
		created, err := client.CreateSubscription(ctx, name, annals.SubscriptionOptions{
			FromNow: *from == "now", EventTypes: *types, Categories: *categories, GroupSize: *groupSize})
		if err != nil {
			return err
		}
		if !created {
			fmt.Fprintf(out, "subscription %s already exists with these settings; nothing changed\n", name)
			return nil
		}
		members := "1 member"
		if *groupSize > 1 {
			members = fmt.Sprintf("%d members", *groupSize)
		}
		start := "the beginning of history"
		if *from == "now" {
			start = "now"
		}
		fmt.Fprintf(out, "created subscription %s from %s: %s, %s\n", name, start, describeFilter(*types, *categories), members)
		return nil
	}
	return cmd
}

func newSubscriptionsDropCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drop NAME",
		Short: "Drop a subscription with its checkpoints and dead letters.",
		Long: `Drop a subscription (annals.drop_subscription) with its checkpoints and dead letters; consumers still
running against it fail on their next read. Exit code 3 when no subscription has that name. An async
projection's checkpoint ($projection:NAME) goes with annals projections drop. Needs annals_writer.`,
		Args: exactArgs("NAME"),
	}
	db := addDatabaseFlag(cmd)
	cmd.ValidArgsFunction = completeSubscriptions(db)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		if err := client.DropSubscription(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "dropped subscription %s with its checkpoints and dead letters\n", args[0])
		return nil
	}
	return cmd
}

// subscriptionSummary is one subscription, its members' rows of annals.subscription_status added up.
type subscriptionSummary struct {
	Name          string   `db:"subscription_name" json:"name"`
	GroupSize     int      `db:"group_size" json:"group_size"`
	EventTypes    []string `db:"event_types" json:"event_types"`
	Categories    []string `db:"categories" json:"categories"`
	EventsBehind  int64    `db:"events_behind" json:"events_behind"`
	Capped        bool     `db:"capped" json:"events_behind_capped"`
	SecondsBehind float64  `db:"seconds_behind" json:"seconds_behind"`
	DeadLetters   int64    `db:"dead_letters" json:"dead_letters"`
	ActiveLeases  int64    `db:"active_leases" json:"active_leases"`
}

// querySubscriptions sums annals.subscription_status per subscription; names nil means all but
// the internal ones ($projection:...).
func querySubscriptions(ctx context.Context, pool *pgxpool.Pool, names []string) ([]subscriptionSummary, error) {
	return queryRows[subscriptionSummary](ctx, pool, "annals.subscription_status", `
		SELECT s.subscription_name, max(s.group_size) AS group_size,
		       max(s.event_types) AS event_types, max(s.categories) AS categories,
		       sum(s.events_behind)::bigint AS events_behind, bool_or(s.events_behind_capped) AS capped,
		       coalesce(max(extract(epoch FROM s.time_behind)), 0)::float8 AS seconds_behind,
		       sum(s.dead_letters)::bigint AS dead_letters, count(*) FILTER (WHERE s.lease_active) AS active_leases
		  FROM annals.subscription_status AS s
		 WHERE CASE WHEN $1::text[] IS NULL THEN left(s.subscription_name, 1) <> '$'
		            ELSE s.subscription_name = ANY ($1) END
		 GROUP BY s.subscription_name
		 ORDER BY s.subscription_name`, names)
}

func newSubscriptionsListCmd() *cobra.Command {
	return newListCmd("List subscriptions with their lag in events and time, dead letters and active leases.",
		"one JSON object per subscription and line", listing[subscriptionSummary]{
			query: func(ctx context.Context, pool *pgxpool.Pool) ([]subscriptionSummary, error) {
				return querySubscriptions(ctx, pool, nil)
			},
			empty:  "no subscriptions; create one with SELECT annals.create_subscription('name')",
			header: "NAME\tMEMBERS\tEVENTS_BEHIND\tTIME_BEHIND\tDEAD_LETTERS\tLEASES\tFILTER",
			row:    subscriptionLine,
		})
}

// subscriptionLine is a subscription's table line, its members added up.
func subscriptionLine(s subscriptionSummary) string {
	return fmt.Sprintf("%s\t%d\t%s\t%s\t%d\t%d\t%s", s.Name, s.GroupSize, eventsBehind(s.EventsBehind, s.Capped),
		formatAge(seconds(s.SecondsBehind)), s.DeadLetters, s.ActiveLeases, describeFilter(s.EventTypes, s.Categories))
}

// eventsBehind prints a subscription's lag in events; capped means the view stopped counting there.
func eventsBehind(n int64, capped bool) string {
	if capped {
		return fmt.Sprintf(">=%d", n)
	}
	return fmt.Sprint(n)
}

func describeFilter(types, categories []string) string {
	var parts []string
	if len(categories) > 0 {
		parts = append(parts, "categories "+strings.Join(categories, ","))
	}
	if len(types) > 0 {
		parts = append(parts, "types "+strings.Join(types, ","))
	}
	if len(parts) == 0 {
		return "all events"
	}
	return strings.Join(parts, "; ")
}

func newSubscriptionsStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status NAME [--json]",
		Short: "Show each member of a subscription: checkpoint, lag, lease, dead letters.",
		Args:  exactArgs("NAME"),
	}
	db := listingCmd(cmd, "one JSON object per member and line", func(args []string) listing[annals.SubscriptionStatus] {
		return listing[annals.SubscriptionStatus]{
			query: func(ctx context.Context, pool *pgxpool.Pool) ([]annals.SubscriptionStatus, error) {
				members, err := annals.New(pool, annals.ClientOptions{Tenant: tenantFlag(cmd)}).SubscriptionStatus(ctx, args[0])
				if err == nil && len(members) == 0 {
					return nil, subscriptionMissing(args[0])
				}
				return members, err
			},
			json:   memberJSON,
			header: "MEMBER\tCHECKPOINT\tEVENTS_BEHIND\tTIME_BEHIND\tLEASE\tDEAD_LETTERS",
			row:    memberLine,
		}
	})
	cmd.ValidArgsFunction = completeSubscriptions(db)
	return cmd
}

// memberJSON is a member's --json form: the checkpoint as TXID:POS and the lag in seconds, as the
// table and reset --to write them.
func memberJSON(m annals.SubscriptionStatus) any {
	return map[string]any{
		"name": m.Name, "member": m.Member, "group_size": m.GroupSize, "checkpoint": formatCheckpoint(m.Checkpoint),
		"events_behind": m.EventsBehind, "events_behind_capped": m.Capped, "seconds_behind": m.TimeBehind.Seconds(),
		"lease_holder": m.LeaseHolder, "lease_active": m.LeaseActive, "dead_letters": m.DeadLetters,
	}
}

// memberLine is a member's table line; a lease past its expiry says so, since its holder may be gone.
func memberLine(m annals.SubscriptionStatus) string {
	lease := "-"
	if m.LeaseHolder != nil {
		lease = *m.LeaseHolder
		if !m.LeaseActive {
			lease += " (expired)"
		}
	}
	return fmt.Sprintf("%d/%d\t%s\t%s\t%s\t%s\t%d", m.Member, m.GroupSize, formatCheckpoint(m.Checkpoint),
		eventsBehind(m.EventsBehind, m.Capped), formatAge(m.TimeBehind), lease, m.DeadLetters)
}

// subscriptionMissing is the error for a subscription name that does not exist.
func subscriptionMissing(name string) error {
	return notFound("subscription %q does not exist (annals subscriptions list shows them; annals subscriptions create %s makes it)",
		name, shellQuote(name))
}

func newSubscriptionsResetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reset NAME --to beginning|now|TXID:POS [--member N]",
		Short: "Move a subscription's checkpoint: back to replay, forward to skip.",
		Long: `Move a subscription's checkpoint: back to replay, forward to skip.

--to beginning replays the whole history; now skips everything already in the feed; TXID:POS is a
feed position (transaction id and global position, as status prints it): the consumer continues
after it. Every member moves unless --member N. Consumers running meanwhile may acknowledge over
the move: stop them first. Runs annals.reset_subscription: the login needs annals_writer.`,
		Example: `  annals subscriptions reset billing --to beginning
  annals subscriptions reset billing --to 7412:1830 --member 2`,
		Args: exactArgs("NAME"),
	}
	db := addDatabaseFlag(cmd)
	to := cmd.Flags().String("to", "", "beginning, now or TXID:POS (required)")
	member := cmd.Flags().Int("member", -1, "move only this member (default all)")
	cmd.ValidArgsFunction = completeSubscriptions(db)
	_ = cmd.RegisterFlagCompletionFunc("to", cobra.FixedCompletions([]string{"beginning", "now"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *to == "" {
			return usagef("reset needs --to beginning, now or TXID:POS")
		}
		if cmd.Flags().Changed("member") && *member < 0 {
			return usagef("--member must be >= 0, got %d", *member)
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		cp, err := parseResetTarget(*to)
		if err != nil {
			return err
		}
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		if *to == "now" {
			head, err := client.FeedHead(ctx)
			if err != nil {
				return err
			}
			cp = annals.Checkpoint{TransactionID: head.Barrier}
		}
		n, err := client.ResetSubscription(ctx, args[0], cp, *member)
		if err != nil {
			return err
		}
		who := fmt.Sprintf("%d member(s)", n)
		if *member >= 0 {
			who = fmt.Sprintf("member %d", *member)
		}
		named := ""
		if *to == "now" || *to == "beginning" {
			named = " (" + *to + ")"
		}
		fmt.Fprintf(out, "moved %s of %s to %s%s\n", who, args[0], formatCheckpoint(cp), named)
		return nil
	}
	return cmd
}

// parseResetTarget reads --to: beginning, now (resolved by the caller) or TXID:POS.
func parseResetTarget(s string) (annals.Checkpoint, error) {
	switch s {
	case "beginning", "start", "now":
		return annals.Checkpoint{}, nil
	}
	cp, ok := parseCheckpoint(s)
	if !ok {
		return annals.Checkpoint{}, usagef("--to %q: want beginning, now or TXID:POS (e.g. 7412:1830)", s)
	}
	return cp, nil
}

// deadLetter is a row of annals.dead_letters.
type deadLetter struct {
	ID            int64      `db:"dead_letter_id" json:"id"`
	Subscription  string     `db:"subscription_name" json:"subscription"`
	Member        int        `db:"member" json:"member"`
	StreamID      string     `db:"stream_id" json:"stream_id"`
	StreamVersion int64      `db:"stream_version" json:"stream_version"`
	Position      int64      `db:"global_position" json:"global_position"`
	EventType     string     `db:"event_type" json:"event_type"`
	Attempts      int        `db:"attempts" json:"attempts"`
	LastError     string     `db:"last_error" json:"last_error"`
	Status        string     `db:"status" json:"status"`
	ParkedAt      time.Time  `db:"parked_at" json:"parked_at"`
	ResolvedAt    *time.Time `db:"resolved_at" json:"resolved_at"`
}

func newSubscriptionsDeadLettersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead-letters NAME [--all] [--json]",
		Short: "List the events a subscription's consumers parked, with attempts and last error.",
		Long: `List the events a subscription's consumers parked, with attempts and last error.

Shows parked ones and ones queued for retry; --all adds resolved ones. An async projection's dead
letters are under the subscription '$projection:NAME'; replay a consumer's with annals subscriptions
replay, and a projection's by rebuilding it (annals projections rebuild NAME).`,
		Args: exactArgs("NAME"),
	}
	all := cmd.Flags().Bool("all", false, "include resolved dead letters")
	width := cmd.Flags().Int("width", 80, "cut the last error to this many characters (0: never)")
	db := listingCmd(cmd, "one JSON object per dead letter and line", func(args []string) listing[deadLetter] {
		return listing[deadLetter]{
			query: func(ctx context.Context, pool *pgxpool.Pool) ([]deadLetter, error) {
				return inTenant(ctx, cmd, pool, func(q querier) ([]deadLetter, error) { return queryDeadLetters(ctx, q, args[0], *all) })
			},
			empty:  "no dead letters for " + args[0],
			header: "ID\tMEMBER\tEVENT\tTYPE\tATTEMPTS\tSTATUS\tPARKED_AT\tLAST_ERROR",
			row: func(l deadLetter) string {
				return fmt.Sprintf("%d\t%d\t%s@%d\t%s\t%d\t%s\t%s\t%s", l.ID, l.Member, l.StreamID, l.StreamVersion, l.EventType,
					l.Attempts, l.Status, formatTime(l.ParkedAt), truncate(strings.Join(strings.Fields(l.LastError), " "), *width))
			},
		}
	})
	cmd.ValidArgsFunction = completeSubscriptions(db)
	return cmd
}

// queryDeadLetters reads a subscription's dead letters, resolved ones too when all. An unknown
// name fails rather than listing nothing, so a typo is not mistaken for a healthy consumer.
func queryDeadLetters(ctx context.Context, pool querier, name string, all bool) ([]deadLetter, error) {
	if err := requireSubscription(ctx, pool, name); err != nil {
		return nil, err
	}
	return queryRows[deadLetter](ctx, pool, "annals.dead_letters", `
		SELECT d.dead_letter_id, d.subscription_name, d.member, d.stream_id, d.stream_version, d.global_position,
		       d.event_type, d.attempts, d.last_error, d.status, d.parked_at, d.resolved_at
		  FROM annals.dead_letters AS d
		 WHERE d.subscription_name = $1 AND ($2 OR d.status <> 'resolved')
		 ORDER BY d.dead_letter_id`, name, all)
}

// requireSubscription fails with a clear error when the subscription does not exist.
func requireSubscription(ctx context.Context, pool querier, name string) error {
	var exists bool
	err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM annals.subscription_status AS s WHERE s.subscription_name = $1)", name).Scan(&exists)
	if err != nil {
		return err
	}
	if !exists {
		return subscriptionMissing(name)
	}
	return nil
}

func newSubscriptionsReplayCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay NAME [--id N]...",
		Short: "Queue a subscription's parked events (all, or the given ids) for its consumers to retry.",
		Long: `Queue a subscription's parked events (all, or the given ids) for its consumers to retry.

Runs annals.retry_dead_letters: the events' status becomes 'retry', and the subscription's running
consumers (annals.Subscriber) try them again, resolving or re-parking each. Needs annals_writer.`,
		Example: `  annals subscriptions replay billing
  annals subscriptions replay billing --id 17 --id 18`,
		Args: exactArgs("NAME"),
	}
	db := addDatabaseFlag(cmd)
	ids := cmd.Flags().Int64Slice("id", nil, "replay only this dead letter id (repeatable; default all parked)")
	cmd.ValidArgsFunction = completeSubscriptions(db)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		pool, err := db.pool(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		var which []int64
		if len(*ids) > 0 {
			which = *ids
		}
		var n int
		if err := pool.QueryRow(ctx, "SELECT annals.retry_dead_letters($1, $2)", args[0], which).Scan(&n); err != nil {
			return err
		}
		fmt.Fprintf(out, "queued %d dead letter(s) of %s for retry; its consumers pick them up on their next poll\n", n, args[0])
		if n == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "no parked dead letters matched: annals subscriptions dead-letters %s lists them\n", shellQuote(args[0]))
		}
		return nil
	}
	return cmd
}

// completeSubscriptions completes subscription names from the database, when it is reachable.
func completeSubscriptions(db *dbFlag) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
		defer cancel()
		pool, err := db.pool(ctx, cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer pool.Close()
		subs, err := querySubscriptions(ctx, pool, nil)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		names := make([]string, len(subs))
		for i, s := range subs {
			names[i] = s.Name
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

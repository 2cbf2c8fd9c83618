package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/spf13/cobra"
)

// M15: the CLI of multi-stream appends, tags and conditional appends.

func newTaggedCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tagged --tag TAG [--tag TAG...] [--type TYPE...] [--after TX:POS] [--limit N] [--json]",
		Short: "Print the events carrying every --tag (of the --type types), in feed order.",
		Long: `Print the events carrying every --tag (and, with --type, of one of those types), in the order of
the gap-free feed, with their tags: annals.read_tagged with a one-item query.

The last line says the feed position read up to (TX:POS), the --after of a conditional append
decided on these events (annals append-multi --if-none-tagged ... --after TX:POS).`,
		Example: `  annals tagged --tag course:7
  annals tagged --tag course:7 --tag student:42 --type Enrolled --json`,
		Args: cobra.NoArgs,
	}
	db := addDatabaseFlag(cmd)
	f := cmd.Flags()
	tags := f.StringArray("tag", nil, "a tag the events must carry (repeatable; at least one)")
	types := f.StringArray("type", nil, "an event type to match (repeatable; default every type)")
	after := f.String("after", "", "start after this feed position, TX:POS (default the start)")
	limit := f.Int("limit", 1000, "at most this many events")
	asJSON := f.Bool("json", false, "one JSON object per event and line")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if len(*tags) == 0 {
			return usagef("tagged needs at least one --tag TAG")
		}
		pos, err := parseAfter(*after)
		if err != nil {
			return err
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		evs, err := client.ReadTagged(ctx, annals.TagQuery{{Types: *types, Tags: *tags}}, pos, annals.FeedOptions{MaxCount: *limit})
		if err != nil {
			return err
		}
		if *asJSON {
			for _, e := range evs {
				if err := writeJSONLine(out, map[string]any{
					"stream_id": e.StreamID, "stream_version": e.StreamVersion, "global_position": e.GlobalPosition,
					"transaction_id": strconv.FormatUint(e.TransactionID, 10), "event_id": e.EventID, "event_type": e.EventType,
					"data": e.Data, "tags": e.Tags,
				}); err != nil {
					return err
				}
			}
			return nil
		}
		tw := newTable(out)
		fmt.Fprintln(tw, "STREAM\tVERSION\tTYPE\tTAGS\tDATA")
		for _, e := range evs {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", e.StreamID, e.StreamVersion, e.EventType, strings.Join(e.Tags, ","), truncate(oneLineJSON(e.Data), 60))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(evs) > 0 {
			pos = evs[len(evs)-1].Checkpoint()
		}
		fmt.Fprintf(out, "%d event(s); read up to %d:%d\n", len(evs), pos.TransactionID, pos.GlobalPosition)
		return nil
	}
	return cmd
}

// multiAppendJSON is one element of append-multi's input, the shape annals.append_multi takes.
type multiAppendJSON struct {
	StreamID        string `json:"stream_id"`
	ExpectedVersion *int64 `json:"expected_version"`
	Events          []struct {
		ID            uuid.UUID       `json:"id"`
		Type          string          `json:"type"`
		SchemaVersion int             `json:"schema_version"`
		Data          json.RawMessage `json:"data"`
		Metadata      json.RawMessage `json:"metadata"`
		Tags          []string        `json:"tags"`
	} `json:"events"`
}

func newAppendMultiCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "append-multi FILE|- [--if-none-tagged TAG... [--if-none-type TYPE...] [--after TX:POS]] [--json]",
		Short: "Append to several streams atomically, optionally only if no event with the given tags came after a position.",
		Long: `Append to several streams atomically: all or nothing, one transaction (annals.append_multi).

FILE (or - for standard input) holds a JSON array of {"stream_id", "expected_version" (null any,
-1 exists, 0 no stream, n), "events": [{"type", "data", "metadata"?, "id"?, "tags"?}]}. Events
without an id get a new UUIDv7, so re-running the same file appends again; give ids to make a
re-run a replay.

With --if-none-tagged the append is conditional (annals.append_conditional): it happens only if
no event carrying every --if-none-tagged tag (of an --if-none-type type, when given) was appended
after --after TX:POS (default: ever), the position printed by annals tagged. Otherwise it fails
with SQLSTATE ST409 and exit code 4 (a conflict), naming the first such event.`,
		Example: `  annals append-multi transfer.json
  annals tagged --tag seat:1A                      # ... read up to 812:40
  annals append-multi booking.json --if-none-tagged seat:1A --after 812:40`,
		Args: exactArgs("FILE"),
	}
	db := addDatabaseFlag(cmd)
	f := cmd.Flags()
	condTags := f.StringArray("if-none-tagged", nil, "append only if no event carrying all these tags came after --after (repeatable)")
	condTypes := f.StringArray("if-none-type", nil, "narrow --if-none-tagged to these event types (repeatable)")
	after := f.String("after", "", "the feed position the decision read up to, TX:POS (default the start)")
	asJSON := f.Bool("json", false, "print one JSON object per stream")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if (f.Changed("if-none-type") || f.Changed("after")) && len(*condTags) == 0 {
			return usagef("--if-none-type and --after need --if-none-tagged TAG")
		}
		pos, err := parseAfter(*after)
		if err != nil {
			return err
		}
		appends, err := readAppends(args[0], cmd.InOrStdin())
		if err != nil {
			return err
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		var res []annals.StreamAppendResult
		if len(*condTags) > 0 {
			res, err = client.AppendConditional(ctx, annals.Condition{
				Query: annals.TagQuery{{Types: *condTypes, Tags: *condTags}}, After: pos}, appends...)
		} else {
			res, err = client.AppendMulti(ctx, appends...)
		}
		if err != nil {
			return err
		}
		for _, r := range res {
			if *asJSON {
				if err := writeJSONLine(out, map[string]any{"stream_id": r.StreamID, "stream_version": r.StreamVersion,
					"global_position": r.GlobalPosition, "transaction_id": strconv.FormatUint(r.TransactionID, 10)}); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(out, "appended to %s: version %d, global position %d, transaction %d\n",
				r.StreamID, r.StreamVersion, r.GlobalPosition, r.TransactionID)
		}
		return nil
	}
	return cmd
}

func readAppends(name string, stdin io.Reader) ([]annals.StreamAppend, error) {
	var raw []byte
	var err error
	if name == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, usagef("%s: %v", name, err)
	}
	var in []multiAppendJSON
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, usagef("%s is not a JSON array of appends: %s", name, describeJSONError(raw, err))
	}
	out := make([]annals.StreamAppend, len(in))
	for i, a := range in {
		out[i] = annals.StreamAppend{StreamID: a.StreamID, Expected: annals.Any}
		if a.ExpectedVersion != nil {
			switch v := *a.ExpectedVersion; v {
			case -1:
				out[i].Expected = annals.StreamExists
			case 0:
				out[i].Expected = annals.NoStream
			default:
				out[i].Expected = annals.Exact(v)
			}
		}
		for _, e := range a.Events {
			ed := annals.EventData{ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, Tags: e.Tags}
			if len(e.Data) > 0 {
				ed.Data = e.Data
			}
			if len(e.Metadata) > 0 {
				ed.Metadata = e.Metadata
			}
			out[i].Events = append(out[i].Events, ed)
		}
	}
	return out, nil
}

// parseAfter reads --after, a feed position TX:POS; empty is the start.
func parseAfter(s string) (annals.Checkpoint, error) {
	if s == "" {
		return annals.Checkpoint{}, nil
	}
	cp, ok := parseCheckpoint(s)
	if !ok {
		return annals.Checkpoint{}, usagef("--after %q: want TX:POS, a transaction id and a global position (as annals tagged prints)", s)
	}
	return cp, nil
}

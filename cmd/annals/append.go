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

func newAppendCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "append STREAM --expected N|any|no-stream|exists --type TYPE --data JSON [--metadata JSON] [--id UUID] [--tag TAG...] [--json]",
		Short: "Append one event to a stream, checking the stream's version first.",
		Long: `Append one event to a stream, checking the stream's version first.

--expected is the optimistic-concurrency condition: a version N (the stream must be exactly at N;
0 is the same as no-stream), no-stream (the stream must have no events), exists (it must have some)
or any. A mismatch fails with SQLSTATE ST409 and exit code 1, and nothing is written.

--data and --metadata take a JSON object, @FILE to read one from a file, or - for standard input.
--id fixes the event id (a UUID): re-running the same append with the same id is recognized as a
replay and writes nothing. Without it a new UUIDv7 is generated.

Runs annals.append_events(stream_id, expected_version, events): the login needs annals_writer.`,
		Example: `  annals append inventory-42 --expected no-stream --type ItemAdded --data '{"sku":"42","name":"Blue widget","count":10}'
  annals append inventory-42 --expected 1 --type ItemAdjusted --data '{"delta":-3,"reason":"sale"}'
  echo '{"delta":5}' | annals append inventory-42 --expected any --type ItemAdjusted --data -`,
		Args: exactArgs("STREAM"),
	}
	db := addDatabaseFlag(cmd)
	f := cmd.Flags()
	expected := f.String("expected", "", "expected stream version: N, no-stream, exists or any (required)")
	typ := f.String("type", "", "event type (required)")
	data := f.String("data", "", "event data: a JSON object, @FILE or - for stdin (required)")
	metadata := f.String("metadata", "", "event metadata: a JSON object, @FILE or - (conventional keys correlation_id, causation_id, actor)")
	id := f.String("id", "", "event id (UUID); default a new UUIDv7")
	schemaVersion := f.Int("schema-version", 0, "the payload's schema version (default 1)")
	asJSON := f.Bool("json", false, "print the result as one JSON object")
	tags := f.StringArray("tag", nil, "a consistency-boundary tag of the event, e.g. course:7 (repeatable)")
	_ = cmd.RegisterFlagCompletionFunc("expected", cobra.FixedCompletions(
		[]string{"any", "no-stream", "exists"}, cobra.ShellCompDirectiveNoFileComp))

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		exp, err := parseExpected(*expected)
		if err != nil {
			return err
		}
		if *typ == "" {
			return usagef("append needs --type TYPE")
		}
		if !f.Changed("data") {
			return usagef(`append needs --data JSON (a JSON object, e.g. --data '{"sku":"42"}'; --data '{}' for none)`)
		}
		ev := annals.EventData{Type: *typ, SchemaVersion: *schemaVersion, Tags: *tags}
		if ev.Data, err = jsonObjectFlag("--data", *data, cmd.InOrStdin()); err != nil {
			return err
		}
		if f.Changed("metadata") {
			if ev.Metadata, err = jsonObjectFlag("--metadata", *metadata, cmd.InOrStdin()); err != nil {
				return err
			}
		}
		if *id != "" {
			if ev.ID, err = uuid.Parse(*id); err != nil {
				return usagef("--id %q is not a UUID: %v", *id, err)
			}
		}
		if *schemaVersion < 0 {
			return usagef("--schema-version must be positive, got %d", *schemaVersion)
		}

		ctx, out := cmd.Context(), cmd.OutOrStdout()
		client, pool, err := db.client(ctx, cmd)
		if err != nil {
			return err
		}
		defer pool.Close()
		res, err := client.Append(ctx, args[0], exp, ev)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONLine(out, map[string]any{
				"stream_id": args[0], "stream_version": res.StreamVersion, "global_position": res.GlobalPosition,
				"transaction_id": strconv.FormatUint(res.TransactionID, 10), "event_id": res.EventIDs[0],
			})
		}
		fmt.Fprintf(out, "appended %s to %s: version %d, global position %d, transaction %d, event id %s\n",
			*typ, args[0], res.StreamVersion, res.GlobalPosition, res.TransactionID, res.EventIDs[0])
		return nil
	}
	return cmd
}

// parseExpected reads --expected: N, any, no-stream or exists.
func parseExpected(s string) (annals.ExpectedVersion, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return annals.Any, usagef("append needs --expected: the stream's current version N, no-stream, exists or any")
	case "any":
		return annals.Any, nil
	case "no-stream", "no_stream", "nostream":
		return annals.NoStream, nil
	case "exists", "stream-exists":
		return annals.StreamExists, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return annals.Any, usagef("--expected %q: want a version N >= 0, no-stream, exists or any", s)
	}
	return annals.Exact(v), nil
}

// jsonObjectFlag reads a flag's JSON object: inline, @FILE, or - for stdin. Anything but one
// JSON object is a usage error that says where the JSON broke.
func jsonObjectFlag(name, value string, stdin io.Reader) (json.RawMessage, error) {
	raw := []byte(value)
	switch {
	case value == "-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("%s -: read standard input: %w", name, err)
		}
		raw = b
	case strings.HasPrefix(value, "@"):
		b, err := os.ReadFile(value[1:])
		if err != nil {
			return nil, usagef("%s %s: %v", name, value, err)
		}
		raw = b
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, usagef("%s is not valid JSON: %s (pass one JSON object, e.g. %s '{\"sku\":\"42\"}')", name, describeJSONError(raw, err), name)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, usagef("%s must be a JSON object ({...}), got %s", name, jsonKind(v))
	}
	return json.RawMessage(raw), nil
}

func describeJSONError(raw []byte, err error) string {
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return "it is empty"
	}
	return err.Error()
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

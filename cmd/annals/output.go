package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
)

// newTable is a tabwriter for the commands' aligned tables (two spaces between columns).
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// formatTime prints a timestamp to the millisecond in local time, as psql users read them.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000Z07:00")
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTime(*t)
}

// formatAge prints a duration the way a person reads a lag: 850ms, 12.3s, 4m05s, 2h10m, 3d4h.
func formatAge(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// formatBytes prints a size in bytes with a binary unit.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// truncate shortens s to at most n runes, marking the cut with an ellipsis; n <= 0 keeps s.
func truncate(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n-1, 1)]) + "…"
}

// oneLineJSON is a JSON document on one line (jsonb's text has no newlines, a user's may).
func oneLineJSON(b []byte) string {
	if bytes.ContainsAny(b, "\n\r\t") {
		var buf bytes.Buffer
		if json.Compact(&buf, b) == nil {
			return buf.String()
		}
		return strings.Join(strings.Fields(string(b)), " ")
	}
	return string(b)
}

func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// eventJSON is the --json form of an event: one object per line, every field of annals.event.
type eventJSON struct {
	StreamID       string          `json:"stream_id"`
	StreamVersion  int64           `json:"stream_version"`
	GlobalPosition int64           `json:"global_position"`
	TransactionID  string          `json:"transaction_id"`
	EventID        uuid.UUID       `json:"event_id"`
	EventType      string          `json:"event_type"`
	SchemaVersion  int             `json:"schema_version"`
	Data           json.RawMessage `json:"data"`
	Metadata       json.RawMessage `json:"metadata"`
	RecordedAt     time.Time       `json:"recorded_at"`
}

// writeEventJSON writes ev as one line of JSON. The transaction id is a string: xid8 values
// exceed what JSON numbers keep exactly in many readers.
func writeEventJSON(w io.Writer, ev annals.RecordedEvent) error {
	b, err := json.Marshal(eventJSON{
		StreamID: ev.StreamID, StreamVersion: ev.StreamVersion, GlobalPosition: ev.GlobalPosition,
		TransactionID: strconv.FormatUint(ev.TransactionID, 10), EventID: ev.EventID, EventType: ev.EventType,
		SchemaVersion: ev.SchemaVersion, Data: compactJSON(ev.Data), Metadata: compactJSON(ev.Metadata),
		RecordedAt: ev.RecordedAt,
	})
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

func compactJSON(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("{}")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// formatCheckpoint is a feed position as TXID:POS, the form `subscriptions reset --to` takes.
func formatCheckpoint(c annals.Checkpoint) string {
	return fmt.Sprintf("%d:%d", c.TransactionID, c.GlobalPosition)
}

// parseCheckpoint reads a feed position as formatCheckpoint writes it, TXID:POS; false when s is
// not one. The commands add their own words (beginning, now) and their flag's message.
func parseCheckpoint(s string) (annals.Checkpoint, bool) {
	tx, pos, ok := strings.Cut(s, ":")
	t, err1 := strconv.ParseUint(tx, 10, 64)
	p, err2 := strconv.ParseInt(pos, 10, 64)
	if !ok || err1 != nil || err2 != nil || p < 0 {
		return annals.Checkpoint{}, false
	}
	return annals.Checkpoint{TransactionID: t, GlobalPosition: p}, true
}

package annals

// Micro-benchmarks of the wrapper's encode and decode paths: what the Go side costs per event,
// next to what the database costs (annals bench). Run with
//
//	go test -run '^$' -bench . -benchmem ./goapi
//
// The decode benchmarks read from the database TestMain creates (DATABASE_URL) and are skipped
// when there is none.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// benchItemAdjusted is a typical small domain event.
type benchItemAdjusted struct {
	SKU    string `json:"sku"`
	Delta  int    `json:"delta"`
	Reason string `json:"reason"`
}

var benchPayload = json.RawMessage(`{"sku":"sku-0042","delta":-3,"reason":"a small event payload"}`)

func benchEvents(n int, data func(i int) any) []EventData {
	evs := make([]EventData, n)
	for i := range evs {
		evs[i] = EventData{Type: "ItemAdjusted", Data: data(i), Metadata: json.RawMessage(`{"actor":"bench"}`)}
	}
	return evs
}

// perEvent reports the time per event next to the time per operation.
func perEvent(b *testing.B, events int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}

// BenchmarkEncodeBatch measures encodeBatch, which Append and AppendTx run before every append:
// id generation (UUIDv7), the client-side checks and the JSON of the events argument. data=raw
// passes pre-encoded JSON, data=struct lets encoding/json marshal a struct.
func BenchmarkEncodeBatch(b *testing.B) {
	for _, n := range []int{1, 100} {
		for _, kind := range []string{"raw", "struct"} {
			b.Run(fmt.Sprintf("events=%d/data=%s", n, kind), func(b *testing.B) {
				evs := benchEvents(n, func(i int) any {
					if kind == "raw" {
						return benchPayload
					}
					return benchItemAdjusted{SKU: "sku-0042", Delta: -i, Reason: "a small event payload"}
				})
				b.ReportAllocs()
				for b.Loop() {
					for i := range evs {
						evs[i].ID = uuid.Nil // generated on every call, as for a new append
					}
					if _, _, err := encodeBatch("inventory-42", Any, evs); err != nil {
						b.Fatal(err)
					}
				}
				perEvent(b, n)
			})
		}
	}
}

// BenchmarkDecodeRecordedEvents reads one 1,000-event page with annals.read_stream and decodes
// it into RecordedEvent three ways: pgx.RowToStructByName (what ReadStream, ReadAll and the
// Subscriber use), a hand-written Scan, and no decoding at all (rows only: the driver's floor).
// The round trip and the server's work are in every variant; the differences are the decode.
func BenchmarkDecodeRecordedEvents(b *testing.B) {
	url := os.Getenv("DATABASE_URL") // a fresh migrated database from TestMain
	if url == "" {
		b.Skip("no DATABASE_URL: the decode benchmarks need the database TestMain creates")
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	const n = 1000
	stream := "benchdecode-" + uuid.NewString()[:8]
	if _, err := New(pool, ClientOptions{}).Append(ctx, stream, NoStream, benchEvents(n, func(int) any { return benchPayload })...); err != nil {
		b.Fatal(err)
	}
	const query = "SELECT " + eventColumns + " FROM annals.read_stream($1, NULL, $2) AS e"
	decoders := []struct {
		name   string
		decode func(rows pgx.Rows) (int, error)
	}{
		{"RowToStructByName", func(rows pgx.Rows) (int, error) {
			evs, err := pgx.CollectRows(rows, pgx.RowToStructByName[RecordedEvent])
			return len(evs), err
		}},
		{"Scan", func(rows pgx.Rows) (int, error) {
			evs := make([]RecordedEvent, 0, n)
			for rows.Next() {
				var e RecordedEvent
				if err := rows.Scan(&e.StreamID, &e.StreamVersion, &e.GlobalPosition, &e.EventID, &e.EventType,
					&e.SchemaVersion, &e.Data, &e.Metadata, &e.TransactionID, &e.RecordedAt); err != nil {
					return 0, err
				}
				evs = append(evs, e)
			}
			return len(evs), rows.Err()
		}},
		{"RowsOnly", func(rows pgx.Rows) (int, error) {
			got := 0
			for rows.Next() {
				got++
			}
			return got, rows.Err()
		}},
	}
	for _, d := range decoders {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rows, err := pool.Query(ctx, query, stream, n)
				if err != nil {
					b.Fatal(err)
				}
				got, err := d.decode(rows)
				if err != nil || got != n {
					b.Fatalf("decoded %d of %d events: %v", got, n, err)
				}
			}
			perEvent(b, n)
		})
	}
}

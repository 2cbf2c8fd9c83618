package domain_test

// Micro-benchmark of the registry: what encoding and decoding typed events costs on the Go side.
// Run with go test -run '^$' -bench . -benchmem ./goapi/domain

import (
	"encoding/json"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
)

// itemAdjusted is a typical small domain event.
type itemAdjusted struct {
	SKU    string `json:"sku"`
	Delta  int    `json:"delta"`
	Reason string `json:"reason"`
}

// BenchmarkRegistry measures typed events through a Registry: Encode (struct to EventData) and
// Decode (RecordedEvent to struct), the latter also through one Go upcaster step.
func BenchmarkRegistry(b *testing.B) {
	type itemAdjustedV2 struct {
		SKU    string `json:"sku"`
		Delta  int    `json:"delta"`
		Reason string `json:"reason"`
		Source string `json:"source"`
	}
	r := domain.NewRegistry()
	domain.Register[itemAdjusted](r, "ItemAdjusted")
	domain.RegisterVersion[itemAdjustedV2](r, "ItemAdjustedV2", 2)
	r.RegisterUpcaster("ItemAdjustedV2", 1, func(data json.RawMessage) (json.RawMessage, error) {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, err
		}
		m["source"] = "v1"
		return json.Marshal(m)
	})
	md := domain.Metadata{CorrelationID: "c-1", Actor: "bench"}
	b.Run("Encode", func(b *testing.B) {
		ev := itemAdjusted{SKU: "sku-0042", Delta: -3, Reason: "a small event payload"}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Encode(ev, md); err != nil {
				b.Fatal(err)
			}
		}
	})
	rec := annals.RecordedEvent{StreamID: "inventory-42", StreamVersion: 7, EventType: "ItemAdjusted", SchemaVersion: 1,
		Data: json.RawMessage(`{"sku":"sku-0042","delta":-3,"reason":"a small event payload"}`), Metadata: json.RawMessage(`{"actor":"bench"}`), RecordedAt: time.Now()}
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Decode(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	old := rec
	old.EventType = "ItemAdjustedV2"
	b.Run("Decode/upcast=1", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Decode(old); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package demo

import (
	"context"
	"fmt"
	"strings"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/jackc/pgx/v5"
)

// priceSet is the upcasting step's own event type, so that the inventory domain keeps its events
// as they are: PriceSet version 1 was {cents}, version 2 is {cents, currency}.
type priceSet struct {
	Cents    int    `json:"cents"`
	Currency string `json:"currency"`
}

const upcasterSQL = `CREATE SCHEMA demo;
CREATE FUNCTION demo.price_set_v1_to_v2(data jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    RETURN data || '{"currency": "EUR"}';
GRANT USAGE ON SCHEMA demo TO annals_owner;  -- reads run as annals_owner
GRANT EXECUTE ON FUNCTION demo.price_set_v1_to_v2(jsonb) TO annals_owner;
SELECT annals.register_upcaster('PriceSet', 1, 'demo.price_set_v1_to_v2(jsonb)');`

func (s *story) upcast(ctx context.Context) error {
	s.heading("Schema evolution: old events read in today's shape")
	s.say("Prices were first stored without a currency: PriceSet {cents}, schema version 1. Version 2",
		"adds the currency. Stored events are never rewritten: an upcaster, a plain SQL function, lifts",
		"old ones on every read, for SQL, Go and BI alike. (A price stream of its own, so the inventory",
		"events keep their shape.)")
	const stream = "price-42"
	old := annals.EventData{Type: "PriceSet", Data: map[string]int{"cents": 1299}}
	s.sql("-- written last year, by code that knew version 1 only\n" + appendSQL(stream, annals.NoStream, old))
	if _, err := s.store.Append(ctx, stream, annals.NoStream, old); err != nil {
		return err
	}
	s.result("version 1, stored as schema version 1")

	if err := s.exec(ctx, upcasterSQL); err != nil {
		return err
	}
	s.result("every read now lifts PriceSet 1 → 2")

	reg := domain.NewRegistry()
	domain.RegisterVersion[priceSet](reg, "PriceSet", 2)
	current, err := reg.Encode(priceSet{Cents: 1499, Currency: "USD"}, domain.Metadata{})
	if err != nil {
		return err
	}
	s.sql("-- written today\n" + appendSQL(stream, annals.Exact(1), current))
	if _, err := s.store.Append(ctx, stream, annals.Exact(1), current); err != nil {
		return err
	}
	s.result("version 2, stored as schema version 2")

	read, err := s.query(ctx, "SELECT stream_version, schema_version, data FROM annals.read_stream('price-42');")
	if err != nil {
		return err
	}
	if len(read.rows) != 2 || read.get(0, "schema_version") != "2" || read.get(0, "data") != `{"cents": 1299, "currency": "EUR"}` {
		return fmt.Errorf("read_stream returns %v, want the first event upcast to version 2 with currency EUR", read.rows)
	}
	s.result("the old event reads as version 2, with the currency it always had")
	raw, err := s.query(ctx, "SELECT stream_version, schema_version, data FROM annals.read_stream('price-42', raw => true);")
	if err != nil {
		return err
	}
	if len(raw.rows) != 2 || raw.get(0, "schema_version") != "1" || raw.get(0, "data") != `{"cents": 1299}` {
		return fmt.Errorf("read_stream(raw => true) returns %v, want the first event as stored: version 1, {\"cents\": 1299}", raw.rows)
	}
	s.result("raw => true: the stored bytes, unchanged")

	var prices []string
	for ev, err := range s.store.ReadStream(ctx, stream, annals.ReadOptions{}) {
		if err != nil {
			return err
		}
		typed, err := reg.Decode(ev)
		if err != nil {
			return err
		}
		p := typed.(priceSet)
		prices = append(prices, fmt.Sprintf("%d.%02d %s", p.Cents/100, p.Cents%100, p.Currency))
	}
	if got := strings.Join(prices, ", "); got != "12.99 EUR, 14.99 USD" {
		return fmt.Errorf("the Go registry decodes %s, want 12.99 EUR, 14.99 USD", got)
	}
	s.result("Go, with PriceSet registered at schema version 2, decodes both: %s", strings.Join(prices, ", "))
	s.fact("PriceSet v1 upcast to v2 on every read by an SQL function; stored bytes unchanged (raw => true)")
	return nil
}

// exec prints stmt and runs it as printed (simple protocol: several statements may follow each
// other).
func (s *story) exec(ctx context.Context, stmt string) error {
	s.sql(stmt)
	if _, err := s.pool.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("%s: %w", firstLine(stmt), err)
	}
	return nil
}

package annals_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Appending to a new stream and reading it back.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	store := annals.New(pool, annals.ClientOptions{})
	res, err := store.Append(ctx, "inventory-42", annals.NoStream,
		annals.EventData{Type: "ItemAdded", Data: map[string]any{"sku": "A-1", "count": 10}},
		annals.EventData{Type: "ItemRemoved", Data: map[string]any{"sku": "A-1", "count": 3},
			Metadata: map[string]any{"actor": "ann"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stream version:", res.StreamVersion)

	for ev, err := range store.ReadStream(ctx, "inventory-42", annals.ReadOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.StreamVersion, ev.EventType, string(ev.Data), string(ev.Metadata))
	}
	// Output:
	// stream version: 2
	// 1 ItemAdded {"sku": "A-1", "count": 10} {}
	// 2 ItemRemoved {"sku": "A-1", "count": 3} {"actor": "ann"}
}

// Optimistic concurrency: an append that expected another version fails with
// ErrWrongExpectedVersion, whose details say what the stream was at.
func ExampleClient_Append_wrongExpectedVersion() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := annals.New(pool, annals.ClientOptions{})

	if _, err := store.Append(ctx, "account-7", annals.NoStream,
		annals.EventData{Type: "Opened"}, annals.EventData{Type: "Deposited", Data: map[string]int{"cents": 500}}); err != nil {
		log.Fatal(err)
	}

	// Another writer decided from version 1 and is now behind.
	_, err = store.Append(ctx, "account-7", annals.Exact(1), annals.EventData{Type: "Withdrawn"})
	var conflict *annals.WrongExpectedVersionError
	if errors.As(err, &conflict) {
		fmt.Printf("stream %s: expected %v, actual %d\n", conflict.StreamID, conflict.Expected, conflict.Actual)
	}
	fmt.Println(errors.Is(err, annals.ErrWrongExpectedVersion))

	// Reload, decide again, append with the version just read.
	info, err := store.StreamInfo(ctx, "account-7")
	if err != nil {
		log.Fatal(err)
	}
	res, err := store.Append(ctx, "account-7", annals.Exact(info.StreamVersion), annals.EventData{Type: "Withdrawn"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stream version:", res.StreamVersion)
	// Output:
	// stream account-7: expected 1, actual 2
	// true
	// stream version: 3
}

// Event ids make appends safe to retry: re-sending a batch that was already stored returns the
// original result and writes nothing, so a caller that lost the reply can simply try again.
func ExampleClient_Append_idempotentRetry() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := annals.New(pool, annals.ClientOptions{})

	order := annals.EventData{
		ID:   uuid.MustParse("0190a8f2-7c1e-7000-8000-00000000c0de"), // fixed before the first try
		Type: "OrderPlaced",
		Data: map[string]any{"total": 42},
	}
	first, err := store.Append(ctx, "order-1001", annals.NoStream, order)
	if err != nil {
		log.Fatal(err)
	}
	retry, err := store.Append(ctx, "order-1001", annals.NoStream, order)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same result:", first.StreamVersion == retry.StreamVersion && first.GlobalPosition == retry.GlobalPosition)

	// The same id with other content is not a retry.
	order.Data = map[string]any{"total": 43}
	_, err = store.Append(ctx, "order-1001", annals.NoStream, order)
	var reused *annals.EventIDConflictError
	if errors.As(err, &reused) {
		fmt.Println("conflict on", reused.EventID)
	}
	// Output:
	// same result: true
	// conflict on 0190a8f2-7c1e-7000-8000-00000000c0de
}

// StreamInfo reports a stream's version and state; a stream without events is ErrStreamNotFound.
func ExampleClient_StreamInfo() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := annals.New(pool, annals.ClientOptions{})

	_, err = store.StreamInfo(ctx, "cart-9")
	fmt.Println(errors.Is(err, annals.ErrStreamNotFound))

	if _, err := store.Append(ctx, "cart-9", annals.NoStream,
		annals.EventData{Type: "ItemAdded"}, annals.EventData{Type: "CheckedOut"}); err != nil {
		log.Fatal(err)
	}
	info, err := store.StreamInfo(ctx, "cart-9")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.StreamID, info.StreamVersion, info.State)

	if _, err := store.DeleteStream(ctx, "cart-9", annals.Exact(2), "cart abandoned"); err != nil {
		log.Fatal(err)
	}
	info, err = store.StreamInfo(ctx, "cart-9")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.StreamID, info.StreamVersion, info.State)
	_, err = store.Append(ctx, "cart-9", annals.Any, annals.EventData{Type: "ItemAdded"})
	fmt.Println(errors.Is(err, annals.ErrStreamDeleted))
	// Output:
	// true
	// cart-9 2 active
	// cart-9 2 deleted
	// true
}

// ReadEvent fetches one event by its id, say one named by a log line or another event's
// causation_id, without knowing its stream.
func ExampleClient_ReadEvent() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := annals.New(pool, annals.ClientOptions{})

	shipped := annals.EventData{
		ID:   uuid.MustParse("0190a8f2-7c1e-7000-8000-0000000005e1"),
		Type: "ShipmentDispatched",
		Data: map[string]any{"carrier": "DHL"},
	}
	if _, err := store.Append(ctx, "shipment-77", annals.NoStream, annals.EventData{Type: "ShipmentPacked"}, shipped); err != nil {
		log.Fatal(err)
	}

	ev, err := store.ReadEvent(ctx, shipped.ID, annals.ReadEventOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.StreamID, ev.StreamVersion, ev.EventType, string(ev.Data))

	_, err = store.ReadEvent(ctx, uuid.MustParse("0190a8f2-7c1e-7000-8000-0000000005e2"), annals.ReadEventOptions{})
	fmt.Println(errors.Is(err, annals.ErrEventNotFound))
	// Output:
	// shipment-77 2 ShipmentDispatched {"carrier": "DHL"}
	// true
}

// ListStreams walks the streams in id order, optionally of one category, fetching pages as the
// loop goes; After continues a listing where an earlier one stopped.
func ExampleClient_ListStreams() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := annals.New(pool, annals.ClientOptions{})

	for _, id := range []string{"ledger-2", "ledger-1", "ledger-3"} {
		if _, err := store.Append(ctx, id, annals.NoStream, annals.EventData{Type: "LedgerOpened"}); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := store.DeleteStream(ctx, "ledger-3", annals.Any, "closed"); err != nil {
		log.Fatal(err)
	}

	for s, err := range store.ListStreams(ctx, annals.ListStreamsOptions{Category: "ledger"}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(s.StreamID, s.StreamVersion, s.State)
	}
	for s, err := range store.ListStreams(ctx, annals.ListStreamsOptions{Category: "ledger", After: "ledger-1", Limit: 1}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("next page starts at", s.StreamID)
	}
	// Output:
	// ledger-1 1 active
	// ledger-2 1 active
	// ledger-3 1 deleted
	// next page starts at ledger-2
}

// Migrate installs or upgrades Annals; running it again changes nothing.
func ExampleMigrate() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	res, err := annals.Migrate(ctx, pool) // already installed here
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("applied:", len(res.Applied), "functions re-applied:", res.FunctionsApplied)
	fmt.Println("at this build's version:", res.ToVersion == annals.SchemaVersion())
	fmt.Println(annals.New(pool, annals.ClientOptions{}).CheckSchema(ctx))
	// Output:
	// applied: 0 functions re-applied: false
	// at this build's version: true
	// <nil>
}

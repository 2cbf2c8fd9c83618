package annals_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Two streams in one atomic append: both commit, or (here, the second's version is wrong)
// neither does, and the error names the stream that failed.
func ExampleClient_AppendMulti() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := annals.New(pool, annals.ClientOptions{})

	res, err := store.AppendMulti(ctx,
		annals.StreamAppend{StreamID: "wallet-1", Expected: annals.NoStream, Events: []annals.EventData{{Type: "Opened"}}},
		annals.StreamAppend{StreamID: "wallet-2", Expected: annals.NoStream, Events: []annals.EventData{{Type: "Opened"}}})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res {
		fmt.Println(r.StreamID, r.StreamVersion)
	}

	_, err = store.AppendMulti(ctx,
		annals.StreamAppend{StreamID: "wallet-1", Expected: annals.Exact(1), Events: []annals.EventData{{Type: "Debited"}}},
		annals.StreamAppend{StreamID: "wallet-2", Expected: annals.Exact(3), Events: []annals.EventData{{Type: "Credited"}}})
	var wev *annals.WrongExpectedVersionError
	if errors.As(err, &wev) {
		fmt.Println("failed on", wev.StreamID, "at version", wev.Actual)
	}
	info, err := store.StreamInfo(ctx, "wallet-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wallet-1 still at", info.StreamVersion)
	// Output:
	// wallet-1 1
	// wallet-2 1
	// failed on wallet-2 at version 1
	// wallet-1 still at 1
}

// A rule that spans streams, kept by tags: a room takes at most two bookings. DecideTagged reads
// the room's bookings, decides, and appends only if no booking came in since the read.
func ExampleClient_DecideTagged() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := annals.New(pool, annals.ClientOptions{})

	errFull := errors.New("room full")
	book := func(guest string) error {
		query := annals.TagQuery{{Types: []string{"RoomBooked"}, Tags: []string{"room:12"}}}
		_, err := store.DecideTagged(ctx, query, 10, func(evs []annals.TaggedEvent) ([]annals.StreamAppend, error) {
			if len(evs) >= 2 {
				return nil, errFull
			}
			return []annals.StreamAppend{{StreamID: "booking-" + guest, Expected: annals.NoStream,
				Events: []annals.EventData{{Type: "RoomBooked", Tags: []string{"room:12", "guest:" + guest}}}}}, nil
		})
		return err
	}
	for _, guest := range []string{"ann", "bob", "cid"} {
		fmt.Println(guest, book(guest))
	}
	// Output:
	// ann <nil>
	// bob <nil>
	// cid room full
}

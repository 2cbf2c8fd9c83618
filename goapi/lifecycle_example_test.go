package annals_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A retention rule keeps the newest events of each stream of a category; ApplyRetention removes
// the rest (the worker or pg_cron runs it on a schedule).
func ExampleClient_SetRetention() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := annals.New(pool, annals.ClientOptions{})

	readings := make([]annals.EventData, 5)
	for i := range readings {
		readings[i] = annals.EventData{Type: "Reading", Data: map[string]int{"celsius": 20 + i}}
	}
	if _, err := store.Append(ctx, "thermometer-1", annals.NoStream, readings...); err != nil {
		log.Fatal(err)
	}
	if _, err := store.SetRetention(ctx, annals.RetentionRule{Category: "thermometer", MaxCount: 2}); err != nil {
		log.Fatal(err)
	}
	removed, err := store.ApplyRetention(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("removed", removed)
	for e, err := range store.ReadStream(ctx, "thermometer-1", annals.ReadOptions{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.StreamVersion, string(e.Data))
	}
	// Output:
	// removed 3
	// 4 {"celsius": 23}
	// 5 {"celsius": 24}
}

// Personal data registered for an event type is stored encrypted with a key per subject;
// ForgetSubject destroys the key, and the fields read as null from then on.
func ExampleClient_ForgetSubject() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := annals.New(pool, annals.ClientOptions{})

	if _, err := store.RegisterPersonalData(ctx, "PatronJoined", []string{"$.email"}, "$.patron_id"); err != nil {
		log.Fatal(err)
	}
	if _, err := store.Append(ctx, "patron-7", annals.NoStream, annals.EventData{Type: "PatronJoined",
		Data: map[string]string{"patron_id": "p-7", "email": "ann@example.com"}}); err != nil {
		log.Fatal(err)
	}
	show := func() {
		for e, err := range store.ReadStream(ctx, "patron-7", annals.ReadOptions{}) {
			if err != nil {
				log.Fatal(err)
			}
			var meta map[string]any
			_ = json.Unmarshal(e.Metadata, &meta)
			fmt.Println(string(e.Data), meta["$erased"])
		}
	}
	show()
	if _, err := store.ForgetSubject(ctx, "p-7"); err != nil {
		log.Fatal(err)
	}
	show()
	// Output:
	// {"email": "ann@example.com", "patron_id": "p-7"} <nil>
	// {"email": null, "patron_id": "p-7"} [$.email]
}

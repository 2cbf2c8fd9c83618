package annals_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Read your own write through a replica: the append's TransactionID is the consistency token.
// The read waits (up to ReplicaOptions.WaitBound) until the replica has replayed that
// transaction, else reads from the primary. Here the "replica" is the primary's own pool, so the
// example runs anywhere; in production it is a pool on a streaming hot standby.
func ExampleReadYourWrites() {
	ctx := context.Background()
	primary, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer primary.Close()
	standby := primary // pgxpool.New(ctx, standbyURL)

	store := annals.New(primary, annals.ClientOptions{
		Replicas: []*pgxpool.Pool{standby},
		Replica:  annals.ReplicaOptions{WaitBound: time.Second},
	})
	res, err := store.Append(ctx, "order-77", annals.NoStream, annals.EventData{Type: "Placed"})
	if err != nil {
		log.Fatal(err)
	}
	ryw := annals.WithConsistency(ctx, annals.ReadYourWrites(res.TransactionID))
	info, err := store.StreamInfo(ryw, "order-77")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version:", info.StreamVersion)

	visible, err := store.WaitFor(ctx, res.TransactionID, time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("visible on the replica:", visible)
	// Output:
	// version: 1
	// visible on the replica: true
}

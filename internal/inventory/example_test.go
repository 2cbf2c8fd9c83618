package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The inventory service: add an item, adjust its count, be refused an overdraw, read the item,
// its past, and the SQL read model the same appends kept current.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if err := readmodels.Install(ctx, pool); err != nil { // inline projection + BI view
		log.Fatal(err)
	}
	service := inventory.NewService(annals.New(pool, annals.ClientOptions{}), domain.RepositoryOptions{})

	item, err := service.AddItem(ctx, "42", "Blue widget", 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d in stock (version %d)\n", item.Name, item.Count, item.Version)
	for _, delta := range []int{5, -3} {
		if item, err = service.AdjustCount(ctx, "42", delta, "delivery or sale"); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%+d: %d in stock (version %d)\n", delta, item.Count, item.Version)
	}

	_, err = service.AdjustCount(ctx, "42", -20, "sale")
	var insufficient *inventory.InsufficientInventoryError
	if errors.As(err, &insufficient) {
		fmt.Printf("refused: %d requested, %d available\n", insufficient.Requested, insufficient.Available)
	}

	then, err := service.ItemAt(ctx, "42", annals.AtVersion(2))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("as of version 2:", then.Count)

	var projected int
	if err := pool.QueryRow(ctx, "SELECT count FROM inventory.item_counts WHERE sku = '42'").Scan(&projected); err != nil {
		log.Fatal(err)
	}
	fmt.Println("inventory.item_counts says:", projected)
	// Output:
	// Blue widget: 10 in stock (version 1)
	// +5: 15 in stock (version 2)
	// -3: 12 in stock (version 3)
	// refused: 20 requested, 12 available
	// as of version 2: 15
	// inventory.item_counts says: 12
}

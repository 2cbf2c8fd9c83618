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

// Two tenants in one store, isolated by row-level security: each client carries its tenant (per
// pool), WithTenant sets one for a single call, and a call without a tenant sees neither.
func ExampleWithTenant() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store := annals.New(pool, annals.ClientOptions{})
	if _, err := store.EnableTenancy(ctx); err != nil { // once, as a superuser (the history guard)
		log.Fatal(err)
	}

	acme := annals.New(pool, annals.ClientOptions{Tenant: "acme"})
	globex := annals.New(pool, annals.ClientOptions{Tenant: "globex"})
	if _, err := acme.Append(ctx, "cart-1", annals.NoStream, annals.EventData{Type: "ItemAdded"}, annals.EventData{Type: "ItemAdded"}); err != nil {
		log.Fatal(err)
	}
	if _, err := globex.Append(ctx, "cart-1", annals.NoStream, annals.EventData{Type: "ItemAdded"}); err != nil {
		log.Fatal(err)
	}
	for name, c := range map[string]*annals.Client{"acme": acme, "globex": globex} {
		info, err := c.StreamInfo(ctx, "cart-1")
		if err != nil {
			log.Fatal(err)
		}
		defer fmt.Println(name, info.StreamID, "at version", info.StreamVersion)
	}
	info, err := store.StreamInfo(annals.WithTenant(ctx, "acme"), "cart-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("WithTenant acme:", info.StreamVersion)
	if _, err := store.StreamInfo(ctx, "cart-1"); errors.Is(err, annals.ErrStreamNotFound) {
		fmt.Println("no tenant: no such stream")
	}
	// Unordered output:
	// WithTenant acme: 2
	// no tenant: no such stream
	// acme cart-1 at version 2
	// globex cart-1 at version 1
}

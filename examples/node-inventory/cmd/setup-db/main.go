// Command setup-db installs Annals (annals.Migrate) and the inventory read models of the Go
// example (readmodels.Install: the table inventory.item_counts and its inline projection) into
// a database, so the TypeScript service in examples/node-inventory finds what the Go service
// finds. Both steps are idempotent. It needs a role that may create roles (a superuser, or the
// installer described in the main README).
//
//	go run ./examples/node-inventory/cmd/setup-db --database-url postgres://...
//
// The Node tests run it against each scratch database they create.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "setup-db:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("setup-db", flag.ContinueOnError)
	url := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("no database: pass --database-url or set DATABASE_URL")
	}
	pool, err := pgxpool.New(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	res, err := annals.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	if err := readmodels.Install(ctx, pool); err != nil {
		return err
	}
	fmt.Printf("Annals at schema version %d, inventory read models installed\n", res.ToVersion)
	return nil
}

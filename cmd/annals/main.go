// Command annals installs, inspects and demonstrates Annals, event sourcing inside PostgreSQL.
//
//	annals migrate              install or upgrade Annals in $DATABASE_URL
//	annals demo                 play the inventory story against a scratch database
//
// Configuration: DATABASE_URL or --database-url. Run `annals help COMMAND` for details.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	interrupted := ctx.Err() != nil
	stop()
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprintln(os.Stderr, "annals:", err)
			os.Exit(2)
		}
		if interrupted && errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "annals: interrupted")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "annals:", explain(err))
		os.Exit(1)
	}
}

// Command annals installs, operates and inspects Annals, event sourcing inside PostgreSQL.
//
//	annals migrate              install or upgrade Annals in $DATABASE_URL (status: what is applied)
//	annals append / read        write and read a stream from the shell
//	annals tail                 follow the gap-free feed live, or dump it (--until-end)
//	annals streams              list, inspect and delete streams
//	annals projections / views  projection state, rebuilds, enable/disable/drop, view refreshes
//	annals subscriptions        create, drop, lag, resets, dead letters and their replay
//	annals worker               async projections and view refreshes, with Prometheus metrics
//	annals doctor               check an installation and say what to fix
//	annals demo                 play the inventory story against a scratch database
//
// Configuration: DATABASE_URL or --database-url. Run `annals help COMMAND` for details,
// `annals completion bash|zsh|fish|powershell` for shell completion, and `annals --version` for
// the build and the schema versions it expects and finds.
//
// Exit codes (one table for every command, in errors.go): 0 success; 1 failure; 2 wrong usage,
// including an argument the database rejected (ST422, ST403); 3 not found (a stream without
// events, an event, subscription, projection or dead letter); 4 conflict (wrong expected version,
// event id conflict, deleted stream, checkpoint or lease held by another consumer); 130
// interrupted. Every failure prints one line on stderr saying what happened and what to do.
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
	err := newRoot().ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	stop()
	os.Exit(exitCode(err, interrupted))
}

// exitCode prints err (if any) as one line on stderr and returns the process exit code.
func exitCode(err error, interrupted bool) int {
	if err == nil {
		return exitOK
	}
	var u usageError
	if errors.As(err, &u) {
		fmt.Fprintln(os.Stderr, "annals:", err)
		return exitUsage
	}
	if interrupted && errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "annals: interrupted")
		return exitInterrupted
	}
	fmt.Fprintln(os.Stderr, "annals:", explain(err))
	return exitCodeFor(err)
}

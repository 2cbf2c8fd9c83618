package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// command is the pre-cobra way to declare a subcommand, kept so that code written against it
// (bench) still compiles and runs unchanged: register(command{...}) in an init function, flags
// declared on a standard library flag.FlagSet, and a closure that runs the command.
//
// Such a command becomes a cobra command when the root is built (legacyCommand): `annals help
// NAME`, `annals NAME --help` and the command list show it like any other, and its flags are
// parsed by the standard library's flag package exactly as before (-name value, --name=value,
// parsing stops at the first non-flag argument), so fs.Args, fs.Visit and fs.Parsed keep working.
// New commands should be plain cobra commands (see root.go); legacy ones get no shell completion
// of their flags.
type command struct {
	name, summary, usage string
	flags                func(fs *flag.FlagSet) func(ctx context.Context, args []string, out io.Writer) error
}

// usageError marks errors caused by how the command was called (exit code 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// legacyCommands holds what register collected, in registration order.
var legacyCommands []command

// register declares a command the pre-cobra way; see command.
func register(c command) { legacyCommands = append(legacyCommands, c) }

// legacyCommand adapts a registered command to cobra. The flag set is built twice: once here so
// help can list the flags, and afresh for every run so values never leak between runs.
func legacyCommand(c command) *cobra.Command {
	short, _, _ := strings.Cut(c.summary, "\n")
	cmd := &cobra.Command{
		Use:                strings.TrimSpace(c.name + " " + c.usage),
		Short:              strings.TrimSpace(short),
		Long:               c.summary,
		DisableFlagParsing: true, // the standard library's flag package parses, as it always did
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := flag.NewFlagSet("annals "+c.name, flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Usage = func() {}
			do := c.flags(fs)
			if err := fs.Parse(args); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					return cmd.Help()
				}
				return usageError{err.Error()}
			}
			return do(cmd.Context(), fs.Args(), cmd.OutOrStdout())
		},
	}
	display := flag.NewFlagSet("annals "+c.name, flag.ContinueOnError)
	c.flags(display)
	cmd.Flags().AddGoFlagSet(display)
	return cmd
}

// databaseURL registers --database-url on a legacy command's flag set and returns a getter that
// falls back to DATABASE_URL. Cobra commands use addDatabaseFlag instead.
func databaseURL(fs *flag.FlagSet) func() (string, error) {
	u := fs.String("database-url", "", "PostgreSQL connection URL (default $DATABASE_URL)")
	return func() (string, error) { return resolveDatabaseURL(*u) }
}

// resolveDatabaseURL is the flag's value, else DATABASE_URL, else a usage error.
func resolveDatabaseURL(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if env := os.Getenv("DATABASE_URL"); env != "" {
		return env, nil
	}
	return "", usageError{"no database: set DATABASE_URL or pass --database-url (e.g. postgres://postgres@127.0.0.1:5432/app)"}
}

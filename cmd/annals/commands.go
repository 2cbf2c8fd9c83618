package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand: its flags are parsed by run before do is called.
type command struct {
	name, summary, usage string
	flags                func(fs *flag.FlagSet) func(ctx context.Context, args []string, out io.Writer) error
}

// usageError marks errors caused by how the command was called (exit code 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" && len(args) == 1 {
		printUsage(os.Stdout)
		return nil
	}
	name := args[0]
	if name == "help" {
		name, args = args[1], []string{args[1], "--help"}
	}
	c, ok := commands[name]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q; run `annals help` for the list", name)}
	}
	fs := flag.NewFlagSet("annals "+c.name, flag.ContinueOnError)
	fs.SetOutput(os.Stdout)
	fs.Usage = func() {
		fmt.Fprintf(os.Stdout, "usage: annals %s %s\n\n%s\n\nflags:\n", c.name, c.usage, c.summary)
		fs.PrintDefaults()
	}
	do := c.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return usageError{err.Error()}
	}
	return do(ctx, fs.Args(), os.Stdout)
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "annals — event sourcing inside PostgreSQL\n\nusage: annals COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, strings.SplitN(commands[n].summary, "\n", 2)[0])
	}
	fmt.Fprintln(w, "\nThe database comes from --database-url or DATABASE_URL. `annals help COMMAND` shows a command's flags.")
}

// databaseURL registers --database-url and returns a getter that falls back to DATABASE_URL.
func databaseURL(fs *flag.FlagSet) func() (string, error) {
	u := fs.String("database-url", "", "PostgreSQL connection URL (default $DATABASE_URL)")
	return func() (string, error) {
		if *u != "" {
			return *u, nil
		}
		if env := os.Getenv("DATABASE_URL"); env != "" {
			return env, nil
		}
		return "", usageError{"no database: set DATABASE_URL or pass --database-url (e.g. postgres://postgres@127.0.0.1:5432/app)"}
	}
}

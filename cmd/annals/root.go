package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// newRoot builds the command tree. Every call returns a fresh tree (tests and completion may
// build several).
func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "annals COMMAND [flags]",
		Short: "event sourcing inside PostgreSQL",
		// Errors are printed once, by main, as one line; usage is never dumped after an error.
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          unknownSubcommand,
	}
	showVersion, versionDB := versionFlags(root)
	root.PersistentFlags().String("tenant", "", "run as this tenant (default $ANNALS_TENANT; README: Tenants)")
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if *showVersion {
			printVersion(cmd.Context(), cmd, versionDB)
			return nil
		}
		return showHelp(cmd, args)
	}
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { renderHelp(c.OutOrStdout(), c) })
	root.SetUsageFunc(func(c *cobra.Command) error { renderHelp(c.OutOrStderr(), c); return nil })
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err.Error()} })
	root.CompletionOptions.HiddenDefaultCmd = false

	root.AddCommand(
		newMigrateCmd(),
		newDemoCmd(),
		newAppendCmd(),
		newAppendMultiCmd(), // M15
		newReadCmd(),
		newTaggedCmd(), // M15
		newTailCmd(),
		newStreamsCmd(),
		newStorageCmd(),
		newProjectionsCmd(),
		newViewsCmd(),
		newSubscriptionsCmd(),
		newWorkerCmd(),
		newDoctorCmd(),
		newRetentionCmd(),
		newSubjectsCmd(),
		newBenchCmd(),
		newShardCmd(),
		newTenancyCmd(), // M15
	)
	return root
}

// group makes a command whose only job is to hold subcommands: alone it prints its help, with an
// unknown subcommand it is a usage error.
func group(use, short, long string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short, Long: long, Args: unknownSubcommand, RunE: showHelp}
	g.AddCommand(subs...)
	return g
}

func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// unknownSubcommand rejects arguments given to a command that only has subcommands.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := fmt.Sprintf("run `%s --help` for the list", cmd.CommandPath())
	if !cmd.HasParent() {
		hint = "run `annals help` for the list"
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf("did you mean %q? %s", s[0], hint)
	}
	what := "command"
	if cmd.HasParent() {
		what = cmd.Name() + " command"
	}
	return usagef("unknown %s %q; %s", what, args[0], hint)
}

// noArgs, exactArgs and rangeArgs are cobra.PositionalArgs that fail with a usage error naming
// what was expected.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", cmd.Name(), args)
	}
	return nil
}

func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("%s needs %s, got %d argument(s): usage: %s", cmd.Name(), strings.Join(names, " and "), len(args), usageLine(cmd))
		}
		for i, a := range args {
			if a == "" {
				return usagef("%s: %s must not be empty", cmd.Name(), names[i])
			}
		}
		return nil
	}
}

// usageLine is "annals sub ARGS [flags]" from the command's Use, which spells out its flags.
func usageLine(c *cobra.Command) string {
	if !c.HasParent() {
		return c.Use
	}
	return c.Parent().CommandPath() + " " + c.Use
}

// renderHelp prints a command's help in the house format: usage line, description, subcommands,
// flags, examples. Used for every command, including cobra's own completion commands.
func renderHelp(w io.Writer, c *cobra.Command) {
	if !c.HasParent() {
		fmt.Fprintf(w, "annals — %s\n\n", c.Short)
	}
	fmt.Fprintf(w, "usage: %s\n", usageLine(c))
	if c.HasParent() {
		desc := c.Long
		if desc == "" {
			desc = c.Short
		}
		if desc = strings.TrimSpace(desc); desc != "" {
			fmt.Fprintf(w, "\n%s\n", desc)
		}
	}
	if subs := availableSubcommands(c); len(subs) > 0 {
		width := 0
		for _, s := range subs {
			width = max(width, len(s.Name()))
		}
		fmt.Fprintln(w, "\ncommands:")
		for _, s := range subs {
			fmt.Fprintf(w, "  %-*s  %s\n", width, s.Name(), s.Short)
		}
	}
	if c.HasAvailableLocalFlags() {
		fmt.Fprintf(w, "\nflags:\n%s", c.LocalFlags().FlagUsages())
	}
	if c.HasAvailableInheritedFlags() {
		fmt.Fprintf(w, "\nglobal flags:\n%s", c.InheritedFlags().FlagUsages())
	}
	if c.Example != "" {
		fmt.Fprintf(w, "\nexamples:\n%s\n", strings.TrimRight(c.Example, "\n"))
	}
	switch {
	case !c.HasParent():
		fmt.Fprintln(w, "\nThe database comes from --database-url or DATABASE_URL. `annals help COMMAND` (or `annals COMMAND --help`)\n"+
			"shows a command's flags; `annals completion bash|zsh|fish|powershell` prints a shell completion script.")
	case len(availableSubcommands(c)) > 0:
		fmt.Fprintf(w, "\n`%s COMMAND --help` shows a command's flags.\n", c.CommandPath())
	}
}

func availableSubcommands(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			out = append(out, s)
		}
	}
	return out
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// legacyFixture is a command declared the pre-cobra way, as bench.go does.
func legacyFixture(got *[]string) command {
	return command{
		name:    "legacy",
		summary: "Do a legacy thing.\n\nThe longer story of the legacy thing.",
		usage:   "[-n N] [--verbose] ARGS...",
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			n := fs.Int("n", 1, "how many times")
			verbose := fs.Bool("verbose", false, "say more")
			url := databaseURL(fs)
			return func(ctx context.Context, args []string, out io.Writer) error {
				var set []string
				fs.Visit(func(f *flag.Flag) { set = append(set, f.Name) })
				u, _ := url()
				*got = append(*got, fmt.Sprintf("n=%d verbose=%v args=%v set=%v url=%s", *n, *verbose, args, set, u))
				fmt.Fprintln(out, "ran")
				if len(args) > 0 && args[0] == "fail" {
					return usageError{"legacy: told to fail"}
				}
				return nil
			}
		},
	}
}

func runRoot(t *testing.T, c command, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	root.AddCommand(legacyCommand(c))
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestLegacyCommand pins the compatibility shim: a command registered with register(command{...})
// runs with the standard library's flag parsing, and shows in help like the cobra commands.
func TestLegacyCommand(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://example/db")
	var got []string
	c := legacyFixture(&got)

	out, err := runRoot(t, c, "legacy", "-n", "5", "--verbose", "a", "b")
	require.NoError(t, err)
	require.Equal(t, "ran\n", out)
	require.Equal(t, []string{"n=5 verbose=true args=[a b] set=[n verbose] url=postgres://example/db"}, got)

	got = nil
	_, err = runRoot(t, c, "legacy", "-n=2", "--database-url", "postgres://other/db", "x")
	require.NoError(t, err)
	require.Equal(t, []string{"n=2 verbose=false args=[x] set=[database-url n] url=postgres://other/db"}, got)

	for _, args := range [][]string{{"legacy", "--help"}, {"legacy", "-h"}, {"help", "legacy"}} {
		out, err := runRoot(t, c, args...)
		require.NoError(t, err, "%v", args)
		require.Contains(t, out, "usage: annals legacy [-n N] [--verbose] ARGS...", "%v", args)
		require.Contains(t, out, "The longer story of the legacy thing.", "%v", args)
		require.Contains(t, out, "how many times", "%v", args)
		require.Contains(t, out, "--database-url", "%v", args)
	}

	out, err = runRoot(t, c, "--help")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^\s+legacy\s+Do a legacy thing\.$`, out)

	_, err = runRoot(t, c, "legacy", "--no-such-flag")
	var u usageError
	require.True(t, errors.As(err, &u), "want a usage error, got %v", err)
	require.Contains(t, err.Error(), "no-such-flag")

	_, err = runRoot(t, c, "legacy", "fail")
	require.True(t, errors.As(err, &u), "the command's own usage error comes through, got %v", err)
}

func TestExplainIsOneLine(t *testing.T) {
	msg := explain(errors.New("annals: read: annals: something\nbroke"))
	require.Equal(t, "read: something broke", msg)
	require.False(t, strings.Contains(msg, "\n"))
}

func TestSnapshotSees(t *testing.T) {
	s, err := parseSnapshot("100:110:102,105")
	require.NoError(t, err)
	for txid, want := range map[uint64]bool{99: true, 100: true, 101: true, 102: false, 105: false, 109: true, 110: false, 200: false} {
		require.Equal(t, want, s.sees(txid), "txid %d", txid)
	}
	s, err = parseSnapshot("7:7:")
	require.NoError(t, err)
	require.True(t, s.sees(6))
	require.False(t, s.sees(7))
	_, err = parseSnapshot("nonsense")
	require.Error(t, err)
}

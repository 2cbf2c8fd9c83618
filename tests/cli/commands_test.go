package cli_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// commands is every command path of the tree; TestHelp checks each has working --help.
var commands = [][]string{
	{"append"}, {"read"}, {"tail"}, {"demo"}, {"doctor"}, {"worker"},
	{"migrate"}, {"migrate", "status"},
	{"streams"}, {"streams", "list"}, {"streams", "show"}, {"streams", "delete"},
	{"storage"}, {"storage", "stats"}, {"storage", "compress"}, {"storage", "archive"},
	{"projections"}, {"projections", "list"}, {"projections", "status"}, {"projections", "rebuild"},
	{"projections", "enable"}, {"projections", "disable"}, {"projections", "drop"},
	{"views"}, {"views", "list"}, {"views", "refresh"},
	{"subscriptions"}, {"subscriptions", "list"}, {"subscriptions", "status"}, {"subscriptions", "create"},
	{"subscriptions", "drop"}, {"subscriptions", "reset"}, {"subscriptions", "dead-letters"}, {"subscriptions", "replay"},
	{"completion"}, {"completion", "bash"}, {"completion", "zsh"}, {"completion", "fish"}, {"completion", "powershell"},
}

func TestCLIHelp(t *testing.T) {
	t.Parallel()
	root := ok(t, "", "--help")
	for _, c := range commands {
		if len(c) == 1 {
			require.Regexp(t, `(?m)^  `+c[0]+`\s+\S`, root, "the command list names %s", c[0])
		}
		path := strings.Join(c, " ")
		for _, args := range [][]string{append(append([]string{}, c...), "--help"), append([]string{"help"}, c...)} {
			r := annals(t, "", args...)
			require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
			require.Contains(t, r.stdout, "usage: annals "+path, "%v", args)
			require.Contains(t, r.stdout, "--help", "%v", args)
			require.Empty(t, r.stderr, "%v", args)
		}
	}
	// A group alone prints its help, listing its commands.
	out := ok(t, "", "subscriptions")
	for _, sub := range []string{"list", "status", "create", "drop", "reset", "dead-letters", "replay"} {
		require.Regexp(t, `(?m)^  `+sub+`\s+\S`, out)
	}
	require.Contains(t, ok(t, "", "append", "--help"), "--expected string")
	require.Contains(t, ok(t, "", "worker", "--help"), "--metrics-addr string")
	require.Contains(t, ok(t, "", "migrate", "--help"), "status")
}

func TestCLICompletion(t *testing.T) {
	t.Parallel()
	bash := ok(t, "", "completion", "bash")
	require.Contains(t, bash, "__start_annals")
	require.Contains(t, ok(t, "", "completion", "zsh"), "#compdef annals")
	require.Contains(t, ok(t, "", "completion", "fish"), "complete -c annals")
	require.Contains(t, ok(t, "", "completion", "powershell"), "Register-ArgumentCompleter")

	// What the scripts ask the binary: subcommands, and the fixed values of --expected.
	out := ok(t, "", "__complete", "subscriptions", "")
	for _, sub := range []string{"list", "status", "create", "drop", "reset", "dead-letters", "replay"} {
		require.Contains(t, out, sub+"\t")
	}
	out = ok(t, "", "__complete", "append", "s-1", "--expected", "")
	require.Contains(t, out, "no-stream\n")
	require.Contains(t, out, "exists\n")
}

func TestCLIUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"streams", "lsit"}, `unknown streams command "lsit"; did you mean "list"?`},
		{[]string{"read"}, "read needs STREAM"},
		{[]string{"read", "a", "b"}, "read needs STREAM, got 2 argument(s)"},
		{[]string{"doctor", "extra"}, "doctor takes no arguments"},
		{[]string{"tail", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"read", "s-1", "--limit", "many"}, `invalid argument "many"`},
		{[]string{"read", "s-1"}, "no database: set DATABASE_URL or pass --database-url"},
		{[]string{"streams", "list"}, "no database"},
		{[]string{"worker"}, "no database"},
	} {
		r := annals(t, "", tc.args...)
		require.Equal(t, 2, r.code, "%v: %s", tc.args, r.stderr)
		requireOneLine(t, r.stderr)
		require.Contains(t, r.stderr, tc.want, tc.args)
		require.Empty(t, r.stdout, tc.args)
	}
}

func TestCLIVersion(t *testing.T) {
	t.Parallel()
	// Without a database: the build and the schema it expects, exit 0.
	r := annals(t, "", "--version")
	require.Equal(t, 0, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 3, r.stdout)
	require.Regexp(t, `^annals \S+ \(.*go\d+\.\d+`, lines[0])
	require.Regexp(t, `^schema: this build expects version \d+$`, lines[1])
	want := strings.TrimPrefix(lines[1], "schema: this build expects ")
	require.Equal(t, "database: not checked: set DATABASE_URL or pass --database-url to compare with the installed schema", lines[2])
	require.Empty(t, r.stderr)

	// With one: the installed version next to it.
	out := ok(t, newDB(t), "--version")
	require.Contains(t, out, "database: "+want+" installed, as this build expects\n")
	// An unreachable database does not fail --version: it says so.
	r = annals(t, "", "--version", "--database-url", "postgres://postgres@127.0.0.1:1/none?connect_timeout=2")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "database: not reachable: connect to ")
	// A build stamped at link time says so.
	stamped := filepath.Join(t.TempDir(), "annals")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7", "-o", stamped, "github.com/annals-db/annals/cmd/annals")
	b, err := build.CombinedOutput()
	require.NoError(t, err, "%s", b)
	b, err = exec.Command(stamped, "--version").Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b), "annals v9.8.7 ("), "%s", b)
}

func TestCLIConnectionErrors(t *testing.T) {
	t.Parallel()
	r := annals(t, "postgres://postgres@127.0.0.1:1/none?connect_timeout=2", "streams", "list")
	require.Equal(t, 1, r.code)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "is PostgreSQL running and is DATABASE_URL right?")

	db := newDB(t)
	missing := db[:strings.LastIndex(db, "/")+1] + "annals_no_such_db" + db[strings.Index(db, "?"):]
	r = annals(t, missing, "read", "s-1")
	require.Equal(t, 1, r.code)
	requireOneLine(t, r.stderr)
	require.Contains(t, r.stderr, "SQLSTATE 3D000 database does not exist")
}

func TestCLIMigrateStatus(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	out := ok(t, db, "migrate", "status")
	require.Regexp(t, `(?m)^migrations:$`, out)
	require.Regexp(t, `(?m)^  applied\s+\d{4}-\S+ \S+\s+001_roles_and_schemas\.sql$`, out)
	require.NotContains(t, out, "pending")
	require.Regexp(t, `(?m)^schema: version \d+ installed, as this build expects$`, out)
	// The CLI's checksum of the function files equals the one annals.Migrate recorded.
	require.Regexp(t, `(?m)^functions: match this build \(checksum [0-9a-f]{12}, applied `, out)

	pool := poolFor(t, db)
	execSQL(t, pool, `UPDATE annals_internal.schema_info SET functions_checksum = 'edited'`)
	out = ok(t, db, "migrate", "status")
	require.Contains(t, out, "functions: differ from this build (installed checksum edited")
	out = ok(t, db, "migrate")
	require.Contains(t, out, "re-applied the functions")
	require.Contains(t, ok(t, db, "migrate", "status"), "functions: match this build")

	r := annals(t, db, "migrate", "nonsense")
	require.Equal(t, 2, r.code)
}

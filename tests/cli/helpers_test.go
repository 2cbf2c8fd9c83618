package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

type result struct {
	stdout, stderr string
	code           int
}

// env is the test's environment without DATABASE_URL and ANNALS_*, plus extra.
func env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "ANNALS_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// annals runs the binary with DATABASE_URL=dbURL (none when empty) and returns its output.
func annals(t *testing.T, dbURL string, args ...string) result {
	t.Helper()
	return annalsIn(t, dbURL, "", args...)
}

// annalsIn is annals with stdin.
func annalsIn(t *testing.T, dbURL, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if dbURL != "" {
		cmd.Env = env("DATABASE_URL=" + dbURL)
	} else {
		cmd.Env = env()
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else {
		require.NoError(t, err, "run annals %v", args)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// ok runs annals and requires exit code 0; it returns stdout.
func ok(t *testing.T, dbURL string, args ...string) string {
	t.Helper()
	r := annals(t, dbURL, args...)
	require.Equal(t, 0, r.code, "annals %v failed:\nstdout:\n%s\nstderr:\n%s", args, r.stdout, r.stderr)
	return r.stdout
}

// requireOneLine checks that an error went to stderr as exactly one line.
func requireOneLine(t *testing.T, stderr string) {
	t.Helper()
	require.Equal(t, 1, strings.Count(stderr, "\n"), "want one line on stderr, got:\n%s", stderr)
	require.True(t, strings.HasPrefix(stderr, "annals: "), "want an annals: prefix, got:\n%s", stderr)
}

// newDB is a fresh migrated database's URL.
func newDB(t *testing.T) string {
	t.Helper()
	return annalstest.NewDBURL(t)
}

// poolFor opens a pool on url for setup SQL; closed at the end of the test.
func poolFor(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// execSQL runs a statement through pool, as the test's (superuser) login.
func execSQL(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	_, err := pool.Exec(t.Context(), sql, args...)
	require.NoError(t, err, "SQL: %s", sql)
}

// appendEvent appends through the CLI and returns the result's JSON.
func appendEvent(t *testing.T, dbURL, stream, expected, typ, data string) map[string]any {
	t.Helper()
	out := ok(t, dbURL, "append", stream, "--expected", expected, "--type", typ, "--data", data, "--json")
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &m), "append --json printed %q", out)
	return m
}

// jsonLines parses one JSON object per line.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "not a JSON line: %q", line)
		out = append(out, m)
	}
	return out
}

// syncBuffer is a bytes.Buffer a running process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is annals running in the background (tail, worker).
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	code           int
}

// start runs annals in the background; the test's cleanup kills it if it is still running.
func start(t *testing.T, dbURL string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = env("DATABASE_URL=" + dbURL)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		err := p.cmd.Wait()
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			p.code = exitErr.ExitCode()
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.code = -int(ws.Signal())
			}
		case err != nil:
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitFor waits until re matches the stream's output and returns the submatches.
func (p *proc) waitFor(t *testing.T, stream *syncBuffer, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(stream.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := re.FindStringSubmatch(stream.String()); m != nil {
				return m
			}
			require.FailNowf(t, "process exited", "annals %v exited with %d before printing %s\nstdout:\n%s\nstderr:\n%s",
				p.cmd.Args[1:], p.code, re, p.stdout.String(), p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			require.FailNowf(t, "timeout", "annals %v did not print %s within %v\nstdout:\n%s\nstderr:\n%s",
				p.cmd.Args[1:], re, timeout, p.stdout.String(), p.stderr.String())
		}
	}
}

// stop sends sig and returns the exit code, failing if the process takes longer than timeout.
func (p *proc) stop(t *testing.T, sig os.Signal, timeout time.Duration) int {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		require.FailNowf(t, "timeout", "annals %v did not exit within %v of %v\nstdout:\n%s\nstderr:\n%s",
			p.cmd.Args[1:], timeout, sig, p.stdout.String(), p.stderr.String())
		return 0
	}
}

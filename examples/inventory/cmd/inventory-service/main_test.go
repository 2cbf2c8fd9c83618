package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// build compiles the service once per test process.
var build = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "inventory-service-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "inventory-service")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/annals-db/annals/examples/inventory/cmd/inventory-service").CombinedOutput()
	if err != nil {
		return "", errors.New("go build: " + err.Error() + "\n" + string(out))
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := build(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

// service is the binary running in the background; its stderr holds the JSON log.
type service struct {
	cmd  *exec.Cmd
	log  *lines
	done chan struct{}
	err  error // from Wait, once done is closed
}

// lines collects a process's output lines as they come.
type lines struct {
	mu    sync.Mutex
	all   []string
	added chan struct{}
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		l.all = append(l.all, sc.Text())
	}
	select {
	case l.added <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *lines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all...)
}

func start(t *testing.T, env []string, args ...string) *service {
	t.Helper()
	bin, err := build()
	require.NoError(t, err)
	s := &service{cmd: exec.Command(bin, args...), log: &lines{added: make(chan struct{}, 1)}, done: make(chan struct{})}
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stderr = s.log
	s.cmd.Stdout = s.log
	require.NoError(t, s.cmd.Start())
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// entry waits for the first JSON log line whose msg is msg and returns it decoded.
func (s *service) entry(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for exited := false; ; {
		for _, line := range s.log.snapshot() {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == msg {
				return e
			}
		}
		if exited {
			require.FailNowf(t, "exited", "no %q log line before exiting (%v):\n%s", msg, s.err, strings.Join(s.log.snapshot(), "\n"))
		}
		select {
		case <-s.log.added:
		case <-s.done:
			exited = true // one last look: nothing more will come
		case <-deadline:
			require.FailNowf(t, "timeout", "no %q log line:\n%s", msg, strings.Join(s.log.snapshot(), "\n"))
		}
	}
}

// exit waits for the process to end and returns its exit code.
func (s *service) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		require.FailNowf(t, "timeout", "still running:\n%s", strings.Join(s.log.snapshot(), "\n"))
	}
	var exitErr *exec.ExitError
	if errors.As(s.err, &exitErr) {
		return exitErr.ExitCode()
	}
	require.NoError(t, s.err)
	return 0
}

func post(t *testing.T, client *http.Client, url, body string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// The server migrates a fresh database, serves, and on SIGTERM stops taking connections, lets
// the request in flight finish, logs it and exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	db := annalstest.NewDBURL(t)
	s := start(t, nil, "--addr", "127.0.0.1:0", "--database-url", db, "--migrate", "--shutdown-timeout", "30s")
	base := s.entry(t, "listening")["url"].(string)
	require.Regexp(t, `^http://127\.0\.0\.1:\d+$`, base)
	client := &http.Client{Timeout: 30 * time.Second}

	resp, body := post(t, client, base+"/items", `{"sku": "srv", "name": "Served", "count": 5}`)
	require.Equal(t, http.StatusCreated, resp.StatusCode, body)
	requestID := resp.Header.Get("X-Request-Id")

	// Hold the item's append lock, so the next adjustment is in flight when the signal comes.
	pool, err := pgxpool.New(t.Context(), db)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	tx, err := pool.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('inventory-srv', 0))")
	require.NoError(t, err)
	type result struct {
		status int
		body   string
		err    error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := client.Post(base+"/items/srv/adjustments", "application/json", strings.NewReader(`{"delta": -2, "reason": "sale"}`))
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inFlight <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for waiting := 0; waiting == 0; {
		require.NoError(t, pool.QueryRow(t.Context(),
			"SELECT count(*)::int FROM pg_catalog.pg_locks AS l WHERE l.locktype = 'advisory' AND NOT l.granted AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database())").
			Scan(&waiting))
		require.True(t, time.Now().Before(deadline), "the adjustment never waited for the lock")
		time.Sleep(10 * time.Millisecond)
	}

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	s.entry(t, "shutting down")
	// The listener is closed: a new connection is refused while the old request is still served.
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		resp, err := fresh.Get(base + "/healthz")
		if err != nil {
			break
		}
		resp.Body.Close()
		require.True(t, time.Now().Before(deadline), "still accepting connections after SIGTERM")
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-inFlight:
		require.FailNowf(t, "answered early", "the in-flight request was answered while the lock was held: %+v", r)
	default:
	}

	require.NoError(t, tx.Rollback(t.Context())) // release the lock: the request completes
	r := <-inFlight
	require.NoError(t, r.err)
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.JSONEq(t, `{"sku": "srv", "name": "Served", "count": 3, "version": 2}`, r.body)

	require.Equal(t, 0, s.exit(t), strings.Join(s.log.snapshot(), "\n"))

	// Every line is JSON; each request has one, with its id. A probe may be served between
	// the "shutting down" line and the listener closing; the probes are not counted.
	var requests []map[string]any
	for _, line := range s.log.snapshot() {
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &e), "not a JSON log line: %s", line)
		if e["msg"] == "request" && e["path"] != "/healthz" {
			requests = append(requests, e)
		}
	}
	require.Len(t, requests, 2, strings.Join(s.log.snapshot(), "\n"))
	require.Equal(t, "POST", requests[0]["method"])
	require.Equal(t, "/items", requests[0]["path"])
	require.Equal(t, 201.0, requests[0]["status"])
	require.Equal(t, requestID, requests[0]["request_id"])
	require.IsType(t, 0.0, requests[0]["duration_ms"])
	require.Equal(t, "/items/srv/adjustments", requests[1]["path"])
	require.Equal(t, 200.0, requests[1]["status"])
	s.entry(t, "stopped")
}

func TestStartupFailures(t *testing.T) {
	t.Parallel()

	t.Run("no database URL: exit 2", func(t *testing.T) {
		t.Parallel()
		s := start(t, []string{"DATABASE_URL="})
		require.Equal(t, 2, s.exit(t))
		require.Contains(t, strings.Join(s.log.snapshot(), "\n"), "set --database-url or DATABASE_URL")
	})

	t.Run("unknown flag: exit 2", func(t *testing.T) {
		t.Parallel()
		s := start(t, nil, "--port", "80")
		require.Equal(t, 2, s.exit(t))
	})

	t.Run("a database without the read models and no --migrate: exit 1, saying what to do", func(t *testing.T) {
		t.Parallel()
		s := start(t, []string{"DATABASE_URL=" + annalstest.NewDBURL(t)}, "--addr", "127.0.0.1:0")
		e := s.entry(t, "exiting")
		require.Equal(t, "ERROR", e["level"])
		require.Contains(t, e["error"], "read models are not installed")
		require.Contains(t, e["error"], "--migrate")
		require.Equal(t, 1, s.exit(t))
	})
}

// Package pgbouncertest starts a throwaway PgBouncer in front of the test server, so tests can
// run Annals through a real connection pooler: Debian's pgbouncer package, a generated
// configuration (auth_type trust, listening on a free port of 127.0.0.1, pointing at the server
// of the URL it is given), and a private directory that is removed, with the process stopped,
// when the test ends, also when it fails.
//
// PgBouncer refuses to run as root, so as root it runs as the postgres OS user (the user the
// Debian server runs as). Without pgbouncer installed the test is skipped, unless the CI
// environment variable is set: then it fails, so a CI run can never pass by skipping.
package pgbouncertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/annals-db/annals/internal/pgutil"
)

// Options configure a PgBouncer. The zero value is transaction pooling with 8 server
// connections per database and user.
type Options struct {
	// PoolMode is "transaction" (the default) or "session".
	PoolMode string
	// PoolSize is default_pool_size: the server connections per database and user (default 8).
	PoolSize int
}

// PgBouncer is a running PgBouncer.
type PgBouncer struct {
	// Host and Port are where it listens (127.0.0.1 and a free port).
	Host string
	Port uint16
	// Version is what `pgbouncer --version` says first, e.g. "PgBouncer 1.18.0".
	Version string

	mode string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// Binary returns the path of the pgbouncer executable, or "" when it is not installed.
func Binary() string {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

var versionOnce struct {
	sync.Once
	v string
}

// Start runs a PgBouncer in front of the server that serverURL names (its host, port, user and
// password) and stops it when the test ends.
func Start(t testing.TB, serverURL string, opts Options) *PgBouncer {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
		if os.Getenv("CI") != "" {
			t.Fatalf("pgbouncertest: %s, and CI is set: refusing to skip", msg)
		}
		t.Skipf("pgbouncertest: %s", msg)
	}
	server, err := pgx.ParseConfig(serverURL)
	if err != nil {
		t.Fatalf("pgbouncertest: server URL: %v", err)
	}
	if opts.PoolMode == "" {
		opts.PoolMode = "transaction"
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = 8
	}
	versionOnce.Do(func() {
		out, _ := exec.Command(bin, "--version").Output()
		versionOnce.v, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	})

	var lastErr error
	for range 3 { // a free port may be taken between finding it and PgBouncer binding it
		p, err := start(bin, server, opts)
		if err == nil {
			p.Version = versionOnce.v
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("pgbouncertest: %s log:\n%s", p.Version, lastLines(readFile(p.log), 40))
				}
				p.stop()
			})
			return p
		}
		lastErr = err
	}
	t.Fatalf("pgbouncertest: %v", lastErr)
	return nil
}

func start(bin string, server *pgx.ConnConfig, opts Options) (*PgBouncer, error) {
	port, err := pgutil.FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "annals-pgbouncer-")
	if err != nil {
		return nil, err
	}
	p := &PgBouncer{Host: "127.0.0.1", Port: uint16(port), mode: opts.PoolMode, dir: dir, done: make(chan struct{}),
		log: filepath.Join(dir, "pgbouncer.log")}
	fail := func(err error) (*PgBouncer, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}

	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fail(fmt.Errorf("pgbouncer refuses to run as root and there is no postgres OS user to run it as: %w", err))
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			return fail(err)
		}
	}

	// Trust between the tests and PgBouncer; PgBouncer logs in to the server as the client's user
	// with the password of the URL, if any.
	target := fmt.Sprintf("host=%s port=%d", server.Host, server.Port)
	if server.Password != "" {
		target += " password=" + pgutil.QuoteConninfo(server.Password)
	}
	ini := fmt.Sprintf(`[databases]
* = %s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = %s
pool_mode = %s
default_pool_size = %d
max_client_conn = 500
server_login_retry = 1
logfile = %s
`, target, port, filepath.Join(dir, "users.txt"), server.User, opts.PoolMode, opts.PoolSize, p.log)
	users := fmt.Sprintf("%q %q\n", server.User, "")
	for name, body := range map[string]string{"pgbouncer.ini": ini, "users.txt": users} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			return fail(err)
		}
		if cred != nil {
			if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
				return fail(err)
			}
		}
	}

	var out bytes.Buffer
	p.cmd = exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = &out, &out
	// Pdeathsig: a test binary killed by its timeout takes PgBouncer with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return fail(fmt.Errorf("start %s: %w", bin, err))
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()

	addr := net.JoinHostPort(p.Host, strconv.Itoa(int(port)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.done:
			return fail(fmt.Errorf("pgbouncer exited at start: %s%s", out.String(), lastLines(readFile(p.log), 10)))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("pgbouncer did not listen on %s within 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends PgBouncer (SIGTERM: immediate shutdown, then SIGKILL) and removes its directory.
func (p *PgBouncer) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	_ = os.RemoveAll(p.dir)
}

// URL returns serverURL with its host and port replaced by PgBouncer's: the same user, database
// and parameters, through the pooler. Parameters PgBouncer does not accept at startup (such as
// search_path in options) are the caller's to leave out.
func (p *PgBouncer) URL(t testing.TB, serverURL string) string {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme == "" {
		t.Fatalf("pgbouncertest: want a postgres:// URL, got %q", serverURL)
	}
	u.Host = net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	return u.String()
}

// Mode is the pool mode PgBouncer runs in.
func (p *PgBouncer) Mode() string { return p.mode }

// ServerConn is one server connection PgBouncer holds (a row of SHOW SERVERS).
type ServerConn struct {
	// Pid is the PostgreSQL backend's pid.
	Pid int
	// State is PgBouncer's: active, idle, used, tested, new, active_cancel, being_canceled.
	State string
}

// ServerConns lists the server connections PgBouncer holds for database (SHOW SERVERS on its
// admin console).
func (p *PgBouncer) ServerConns(ctx context.Context, adminUser, database string) ([]ServerConn, error) {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s@%s/pgbouncer?sslmode=disable&default_query_exec_mode=simple_protocol",
		url.PathEscape(adminUser), net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SHOW SERVERS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ServerConn
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		for i, fd := range rows.FieldDescriptions() {
			m[fd.Name] = vals[i]
		}
		if fmt.Sprint(m["database"]) != database {
			continue
		}
		pid, _ := strconv.Atoi(fmt.Sprint(m["remote_pid"]))
		out = append(out, ServerConn{Pid: pid, State: fmt.Sprint(m["state"])})
	}
	return out, rows.Err()
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

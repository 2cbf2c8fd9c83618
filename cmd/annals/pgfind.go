package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// noLocalEnv, when set to a non-empty value, makes the demo skip the local server and go straight
// to a throwaway cluster. It exists for tests of that path; it is deliberately not a flag.
const noLocalEnv = "ANNALS_DEMO_NO_LOCAL"

// pgServer is a PostgreSQL server the demo may create databases on.
type pgServer struct {
	// adminURL connects to a maintenance database as a role that may create databases and roles.
	adminURL string
	// origin says how it was found, for the output: "--database-url", "local server", ...
	origin string
	// cluster is set when the demo started the server itself.
	cluster *tempCluster
}

// localCandidates are the local servers the demo tries, in order, when no URL is given.
func localCandidates() []string {
	c := []string{
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"host=/var/run/postgresql user=postgres dbname=postgres",
	}
	if u, err := user.Current(); err == nil && u.Username != "postgres" && u.Username != "" {
		c = append(c, "host=/var/run/postgresql user="+u.Username+" dbname=postgres")
	}
	return c
}

// findPostgres returns a server for the demo: the explicit URL if there is one (no fallback: the
// caller asked for it), else a local server whose role may create databases and roles, else a
// throwaway cluster started from the installed server binaries. When nothing works the error says
// what was tried and how to fix it.
func findPostgres(ctx context.Context, explicit, explicitSource string) (*pgServer, error) {
	if explicit != "" {
		if err := probe(ctx, explicit, false); err != nil {
			return nil, fmt.Errorf("cannot use %s %s: %w (is the server running and the URL right?)",
				explicitSource, displayConn(explicit), err)
		}
		return &pgServer{adminURL: explicit, origin: explicitSource}, nil
	}
	var tried []string
	if os.Getenv(noLocalEnv) == "" {
		for _, c := range localCandidates() {
			err := probe(ctx, c, true)
			if err == nil {
				return &pgServer{adminURL: c, origin: "local server"}, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			tried = append(tried, fmt.Sprintf("%s: %v", displayConn(c), err))
		}
	} else {
		tried = append(tried, fmt.Sprintf("local servers: skipped (%s is set)", noLocalEnv))
	}

	cl, err := startTempCluster(ctx)
	if err == nil {
		return &pgServer{adminURL: cl.adminURL(), origin: "throwaway cluster", cluster: cl}, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	tried = append(tried, "throwaway cluster: "+err.Error())
	return nil, &notFoundError{tried: tried}
}

// notFoundError lists every attempt; its Error is one line, Attempts the details.
type notFoundError struct{ tried []string }

func (e *notFoundError) Error() string {
	return "no PostgreSQL to run the demo on; pass --database-url postgres://USER@HOST:PORT/postgres " +
		"(a role that may create databases and roles), start the local server (e.g. `service postgresql start`), " +
		"or install PostgreSQL 15 (`apt-get install postgresql-15`) so the demo can start a throwaway cluster"
}

// Attempts says what was tried, one line each.
func (e *notFoundError) Attempts() []string { return e.tried }

// probe connects and, when needCreate, checks that the role may create databases and roles.
func probe(ctx context.Context, connString string, needCreate bool) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return shortConnErr(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if !needCreate {
		return conn.Ping(ctx)
	}
	var super, createDB, createRole bool
	var name string
	err = conn.QueryRow(ctx, `SELECT rolname, rolsuper, rolcreatedb, rolcreaterole
		FROM pg_catalog.pg_roles WHERE rolname = current_user`).Scan(&name, &super, &createDB, &createRole)
	if err != nil {
		return err
	}
	if !super && !(createDB && createRole) {
		return fmt.Errorf("connected as %s, but that role may not create databases and roles", name)
	}
	return nil
}

// shortConnErr keeps the cause of a failed connection (refused, no socket, authentication
// failed) without pgx's long "failed to connect to ..." preamble.
func shortConnErr(err error) error {
	var netErr *net.OpError
	if errors.As(err, &netErr) {
		return netErr
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr
	}
	return err
}

// displayConn shows a connection string without its password.
func displayConn(c string) string {
	if u, err := url.Parse(c); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		u.RawQuery = ""
		return u.String()
	}
	return c
}

// withDatabase returns connString pointing at database name, keeping every other setting.
func withDatabase(connString, name string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return strings.TrimSpace(dbnameKeyword.ReplaceAllString(connString, "")) + " dbname=" + name, nil
}

var dbnameKeyword = regexp.MustCompile(`(^|\s)dbname=\S+`)

// tempCluster is a PostgreSQL cluster the demo initialized in a temporary directory.
type tempCluster struct {
	dir      string // the temporary directory; holds data/, the log and the socket
	binDir   string // where initdb, pg_ctl and postgres are
	port     int
	password string
	runAs    *user.User // the OS user running the server; nil means the current user
}

func (c *tempCluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *tempCluster) logFile() string { return filepath.Join(c.dir, "server.log") }

// adminURL connects over TCP with the generated password (the socket directory is private).
func (c *tempCluster) adminURL() string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", c.password, c.port)
}

// serverBinDirs lists directories holding initdb and pg_ctl: Debian's /usr/lib/postgresql/*/bin,
// newest version first, then PATH.
func serverBinDirs() []string {
	var dirs []string
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(matches, func(i, j int) bool {
		vi, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(matches[i])), 64)
		vj, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(matches[j])), 64)
		return vi > vj
	})
	dirs = append(dirs, matches...)
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	var out []string
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[d] {
			continue
		}
		seen[d] = true
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) {
			out = append(out, d)
		}
	}
	return out
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// startTempCluster runs initdb in a new temporary directory and starts the server on a free
// port. initdb refuses to run as root, so as root the server runs as the postgres OS user, which
// owns the directory. On failure nothing is left behind.
func startTempCluster(ctx context.Context) (_ *tempCluster, err error) {
	dirs := serverBinDirs()
	if len(dirs) == 0 {
		return nil, errors.New("no initdb and pg_ctl in /usr/lib/postgresql/*/bin or PATH (install postgresql-15)")
	}
	cl := &tempCluster{binDir: dirs[0], password: randomHex(12)}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root, and initdb refuses root, but there is no postgres OS user to run it as (run as a regular user or create one)")
		}
		cl.runAs = u
	}
	if cl.dir, err = os.MkdirTemp("", "annals-demo-"); err != nil {
		return nil, fmt.Errorf("create a temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			if stopErr := cl.stop(); stopErr != nil {
				err = fmt.Errorf("%w; cleanup also failed: %v", err, stopErr)
			}
		}
	}()
	if strings.ContainsAny(cl.dir, "'\" \\") {
		return nil, fmt.Errorf("temporary directory %q has quotes or spaces; set TMPDIR to a plain path", cl.dir)
	}
	if cl.runAs != nil {
		uid, gid, _ := cl.ids()
		if err := os.Chown(cl.dir, uid, gid); err != nil {
			return nil, fmt.Errorf("chown %s to postgres: %w", cl.dir, err)
		}
	}
	pwfile := filepath.Join(cl.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(cl.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if cl.runAs != nil {
		uid, gid, _ := cl.ids()
		if err := os.Chown(pwfile, uid, gid); err != nil {
			return nil, err
		}
	}
	// Local (socket) connections trust, but the socket lives in the private temporary directory;
	// TCP, open to every local user, needs the generated password.
	if out, err := cl.run(ctx, "initdb", "-D", cl.dataDir(), "-U", "postgres", "-E", "UTF8", "--no-locale",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pwfile, "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb (%s) failed: %v: %s", cl.binDir, err, lastLine(out))
	}
	_ = os.Remove(pwfile)

	// A port that is free now may be taken before the server binds it; try a few.
	for attempt := 0; ; attempt++ {
		if cl.port, err = freePort(); err != nil {
			return nil, err
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories='%s' -c fsync=off",
			cl.port, cl.dir)
		_, err = cl.run(ctx, "pg_ctl", "-D", cl.dataDir(), "-l", cl.logFile(), "-o", opts, "-w", "-t", "30", "start")
		if err == nil {
			return cl, nil
		}
		if attempt == 2 || ctx.Err() != nil {
			log, _ := os.ReadFile(cl.logFile())
			return nil, fmt.Errorf("pg_ctl start (%s) failed: %v: %s", cl.binDir, err, lastLine(log))
		}
	}
}

// stop shuts the server down (if it runs) and removes the directory.
func (c *tempCluster) stop() error {
	if c.dir == "" {
		return nil
	}
	var stopErr error
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "stop"); err != nil {
			if _, err2 := c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "stop"); err2 != nil {
				stopErr = fmt.Errorf("stop throwaway cluster in %s: %v: %s", c.dir, err, lastLine(out))
			}
		}
	}
	if stopErr != nil {
		return stopErr // leave the files: a server may still use them
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("remove throwaway cluster %s: %w", c.dir, err)
	}
	return nil
}

// stopCommand is the shell command that stops the cluster and removes its directory.
func (c *tempCluster) stopCommand() string {
	pgctl := filepath.Join(c.binDir, "pg_ctl") + " -D " + c.dataDir() + " -m fast stop"
	if c.runAs != nil {
		if _, err := exec.LookPath("runuser"); err == nil {
			pgctl = "runuser -u " + c.runAs.Username + " -- " + pgctl
		} else {
			pgctl = "setpriv --reuid=" + c.runAs.Username + " --regid=" + c.runAs.Gid + " --init-groups " + pgctl
		}
	}
	return pgctl + " && rm -rf " + c.dir
}

func (c *tempCluster) ids() (uid, gid int, err error) {
	if uid, err = strconv.Atoi(c.runAs.Uid); err != nil {
		return 0, 0, err
	}
	gid, err = strconv.Atoi(c.runAs.Gid)
	return uid, gid, err
}

// run runs a server binary, as the cluster's OS user, in its own process group (so a Ctrl-C in
// the terminal reaches only the demo, which then shuts the server down in order), with a clean
// PG* environment, from the cluster directory (root's home may be closed to the postgres user).
func (c *tempCluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.runAs != nil {
		uid, gid, err := c.ids()
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+c.dir)
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lastLine is the last non-empty line of a command's output, for one-line errors.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

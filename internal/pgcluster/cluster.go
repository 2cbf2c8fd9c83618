// Package pgcluster starts throwaway PostgreSQL clusters: initdb into a new temporary directory,
// a server on a free port of 127.0.0.1, and removal of everything when stopped. The demo uses one
// when no server is reachable; tests that need more than one server (standbys, shards, crashes)
// start their own and never touch the shared server.
//
// initdb refuses to run as root, so as root every server binary runs as the postgres OS user,
// which owns the directory.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/annals-db/annals/internal/pgutil"
)

// Options configure a cluster. The zero value is a primary with fsync off (throwaway data).
type Options struct {
	// Settings are extra server settings, passed as -c name=value at every start.
	Settings map[string]string
	// Prefix names the temporary directory (default "annals-pg-").
	Prefix string
}

// Cluster is a running (or crashed) throwaway server.
type Cluster struct {
	// Dir is the temporary directory: data/, the server log and the socket.
	Dir string
	// BinDir holds initdb, pg_ctl, postgres and pg_basebackup.
	BinDir string
	// Port is where the server listens on 127.0.0.1.
	Port int
	// Password is the postgres role's password for TCP connections.
	Password string

	settings map[string]string
	runAs    *user.User // nil: the current user
}

// DataDir is the cluster's data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.Dir, "data") }

// LogFile is the server log.
func (c *Cluster) LogFile() string { return filepath.Join(c.Dir, "server.log") }

// URL connects to database db as postgres over TCP with the generated password.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", c.Password, c.Port, db)
}

// BinDirs lists directories holding initdb and pg_ctl: Debian's /usr/lib/postgresql/*/bin,
// newest version first, then PATH.
func BinDirs() []string {
	var dirs []string
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(matches, func(i, j int) bool {
		vi, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(matches[i])), 64)
		vj, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(matches[j])), 64)
		return vi > vj
	})
	dirs = append(dirs, matches...)
	if p, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			p = resolved
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

// newCluster prepares an empty temporary directory owned by the server's OS user.
func newCluster(opts Options) (*Cluster, error) {
	dirs := BinDirs()
	if len(dirs) == 0 {
		return nil, errors.New("no initdb and pg_ctl in /usr/lib/postgresql/*/bin or PATH (install postgresql-15)")
	}
	c := &Cluster{BinDir: dirs[0], Password: pgutil.RandomHex(12), settings: opts.Settings}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root, and initdb refuses root, but there is no postgres OS user to run it as (run as a regular user or create one)")
		}
		c.runAs = u
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = "annals-pg-"
	}
	var err error
	if c.Dir, err = os.MkdirTemp("", prefix); err != nil {
		return nil, fmt.Errorf("create a temporary directory: %w", err)
	}
	if strings.ContainsAny(c.Dir, "'\" \\") {
		_ = os.RemoveAll(c.Dir)
		return nil, fmt.Errorf("temporary directory %q has quotes or spaces; set TMPDIR to a plain path", c.Dir)
	}
	if err := c.chown(c.Dir); err != nil {
		_ = os.RemoveAll(c.Dir)
		return nil, err
	}
	return c, nil
}

// Start runs initdb in a new temporary directory and starts the server on a free port. On
// failure nothing is left behind.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	c, err := newCluster(opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if stopErr := c.Stop(); stopErr != nil {
				err = fmt.Errorf("%w; cleanup also failed: %v", err, stopErr)
			}
		}
	}()
	pwfile := filepath.Join(c.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := c.chown(pwfile); err != nil {
		return nil, err
	}
	// Local (socket) connections trust, but the socket lives in the private temporary directory;
	// TCP, open to every local user, needs the generated password (replication included).
	if out, err := c.run(ctx, "initdb", "-D", c.DataDir(), "-U", "postgres", "-E", "UTF8", "--no-locale",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile="+pwfile, "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb (%s) failed: %v: %s", c.BinDir, err, lastLine(out))
	}
	_ = os.Remove(pwfile)
	if err := c.startOnFreePort(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// StartStandby makes a streaming hot standby of c: pg_basebackup -R into a new temporary
// directory, started on a free port. Stop it before its primary.
func (c *Cluster) StartStandby(ctx context.Context) (_ *Cluster, err error) {
	s, err := newCluster(Options{Settings: c.settings, Prefix: "annals-standby-"})
	if err != nil {
		return nil, err
	}
	s.Password = c.Password // the base backup copies the primary's roles
	defer func() {
		if err != nil {
			if stopErr := s.Stop(); stopErr != nil {
				err = fmt.Errorf("%w; cleanup also failed: %v", err, stopErr)
			}
		}
	}()
	out, err := s.runEnv(ctx, []string{"PGPASSWORD=" + c.Password}, "pg_basebackup",
		"-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", "postgres",
		"-D", s.DataDir(), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
	if err != nil {
		return nil, fmt.Errorf("pg_basebackup from port %d failed: %v: %s", c.Port, err, lastLine(out))
	}
	// primary_conninfo needs the password: -R writes it only when given through PGPASSWORD in
	// some versions, so set it explicitly.
	conninfo := fmt.Sprintf("primary_conninfo = 'host=127.0.0.1 port=%d user=postgres password=%s application_name=%s'\n",
		c.Port, c.Password, filepath.Base(s.Dir))
	f, err := os.OpenFile(filepath.Join(s.DataDir(), "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, werr := f.WriteString(conninfo)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, werr
	}
	if err := s.startOnFreePort(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Crash stops the server at once (pg_ctl -m immediate), as a power cut would, keeping the
// data directory so Restart can run crash recovery.
func (c *Cluster) Crash(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "-D", c.DataDir(), "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("immediate stop of cluster in %s: %v: %s", c.Dir, err, lastLine(out))
	}
	return nil
}

// Restart starts a stopped or crashed server again on the same port.
func (c *Cluster) Restart(ctx context.Context) error {
	return c.start(ctx)
}

// Stop shuts the server down (if it runs) and removes the directory.
func (c *Cluster) Stop() error {
	if c == nil || c.Dir == "" {
		return nil
	}
	var stopErr error
	if _, err := os.Stat(filepath.Join(c.DataDir(), "postmaster.pid")); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := c.run(ctx, "pg_ctl", "-D", c.DataDir(), "-m", "fast", "-w", "stop"); err != nil {
			if _, err2 := c.run(ctx, "pg_ctl", "-D", c.DataDir(), "-m", "immediate", "-w", "stop"); err2 != nil {
				stopErr = fmt.Errorf("stop throwaway cluster in %s: %v: %s", c.Dir, err, lastLine(out))
			}
		}
	}
	if stopErr != nil {
		return stopErr // leave the files: a server may still use them
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("remove throwaway cluster %s: %w", c.Dir, err)
	}
	c.Dir = ""
	return nil
}

// StopCommand is the shell command that stops the cluster and removes its directory.
func (c *Cluster) StopCommand() string {
	pgctl := filepath.Join(c.BinDir, "pg_ctl") + " -D " + c.DataDir() + " -m fast stop"
	if c.runAs != nil {
		if _, err := exec.LookPath("runuser"); err == nil {
			pgctl = "runuser -u " + c.runAs.Username + " -- " + pgctl
		} else {
			pgctl = "setpriv --reuid=" + c.runAs.Username + " --regid=" + c.runAs.Gid + " --init-groups " + pgctl
		}
	}
	return pgctl + " && rm -rf " + c.Dir
}

// startOnFreePort picks a free port and starts; a port free now may be taken before the server
// binds it, so it tries a few.
func (c *Cluster) startOnFreePort(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		var err error
		if c.Port, err = pgutil.FreePort(); err != nil {
			return err
		}
		err = c.start(ctx)
		if err == nil || attempt == 2 || ctx.Err() != nil {
			return err
		}
	}
}

func (c *Cluster) start(ctx context.Context) error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories='%s' -c fsync=off",
		c.Port, c.Dir)
	names := make([]string, 0, len(c.settings))
	for k := range c.settings {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		opts += fmt.Sprintf(" -c %s=%s", k, c.settings[k])
	}
	if _, err := c.run(ctx, "pg_ctl", "-D", c.DataDir(), "-l", c.LogFile(), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(c.LogFile())
		return fmt.Errorf("pg_ctl start (%s) failed: %v: %s", c.BinDir, err, lastLine(log))
	}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.runAs == nil {
		return nil
	}
	uid, gid, err := c.ids()
	if err != nil {
		return err
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, c.runAs.Username, err)
	}
	return nil
}

func (c *Cluster) ids() (uid, gid int, err error) {
	if uid, err = strconv.Atoi(c.runAs.Uid); err != nil {
		return 0, 0, err
	}
	gid, err = strconv.Atoi(c.runAs.Gid)
	return uid, gid, err
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return c.runEnv(ctx, nil, name, args...)
}

// runEnv runs a server binary as the cluster's OS user, in its own process group (so a Ctrl-C
// in the terminal reaches only the caller, which then shuts the server down in order), with a
// clean PG* environment plus env, from the cluster directory (root's home may be closed to the
// postgres user).
func (c *Cluster) runEnv(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, name), args...)
	cmd.Dir = c.Dir
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
	cmd.Env = append(cmd.Env, "HOME="+c.Dir)
	cmd.Env = append(cmd.Env, env...)
	return cmd.CombinedOutput()
}

// lastLine is the last non-empty line of a command's output, for one-line errors.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

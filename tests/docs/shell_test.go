package docs_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/stretchr/testify/require"
)

// TestDocsCommands runs every shell session the Markdown files show and compares the outputs
// (see the package comment).
func TestDocsCommands(t *testing.T) {
	t.Parallel()
	checked := map[string]bool{}
	for _, file := range markdownFiles(t) {
		var blocks []*block
		for _, b := range parseMarkdown(t, file) {
			if b.isShell() || len(b.directive("log")) > 0 {
				blocks = append(blocks, b)
			}
		}
		if len(blocks) == 0 {
			continue
		}
		checked[file] = true
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			s := &shellSession{t: t, m: newMatcher(t), env: map[string]string{}, dbs: map[string]string{}}
			s.env["DATABASE_URL"] = annalstest.AdminURL(t)
			var logs []*block
			for _, b := range blocks {
				if len(b.directive("log")) > 0 {
					logs = append(logs, b)
					continue
				}
				s.block(b)
			}
			s.finish(logs)
			t.Logf("%d blocks, %d commands compared", len(blocks), s.commands)
		})
	}
	for _, f := range []string{"README.md", "examples/inventory/README.md"} {
		require.True(t, checked[f], "no shell session found in %s: is the parser broken?", f)
	}
}

// shellSession is one file's shell: exported variables, the databases its DATABASE_URLs stand
// for, and the example service when a command needs it.
type shellSession struct {
	t   *testing.T
	m   *matcher
	env map[string]string
	dbs map[string]string // DATABASE_URL shown → the test's database
	svc *service

	commands int
}

// errorLineRE is an error line in shown output: the command is expected to fail.
var errorLineRE = regexp.MustCompile(`^(annals: |ERROR:|psql: |curl: )`)

// commands the docs may show, after rewriting "go run ./cmd/annals" to annals.
var knownCommands = map[string]bool{"annals": true, "psql": true, "curl": true}

// serviceAddrRE is the example service's documented address in a command.
var serviceAddrRE = regexp.MustCompile(`\b(localhost|127\.0\.0\.1):8080\b`)

func (s *shellSession) block(b *block) {
	t := s.t
	s.m.varies = b.variesPatterns(t)
	for _, d := range b.directive("setup") {
		for _, c := range commandLines(d.arg) {
			s.quiet(b.file, d.line, c)
		}
	}
	meanwhile := b.directive("meanwhile")
	lines := b.lines
	for i := 0; i < len(lines); {
		if !strings.HasPrefix(lines[i], "$ ") {
			i++
			continue
		}
		start := i
		cmd := strings.TrimPrefix(lines[i], "$ ")
		for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(cmd, "\\") + "\n" + lines[i]
		}
		var shown []string
		interrupted := false
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "$ "); i++ {
			l := strings.TrimSpace(lines[i])
			switch {
			case l == "^C":
				interrupted = true
			case l != "" && !isElision(l):
				shown = append(shown, lines[i])
			}
		}
		var during []string
		if interrupted {
			require.NotEmpty(t, meanwhile, "%s: a command stopped with ^C needs a <!-- docs-test: meanwhile ... --> before the block", b.where(start))
			during = commandLines(meanwhile[0].arg)
			meanwhile = meanwhile[1:]
		}
		s.command(b, start, cmd, shown, interrupted, during)
	}
}

// commandLines splits a directive's commands, one per line, "$ " optional, "#" a comment.
func commandLines(arg string) []string {
	var out []string
	for _, l := range strings.Split(arg, "\n") {
		l = strings.TrimPrefix(strings.TrimSpace(l), "$ ")
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

var exportRE = regexp.MustCompile(`^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$`)

// prepare turns a command as shown into the command line to run, or "" for an export.
func (s *shellSession) prepare(where, cmd string) string {
	t := s.t
	t.Helper()
	if m := exportRE.FindStringSubmatch(strings.TrimSpace(cmd)); m != nil {
		name, value := m[1], strings.Trim(m[2], `'"`)
		if name == "DATABASE_URL" {
			db, ok := s.dbs[value]
			if !ok {
				db = emptyDB(t)
				s.dbs[value] = db
			}
			value = db
		}
		s.env[name] = value
		return ""
	}
	cmd = strings.TrimSpace(cmd)
	if rest, ok := strings.CutPrefix(cmd, "go run ./cmd/annals"); ok {
		cmd = "annals" + rest
	}
	name := strings.Fields(cmd)[0]
	require.True(t, knownCommands[name], "%s: the docs test does not run %q: teach tests/docs, or mark the block <!-- docs-test: skip REASON -->", where, name)
	cmd = s.m.substitute(cmd)
	if name == "curl" && serviceAddrRE.MatchString(cmd) {
		cmd = serviceAddrRE.ReplaceAllString(cmd, s.service().addr)
	}
	return cmd
}

// proc is a running command; its output goes to one buffer, as a terminal shows it.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	code int
}

// start runs a prepared command line with bash in the repository root, in a process group of
// its own.
func (s *shellSession) start(line string) *proc {
	t := s.t
	t.Helper()
	cmd := exec.Command("bash", "-c", line)
	cmd.Dir = repoRoot
	cmd.Env = s.environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return startProc(t, cmd)
}

func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	go func() {
		err := cmd.Wait()
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			p.code = exitErr.ExitCode()
		case err != nil:
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			p.signal(syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal signals the process group (bash and what it started), or the process when it has
// none of its own.
func (p *proc) signal(sig syscall.Signal) {
	if p.cmd.SysProcAttr != nil && p.cmd.SysProcAttr.Setpgid {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
		return
	}
	_ = p.cmd.Process.Signal(sig)
}

// wait waits for the process, killing it after timeout; it returns the exit code.
func (p *proc) wait(timeout time.Duration) int {
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
	return p.code
}

func (s *shellSession) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DATABASE_URL=") || strings.HasPrefix(kv, "ANNALS_") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+binDir+string(filepath.ListSeparator)+os.Getenv("PATH"))
	for k, v := range s.env {
		env = append(env, k+"="+v)
	}
	return env
}

// quiet runs a command whose output is not shown; it must succeed.
func (s *shellSession) quiet(file string, line int, cmdline string) {
	t := s.t
	t.Helper()
	where := file + ":" + strconv.Itoa(line)
	prepared := s.prepare(where, cmdline)
	if prepared == "" {
		return
	}
	p := s.start(prepared)
	if code := p.wait(2 * time.Minute); code != 0 {
		t.Errorf("%s: $ %s\nexited %d:\n%s", where, cmdline, code, indent(p.out.String()))
	}
}

func (s *shellSession) command(b *block, n int, shownCmd string, shown []string, interrupted bool, during []string) {
	t := s.t
	t.Helper()
	where := b.where(n)
	prepared := s.prepare(where, shownCmd)
	if prepared == "" {
		return
	}
	p := s.start(prepared)
	code := 0
	if interrupted {
		// Wait for the first line, play the other terminal's part, then for the shown lines.
		waitUntil(30*time.Second, func() bool { return strings.Contains(p.out.String(), "\n") || p.exited() })
		for _, c := range during {
			s.quiet(b.file, b.line, c)
		}
		waitUntil(30*time.Second, func() bool {
			s.m.refresh(t)
			return s.m.clone().inOrder(shown, outputLines(p.out.String())) == -1 || p.exited()
		})
		p.signal(syscall.SIGINT)
		p.wait(10 * time.Second)
	} else {
		code = p.wait(2 * time.Minute)
	}
	s.m.refresh(t)
	s.commands++
	output := p.out.String()
	if i := s.m.inOrder(shown, outputLines(output)); i != -1 {
		t.Errorf("%s: $ %s\nthe output lacks this line, or has it out of order:\n    %s\nthe docs show:\n%s\nthe command printed:\n%s",
			where, shownCmd, shown[i], indent(strings.Join(shown, "\n")), indent(output))
		return
	}
	if interrupted || strings.HasSuffix(shownCmd, `; echo "exit $?"`) {
		return // the shown "exit N" line, compared above, is the exit code that counts
	}
	wantFail := false
	for _, l := range shown {
		if errorLineRE.MatchString(strings.TrimSpace(l)) {
			wantFail = true
		}
	}
	if wantFail != (code != 0) {
		t.Errorf("%s: $ %s\nexited %d; the docs show %s:\n%s", where, shownCmd, code,
			map[bool]string{true: "an error", false: "no error"}[wantFail], indent(output))
	}
}

// outputLines splits output into the lines a terminal ends up showing: a carriage return
// (a progress line redrawn) keeps what follows it.
func outputLines(s string) []string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		if j := strings.LastIndex(l, "\r"); j >= 0 {
			lines[i] = l[j+1:]
		}
	}
	return lines
}

func waitUntil(timeout time.Duration, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}

// finish stops the example service and checks the log excerpts against its log.
func (s *shellSession) finish(logs []*block) {
	t := s.t
	if len(logs) == 0 {
		if s.svc != nil {
			s.svc.stop(t)
		}
		return
	}
	svc := s.service()
	svc.stop(t)
	s.m.refresh(t)
	for _, b := range logs {
		require.Equal(t, "inventory-service", b.directive("log")[0].arg, "%s: only the inventory-service log is known", b.where(0))
		s.m.varies = b.variesPatterns(t)
		var shown []string
		for _, l := range b.lines {
			if strings.TrimSpace(l) != "" && !isElision(l) {
				shown = append(shown, l)
			}
		}
		if i := s.m.inOrder(shown, outputLines(svc.out.String())); i != -1 {
			t.Errorf("%s: the service's log lacks this line, or has it out of order:\n    %s\nthe log:\n%s",
				b.where(0), shown[i], indent(svc.out.String()))
		}
	}
}

// service is the inventory example service, run as its README says: --migrate, on a fresh
// empty database, at a free port.
type service struct {
	*proc
	addr string
}

var listeningRE = regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)

func (s *shellSession) service() *service {
	t := s.t
	if s.svc != nil {
		return s.svc
	}
	db := emptyDB(t)
	cmd := exec.Command(filepath.Join(binDir, "inventory-service"), "--migrate", "--addr", "127.0.0.1:0", "--database-url", db)
	cmd.Env = s.environ()
	p := startProc(t, cmd)
	waitUntil(time.Minute, func() bool { return listeningRE.MatchString(p.out.String()) || p.exited() })
	m := listeningRE.FindStringSubmatch(p.out.String())
	require.NotNil(t, m, "inventory-service did not start listening:\n%s", p.out.String())
	s.svc = &service{proc: p, addr: m[1]}
	s.m.replace = append(s.m.replace, [2]string{m[1], "127.0.0.1:8080"})
	return s.svc
}

func (svc *service) stop(t *testing.T) {
	t.Helper()
	if svc.exited() {
		return
	}
	svc.signal(syscall.SIGTERM)
	code := svc.wait(30 * time.Second)
	require.Equal(t, 0, code, "inventory-service exited %d on SIGTERM:\n%s", code, svc.out.String())
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

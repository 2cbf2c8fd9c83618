package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestREADME replays the session of examples/inventory/README.md ("Try it") against the service
// binary on a fresh database, in order, and checks every answer against the output the README
// shows for it: status line, headers (but Date, Content-Length and Cache-Control, which the README
// leaves out) and body, exactly, except request ids and times. Those must differ consistently: a
// README id or time stands for one actual value wherever it appears (so a correlation_id must be
// the X-Request-Id of the request that appended the event), and two README ids for two actual ones.
// The log lines the README shows under "Run it" must be among the service's, alike but for times,
// durations, ids and the listening address.
func TestREADME(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	session, logBlock := parseREADME(t, string(readme))
	require.GreaterOrEqual(t, len(session), 25, "the README's session was not found")
	require.NotEmpty(t, logBlock, "the README's log lines were not found")

	s := start(t, nil, "--addr", "127.0.0.1:0", "--database-url", emptyDB(t), "--migrate")
	base := s.entry(t, "listening")["url"].(string)
	client := &http.Client{Timeout: 30 * time.Second}
	u := newUnifier()
	for _, step := range session {
		req, err := step.request(t.Context(), base, u)
		require.NoError(t, err, "README line %d: %s", step.line, step.command)
		resp, err := client.Do(req)
		require.NoError(t, err, "README line %d: %s", step.line, step.command)
		got := render(t, resp, step.include)
		require.NoError(t, u.match(step.output, got), "README line %d: %s", step.line, step.command)
	}

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, s.exit(t), strings.Join(s.log.snapshot(), "\n"))
	require.NoError(t, checkLog(u, logBlock, s.log.snapshot()))
}

// emptyDB creates a database without Annals, as the README's session starts from (the roles are
// cluster-wide and may exist), dropped when the test ends, and returns its URL.
func emptyDB(t *testing.T) string {
	t.Helper()
	admin := annalstest.AdminURL(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "annals_t_readme_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(t.Context(), admin)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), "CREATE DATABASE "+name+" TEMPLATE template0")
	require.NoError(t, err)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	cfg := conn.Config()
	u := url.URL{Scheme: "postgres", User: url.User(cfg.User), Host: fmt.Sprintf("%s:%d", cfg.Host, cfg.Port), Path: "/" + name,
		RawQuery: "sslmode=disable"}
	if cfg.Password != "" {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	}
	if strings.HasPrefix(cfg.Host, "/") { // a unix socket directory
		u.Host = ""
		u.RawQuery += "&host=" + url.QueryEscape(cfg.Host) + "&port=" + fmt.Sprint(cfg.Port)
	}
	return u.String()
}

// step is one command of the README's session and the output shown under it.
type step struct {
	line    int // 1-based, in the README
	command string
	curl
	output string
}

// parseREADME returns the session: every "$ curl ..." line of a code block with the lines under
// it up to the next "$ " line (trailing blank lines dropped); and the lines of the code block of
// JSON log lines.
func parseREADME(t *testing.T, readme string) (session []step, logLines []string) {
	t.Helper()
	lines := strings.Split(readme, "\n")
	inBlock := false
	var cur *step
	flush := func() {
		if cur != nil {
			cur.output = strings.TrimRight(cur.output, "\n")
			session = append(session, *cur)
			cur = nil
		}
	}
	for i, line := range lines {
		switch {
		case strings.HasPrefix(line, "```"):
			flush()
			inBlock = !inBlock
		case !inBlock:
		case strings.HasPrefix(line, "$ "):
			flush()
			c, err := parseCurl(line[2:])
			require.NoError(t, err, "README line %d: %s", i+1, line)
			cur = &step{line: i + 1, command: line[2:], curl: c}
		case cur != nil:
			cur.output += line + "\n"
		case strings.HasPrefix(line, `{"time":`):
			logLines = append(logLines, line)
		}
	}
	require.False(t, inBlock, "an unclosed code block")
	return session, logLines
}

// curl is what the README's curl commands say: the flags -s, -i, -H, -d and -X and a URL on
// localhost:8080. Anything else is refused, so the README cannot show a command this test would
// replay differently.
type curl struct {
	include bool // -i: the output shows the status line and headers
	method  string
	target  string // the path and query
	header  http.Header
	body    *string
}

func parseCurl(command string) (curl, error) {
	words, err := shellWords(command)
	if err != nil {
		return curl{}, err
	}
	if len(words) == 0 || words[0] != "curl" {
		return curl{}, errors.New("not a curl command")
	}
	c := curl{header: http.Header{}}
	for i := 1; i < len(words); i++ {
		w := words[i]
		next := func() (string, error) {
			if i+1 == len(words) {
				return "", fmt.Errorf("%s without a value", w)
			}
			i++
			return words[i], nil
		}
		switch {
		case w == "-H":
			h, err := next()
			if err != nil {
				return curl{}, err
			}
			if name, ok := strings.CutSuffix(h, ";"); ok && !strings.Contains(name, ":") {
				c.header[http.CanonicalHeaderKey(name)] = []string{""} // curl: "Name;" sends it empty
				continue
			}
			name, value, ok := strings.Cut(h, ":")
			if !ok {
				return curl{}, fmt.Errorf("-H %q: no colon", h)
			}
			if value = strings.TrimLeft(value, " "); value == "" {
				c.header.Del(name) // curl: "Name:" removes it
			} else {
				c.header.Set(name, value)
			}
		case w == "-d":
			d, err := next()
			if err != nil {
				return curl{}, err
			}
			c.body = &d
		case w == "-X":
			m, err := next()
			if err != nil {
				return curl{}, err
			}
			c.method = m
		case strings.HasPrefix(w, "-") && strings.Trim(w[1:], "si") == "" && len(w) > 1:
			c.include = c.include || strings.Contains(w, "i")
		case strings.HasPrefix(w, "-"):
			return curl{}, fmt.Errorf("flag %s: this test does not know it", w)
		case c.target != "":
			return curl{}, fmt.Errorf("a second URL %q", w)
		default:
			target, ok := strings.CutPrefix(w, "localhost:8080")
			if !ok || !strings.HasPrefix(target, "/") {
				return curl{}, fmt.Errorf("URL %q: not on localhost:8080", w)
			}
			c.target = target
		}
	}
	if c.target == "" {
		return curl{}, errors.New("no URL")
	}
	if c.method == "" {
		c.method = "GET"
		if c.body != nil {
			c.method = "POST"
		}
	}
	if c.body != nil && c.header.Get("Content-Type") == "" {
		c.header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
	}
	return c, nil
}

// shellWords splits a command line as sh would, for the quoting the README uses.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unbalanced '")
			}
			w.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case '"', '\\', '$', '`', '*', '?', '&', ';', '|', '<', '>', '(', ')':
			return nil, fmt.Errorf("%q outside single quotes: this test does not parse it", c)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// request is the step's request against base, its README times replaced by the run's.
func (c curl) request(ctx context.Context, base string, u *unifier) (*http.Request, error) {
	target := variable.ReplaceAllStringFunc(c.target, u.translate)
	var body io.Reader
	if c.body != nil {
		body = strings.NewReader(*c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, base+target, body)
	if err != nil {
		return nil, err
	}
	for name, values := range c.header {
		req.Header[name] = values
	}
	return req, nil
}

// omitted are the headers the README leaves out. Consistency-Token is a transaction id, which
// depends on everything the server did before; the README describes it in words.
var omitted = []string{"Cache-Control", "Consistency-Token", "Content-Length", "Date"}

// render is what curl prints for resp (-s, or -si): the body, or the status line, the headers
// but the omitted ones, a blank line and the body. Go's server writes the headers a handler set in
// name order, so that is their order here too.
func render(t *testing.T, resp *http.Response, include bool) string {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	text := strings.TrimRight(string(body), "\n")
	if !include {
		return text
	}
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", resp.Proto, resp.Status)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for name := range resp.Header {
			if !slices.Contains(omitted, name) && !yield(name) {
				return
			}
		}
	}) {
		for _, v := range resp.Header[name] {
			fmt.Fprintf(&b, "%s: %s\n", name, v)
		}
	}
	return b.String() + "\n" + text
}

// variable matches what differs from run to run: request ids (UUIDs) and times (RFC 3339).
var variable = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})`)

// unifier binds the README's ids and times to the run's.
type unifier struct {
	actual map[string]string // README value → the run's
	readme map[string]string // the run's id → README id: two README ids are two requests
}

func newUnifier() *unifier {
	return &unifier{actual: map[string]string{}, readme: map[string]string{}}
}

func isTime(s string) bool { return strings.Contains(s, "T") }

// bind records that the README's value stands for actual, or says why it cannot.
func (u *unifier) bind(readme, actual string) error {
	if isTime(readme) != isTime(actual) {
		return fmt.Errorf("README %s is %s here", readme, actual)
	}
	if prev, ok := u.actual[readme]; ok && prev != actual {
		return fmt.Errorf("README %s stands for %s earlier, but for %s here", readme, prev, actual)
	}
	if prev, ok := u.readme[actual]; ok && prev != readme && !isTime(readme) {
		return fmt.Errorf("README %s and %s stand for the same id %s", prev, readme, actual)
	}
	u.actual[readme] = actual
	u.readme[actual] = readme
	return nil
}

// translate maps a README value in a command to the run's: its binding, or for a time seen
// nowhere before (as_of=<a time between two events>), the run's value of the latest README time
// at or before it, which selects the same events.
func (u *unifier) translate(readme string) string {
	if v, ok := u.actual[readme]; ok {
		return v
	}
	at, err := time.Parse(time.RFC3339Nano, readme)
	if err != nil {
		return readme
	}
	var best time.Time
	bestValue := readme
	for r, v := range u.actual {
		rt, err := time.Parse(time.RFC3339Nano, r)
		if err == nil && !rt.After(at) && rt.After(best) {
			best, bestValue = rt, v
		}
	}
	u.actual[readme] = bestValue
	return bestValue
}

// match checks that actual is expected but for its variables, and binds them.
func (u *unifier) match(expected, actual string) error {
	locs := variable.FindAllStringIndex(expected, -1)
	var pattern strings.Builder
	pattern.WriteString(`^`)
	last := 0
	for _, l := range locs {
		pattern.WriteString(regexp.QuoteMeta(expected[last:l[0]]))
		pattern.WriteString(`(` + variable.String() + `)`)
		last = l[1]
	}
	pattern.WriteString(regexp.QuoteMeta(expected[last:]) + `$`)
	m := regexp.MustCompile(pattern.String()).FindStringSubmatch(actual)
	if m == nil {
		return fmt.Errorf("the README shows\n%s\n\nbut the service answered\n%s", expected, actual)
	}
	for i, l := range locs {
		if err := u.bind(expected[l[0]:l[1]], m[i+1]); err != nil {
			return fmt.Errorf("%w\nthe README shows\n%s\n\nthe service answered\n%s", err, expected, actual)
		}
	}
	return nil
}

// checkLog finds each README log line among the service's, in order: the same keys, the same
// values but for times, durations, request ids (bound like the session's) and the address.
func checkLog(u *unifier, readme, actual []string) error {
	decode := func(line string) (map[string]any, error) {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader([]byte(line)))
		dec.UseNumber()
		return m, dec.Decode(&m)
	}
	varying := map[string]*regexp.Regexp{
		"time":        variable,
		"duration_ms": regexp.MustCompile(`^\d+(\.\d+)?$`),
		"request_id":  variable,
		"addr":        regexp.MustCompile(`^127\.0\.0\.1:\d+$`),
		"url":         regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`),
	}
	next := 0
	for _, line := range readme {
		want, err := decode(line)
		if err != nil {
			return fmt.Errorf("README log line %s: %w", line, err)
		}
		found := false
		for ; next < len(actual) && !found; next++ {
			got, err := decode(actual[next])
			if err != nil || len(got) != len(want) {
				continue
			}
			found = true
			for key, w := range want {
				g, ok := got[key]
				switch re := varying[key]; {
				case !ok:
					found = false
				case re != nil:
					found = found && re.MatchString(fmt.Sprint(g)) && re.MatchString(fmt.Sprint(w))
				default:
					found = found && fmt.Sprint(g) == fmt.Sprint(w)
				}
			}
			if found && want["request_id"] != nil {
				if err := u.bind(want["request_id"].(string), got["request_id"].(string)); err != nil {
					return fmt.Errorf("README log line %s: %w", line, err)
				}
			}
		}
		if !found {
			return fmt.Errorf("the README shows the log line\n%s\nbut the service logged nothing like it (after the lines before it):\n%s",
				line, strings.Join(actual, "\n"))
		}
	}
	return nil
}

package docs_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestDocsSQL replays every psql session the Markdown files show (see the package comment).
func TestDocsSQL(t *testing.T) {
	t.Parallel()
	checked := map[string]bool{}
	for _, file := range markdownFiles(t) {
		var blocks []*block
		for _, b := range parseMarkdown(t, file) {
			if b.isSQL() {
				blocks = append(blocks, b)
			}
		}
		if len(blocks) == 0 {
			continue
		}
		checked[file] = true
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			tour := &sqlTour{t: t, m: newMatcher(t)}
			defer tour.closeAll()
			for _, b := range blocks {
				tour.block(b)
			}
			t.Logf("%d psql blocks, %d statements compared", len(blocks), tour.statements)
		})
	}
	require.True(t, checked["README.md"], "no psql session found in README.md: is the parser broken?")
}

// sqlTour is one file's psql sessions: a database and its connections.
type sqlTour struct {
	t        *testing.T
	m        *matcher
	dbURL    string
	main     *sqlConn
	sessions map[string]*sqlConn // by session name, or "role:NAME" for a member login
	logins   map[string]string   // role → the login created for it
	last     *sqlConn            // the connection that ran the last statement

	statements int
}

type sqlConn struct {
	conn    *pgx.Conn
	notices []*pgconn.Notice
}

func (tr *sqlTour) connect(user string) *sqlConn {
	t := tr.t
	t.Helper()
	cfg, err := pgx.ParseConfig(withUser(t, tr.dbURL, "", user))
	require.NoError(t, err)
	c := &sqlConn{}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { c.notices = append(c.notices, n) }
	c.conn, err = pgx.ConnectConfig(t.Context(), cfg)
	require.NoError(t, err)
	return c
}

func (tr *sqlTour) newDatabase() {
	tr.closeAll()
	tr.dbURL = annalstest.NewDBURL(tr.t)
	tr.main = tr.connect("")
	tr.sessions = map[string]*sqlConn{}
}

func (tr *sqlTour) closeSessions() {
	for name, c := range tr.sessions {
		_ = c.conn.Close(context.Background())
		delete(tr.sessions, name)
	}
}

func (tr *sqlTour) closeAll() {
	tr.closeSessions()
	if tr.main != nil {
		_ = tr.main.conn.Close(context.Background())
		tr.main = nil
	}
}

// login returns a LOGIN role that is a member of role and no superuser, created once per
// tour and dropped at its end.
func (tr *sqlTour) login(role string) string {
	t := tr.t
	if l, ok := tr.logins[role]; ok {
		return l
	}
	name := "annals_docs_" + pgutil.RandomHex(4)
	_, err := tr.main.conn.Exec(t.Context(), fmt.Sprintf("CREATE ROLE %s LOGIN IN ROLE %s", name, pgx.Identifier{role}.Sanitize()))
	require.NoError(t, err, "create a login in role %s", role)
	admin := annalstest.AdminURL(t)
	t.Cleanup(func() {
		// The login owns nothing and holds no privilege of its own, so it drops while the
		// database (whose cleanup was registered earlier, so runs later) still exists.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop role %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP ROLE IF EXISTS "+name); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	if tr.logins == nil {
		tr.logins = map[string]string{}
	}
	tr.logins[role] = name
	return name
}

var (
	sessionRE   = regexp.MustCompile(`^-- session ([^:]+):(.*)$`)
	asRoleRE    = regexp.MustCompile(`--\s*as a member of ([a-z_][a-z0-9_]*)\b`)
	separatorRE = regexp.MustCompile(`^\s*-+(\+-+)*\s*$`)
	footerRE    = regexp.MustCompile(`^\((\d+) rows?\)$`)
	messageRE   = regexp.MustCompile(`^(ERROR|DETAIL|HINT|CONTEXT|NOTICE|WARNING):\s`)
)

// block runs one psql block.
func (tr *sqlTour) block(b *block) {
	t := tr.t
	if tr.main == nil || len(b.directive("new-database")) > 0 {
		tr.newDatabase()
	}
	tr.m.varies = b.variesPatterns(t)
	defer tr.closeSessions()
	for _, d := range b.directive("setup") {
		_, err := tr.main.conn.Exec(t.Context(), d.arg)
		require.NoError(t, err, "%s:%d: setup", b.file, d.line)
	}
	cur := tr.main
	lines := b.lines
	for i := 0; i < len(lines); {
		l := lines[i]
		switch {
		case sessionRE.MatchString(l):
			m := sessionRE.FindStringSubmatch(l)
			name := strings.TrimSpace(m[1])
			c, ok := tr.sessions[name]
			if !ok {
				c = tr.connect("")
				tr.sessions[name] = c
			}
			cur = c
			if sql := strings.TrimSpace(m[2]); sqlComplete(sql) {
				_, err := tr.run(cur, tr.m.substitute(sql))
				if err != nil {
					t.Errorf("%s: session %s: %s: %v", b.where(i), name, sql, err)
				}
			}
			i++
		case strings.HasPrefix(l, "=# "):
			start := i
			stmt := strings.TrimPrefix(l, "=# ")
			for i++; !sqlComplete(stmt) && i < len(lines) && !strings.HasPrefix(lines[i], "=# "); i++ {
				stmt += "\n" + lines[i]
			}
			var shown []string
			for ; i < len(lines) && !strings.HasPrefix(lines[i], "=# ") && !sessionRE.MatchString(lines[i]); i++ {
				if strings.TrimSpace(lines[i]) != "" && !strings.HasPrefix(lines[i], "-- ") {
					shown = append(shown, lines[i])
				}
			}
			if strings.HasPrefix(strings.TrimSpace(stmt), `\`) {
				t.Errorf("%s: psql meta-commands are not replayed: show SQL, or mark the block <!-- docs-test: skip REASON -->: %s", b.where(start), stmt)
				continue
			}
			if !sqlComplete(stmt) {
				if hasSQL(stmt) {
					t.Errorf("%s: statement without its ';': %s", b.where(start), stmt)
				}
				continue
			}
			conn := cur
			if m := asRoleRE.FindStringSubmatch(lastLine(stmt)); m != nil {
				key := "role:" + m[1]
				if _, ok := tr.sessions[key]; !ok {
					tr.sessions[key] = tr.connect(tr.login(m[1]))
				}
				conn = tr.sessions[key]
			}
			res, err := tr.run(conn, tr.m.substitute(stmt))
			tr.m.refresh(t)
			tr.statements++
			if problem := tr.compare(shown, res, err); problem != "" {
				t.Errorf("%s: %s\n=# %s\nthe docs show:\n%s\nthe server returned:\n%s", b.where(start), problem, stmt,
					indent(strings.Join(shown, "\n")), indent(render(res, err, conn.notices)))
			}
		default:
			i++ // narration
		}
	}
}

// result is what one statement returned: the result sets with columns, and the command tags.
type result struct {
	columns []pgconn.FieldDescription
	rows    [][]string
	tags    []string
}

func (tr *sqlTour) run(c *sqlConn, sql string) (*result, error) {
	ctx, cancel := context.WithTimeout(tr.t.Context(), time.Minute)
	defer cancel()
	c.notices = nil
	tr.last = c
	res := &result{}
	mrr := c.conn.PgConn().Exec(ctx, sql)
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		fields := rr.FieldDescriptions()
		if len(fields) > 0 && res.columns == nil {
			res.columns = fields
		}
		for rr.NextRow() {
			row := make([]string, len(rr.Values()))
			for j, v := range rr.Values() {
				row[j] = string(v) // NULL shows as empty, as in psql
			}
			res.rows = append(res.rows, row)
		}
		tag, err := rr.Close()
		if err != nil {
			_ = mrr.Close()
			return res, err
		}
		if len(fields) == 0 {
			res.tags = append(res.tags, tag.String())
		}
	}
	return res, mrr.Close()
}

// compare checks the shown output of a statement against what it returned; it returns what
// differs, or "".
func (tr *sqlTour) compare(shown []string, res *result, err error) string {
	m := tr.m
	var messages, table []string
	for _, l := range shown {
		if messageRE.MatchString(l) {
			messages = append(messages, l)
		} else {
			table = append(table, l)
		}
	}
	var pgErr *pgconn.PgError
	if err != nil && !errors.As(err, &pgErr) {
		return "the statement failed: " + err.Error()
	}
	// Messages: ERROR, DETAIL and HINT all shown exactly; CONTEXT, NOTICE, WARNING when shown.
	var want []string
	if pgErr != nil {
		want = append(want, "ERROR: "+pgErr.Message)
		if pgErr.Detail != "" {
			want = append(want, "DETAIL: "+pgErr.Detail)
		}
		if pgErr.Hint != "" {
			want = append(want, "HINT: "+pgErr.Hint)
		}
	}
	var optional []string
	if pgErr != nil && pgErr.Where != "" {
		optional = append(optional, "CONTEXT: "+pgErr.Where)
	}
	var shownRequired []string
	for _, l := range messages {
		switch strings.SplitN(l, ":", 2)[0] {
		case "ERROR", "DETAIL", "HINT":
			shownRequired = append(shownRequired, l)
		case "CONTEXT":
			if len(optional) == 0 || !m.match(l, optional[0]) {
				return "a CONTEXT line the server did not send"
			}
		}
	}
	if len(shownRequired) != len(want) {
		if pgErr == nil {
			return "an error shown, but the statement succeeded"
		}
		return "the error's ERROR, DETAIL and HINT lines differ"
	}
	for i := range want {
		if !m.match(shownRequired[i], want[i]) {
			return "the error's ERROR, DETAIL and HINT lines differ"
		}
	}
	var notices []string
	for _, l := range messages {
		if strings.HasPrefix(l, "NOTICE:") || strings.HasPrefix(l, "WARNING:") {
			notices = append(notices, l)
		}
	}
	if len(notices) > 0 {
		var got []string
		for _, n := range tr.currentNotices() {
			got = append(got, n.Severity+": "+n.Message)
		}
		if m.inOrder(notices, got) != -1 || len(notices) != len(got) {
			return "the NOTICE and WARNING lines differ"
		}
	}
	if pgErr != nil {
		if len(table) > 0 {
			return "rows shown for a statement that failed"
		}
		return ""
	}
	return m.compareTable(table, res)
}

// currentNotices are the notices of the connection that ran the last statement.
func (tr *sqlTour) currentNotices() []*pgconn.Notice {
	if tr.last == nil {
		return nil
	}
	return tr.last.notices
}

// compareTable checks shown rows (optional header, "..." for any rows, optional footer).
func (m *matcher) compareTable(table []string, res *result) string {
	if res.columns == nil {
		// A command: the tags, when shown.
		if len(table) == 0 {
			return ""
		}
		if len(table) != len(res.tags) {
			return "the command tags differ"
		}
		for i := range table {
			if !m.match(table[i], res.tags[i]) {
				return "the command tags differ"
			}
		}
		return ""
	}
	if len(table) >= 2 && separatorRE.MatchString(table[1]) {
		header := splitCells(table[0])
		if len(header) != len(res.columns) {
			return "the header's columns differ"
		}
		for i, c := range res.columns {
			if header[i] != c.Name {
				return fmt.Sprintf("column %d is %q, not %q", i+1, c.Name, header[i])
			}
		}
		table = table[2:]
	}
	if n := len(table); n > 0 {
		if f := footerRE.FindStringSubmatch(strings.TrimSpace(table[n-1])); f != nil {
			if want, _ := strconv.Atoi(f[1]); want != len(res.rows) {
				return fmt.Sprintf("%d rows, not %d", len(res.rows), want)
			}
			table = table[:n-1]
		}
	}
	if !m.rowsMatch(table, res.rows) {
		if len(table) == 0 {
			return fmt.Sprintf("no rows shown, but the statement returned %d", len(res.rows))
		}
		return "the rows differ"
	}
	return ""
}

// rowsMatch matches shown rows against returned ones, "..." standing for any number of rows.
func (m *matcher) rowsMatch(shown []string, rows [][]string) bool {
	if len(shown) == 0 {
		return len(rows) == 0
	}
	if isElision(shown[0]) {
		for k := 0; k <= len(rows); k++ {
			c := m.clone()
			if c.rowsMatch(shown[1:], rows[k:]) {
				*m = *c
				return true
			}
		}
		return false
	}
	if len(rows) == 0 || !m.rowMatch(shown[0], rows[0]) {
		return false
	}
	return m.rowsMatch(shown[1:], rows[1:])
}

func (m *matcher) rowMatch(shown string, row []string) bool {
	cells := splitCells(shown)
	if len(cells) != len(row) { // a value with a '|' in it: compare the whole line
		return m.match(shown, strings.Join(row, " | "))
	}
	c := m.clone()
	for i := range cells {
		if !c.match(cells[i], row[i]) {
			return false
		}
	}
	*m = *c
	return true
}

func splitCells(l string) []string {
	parts := strings.Split(l, "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// render shows a statement's result as psql would (aligned, header centered), for messages.
func render(res *result, err error, notices []*pgconn.Notice) string {
	var b strings.Builder
	for _, n := range notices {
		fmt.Fprintf(&b, "%s:  %s\n", n.Severity, n.Message)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		fmt.Fprintf(&b, "ERROR:  %s\n", pgErr.Message)
		if pgErr.Detail != "" {
			fmt.Fprintf(&b, "DETAIL:  %s\n", pgErr.Detail)
		}
		if pgErr.Hint != "" {
			fmt.Fprintf(&b, "HINT:  %s\n", pgErr.Hint)
		}
		return b.String()
	}
	if err != nil {
		return err.Error()
	}
	if res.columns == nil {
		return strings.Join(res.tags, "\n")
	}
	widths := make([]int, len(res.columns))
	for i, c := range res.columns {
		widths[i] = len([]rune(c.Name))
		for _, r := range res.rows {
			widths[i] = max(widths[i], len([]rune(r[i])))
		}
	}
	var head, sep []string
	for i, c := range res.columns {
		pad := widths[i] - len([]rune(c.Name))
		head = append(head, strings.Repeat(" ", pad/2)+c.Name+strings.Repeat(" ", pad-pad/2))
		sep = append(sep, strings.Repeat("-", widths[i]+2))
	}
	b.WriteString(strings.TrimRight(" "+strings.Join(head, " | "), " ") + "\n")
	b.WriteString(strings.Join(sep, "+") + "\n")
	for _, r := range res.rows {
		var cells []string
		for i, v := range r {
			pad := strings.Repeat(" ", widths[i]-len([]rune(v)))
			if numeric(res.columns[i].DataTypeOID) {
				cells = append(cells, pad+v)
			} else {
				cells = append(cells, v+pad)
			}
		}
		b.WriteString(strings.TrimRight(" "+strings.Join(cells, " | "), " ") + "\n")
	}
	return b.String()
}

// numeric types psql aligns right: int2, int4, int8, float4, float8, numeric, oid, xid, xid8.
func numeric(oid uint32) bool {
	switch oid {
	case 20, 21, 23, 26, 28, 700, 701, 1700, 5069:
		return true
	}
	return false
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (nothing)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func lastLine(s string) string {
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// sqlComplete reports whether s holds a statement ended by ';' outside quotes and comments,
// with nothing but comments and space after the last one.
func sqlComplete(s string) bool {
	end, rest := scanSQL(s)
	return end && strings.TrimSpace(rest) == ""
}

// hasSQL reports whether s holds anything but comments and space.
func hasSQL(s string) bool {
	return strings.TrimSpace(stripComments(s)) != ""
}

// scanSQL finds whether s has a ';' outside quotes and comments, and returns what follows the
// last one, without comments.
func scanSQL(s string) (bool, string) {
	found := false
	var rest strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(s) {
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			rest.WriteString(s[i:min(j+1, len(s))])
			i = j
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				i = len(s)
			} else {
				i += j + 3
			}
		case c == '$':
			m := dollarRE.FindString(s[i:])
			if m == "" {
				rest.WriteByte(c)
				continue
			}
			j := strings.Index(s[i+len(m):], m)
			if j < 0 {
				return false, s
			}
			rest.WriteString(s[i : i+len(m)+j+len(m)])
			i += len(m) + j + len(m) - 1
		case c == ';':
			found = true
			rest.Reset()
		default:
			rest.WriteByte(c)
		}
	}
	return found, rest.String()
}

var dollarRE = regexp.MustCompile(`^\$[A-Za-z_]*\$`)

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "--"); i >= 0 {
			l = l[:i]
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

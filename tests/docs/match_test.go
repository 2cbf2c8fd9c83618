package docs_test

import (
	"maps"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The kinds of values that differ between runs (see the package comment). Each alternative of
// tokenRE is one kind, tried in this order at each position.
const (
	pgVersionPat = `PostgreSQL (\d+)\.\d+(?: \([^)]*\))?`
	uuidPat      = `\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b`
	tsPat        = `\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?`
	jsonDurPat   = `("[A-Za-z_]*duration[A-Za-z_]*":)\d+(?:\.\d+)?`
	durPat       = `\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b|\b(?:\d+h)?(?:\d+m)?\d+(?:\.\d+)?(?:ns|µs|us|ms|s)\b`
	demoDBPat    = `\bannals_demo_[0-9a-f]+\b`
	numberPat    = `\b\d+\b`
)

var tokenRE = regexp.MustCompile(`(` + pgVersionPat + `)|(` + uuidPat + `)|(` + tsPat + `)|(` + jsonDurPat + `)|(` +
	durPat + `)|(` + demoDBPat + `)|(` + numberPat + `)`)

// Submatch indexes of tokenRE's kinds (each pair is start, end).
const (
	tokPG      = 2
	tokPGMajor = 4
	tokUUID    = 6
	tokTS      = 8
	tokJSONDur = 10
	tokJSONKey = 12
	tokDur     = 14
	tokDemoDB  = 16
	tokNumber  = 18
)

var (
	uuidRE   = regexp.MustCompile(uuidPat)
	tsRE     = regexp.MustCompile(tsPat)
	numberRE = regexp.MustCompile(numberPat)
	demoDBRE = regexp.MustCompile(demoDBPat)
)

// matcher compares shown lines with output lines for one file's session, and remembers which
// shown value stands for which value of the run.
type matcher struct {
	xidLo, xidHi uint64
	varies       []*regexp.Regexp // the current block's varies directives
	replace      [][2]string      // literal output → shown replacements (the service's address)
	bind, rev    map[string]string
	times        []timePair
}

type timePair struct {
	shown, actual     string
	shownT, actualT   time.Time
	shownOK, actualOK bool
}

func newMatcher(t *testing.T) *matcher {
	t.Helper()
	m := &matcher{bind: map[string]string{}, rev: map[string]string{}}
	m.refresh(t)
	return m
}

// refresh reads the range of transaction ids handed out so far; call it after running
// something, before comparing its output.
func (m *matcher) refresh(t *testing.T) {
	t.Helper()
	m.xidLo, m.xidHi = xidRange(t)
}

func (m *matcher) clone() *matcher {
	c := *m
	c.bind, c.rev = maps.Clone(m.bind), maps.Clone(m.rev)
	c.times = append([]timePair(nil), m.times...)
	return &c
}

func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// kinds of a variable in a pattern
const (
	kindFree  = iota // compared by form only
	kindBound        // transaction ids, UUIDs, demo databases: one run value per shown value
	kindTime         // timestamps: remembered for substituting in later input
)

type variable struct {
	kind   int
	name   string // binding namespace
	actual string
}

// pattern turns an output line into a regexp that a shown line must match: literal text,
// and for each value that varies between runs, a group matching any value of its form.
func (m *matcher) pattern(actual string) (*regexp.Regexp, []variable) {
	var b strings.Builder
	var vars []variable
	b.WriteString("^")
	last := 0
	for _, ix := range tokenRE.FindAllStringSubmatchIndex(actual, -1) {
		tok := actual[ix[0]:ix[1]]
		var group string
		var v variable
		switch {
		case ix[tokPG] >= 0:
			group = `PostgreSQL ` + actual[ix[tokPGMajor]:ix[tokPGMajor+1]] + `\.\d+(?: \([^)]*\))?`
		case ix[tokUUID] >= 0:
			group, v = uuidPat, variable{kind: kindBound, name: "uuid"}
		case ix[tokTS] >= 0:
			group, v = tsPat, variable{kind: kindTime}
		case ix[tokJSONDur] >= 0:
			group = regexp.QuoteMeta(actual[ix[tokJSONKey]:ix[tokJSONKey+1]]) + `\d+(?:\.\d+)?`
		case ix[tokDur] >= 0:
			group = durPat
		case ix[tokDemoDB] >= 0:
			group, v = demoDBPat, variable{kind: kindBound, name: "database"}
		default:
			n, err := strconv.ParseUint(tok, 10, 64)
			if err != nil || n < m.xidLo || n >= m.xidHi {
				continue // a plain number: literal
			}
			group, v = `\d+`, variable{kind: kindBound, name: "xid"}
		}
		b.WriteString(regexp.QuoteMeta(actual[last:ix[0]]))
		b.WriteString("(" + group + ")")
		v.actual = tok
		vars = append(vars, v)
		last = ix[1]
	}
	b.WriteString(regexp.QuoteMeta(actual[last:]))
	b.WriteString("$")
	return regexp.MustCompile(b.String()), vars
}

// match reports whether a shown line stands for an output line, and if so records the
// values it binds.
func (m *matcher) match(shown, actual string) bool {
	sh := collapse(shown)
	ac := actual
	for _, r := range m.replace {
		ac = strings.ReplaceAll(ac, r[0], r[1])
	}
	ac = collapse(ac)
	for _, re := range m.varies {
		if re.MatchString(sh) && re.MatchString(ac) {
			return true
		}
	}
	if sh == ac {
		return true
	}
	re, vars := m.pattern(ac)
	sub := re.FindStringSubmatch(sh)
	if sub == nil {
		return false
	}
	bind, rev := map[string]string{}, map[string]string{}
	var times []timePair
	for i, v := range vars {
		s := sub[i+1]
		switch v.kind {
		case kindBound:
			k, kr := v.name+"\x00"+s, v.name+"\x00"+v.actual
			for _, mp := range []map[string]string{m.bind, bind} {
				if a, ok := mp[k]; ok && a != v.actual {
					return false
				}
			}
			for _, mp := range []map[string]string{m.rev, rev} {
				if x, ok := mp[kr]; ok && x != s {
					return false
				}
			}
			bind[k], rev[kr] = v.actual, s
		case kindTime:
			times = append(times, newTimePair(s, v.actual))
		}
	}
	maps.Copy(m.bind, bind)
	maps.Copy(m.rev, rev)
	for _, tp := range times {
		if !m.knownTime(tp.shown) {
			m.times = append(m.times, tp)
		}
	}
	return true
}

func (m *matcher) knownTime(shown string) bool {
	for _, tp := range m.times {
		if tp.shown == shown {
			return true
		}
	}
	return false
}

// inOrder finds each shown line among the output lines, in order. It returns the index (in
// shown) of the first line it could not find, or -1.
func (m *matcher) inOrder(shown, output []string) int {
	j := 0
	for i, s := range shown {
		found := false
		for ; j < len(output); j++ {
			if m.match(s, output[j]) {
				found = true
				j++
				break
			}
		}
		if !found {
			return i
		}
	}
	return -1
}

// substitute replaces values in a command or statement that earlier outputs showed with the
// run's values (see the package comment).
func (m *matcher) substitute(in string) string {
	in = uuidRE.ReplaceAllStringFunc(in, func(s string) string { return m.lookup("uuid", s) })
	in = demoDBRE.ReplaceAllStringFunc(in, func(s string) string { return m.lookup("database", s) })
	in = tsRE.ReplaceAllStringFunc(in, m.substituteTime)
	// A transaction id outside a timestamp or UUID: those are replaced above, and a number
	// inside them is never a shown transaction id in practice.
	return numberRE.ReplaceAllStringFunc(in, func(s string) string { return m.lookup("xid", s) })
}

func (m *matcher) lookup(name, shown string) string {
	if a, ok := m.bind[name+"\x00"+shown]; ok {
		return a
	}
	return shown
}

func (m *matcher) substituteTime(s string) string {
	for _, tp := range m.times {
		if tp.shown == s {
			return tp.actual
		}
	}
	t, ok := parseTime(s)
	if !ok {
		return s
	}
	var best *timePair
	for i := range m.times {
		tp := &m.times[i]
		if tp.shownOK && tp.actualOK && !tp.shownT.After(t) && t.Sub(tp.shownT) < time.Hour &&
			(best == nil || tp.shownT.After(best.shownT)) {
			best = tp
		}
	}
	if best == nil {
		return s
	}
	return formatTimeLike(best.actualT.Add(time.Microsecond), s)
}

func newTimePair(shown, actual string) timePair {
	tp := timePair{shown: shown, actual: actual}
	tp.shownT, tp.shownOK = parseTime(shown)
	tp.actualT, tp.actualOK = parseTime(actual)
	return tp
}

var zoneShortRE = regexp.MustCompile(`[+-]\d{2}$`)

// parseTime reads the timestamp forms the docs show: 2026-11-26 19:37:57.252951+00,
// 2026-11-26T20:14:11.6Z, 2026-11-26 20:03:15.374Z. Dates alone are not instants.
func parseTime(s string) (time.Time, bool) {
	if len(s) <= len("2006-01-02") {
		return time.Time{}, false
	}
	s = strings.Replace(s, " ", "T", 1)
	if zoneShortRE.MatchString(s) {
		s += ":00"
	} else if n := len(s); n > 5 && (s[n-5] == '+' || s[n-5] == '-') && !strings.Contains(s[n-5:], ":") {
		s = s[:n-2] + ":" + s[n-2:]
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// formatTimeLike formats t (in UTC) the way like is written.
func formatTimeLike(t time.Time, like string) string {
	t = t.UTC()
	layout := "2006-01-02T15:04:05.999999"
	if strings.Contains(like, " ") {
		layout = "2006-01-02 15:04:05.999999"
	}
	switch {
	case strings.HasSuffix(like, "Z"):
		layout += "Z07:00"
	case zoneShortRE.MatchString(like):
		layout += "-07"
	case len(like) > 6 && like[len(like)-3] == ':' && (like[len(like)-6] == '+' || like[len(like)-6] == '-'):
		layout += "-07:00"
	}
	return t.Format(layout)
}

// TestMatcher pins the comparison rules the docs rely on.
func TestMatcher(t *testing.T) {
	m := &matcher{xidLo: 1000, xidHi: 2000, bind: map[string]string{}, rev: map[string]string{}}
	yes := func(shown, actual string) {
		t.Helper()
		if !m.match(shown, actual) {
			t.Errorf("want %q to stand for %q", shown, actual)
		}
	}
	no := func(shown, actual string) {
		t.Helper()
		if m.clone().match(shown, actual) {
			t.Errorf("want %q not to stand for %q", shown, actual)
		}
	}
	yes("installed in 348ms: 10 migrations", "installed in 2.81s:  10 migrations")
	no("installed in 348ms: 7 migrations", "installed in 2.81s: 10 migrations")
	yes("PostgreSQL  15.20, x", "PostgreSQL 15.3 (Debian 15.3-0+deb12u1), x")
	no("PostgreSQL 14.2, x", "PostgreSQL 15.3, x")
	yes("transaction 868641, event id 01a21974-8120-7b76-a53c-3e4f3839aded", "transaction 1500, event id 01a243b7-e9b1-71cc-8c17-ffb580d1e3ca")
	yes(`"transaction_id":"868641","event_id":"01a21974-8120-7b76-a53c-3e4f3839aded"`, `"transaction_id":"1500","event_id":"01a243b7-e9b1-71cc-8c17-ffb580d1e3ca"`)
	no("transaction 868641", "transaction 1501")       // 868641 is 1500 already
	no("transaction 868642", "transaction 1500")       // and 1500 is 868641
	no("global position 868641", "global position 42") // not a transaction id
	yes("at 2026-11-26 19:37:57.25+00 (2.1s ago)", "at 2026-12-05 01:00:56.126245+00 (1m0s ago)")
	yes("refreshed 00:00:00.041783", "refreshed 00:00:01.5")
	yes(`"duration_ms":0.364,"bytes":67`, `"duration_ms":12,"bytes":67`)
	no(`"duration_ms":0.364,"bytes":67`, `"duration_ms":12,"bytes":68`)
	yes("database annals_demo_31cad075 (scratch)", "database annals_demo_d34484be (scratch)")
	no("Dropped annals_demo_00000000.", "Dropped annals_demo_d34484be.")

	if got := m.substitute("--after 868641 --id 01a21974-8120-7b76-a53c-3e4f3839aded"); got != "--after 1500 --id 01a243b7-e9b1-71cc-8c17-ffb580d1e3ca" {
		t.Errorf("substitute: %s", got)
	}
	if got := m.substitute("as_of_time => '2026-11-26 19:37:57.25+00'"); got != "as_of_time => '2026-12-05 01:00:56.126245+00'" {
		t.Errorf("substitute an exact timestamp: %s", got)
	}
	if got := m.substitute("as_of=2026-11-26T19:37:57.6Z"); got != "as_of=2026-12-05T01:00:56.126246Z" {
		t.Errorf("substitute a later timestamp: %s", got)
	}
	if got := m.substitute("as_of=2026-11-27T19:37:57.6Z"); got != "as_of=2026-11-27T19:37:57.6Z" {
		t.Errorf("a timestamp a day later is left alone: %s", got)
	}

	m.varies = []*regexp.Regexp{regexp.MustCompile(`^→ [AB] sells [24]: version 4, won$`)}
	yes("→ B sells 4: version 4, won", "→ A sells 2: version 4, won")
	no("→ B sells 4: version 5, won", "→ A sells 2: version 4, won")

	shown := []string{"a 1", "c 3"}
	if i := m.inOrder(shown, []string{"a 1", "b 2", "c 3"}); i != -1 {
		t.Errorf("inOrder: %d", i)
	}
	if i := m.inOrder(shown, []string{"c 3", "a 1"}); i != 1 {
		t.Errorf("inOrder out of order: %d", i)
	}
}

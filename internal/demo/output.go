package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The demo's output: a heading per step, indented prose, SQL as one would type it, results with
// an arrow, and tables the way psql aligns them.

func (s *story) heading(title string) {
	s.step++
	fmt.Fprintf(s.out, "\n%s\n", rule(fmt.Sprintf("── %d. %s ", s.step, title)))
}

func rule(h string) string {
	return h + strings.Repeat("─", max(3, 80-utf8.RuneCountInString(h)))
}

func (s *story) say(lines ...string) {
	for _, l := range lines {
		fmt.Fprintln(s.out, "   "+l)
	}
}

func (s *story) sql(stmt string) {
	fmt.Fprintln(s.out)
	for _, l := range strings.Split(stmt, "\n") {
		fmt.Fprintln(s.out, "     "+l)
	}
}

func (s *story) result(format string, args ...any) {
	fmt.Fprintf(s.out, "   → "+format+"\n", args...)
}

// table starts an aligned table under a blank line; write tab-separated rows indented by three
// spaces, then Flush.
func (s *story) table(header ...string) *tabwriter.Writer {
	fmt.Fprintln(s.out)
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "   "+strings.Join(header, "\t"))
	return tw
}

// sqlRows is a query's result as psql prints it: column names and text values ("" for NULL).
type sqlRows struct {
	cols []string
	rows [][]string
}

// get returns the value of column name in row i.
func (r sqlRows) get(i int, name string) string {
	for c, n := range r.cols {
		if n == name {
			return r.rows[i][c]
		}
	}
	panic("demo: no column " + name) // a typo in the demo's own SQL
}

// queryer is a pool or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// query prints stmt, runs it exactly as printed (simple protocol, so every value comes back as
// the text psql would show), prints the rows as a table and returns them.
func (s *story) query(ctx context.Context, stmt string) (sqlRows, error) {
	return s.queryOn(ctx, s.pool, stmt)
}

func (s *story) queryOn(ctx context.Context, db queryer, stmt string) (sqlRows, error) {
	s.sql(stmt)
	res, err := fetchText(ctx, db, stmt)
	if err != nil {
		return res, err
	}
	tw := s.table(res.cols...)
	for _, r := range res.rows {
		fmt.Fprintln(tw, "   "+strings.Join(r, "\t"))
	}
	_ = tw.Flush() // output is best effort (the reader may be gone: `annals demo | head`)
	if len(res.rows) == 0 {
		s.say("(0 rows)")
	}
	return res, nil
}

// fetchText runs stmt and returns its rows as text, without printing anything.
func fetchText(ctx context.Context, db queryer, stmt string) (sqlRows, error) {
	rows, err := db.Query(ctx, stmt, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return sqlRows{}, fmt.Errorf("%s: %w", firstLine(stmt), err)
	}
	defer rows.Close()
	var res sqlRows
	for _, f := range rows.FieldDescriptions() {
		res.cols = append(res.cols, f.Name)
	}
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]string, len(raw))
		for i, v := range raw {
			row[i] = string(v)
		}
		res.rows = append(res.rows, row)
	}
	if err := rows.Err(); err != nil {
		return sqlRows{}, fmt.Errorf("%s: %w", firstLine(stmt), err)
	}
	return res, nil
}

func firstLine(stmt string) string {
	line, _, _ := strings.Cut(stmt, "\n")
	return strings.TrimSuffix(line, ";")
}

// appendSQL is the annals.append_events call equivalent to an Append from Go (ids are shown only
// when the caller fixed them, as Go generates them otherwise; schema_version only above 1).
func appendSQL(stream string, expected annals.ExpectedVersion, events ...annals.EventData) string {
	type wire struct {
		ID            string `json:"id,omitempty"`
		Type          string `json:"type"`
		SchemaVersion int    `json:"schema_version,omitempty"`
		Data          any    `json:"data"`
	}
	ws := make([]wire, len(events))
	for i, ev := range events {
		ws[i] = wire{Type: ev.Type, Data: ev.Data}
		if ev.ID != uuid.Nil {
			ws[i].ID = ev.ID.String()
		}
		if ev.SchemaVersion > 1 {
			ws[i].SchemaVersion = ev.SchemaVersion
		}
	}
	body, _ := json.Marshal(ws) // plain structs always encode
	exp := "NULL"
	if v, ok := expected.Version(); ok {
		exp = strconv.FormatInt(v, 10)
	} else if !expected.IsAny() {
		exp = "-1"
	}
	return fmt.Sprintf("SELECT * FROM annals.append_events(%s, %s,\n  %s);", pgutil.QuoteLiteral(stream), exp, pgutil.QuoteLiteral(string(body)))
}

// pgTime formats a timestamp the way psql shows a timestamptz (up to microseconds, trailing
// zeros dropped, numeric zone).
func pgTime(t time.Time) string {
	t = t.Local()
	if _, off := t.Zone(); off%3600 == 0 {
		return t.Format("2006-01-02 15:04:05.999999-07")
	}
	return t.Format("2006-01-02 15:04:05.999999-07:00")
}

// plural is "1 event" or "7 events" for a count as text.
func plural(n, noun string) string {
	if n == "1" {
		return n + " " + noun
	}
	return n + " " + noun + "s"
}

func signed(d int) string {
	if d < 0 {
		return "- " + strconv.Itoa(-d)
	}
	return "+ " + strconv.Itoa(d)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The inventory domain of the original guide: an item is added with a count, and the count is
// adjusted up (deliveries) and down (sales), never below zero.
const (
	typeItemAdded    = "ItemAdded"
	typeItemAdjusted = "ItemAdjusted"
)

type itemAdded struct {
	SKU   string `json:"sku"`
	Name  string `json:"name"`
	Count int    `json:"count"`
}

type itemAdjusted struct {
	Delta  int    `json:"delta"`
	Reason string `json:"reason"`
}

// item is an inventory item's state, rebuilt by folding its events; Version is the stream version
// it reflects, which is what the next append expects.
type item struct {
	SKU, Name string
	Count     int
	Version   int64
}

func (it *item) apply(ev annals.RecordedEvent) error {
	switch ev.EventType {
	case typeItemAdded:
		var d itemAdded
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return fmt.Errorf("event %d (%s): %w", ev.StreamVersion, ev.EventType, err)
		}
		it.SKU, it.Name, it.Count = d.SKU, d.Name, d.Count
	case typeItemAdjusted:
		var d itemAdjusted
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return fmt.Errorf("event %d (%s): %w", ev.StreamVersion, ev.EventType, err)
		}
		it.Count += d.Delta
	}
	it.Version = ev.StreamVersion
	return nil
}

func fold(events iter.Seq2[annals.RecordedEvent, error]) (item, error) {
	var it item
	for ev, err := range events {
		if err != nil {
			return item{}, err
		}
		if err := it.apply(ev); err != nil {
			return item{}, err
		}
	}
	return it, nil
}

// overdrawError is the business rule's verdict: the count may not go below zero.
type overdrawError struct{ remove, have int }

func (e overdrawError) Error() string {
	return fmt.Sprintf("cannot remove %d, only %d in stock", e.remove, e.have)
}

// adjust decides a change on the current state: the event to append, or why not.
func (it item) adjust(delta int, reason string) (annals.EventData, error) {
	if it.Count+delta < 0 {
		return annals.EventData{}, overdrawError{remove: -delta, have: it.Count}
	}
	return annals.EventData{Type: typeItemAdjusted, Data: itemAdjusted{Delta: delta, Reason: reason}}, nil
}

// story plays the demo's steps against one stream and prints them.
type story struct {
	out    io.Writer
	store  *annals.Client
	pool   *pgxpool.Pool
	stream string
	step   int
	stats  struct{ rejected, conflicts, replays int }
	final  item
}

func (s *story) play(ctx context.Context) error {
	for _, step := range []func(context.Context) error{
		s.addItem, s.adjustments, s.overdraw, s.race, s.retry, s.history, s.asOf, s.info,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (s *story) load(ctx context.Context) (item, error) {
	return fold(s.store.ReadStream(ctx, s.stream, annals.ReadOptions{}))
}

// adjustOnce is the whole command: load, decide, append expecting the version that was loaded.
func (s *story) adjustOnce(ctx context.Context, delta int, reason string) (item, annals.EventData, annals.AppendResult, error) {
	it, err := s.load(ctx)
	if err != nil {
		return item{}, annals.EventData{}, annals.AppendResult{}, err
	}
	ev, err := it.adjust(delta, reason)
	if err != nil {
		return it, ev, annals.AppendResult{}, err
	}
	res, err := s.store.Append(ctx, s.stream, annals.Exact(it.Version), ev)
	return it, ev, res, err
}

func (s *story) addItem(ctx context.Context) error {
	s.heading("Add an item")
	s.say("An item is a stream, inventory-<sku>. Its first event creates it, so the append expects",
		`version 0, "no stream yet" (NULL would accept any version, -1 only an existing stream).`)
	ev := annals.EventData{Type: typeItemAdded, Data: itemAdded{SKU: "42", Name: "Blue widget", Count: 10}}
	s.sql(appendSQL(s.stream, annals.NoStream, ev))
	res, err := s.store.Append(ctx, s.stream, annals.NoStream, ev)
	if err != nil {
		return fmt.Errorf("add the item: %w", err)
	}
	s.result("version %d, global position %d: Blue widget, 10 in stock", res.StreamVersion, res.GlobalPosition)
	return nil
}

func (s *story) adjustments(ctx context.Context) error {
	s.heading("Adjust the count up and down")
	s.say("Each change rebuilds the item from its events, checks it, and appends expecting the exact",
		"version it read, so nothing that happened in between can be overlooked.")
	for _, a := range []struct {
		delta  int
		reason string
	}{{5, "delivery"}, {-3, "sale"}} {
		before, ev, res, err := s.adjustOnce(ctx, a.delta, a.reason)
		if err != nil {
			return fmt.Errorf("adjust by %d: %w", a.delta, err)
		}
		s.sql(appendSQL(s.stream, annals.Exact(before.Version), ev))
		s.result("version %d: %d %s = %d in stock", res.StreamVersion, before.Count, signed(a.delta), before.Count+a.delta)
	}
	return nil
}

// foldSQL rebuilds the item in SQL; the demo runs it and checks it against the Go fold.
const foldSQL = `SELECT max(stream_version) AS version,
       sum(CASE event_type WHEN 'ItemAdded' THEN (data ->> 'count')::int
                           ELSE (data ->> 'delta')::int END) AS in_stock
  FROM annals.read_stream('inventory-42');`

func (s *story) overdraw(ctx context.Context) error {
	s.heading("An overdraw is rejected")
	s.say("Selling 20 would take the count below zero. That rule lives in the application: it",
		"rebuilds the item from its events (here the same fold in SQL) and refuses.")
	it, err := s.load(ctx)
	if err != nil {
		return err
	}
	var version, count int64
	if err := s.pool.QueryRow(ctx, foldSQL).Scan(&version, &count); err != nil {
		return fmt.Errorf("fold in SQL: %w", err)
	}
	if version != it.Version || count != int64(it.Count) {
		return fmt.Errorf("the SQL fold says %d in stock at version %d, the Go fold %d at %d", count, version, it.Count, it.Version)
	}
	s.sql(foldSQL)
	s.result("version %d, %d in stock", version, count)
	_, _, _, err = s.adjustOnce(ctx, -20, "sale")
	var od overdrawError
	if !errors.As(err, &od) {
		return fmt.Errorf("selling 20 of %d: want the overdraw rejected, got %v", it.Count, err)
	}
	s.stats.rejected++
	s.result("selling 20 REJECTED: %v; nothing appended", err)
	info, err := s.store.StreamInfo(ctx, s.stream)
	if err != nil {
		return err
	}
	if info.StreamVersion != it.Version {
		return fmt.Errorf("after the rejected overdraw the stream is at version %d, want %d", info.StreamVersion, it.Version)
	}
	s.sql("SELECT stream_version FROM annals.stream_info('inventory-42');")
	s.result("still version %d", info.StreamVersion)
	return nil
}

func (s *story) race(ctx context.Context) error {
	s.heading("Two writers race")
	loaded, err := s.load(ctx)
	if err != nil {
		return err
	}
	s.say(fmt.Sprintf("Writers A and B both load the item at version %d (%d in stock) and append at the same", loaded.Version, loaded.Count),
		fmt.Sprintf("moment, each expecting version %d. The database serializes them: exactly one wins.", loaded.Version))
	type writer struct {
		name  string
		delta int
		ev    annals.EventData
		res   annals.AppendResult
		err   error
	}
	ws := []*writer{{name: "A", delta: -2}, {name: "B", delta: -4}}
	for _, w := range ws {
		if w.ev, err = loaded.adjust(w.delta, "sale"); err != nil {
			return err
		}
		s.sql("-- writer " + w.name + "\n" + appendSQL(s.stream, annals.Exact(loaded.Version), w.ev))
	}
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			w.res, w.err = s.store.Append(ctx, s.stream, annals.Exact(loaded.Version), w.ev)
		}()
	}
	close(gate)
	wg.Wait()

	winner, loser := ws[0], ws[1]
	if winner.err != nil {
		winner, loser = loser, winner
	}
	if winner.err != nil {
		return fmt.Errorf("both racing appends failed: %w", errors.Join(winner.err, loser.err))
	}
	var wev *annals.WrongExpectedVersionError
	if !errors.As(loser.err, &wev) || !errors.Is(loser.err, annals.ErrWrongExpectedVersion) {
		return fmt.Errorf("racing appends: want one ErrWrongExpectedVersion, got %v", loser.err)
	}
	exp, _ := wev.Expected.Version()
	s.stats.conflicts++
	s.result("%s sells %d: version %d, won", winner.name, -winner.delta, winner.res.StreamVersion)
	s.result("%s sells %d: ST409 wrong expected version, expected %d, actual %d", loser.name, -loser.delta, exp, wev.Actual)
	var pgErr *pgconn.PgError
	if errors.As(loser.err, &pgErr) {
		s.say("     psql shows:  ERROR:  "+pgErr.Message,
			"                  DETAIL:  "+pgErr.Detail)
		if pgErr.Hint != "" {
			s.say("                  HINT:  " + pgErr.Hint)
		}
	}
	s.say("     Go sees:     errors.Is(err, annals.ErrWrongExpectedVersion) and a *WrongExpectedVersionError",
		fmt.Sprintf("                  with Expected %d and Actual %d", exp, wev.Actual))

	before, ev, res, err := s.adjustOnce(ctx, loser.delta, "sale")
	if err != nil {
		return fmt.Errorf("writer %s's retry: %w", loser.name, err)
	}
	s.sql(appendSQL(s.stream, annals.Exact(before.Version), ev))
	s.result("%s reloaded: version %d, %d in stock, still enough; retried expecting %d: version %d, %d in stock",
		loser.name, before.Version, before.Count, before.Version, res.StreamVersion, before.Count+loser.delta)
	return nil
}

func (s *story) retry(ctx context.Context) error {
	s.heading("A retry after a lost reply is safe")
	s.say("Event ids are fixed before the first try (the Go client does it for you). Resending the",
		"same ids at the same position returns the original result and writes nothing.")
	before, err := s.load(ctx)
	if err != nil {
		return err
	}
	ev, err := before.adjust(7, "restock")
	if err != nil {
		return err
	}
	ev.ID = uuid.New()
	expected := annals.Exact(before.Version)
	s.sql(appendSQL(s.stream, expected, ev))
	first, err := s.store.Append(ctx, s.stream, expected, ev)
	if err != nil {
		return fmt.Errorf("restock: %w", err)
	}
	s.result("%-24s version %d, global position %d", "sent:", first.StreamVersion, first.GlobalPosition)
	for _, again := range []struct {
		label    string
		expected annals.ExpectedVersion
	}{{"sent again:", expected}, {"sent again, expect any:", annals.Any}} {
		res, err := s.store.Append(ctx, s.stream, again.expected, ev)
		if err != nil {
			return fmt.Errorf("resend: %w", err)
		}
		if res.StreamVersion != first.StreamVersion || res.GlobalPosition != first.GlobalPosition || res.TransactionID != first.TransactionID {
			return fmt.Errorf("resend returned %+v, the first append %+v", res, first)
		}
		s.stats.replays++
		s.result("%-24s version %d, global position %d: replayed, nothing written", again.label, res.StreamVersion, res.GlobalPosition)
	}
	changed := ev
	changed.Data = itemAdjusted{Delta: 70, Reason: "restock"}
	_, err = s.store.Append(ctx, s.stream, expected, changed)
	var conflict *annals.EventIDConflictError
	if !errors.As(err, &conflict) {
		return fmt.Errorf("resend with other content: want ErrEventIDConflict, got %v", err)
	}
	s.result("%-24s ST412 event id conflict (errors.Is(err, annals.ErrEventIDConflict))", "same id, other data:")
	info, err := s.store.StreamInfo(ctx, s.stream)
	if err != nil {
		return err
	}
	if info.StreamVersion != first.StreamVersion {
		return fmt.Errorf("after the resends the stream is at version %d, want %d", info.StreamVersion, first.StreamVersion)
	}
	s.result("the stream still has %d events", info.StreamVersion)
	return nil
}

func (s *story) history(ctx context.Context) error {
	s.heading("History")
	s.say("Every change is a fact that stays: the history is the audit trail.")
	s.sql("SELECT stream_version, event_type, data, recorded_at\n  FROM annals.read_stream('inventory-42');")
	fmt.Fprintln(s.out)
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "   version\ttype\tdata\trecorded_at")
	var it item
	for ev, err := range s.store.ReadStream(ctx, s.stream, annals.ReadOptions{}) {
		if err != nil {
			return err
		}
		if err := it.apply(ev); err != nil {
			return err
		}
		fmt.Fprintf(tw, "   %d\t%s\t%s\t%s\n", ev.StreamVersion, ev.EventType, ev.Data, pgTime(ev.RecordedAt))
	}
	_ = tw.Flush() // output is best effort (the reader may be gone: `annals demo | head`)
	s.final = it
	s.result("folded: %s, %d in stock at version %d", it.Name, it.Count, it.Version)
	return nil
}

func (s *story) asOf(ctx context.Context) error {
	s.heading("Back in time")
	s.say("Nothing is overwritten, so any earlier state can be rebuilt: as of a version or a time.")
	s.sql("SELECT * FROM annals.read_stream_as_of('inventory-42', as_of_version => 3);")
	at3, err := fold(s.store.ReadStreamAsOf(ctx, s.stream, annals.AtVersion(3)))
	if err != nil {
		return err
	}
	if at3.Version != 3 {
		return fmt.Errorf("read as of version 3 ended at version %d", at3.Version)
	}
	s.result("as of version 3: %d in stock (now %d)", at3.Count, s.final.Count)

	var t2 time.Time
	for ev, err := range s.store.ReadStream(ctx, s.stream, annals.ReadOptions{From: 2, Limit: 1}) {
		if err != nil {
			return err
		}
		t2 = ev.RecordedAt
	}
	versionAtSQL := fmt.Sprintf("SELECT annals.stream_version_at('inventory-42', '%s');", pgTime(t2))
	var v int64
	if err := s.pool.QueryRow(ctx, versionAtSQL).Scan(&v); err != nil {
		return fmt.Errorf("stream_version_at: %w", err)
	}
	s.sql(versionAtSQL)
	s.result("version %d was current at %s (when event 2 was recorded)", v, pgTime(t2))
	s.sql(fmt.Sprintf("SELECT * FROM annals.read_stream_as_of('inventory-42', as_of_time => '%s');", pgTime(t2)))
	atT, err := fold(s.store.ReadStreamAsOf(ctx, s.stream, annals.AtTime(t2)))
	if err != nil {
		return err
	}
	if atT.Version != v {
		return fmt.Errorf("read as of %s ended at version %d, stream_version_at says %d", t2, atT.Version, v)
	}
	s.result("as of that time: %d in stock", atT.Count)
	return nil
}

func (s *story) info(ctx context.Context) error {
	s.heading("Stream info")
	s.sql("SELECT * FROM annals.stream_info('inventory-42');")
	info, err := s.store.StreamInfo(ctx, s.stream)
	if err != nil {
		return err
	}
	fmt.Fprintln(s.out)
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "   stream_id\tstream_version\tcreated_at\tupdated_at\tstate")
	fmt.Fprintf(tw, "   %s\t%d\t%s\t%s\t%s\n", info.StreamID, info.StreamVersion, pgTime(info.CreatedAt), pgTime(info.UpdatedAt), info.State)
	_ = tw.Flush()
	return nil
}

func (s *story) summary(took time.Duration) {
	fmt.Fprintf(s.out, "\n%s\n", rule("── Summary "))
	s.say(fmt.Sprintf("%s: %d events, %d in stock; every append checked its expected version", s.stream, s.final.Version, s.final.Count),
		fmt.Sprintf("%d overdraw rejected by the application before anything was written", s.stats.rejected),
		fmt.Sprintf("%d write-write conflict caught by the database (ST409), reloaded and retried", s.stats.conflicts),
		fmt.Sprintf("%d resends replayed without writing; a reused id with other data refused (ST412)", s.stats.replays),
		"history, state as of a version and as of a time, and stream_info read back",
		"finished in "+roundDur(took))
	fmt.Fprintln(s.out)
}

// Output helpers: a heading per step, indented prose, SQL as one would type it, results.

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

// appendSQL is the annals.append_events call equivalent to an Append from Go (ids are shown only
// when the caller fixed them; Go generates them otherwise).
func appendSQL(stream string, expected annals.ExpectedVersion, events ...annals.EventData) string {
	type wire struct {
		ID   string `json:"id,omitempty"`
		Type string `json:"type"`
		Data any    `json:"data"`
	}
	ws := make([]wire, len(events))
	for i, ev := range events {
		ws[i] = wire{Type: ev.Type, Data: ev.Data}
		if ev.ID != uuid.Nil {
			ws[i].ID = ev.ID.String()
		}
	}
	body, _ := json.Marshal(ws) // plain structs always encode
	exp := "NULL"
	if v, ok := expected.Version(); ok {
		exp = strconv.FormatInt(v, 10)
	} else if !expected.IsAny() {
		exp = "-1"
	}
	return fmt.Sprintf("SELECT * FROM annals.append_events(%s, %s,\n  %s);", sqlQuote(stream), exp, sqlQuote(string(body)))
}

func sqlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// pgTime formats a timestamp the way psql shows a timestamptz (microseconds, numeric zone).
func pgTime(t time.Time) string {
	t = t.Local()
	if _, off := t.Zone(); off%3600 == 0 {
		return t.Format("2006-01-02 15:04:05.000000-07")
	}
	return t.Format("2006-01-02 15:04:05.000000-07:00")
}

func signed(d int) string {
	if d < 0 {
		return "- " + strconv.Itoa(-d)
	}
	return "+ " + strconv.Itoa(d)
}

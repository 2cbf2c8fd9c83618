package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/annals-db/annals/internal/progress"
)

// story plays the demo's steps and prints them. The domain (events, rules, fold, service) is
// internal/inventory, the one examples/inventory serves over HTTP; the story only drives it and
// shows the SQL.
type story struct {
	out   io.Writer
	store *annals.Client
	pool  *pgxpool.Pool
	reg   *domain.Registry                                  // inventory.NewRegistry()
	rules domain.Decider[inventory.Item, inventory.Command] // inventory.Decider()
	svc   *inventory.Service
	// sku and stream are the item the first steps follow.
	sku, stream string
	step        int
	final       inventory.Item // inventory-42 as the history step folded it
	facts       []string       // the summary, one line per step that proved something
}

func newStory(out io.Writer, pool *pgxpool.Pool) *story {
	store := annals.New(pool, annals.ClientOptions{})
	return &story{
		out: out, store: store, pool: pool,
		reg: inventory.NewRegistry(), rules: inventory.Decider(),
		svc: inventory.NewService(store, domain.RepositoryOptions{SnapshotEvery: 100}),
		sku: "42", stream: inventory.StreamID("42"),
	}
}

func (s *story) play(ctx context.Context) error {
	for _, step := range []func(context.Context) error{
		s.addItem, s.adjustments, s.overdraw, s.race, s.retry, s.history, s.asOf, s.info,
		s.projection, s.view, s.snapshot, s.upcast, s.subscription, s.rebuild, s.cold, s.replica,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// fact records a line for the summary.
func (s *story) fact(format string, args ...any) {
	s.facts = append(s.facts, fmt.Sprintf(format, args...))
}

// decide runs an inventory command on a loaded item with the domain's rules and encodes the one
// event it decides, without appending it: the steps that show raw appends use it.
func (s *story) decide(item inventory.Item, cmd inventory.Command) (annals.EventData, error) {
	events, err := s.rules.Decide(item, cmd)
	if err != nil {
		return annals.EventData{}, err
	}
	if len(events) != 1 {
		return annals.EventData{}, fmt.Errorf("%T decided %d events, want 1", cmd, len(events))
	}
	return s.reg.Encode(events[0], domain.Metadata{})
}

// handle runs a command through the inventory service's repository (load, decide, append
// expecting the loaded version) and prints the equivalent SQL append.
func (s *story) handle(ctx context.Context, cmd inventory.Command) (domain.HandleResult[inventory.Item], error) {
	stream := inventory.StreamID(cmd.ItemSKU())
	res, err := s.svc.Repository().Handle(ctx, stream, cmd)
	if err != nil {
		return res, err
	}
	evs := make([]annals.EventData, len(res.Events))
	for i, ev := range res.Events {
		if evs[i], err = s.reg.Encode(ev, domain.Metadata{}); err != nil {
			return res, err
		}
	}
	s.sql(appendSQL(stream, annals.Exact(res.Version-int64(len(evs))), evs...))
	return res, nil
}

func (s *story) addItem(ctx context.Context) error {
	s.heading("Add an item")
	s.say("An item is a stream, inventory-<sku>. Its first event creates it, so the append expects",
		`version 0, "no stream yet" (NULL would accept any version, -1 only an existing stream).`,
		"Events, rules and fold come from the Go package internal/inventory (inventory.Service).")
	res, err := s.handle(ctx, inventory.AddItem{SKU: s.sku, Name: "Blue widget", Count: 10})
	if err != nil {
		return fmt.Errorf("add the item: %w", err)
	}
	s.result("version %d, global position %d: %s, %d in stock", res.Version, res.Appended.GlobalPosition, res.State.Name, res.State.Count)
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
		res, err := s.handle(ctx, inventory.AdjustCount{SKU: s.sku, Delta: a.delta, Reason: a.reason})
		if err != nil {
			return fmt.Errorf("adjust by %d: %w", a.delta, err)
		}
		s.result("version %d: %d %s = %d in stock", res.Version, res.State.Count-a.delta, signed(a.delta), res.State.Count)
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
	s.say("Selling 20 would take the count below zero. That rule lives in the domain: the service",
		"rebuilds the item from its events (here the same fold in SQL) and its Decider refuses.")
	it, err := s.svc.Item(ctx, s.sku)
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
	_, err = s.svc.AdjustCount(ctx, s.sku, -20, "sale")
	var short *inventory.InsufficientInventoryError
	if !errors.As(err, &short) || !errors.Is(err, inventory.ErrInsufficientInventory) {
		return fmt.Errorf("selling 20 of %d: want ErrInsufficientInventory, got %v", it.Count, err)
	}
	s.result("selling 20 REJECTED (ErrInsufficientInventory: %d requested, %d available); nothing appended",
		short.Requested, short.Available)
	info, err := s.store.StreamInfo(ctx, s.stream)
	if err != nil {
		return err
	}
	if info.StreamVersion != it.Version {
		return fmt.Errorf("after the rejected overdraw the stream is at version %d, want %d", info.StreamVersion, it.Version)
	}
	s.sql("SELECT stream_version FROM annals.stream_info('inventory-42');")
	s.result("still version %d", info.StreamVersion)
	s.fact("1 overdraw refused by the domain (ErrInsufficientInventory) before anything was written")
	return nil
}

func (s *story) race(ctx context.Context) error {
	s.heading("Two writers race")
	loaded, err := s.svc.Item(ctx, s.sku)
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
		if w.ev, err = s.decide(loaded, inventory.AdjustCount{SKU: s.sku, Delta: w.delta, Reason: "sale"}); err != nil {
			return err
		}
		s.sql("-- writer " + w.name + "\n" + appendSQL(s.stream, annals.Exact(loaded.Version), w.ev))
	}
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			<-gate
			w.res, w.err = s.store.Append(ctx, s.stream, annals.Exact(loaded.Version), w.ev)
		})
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

	fmt.Fprintln(s.out)
	s.say(loser.name+" runs the sale again through the service: its repository reloads, decides again, and",
		"appends expecting the new version (inventory.Service does this on every ST409, up to 3 tries).")
	res, err := s.handle(ctx, inventory.AdjustCount{SKU: s.sku, Delta: loser.delta, Reason: "sale"})
	if err != nil {
		return fmt.Errorf("writer %s's retry: %w", loser.name, err)
	}
	s.result("%s reloaded: version %d, %d in stock, still enough; retried expecting %d: version %d, %d in stock",
		loser.name, res.Version-1, res.State.Count-loser.delta, res.Version-1, res.Version, res.State.Count)
	s.fact("1 write-write conflict caught by the database (ST409), reloaded and retried")
	return nil
}

func (s *story) retry(ctx context.Context) error {
	s.heading("A retry after a lost reply is safe")
	s.say("Event ids are fixed before the first try (the Go client does it for you). Resending the",
		"same ids at the same position returns the original result and writes nothing.")
	before, err := s.svc.Item(ctx, s.sku)
	if err != nil {
		return err
	}
	ev, err := s.decide(before, inventory.AdjustCount{SKU: s.sku, Delta: 7, Reason: "restock"})
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
	replays := 0
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
		replays++
		s.result("%-24s version %d, global position %d: replayed, nothing written", again.label, res.StreamVersion, res.GlobalPosition)
	}
	changed, err := s.reg.Encode(inventory.ItemAdjusted{Delta: 70, Reason: "restock"}, domain.Metadata{})
	if err != nil {
		return err
	}
	changed.ID = ev.ID
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
	s.fact("%d resends replayed without writing; a reused id with other data refused (ST412)", replays)
	return nil
}

func (s *story) history(ctx context.Context) error {
	s.heading("History")
	s.say("Every change is a fact that stays: the history is the audit trail.")
	s.sql("SELECT stream_version, event_type, data, recorded_at\n  FROM annals.read_stream('inventory-42');")
	tw := s.table("version", "type", "data", "recorded_at")
	it := s.rules.Initial()
	for ev, err := range s.store.ReadStream(ctx, s.stream, annals.ReadOptions{}) {
		if err != nil {
			return err
		}
		typed, err := s.reg.Decode(ev)
		if err != nil {
			return err
		}
		it = s.rules.Evolve(it, typed)
		it.Version = ev.StreamVersion
		fmt.Fprintf(tw, "   %d\t%s\t%s\t%s\n", ev.StreamVersion, ev.EventType, ev.Data, pgTime(ev.RecordedAt))
	}
	_ = tw.Flush() // output is best effort (the reader may be gone: `annals demo | head`)
	loaded, err := s.svc.Item(ctx, s.sku)
	if err != nil {
		return err
	}
	if loaded != it {
		return fmt.Errorf("folding the history gives %+v, the service loads %+v", it, loaded)
	}
	s.final = it
	s.result("folded by inventory.Decider: %s, %d in stock at version %d", it.Name, it.Count, it.Version)
	return nil
}

func (s *story) asOf(ctx context.Context) error {
	s.heading("Back in time")
	s.say("Nothing is overwritten, so any earlier state can be rebuilt: as of a version or a time.")
	s.sql("SELECT * FROM annals.read_stream_as_of('inventory-42', as_of_version => 3);")
	at3, err := s.svc.ItemAt(ctx, s.sku, annals.AtVersion(3))
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
	atT, err := s.svc.ItemAt(ctx, s.sku, annals.AtTime(t2))
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
	info, err := s.store.StreamInfo(ctx, s.stream)
	if err != nil {
		return err
	}
	if _, err := s.query(ctx, "SELECT * FROM annals.stream_info('inventory-42');"); err != nil {
		return err
	}
	if info.StreamVersion != s.final.Version {
		return fmt.Errorf("stream_info says version %d, the history ended at %d", info.StreamVersion, s.final.Version)
	}
	s.fact("history, state as of a version and as of a time, and stream_info read back")
	return nil
}

func (s *story) summary(took time.Duration) {
	fmt.Fprintf(s.out, "\n%s\n", rule("── Summary "))
	s.say(fmt.Sprintf("%s: %d events, %d in stock; every append checked its expected version", s.stream, s.final.Version, s.final.Count))
	s.say(s.facts...)
	s.say("finished in " + progress.Duration(took))
	fmt.Fprintln(s.out)
}

package domain_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
)

// A shopping cart, decider style: events, state, commands and the three pure functions.

type CartItemAdded struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

type CartCheckedOut struct{}

type Cart struct {
	Lines      int  `json:"lines"`
	Units      int  `json:"units"`
	CheckedOut bool `json:"checked_out"`
}

type CartCommand struct {
	AddSKU   string
	Qty      int
	CheckOut bool
}

var ErrCartClosed = errors.New("cart is checked out")

func cartDecider() domain.Decider[Cart, CartCommand] {
	return domain.Decider[Cart, CartCommand]{
		Initial: func() Cart { return Cart{} },
		Decide: func(c Cart, cmd CartCommand) ([]any, error) {
			switch {
			case c.CheckedOut:
				return nil, ErrCartClosed
			case cmd.CheckOut:
				return []any{CartCheckedOut{}}, nil
			case cmd.Qty <= 0:
				return nil, errors.New("quantity must be positive")
			}
			return []any{CartItemAdded{SKU: cmd.AddSKU, Qty: cmd.Qty}}, nil
		},
		Evolve: func(c Cart, event any) Cart {
			switch e := event.(type) {
			case CartItemAdded:
				c.Lines++
				c.Units += e.Qty
			case CartCheckedOut:
				c.CheckedOut = true
			}
			return c
		},
	}
}

func cartRegistry() *domain.Registry {
	reg := domain.NewRegistry()
	domain.Register[CartItemAdded](reg, "CartItemAdded") // stable names, not Go type names
	domain.Register[CartCheckedOut](reg, "CartCheckedOut")
	return reg
}

func examplePool() *pgxpool.Pool {
	pool, err := pgxpool.New(context.Background(), os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	return pool
}

// A Registry turns typed events into EventData and stored events back into typed values.
func ExampleRegistry() {
	reg := domain.NewRegistry()
	domain.Register[CartItemAdded](reg, "CartItemAdded")

	ed, err := reg.Encode(CartItemAdded{SKU: "A-1", Qty: 2},
		domain.Metadata{CorrelationID: "req-7", Actor: "ann"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ed.Type, ed.SchemaVersion, string(ed.Data.(json.RawMessage)), string(ed.Metadata.(json.RawMessage)))

	stored := annals.RecordedEvent{EventType: "CartItemAdded", SchemaVersion: 1, Data: json.RawMessage(`{"sku":"B-2","qty":1}`)}
	ev, err := reg.Decode(stored)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%#v\n", ev)

	_, err = reg.Decode(annals.RecordedEvent{StreamID: "cart-1", StreamVersion: 4, EventType: "CartAbandoned", SchemaVersion: 1})
	fmt.Println(errors.Is(err, domain.ErrUnknownEventType), err)
	// Output:
	// CartItemAdded 1 {"sku":"A-1","qty":2} {"actor":"ann","correlation_id":"req-7"}
	// domain_test.CartItemAdded{SKU:"B-2", Qty:1}
	// true annals: cannot decode event cart-1@4 (CartAbandoned v1): annals: unknown event type
}

// A Go upcaster lifts old payloads of a type the Go service owns when they are decoded.
func ExampleRegistry_RegisterUpcaster() {
	type PriceSet struct {
		Cents int `json:"cents"`
	}
	reg := domain.NewRegistry()
	domain.RegisterVersion[PriceSet](reg, "PriceSet", 2)
	reg.RegisterUpcaster("PriceSet", 1, func(v1 json.RawMessage) (json.RawMessage, error) {
		var old struct {
			Euros float64 `json:"euros"`
		}
		if err := json.Unmarshal(v1, &old); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]int{"cents": int(old.Euros*100 + 0.5)})
	})

	ev, err := reg.Decode(annals.RecordedEvent{EventType: "PriceSet", SchemaVersion: 1, Data: json.RawMessage(`{"euros": 12.5}`)})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.(PriceSet).Cents)
	// Output:
	// 1250
}

// A Decider is three pure functions: testable without a database.
func ExampleDecider() {
	d := cartDecider()
	cart := d.Fold(d.Initial(), CartItemAdded{SKU: "A-1", Qty: 2}, CartCheckedOut{})
	fmt.Printf("%+v\n", cart)
	_, err := d.Decide(cart, CartCommand{AddSKU: "B-2", Qty: 1})
	fmt.Println(err)
	// Output:
	// {Lines:1 Units:2 CheckedOut:true}
	// cart is checked out
}

// Handle loads a stream, decides the command and appends the events expecting the version it
// loaded; Load rebuilds the state.
func ExampleRepository_Handle() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	carts := domain.NewRepository(annals.New(pool, annals.ClientOptions{}), cartRegistry(), cartDecider(), domain.RepositoryOptions{})

	_, _, err := carts.Load(ctx, "cart-ex-1")
	fmt.Println(errors.Is(err, annals.ErrStreamNotFound))

	for _, cmd := range []CartCommand{{AddSKU: "A-1", Qty: 2}, {AddSKU: "B-2", Qty: 1}, {CheckOut: true}} {
		res, err := carts.Handle(ctx, "cart-ex-1", cmd)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("version %d: %+v\n", res.Version, res.State)
	}
	_, err = carts.Handle(ctx, "cart-ex-1", CartCommand{AddSKU: "C-3", Qty: 1})
	fmt.Println(err)

	cart, version, err := carts.Load(ctx, "cart-ex-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("loaded at version %d: %+v\n", version, cart)
	// Output:
	// true
	// version 1: {Lines:1 Units:2 CheckedOut:false}
	// version 2: {Lines:2 Units:3 CheckedOut:false}
	// version 3: {Lines:2 Units:3 CheckedOut:true}
	// cart is checked out
	// loaded at version 3: {Lines:2 Units:3 CheckedOut:true}
}

// A hotel room, aggregate style: state changes in Apply, command methods Raise events.

type RoomOpened struct {
	Capacity int `json:"capacity"`
}

type RoomBooked struct {
	Guests int `json:"guests"`
}

var ErrRoomFull = errors.New("room is full")

type Room struct {
	domain.AggregateBase
	Capacity int `json:"capacity"`
	Booked   int `json:"booked"`
}

func (r *Room) Apply(event any) {
	switch e := event.(type) {
	case RoomOpened:
		r.Capacity = e.Capacity
	case RoomBooked:
		r.Booked += e.Guests
	}
}

func (r *Room) Book(guests int) error {
	if r.Booked+guests > r.Capacity {
		return fmt.Errorf("%w: %d of %d booked, %d more asked", ErrRoomFull, r.Booked, r.Capacity, guests)
	}
	domain.Raise(r, RoomBooked{Guests: guests})
	return nil
}

// Handle runs a command on an aggregate; when another writer got there first it loads the
// aggregate again and reruns the command on the fresh state, so no booking is lost or doubled.
func ExampleAggregateRepository_Handle() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	client := annals.New(pool, annals.ClientOptions{})
	reg := domain.NewRegistry()
	domain.Register[RoomOpened](reg, "RoomOpened")
	domain.Register[RoomBooked](reg, "RoomBooked")
	rooms := domain.NewAggregateRepository(client, reg, func() *Room { return &Room{} }, domain.RepositoryOptions{})

	room := rooms.New("room-ex-101")
	domain.Raise(room, RoomOpened{Capacity: 3})
	if err := rooms.Save(ctx, room); err != nil {
		log.Fatal(err)
	}
	fmt.Println("opened, version", room.Version(), "pending", len(room.Pending()))

	runs := 0
	room, err := rooms.Handle(ctx, "room-ex-101", func(r *Room) error {
		runs++
		if runs == 1 { // another clerk books 2 guests while we decide
			_, err := client.Append(ctx, "room-ex-101", annals.Any, annals.EventData{Type: "RoomBooked", Data: RoomBooked{Guests: 2}})
			if err != nil {
				return err
			}
		}
		return r.Book(1)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("runs %d, booked %d of %d, version %d\n", runs, room.Booked, room.Capacity, room.Version())

	_, err = rooms.Handle(ctx, "room-ex-101", func(r *Room) error { return r.Book(1) })
	fmt.Println(err)
	// Output:
	// opened, version 1 pending 0
	// runs 2, booked 3 of 3, version 3
	// room is full: 3 of 3 booked, 1 more asked
}

// A repository snapshots every SnapshotEvery events, after the commit; loads start from the
// latest snapshot and read only the events after it.
// A command decided on what a client saw at a version, as with an HTTP If-Match: it runs only
// while the stream is still at that version.
func ExampleRepository_HandleAt() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	carts := domain.NewRepository(annals.New(pool, annals.ClientOptions{}), cartRegistry(), cartDecider(), domain.RepositoryOptions{})

	res, err := carts.HandleAt(ctx, "cart-ex-9", 0, CartCommand{AddSKU: "A-1", Qty: 1}) // 0: a new cart
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("version %d: %+v\n", res.Version, res.State)

	// Another client still holds version 0.
	_, err = carts.HandleAt(ctx, "cart-ex-9", 0, CartCommand{AddSKU: "B-2", Qty: 5})
	if wrong, ok := errors.AsType[*annals.WrongExpectedVersionError](err); ok {
		fmt.Printf("refused: the cart is at version %d\n", wrong.Actual)
	}
	// Output:
	// version 1: {Lines:1 Units:1 CheckedOut:false}
	// refused: the cart is at version 1
}

func ExampleRepositoryOptions_snapshots() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	client := annals.New(pool, annals.ClientOptions{})
	carts := domain.NewRepository(client, cartRegistry(), cartDecider(),
		domain.RepositoryOptions{SnapshotType: "cart", SnapshotEvery: 3})

	for i := range 7 {
		if _, err := carts.Handle(ctx, "cart-ex-2", CartCommand{AddSKU: fmt.Sprint("SKU-", i), Qty: 1}); err != nil {
			log.Fatal(err)
		}
	}
	snap, ok, err := client.LoadSnapshot(ctx, "cart-ex-2", "cart", 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ok, snap.StreamVersion, string(snap.State))

	cart, version, err := carts.Load(ctx, "cart-ex-2") // snapshot at 6 + event 7
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("version %d: %+v\n", version, cart)
	// Output:
	// true 6 {"lines": 6, "units": 6, "checked_out": false}
	// version 7: {Lines:7 Units:7 CheckedOut:false}
}

// LoadAt rebuilds a stream's state as of a version or a point in time.
func ExampleRepository_LoadAt() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	carts := domain.NewRepository(annals.New(pool, annals.ClientOptions{}), cartRegistry(), cartDecider(), domain.RepositoryOptions{})

	var afterFirst time.Time
	for i, cmd := range []CartCommand{{AddSKU: "A-1", Qty: 1}, {AddSKU: "B-2", Qty: 5}, {CheckOut: true}} {
		if _, err := carts.Handle(ctx, "cart-ex-3", cmd); err != nil {
			log.Fatal(err)
		}
		if i == 0 {
			afterFirst = time.Now()
		}
	}

	cart, version, err := carts.LoadAt(ctx, "cart-ex-3", annals.AtVersion(2))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("as of version 2: %+v (version %d)\n", cart, version)

	cart, version, err = carts.LoadAt(ctx, "cart-ex-3", annals.AtTime(afterFirst))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("as of the first command's time: %+v (version %d)\n", cart, version)

	_, _, err = carts.LoadAt(ctx, "cart-ex-3", annals.AtTime(afterFirst.Add(-time.Hour)))
	fmt.Println(errors.Is(err, annals.ErrStreamNotFound))
	// Output:
	// as of version 2: {Lines:2 Units:6 CheckedOut:false} (version 2)
	// as of the first command's time: {Lines:1 Units:1 CheckedOut:false} (version 1)
	// true
}

// Schema evolution in the database: a SQL upcaster and an alias make old payloads read in the
// current shape, for SQL, Go and BI alike, while the stored bytes never change.
func Example_upcasting() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	client := annals.New(pool, annals.ClientOptions{})

	// Years ago the service stored TicketBought {"price": 12.5} (euros)...
	if _, err := client.Append(ctx, "ticket-ex-1", annals.NoStream,
		annals.EventData{Type: "TicketBought", SchemaVersion: 1, Data: map[string]any{"price": 12.5}}); err != nil {
		log.Fatal(err)
	}
	// ...then renamed it TicketSold and moved to {"price_cents": 1250}: an upcaster for v1 → v2
	// (an IMMUTABLE SQL function, executable by annals_owner) and an alias for the old name.
	if _, err := pool.Exec(ctx, `
		CREATE FUNCTION public.ticket_sold_v1_to_v2(data jsonb) RETURNS jsonb
		LANGUAGE sql IMMUTABLE SET search_path = pg_catalog
		AS $$ SELECT jsonb_build_object('price_cents', round((data ->> 'price')::numeric * 100)::int) $$;
		GRANT EXECUTE ON FUNCTION public.ticket_sold_v1_to_v2(jsonb) TO annals_owner;
		SELECT annals.register_upcaster('TicketSold', 1, 'public.ticket_sold_v1_to_v2(jsonb)');
		SELECT annals.register_event_alias('TicketBought', 'TicketSold');`); err != nil {
		log.Fatal(err)
	}

	type TicketSold struct {
		PriceCents int `json:"price_cents"`
	}
	reg := domain.NewRegistry()
	domain.RegisterVersion[TicketSold](reg, "TicketSold", 2)

	for _, raw := range []bool{false, true} {
		for ev, err := range client.ReadStream(ctx, "ticket-ex-1", annals.ReadOptions{Raw: raw}) {
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("raw=%v: %s v%d %s\n", raw, ev.EventType, ev.SchemaVersion, ev.Data)
			if !raw {
				typed, err := reg.Decode(ev)
				if err != nil {
					log.Fatal(err)
				}
				fmt.Printf("decoded: %+v\n", typed)
			}
		}
	}
	// Output:
	// raw=false: TicketSold v2 {"price_cents": 1250}
	// decoded: {PriceCents:1250}
	// raw=true: TicketBought v1 {"price": 12.5}
}

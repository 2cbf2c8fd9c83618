package annalstest

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/stretchr/testify/require"
)

// DeciderScenario is a given/when/then test of a domain.Decider, run without a database:
//
//	annalstest.Decider(t, inventory.Decider()).
//		Given(inventory.ItemAdded{SKU: "42", Name: "Widget", Count: 10}).
//		When(inventory.AdjustCount{Delta: -3, Reason: "sale"}).
//		Then(inventory.ItemAdjusted{Delta: -3, Reason: "sale"})
//
// Given folds past events into the state with Evolve, When sets the command, and Then or
// ThenError runs Decide and checks its outcome, failing the test at the first mismatch. Build a
// new scenario for each case.
type DeciderScenario[S, C any] struct {
	t       testing.TB
	d       domain.Decider[S, C]
	reg     *domain.Registry
	given   []any
	command C
	hasWhen bool
}

// Decider starts a scenario for d.
func Decider[S, C any](t testing.TB, d domain.Decider[S, C]) *DeciderScenario[S, C] {
	return &DeciderScenario[S, C]{t: t, d: d}
}

// WithRegistry makes the scenario pass every given and decided event through reg's Encode and
// Decode, as the database would: the test then fails on an unregistered event type or a field
// that does not survive JSON (an unexported field, say).
func (s *DeciderScenario[S, C]) WithRegistry(reg *domain.Registry) *DeciderScenario[S, C] {
	s.reg = reg
	return s
}

// Given sets the stream's history, oldest first (none: a new stream).
func (s *DeciderScenario[S, C]) Given(events ...any) *DeciderScenario[S, C] {
	s.given = append(s.given, events...)
	return s
}

// When sets the command to decide.
func (s *DeciderScenario[S, C]) When(command C) *DeciderScenario[S, C] {
	s.command, s.hasWhen = command, true
	return s
}

// Then checks that the command succeeds and decides exactly events, in order (none: decides
// nothing). It returns the state after the history and the new events, for further checks.
func (s *DeciderScenario[S, C]) Then(events ...any) S {
	s.t.Helper()
	state, decided, err := s.run()
	require.NoError(s.t, err, "annalstest: Decide failed; want events %#v", events)
	require.Equal(s.t, normalize(events), normalize(decided), "annalstest: decided events")
	return s.d.Fold(state, decided...)
}

// ThenError checks that Decide fails with an error matching want (errors.Is) and decides no
// events; it returns the error for errors.As checks.
func (s *DeciderScenario[S, C]) ThenError(want error) error {
	s.t.Helper()
	_, decided, err := s.run()
	require.ErrorIs(s.t, err, want, "annalstest: Decide's error")
	require.Empty(s.t, decided, "annalstest: Decide returned an error and events")
	return err
}

func (s *DeciderScenario[S, C]) run() (S, []any, error) {
	s.t.Helper()
	if !s.hasWhen {
		s.t.Fatal("annalstest: Then without When")
	}
	state := s.d.Initial()
	for _, ev := range s.given {
		state = s.d.Evolve(state, roundTrip(s.t, s.reg, ev))
	}
	decided, err := s.d.Decide(state, s.command)
	if err == nil {
		for i, ev := range decided {
			decided[i] = roundTrip(s.t, s.reg, ev)
		}
	}
	return state, decided, err
}

// AggregateScenario is a given/when/then test of a domain.Aggregate, run without a database:
//
//	annalstest.Aggregate(t, func() *Account { return &Account{} }).
//		Given(Opened{Owner: "ann"}, Deposited{Amount: 50}).
//		When(func(a *Account) error { return a.Withdraw(20) }).
//		Then(Withdrawn{Amount: 20})
//
// Given rebuilds the aggregate from past events (domain.Rehydrate), When sets the command, and
// Then or ThenError runs it and checks the events it raised (the aggregate's pending events).
type AggregateScenario[A domain.Aggregate] struct {
	t        testing.TB
	newAgg   func() A
	reg      *domain.Registry
	streamID string
	given    []any
	command  func(A) error
}

// Aggregate starts a scenario for the aggregate newAggregate returns (an empty one).
func Aggregate[A domain.Aggregate](t testing.TB, newAggregate func() A) *AggregateScenario[A] {
	return &AggregateScenario[A]{t: t, newAgg: newAggregate, streamID: "test-1"}
}

// WithRegistry is DeciderScenario.WithRegistry for aggregates.
func (s *AggregateScenario[A]) WithRegistry(reg *domain.Registry) *AggregateScenario[A] {
	s.reg = reg
	return s
}

// ForStream sets the aggregate's stream id (default "test-1"), for commands that read a.ID().
func (s *AggregateScenario[A]) ForStream(streamID string) *AggregateScenario[A] {
	s.streamID = streamID
	return s
}

// Given sets the stream's history, oldest first (none: a new aggregate).
func (s *AggregateScenario[A]) Given(events ...any) *AggregateScenario[A] {
	s.given = append(s.given, events...)
	return s
}

// When sets the command: a function calling the aggregate's command methods.
func (s *AggregateScenario[A]) When(command func(A) error) *AggregateScenario[A] {
	s.command = command
	return s
}

// Then checks that the command succeeds and raises exactly events, in order (none: raises
// nothing). It returns the aggregate, its raised events still pending, for further checks.
func (s *AggregateScenario[A]) Then(events ...any) A {
	s.t.Helper()
	a, err := s.run()
	require.NoError(s.t, err, "annalstest: the command failed; want events %#v", events)
	raised := a.Pending()
	for i, ev := range raised {
		raised[i] = roundTrip(s.t, s.reg, ev)
	}
	require.Equal(s.t, normalize(events), normalize(raised), "annalstest: raised events")
	return a
}

// ThenError checks that the command fails with an error matching want (errors.Is); it returns
// the error for errors.As checks. Events raised before the failure are not checked: a
// repository saves nothing when the command fails.
func (s *AggregateScenario[A]) ThenError(want error) error {
	s.t.Helper()
	_, err := s.run()
	require.ErrorIs(s.t, err, want, "annalstest: the command's error")
	return err
}

func (s *AggregateScenario[A]) run() (A, error) {
	s.t.Helper()
	if s.command == nil {
		s.t.Fatal("annalstest: Then without When")
	}
	history := make([]any, len(s.given))
	for i, ev := range s.given {
		history[i] = roundTrip(s.t, s.reg, ev)
	}
	a := s.newAgg()
	domain.Rehydrate(a, s.streamID, history...)
	return a, s.command(a)
}

// roundTrip passes ev through reg's Encode and Decode (when reg is set) and checks nothing is
// lost on the way.
func roundTrip(t testing.TB, reg *domain.Registry, ev any) any {
	t.Helper()
	if reg == nil {
		return ev
	}
	data, err := reg.Encode(ev, domain.Metadata{})
	require.NoError(t, err, "annalstest: encode %T", ev)
	back, err := reg.Decode(annals.RecordedEvent{EventType: data.Type, SchemaVersion: data.SchemaVersion,
		Data: data.Data.(json.RawMessage)})
	if errors.Is(err, domain.ErrUnknownEventType) {
		t.Fatalf("annalstest: %T is not registered: %v", ev, err)
	}
	require.NoError(t, err, "annalstest: decode %T", ev)
	require.Equal(t, deref(ev), back, "annalstest: %T does not survive a JSON round trip (unexported fields?)", ev)
	return back
}

// normalize makes nil and empty event lists compare equal.
func normalize(events []any) []any {
	if len(events) == 0 {
		return []any{}
	}
	return events
}

// deref returns the value a pointer event points to (Encode accepts a *T, Decode returns a T).
func deref(ev any) any {
	if v := reflect.ValueOf(ev); v.Kind() == reflect.Pointer && !v.IsNil() {
		return v.Elem().Interface()
	}
	return ev
}

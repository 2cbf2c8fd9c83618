package domain

// Decider is the functional style of aggregate: the state of a stream is a fold of its events,
// and a command is decided on that state into new events. Its three functions must be pure (no
// I/O, no clock, no randomness: put those in the command), so a Repository may run Decide again
// after a conflict and a test can run it without a database (annalstest.Decider).
//
// Events are the typed values a Registry knows (a T, not a *T, after decoding). S must survive a
// round trip through encoding/json when snapshots are on (exported fields or a json.Marshaler).
type Decider[S, C any] struct {
	// Initial returns the state of a stream that has no events.
	Initial func() S
	// Decide returns the events command causes in state, in order, or a business error. No events
	// and no error means there is nothing to do: nothing is appended.
	Decide func(state S, command C) ([]any, error)
	// Evolve returns the state after one event. It must not fail: validation belongs in Decide,
	// and history is a fact.
	Evolve func(state S, event any) S
}

// Fold returns the state after applying events to state, in order.
func (d Decider[S, C]) Fold(state S, events ...any) S {
	for _, ev := range events {
		state = d.Evolve(state, ev)
	}
	return state
}

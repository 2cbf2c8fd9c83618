package domain

import (
	"github.com/google/uuid"
)

// Aggregate is the object style of aggregate: a struct that embeds AggregateBase, changes its
// state only in Apply, and records what happened with Raise from its command methods:
//
//	type Account struct {
//		domain.AggregateBase
//		Balance int `json:"balance"`
//	}
//
//	func (a *Account) Apply(event any) {
//		switch e := event.(type) {
//		case Deposited:
//			a.Balance += e.Amount
//		}
//	}
//
//	func (a *Account) Deposit(amount int) error {
//		if amount <= 0 {
//			return ErrInvalidAmount
//		}
//		domain.Raise(a, Deposited{Amount: amount})
//		return nil
//	}
//
// An AggregateRepository loads, saves and handles commands for such types. The pending events
// belong to the framework: it clears them only once they are committed and keeps them when an
// append fails, so they are never lost and never saved twice.
type Aggregate interface {
	// Apply changes the state by one event (a registered typed value). It must not fail.
	Apply(event any)
	// ID, Version and Pending come from the embedded AggregateBase.
	ID() string
	Version() int64
	Pending() []any
	aggregateBase() *AggregateBase
}

// AggregateBase holds what the framework tracks for an Aggregate: its stream id, the stream
// version its committed state reflects, and the events raised since. Embed it by value; the zero
// value is a new aggregate at version 0 with no id (the repository sets it).
type AggregateBase struct {
	id              string
	version         int64
	pending         []pendingEvent
	snapshotVersion int64 // the version of the last snapshot loaded or saved, for the policy
}

type pendingEvent struct {
	id    uuid.UUID // fixed at the first save attempt and kept, so a resend is a replay
	event any
}

//lint:ignore U1000 called through the aggregate interface, which embedding AggregateBase satisfies
func (b *AggregateBase) aggregateBase() *AggregateBase { return b }

// ID returns the aggregate's stream id ("" until a repository created or loaded it).
func (b *AggregateBase) ID() string { return b.id }

// Version returns the stream version of the aggregate's committed state: 0 for a new
// aggregate, and the expected version of the next save. Pending events do not count.
func (b *AggregateBase) Version() int64 { return b.version }

// Pending returns a copy of the events raised and not yet committed, oldest first.
func (b *AggregateBase) Pending() []any {
	out := make([]any, len(b.pending))
	for i, p := range b.pending {
		out[i] = p.event
	}
	return out
}

// Raise records event as pending on a and applies it (a.Apply), so later decisions in the same
// command see it. Call it from a's command methods once every rule has passed.
func Raise(a Aggregate, event any) {
	a.Apply(event)
	b := a.aggregateBase()
	b.pending = append(b.pending, pendingEvent{event: event})
}

// committed marks the pending events as stored: the aggregate is now at version.
func (b *AggregateBase) committed(version int64) {
	b.pending = nil
	b.version = version
}

// Rehydrate resets a to a stream's state after history, its stored events oldest first: it
// applies each one and sets a's id to streamID and its version to len(history), with nothing
// pending. Repositories do this when they load; use it to build an aggregate from events you
// already hold, as annalstest does.
func Rehydrate(a Aggregate, streamID string, history ...any) {
	b := a.aggregateBase()
	*b = AggregateBase{id: streamID}
	for _, ev := range history {
		a.Apply(ev)
	}
	b.version = int64(len(history))
}

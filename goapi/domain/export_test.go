package domain

import "github.com/google/uuid"

// PendingIDs returns the event ids an aggregate's pending events carry (uuid.Nil until the first
// save attempt fixes them), for tests.
func PendingIDs(a Aggregate) []uuid.UUID {
	b := a.aggregateBase()
	ids := make([]uuid.UUID, len(b.pending))
	for i, p := range b.pending {
		ids[i] = p.id
	}
	return ids
}

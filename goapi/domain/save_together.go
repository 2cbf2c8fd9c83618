package domain

import (
	"context"

	"github.com/jackc/pgx/v5"

	annals "github.com/annals-db/annals/goapi"
)

// PendingSave is one aggregate's pending events, encoded and ready for SaveTogether: made by
// AggregateRepository.Pending, it saves into any repository's aggregate, so aggregates of
// different types commit together.
type PendingSave struct {
	append    annals.StreamAppend
	committed func(version int64)
}

// Pending prepares a's pending events for SaveTogether, at the version a was loaded at (so a
// concurrent change to a's stream fails the whole save with ErrWrongExpectedVersion). Event ids
// are fixed now, as Save fixes them. The snapshot policy is not applied by SaveTogether.
func (r *AggregateRepository[A]) Pending(ctx context.Context, a A) (PendingSave, error) {
	b := a.aggregateBase()
	data, err := r.encodePending(ctx, b)
	if err != nil {
		return PendingSave{}, err
	}
	return PendingSave{
		append:    annals.StreamAppend{StreamID: b.id, Expected: annals.Exact(b.version), Events: data},
		committed: b.committed,
	}, nil
}

// SaveTogether saves several aggregates (of any repositories) in one atomic multi-stream append
// (Client.AppendMulti): all their pending events commit, or none do and every aggregate keeps them
// pending. Each aggregate is checked against the version it was loaded at. Retryable failures
// are resent as AppendMulti resends them.
func SaveTogether(ctx context.Context, c *annals.Client, saves ...PendingSave) error {
	return saveTogether(ctx, c, nil, saves)
}

// SaveTogetherTx is SaveTogether inside the caller's transaction; see AggregateRepository.SaveTx
// for what a later rollback means for the aggregates.
func SaveTogetherTx(ctx context.Context, c *annals.Client, tx pgx.Tx, saves ...PendingSave) error {
	if tx == nil {
		return invalid("tx", "must not be nil")
	}
	return saveTogether(ctx, c, tx, saves)
}

func saveTogether(ctx context.Context, c *annals.Client, tx pgx.Tx, saves []PendingSave) error {
	appends := make([]annals.StreamAppend, len(saves))
	for i, s := range saves {
		appends[i] = s.append
	}
	var res []annals.StreamAppendResult
	var err error
	if tx != nil {
		res, err = c.AppendMultiTx(ctx, tx, appends...)
	} else {
		res, err = c.AppendMulti(ctx, appends...)
	}
	if err != nil {
		return err
	}
	for i, s := range saves {
		s.committed(res[i].StreamVersion)
	}
	return nil
}

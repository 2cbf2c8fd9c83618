package annals

import "context"

// AppendOnce is Append without Append's retry loop: one round trip (none when the arguments are
// refused), for callers that retry in a loop of their own, so an append is retried by exactly
// one layer. The domain package's repositories append through it (see
// domain.RepositoryOptions.MaxAttempts).
func (c *Client) AppendOnce(ctx context.Context, streamID string, expected ExpectedVersion, events ...EventData) (AppendResult, error) {
	call, ids, err := newAppendCall(streamID, expected, events)
	if err != nil {
		return AppendResult{}, err
	}
	res, err := appendOnce(ctx, c.db(ctx), streamID, call)
	if err != nil {
		return AppendResult{}, err
	}
	res.EventIDs = ids
	return res, nil
}

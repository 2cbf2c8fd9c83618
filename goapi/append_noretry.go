package annals

import "context"

// appendNoRetry is Append without Append's retry loop: one round trip, none when the arguments
// are refused. Repositories append through it and retry in their own loop, so an append is
// retried by exactly one layer (see RepositoryOptions.MaxAttempts).
func (c *Client) appendNoRetry(ctx context.Context, streamID string, expected ExpectedVersion, events ...EventData) (AppendResult, error) {
	call, ids, err := newAppendCall(streamID, expected, events)
	if err != nil {
		return AppendResult{}, err
	}
	res, err := appendOnce(ctx, c.pool, streamID, call)
	if err != nil {
		return AppendResult{}, err
	}
	res.EventIDs = ids
	return res, nil
}

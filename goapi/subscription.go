package annals

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// SubscriptionOptions configure CreateSubscription.
type SubscriptionOptions struct {
	// FromNow starts at the current feed barrier instead of the beginning of history.
	FromNow bool
	// EventTypes and Categories filter the feed; empty means everything.
	EventTypes []string
	Categories []string
	// GroupSize splits the subscription between that many members (default 1).
	GroupSize int
}

// CreateSubscription creates a named subscription with a durable checkpoint per member. It is
// idempotent: it returns false when the subscription already exists with the same settings, and
// ErrInvalidArgument when it exists with other settings. ErrReserved for a name starting with '$'.
func (c *Client) CreateSubscription(ctx context.Context, name string, opts SubscriptionOptions) (bool, error) {
	return createSubscription(ctx, c.db(ctx), name, opts)
}

// CreateSubscriptionTx is CreateSubscription inside the caller's transaction.
func (c *Client) CreateSubscriptionTx(ctx context.Context, tx pgx.Tx, name string, opts SubscriptionOptions) (bool, error) {
	return createSubscription(ctx, tx, name, opts)
}

func createSubscription(ctx context.Context, db dbtx, name string, opts SubscriptionOptions) (bool, error) {
	from := "beginning"
	if opts.FromNow {
		from = "now"
	}
	var created bool
	err := db.QueryRow(ctx, "SELECT annals.create_subscription($1, $2, $3, $4, $5)",
		name, from, nilIfEmpty(opts.EventTypes), nilIfEmpty(opts.Categories), max(opts.GroupSize, 1)).Scan(&created)
	if err != nil {
		return false, wrapf(mapError(err), "create subscription %q", name)
	}
	return created, nil
}

// DropSubscription removes a subscription with its checkpoints and dead letters. ErrNotFound when
// it does not exist; ErrReserved for a '$' name (an async projection's checkpoint goes with
// DropProjection).
func (c *Client) DropSubscription(ctx context.Context, name string) error {
	return dropSubscription(ctx, c.db(ctx), name)
}

// DropSubscriptionTx is DropSubscription inside the caller's transaction.
func (c *Client) DropSubscriptionTx(ctx context.Context, tx pgx.Tx, name string) error {
	return dropSubscription(ctx, tx, name)
}

func dropSubscription(ctx context.Context, db dbtx, name string) error {
	if _, err := db.Exec(ctx, "SELECT annals.drop_subscription($1)", name); err != nil {
		return wrapf(mapError(err), "drop subscription %q", name)
	}
	return nil
}

// ResetSubscription moves the checkpoint of every member (member < 0) or of one member to cp,
// backwards to replay or forwards to skip. It returns how many members moved. ErrNotFound when
// the subscription does not exist.
func (c *Client) ResetSubscription(ctx context.Context, name string, to Checkpoint, member int) (int, error) {
	return resetSubscription(ctx, c.db(ctx), name, to, member)
}

// ResetSubscriptionTx is ResetSubscription inside the caller's transaction.
func (c *Client) ResetSubscriptionTx(ctx context.Context, tx pgx.Tx, name string, to Checkpoint, member int) (int, error) {
	return resetSubscription(ctx, tx, name, to, member)
}

func resetSubscription(ctx context.Context, db dbtx, name string, to Checkpoint, member int) (int, error) {
	var m *int
	if member >= 0 {
		m = &member
	}
	var n int
	err := db.QueryRow(ctx, "SELECT annals.reset_subscription($1, $2, $3, $4)", name, to.TransactionID, to.GlobalPosition, m).Scan(&n)
	if err != nil {
		return 0, wrapf(mapError(err), "reset subscription %q", name)
	}
	return n, nil
}

// SubscriptionCheckpoint returns the checkpoint a member has acknowledged, read on the primary
// (a subscription's state is the primary's, whatever ctx's Consistency).
func (c *Client) SubscriptionCheckpoint(ctx context.Context, name string, member int) (Checkpoint, error) {
	return subscriptionCheckpoint(ctx, c.db(ctx), name, member)
}

// SubscriptionCheckpointTx is SubscriptionCheckpoint inside the caller's transaction.
func (c *Client) SubscriptionCheckpointTx(ctx context.Context, tx pgx.Tx, name string, member int) (Checkpoint, error) {
	return subscriptionCheckpoint(ctx, tx, name, member)
}

func subscriptionCheckpoint(ctx context.Context, db dbtx, name string, member int) (Checkpoint, error) {
	var cp Checkpoint
	err := db.QueryRow(ctx, "SELECT c.transaction_id, c.global_position FROM annals.subscription_checkpoint($1, $2) AS c",
		name, member).Scan(&cp.TransactionID, &cp.GlobalPosition)
	if err != nil {
		return cp, wrapf(mapError(err), "subscription checkpoint %q", name)
	}
	return cp, nil
}

// SubscriptionStatus is one member's row of the annals.subscription_status view.
type SubscriptionStatus struct {
	Name       string     `db:"subscription_name"`
	Member     int        `db:"member"`
	GroupSize  int        `db:"group_size"`
	Checkpoint Checkpoint `db:"-"`
	// EventsBehind counts pending events up to 100000; Capped is true when there are more.
	EventsBehind int64         `db:"events_behind"`
	Capped       bool          `db:"events_behind_capped"`
	TimeBehind   time.Duration `db:"-"`
	LeaseHolder  *string       `db:"lease_holder"`
	LeaseActive  bool          `db:"lease_active"`
	DeadLetters  int64         `db:"dead_letters"`
}

// SubscriptionStatus reports, per member, the checkpoint, lag in events and time, lease holder
// and open dead letters. An unknown subscription has no members: no rows, no error. With
// replicas it reads where ctx's Consistency says (WithConsistency), so a replica's row may be
// behind the primary's; SubscriptionCheckpoint, the consumer's own state, reads the primary.
func (c *Client) SubscriptionStatus(ctx context.Context, name string) ([]SubscriptionStatus, error) {
	return routed(ctx, c, func(db dbtx) ([]SubscriptionStatus, error) { return subscriptionStatus(ctx, db, name) })
}

// SubscriptionStatusTx is SubscriptionStatus inside the caller's transaction.
func (c *Client) SubscriptionStatusTx(ctx context.Context, tx pgx.Tx, name string) ([]SubscriptionStatus, error) {
	return subscriptionStatus(ctx, tx, name)
}

func subscriptionStatus(ctx context.Context, db dbtx, name string) ([]SubscriptionStatus, error) {
	rows, err := db.Query(ctx, `
		SELECT s.subscription_name, s.member, s.group_size, s.checkpoint_transaction, s.checkpoint_position,
		       s.events_behind, s.events_behind_capped,
		       coalesce(extract(epoch FROM s.time_behind), 0)::float8, s.lease_holder, s.lease_active, s.dead_letters
		  FROM annals.subscription_status AS s
		 WHERE s.subscription_name = $1
		 ORDER BY s.member`, name)
	if err != nil {
		return nil, wrapf(mapError(err), "subscription status %q", name)
	}
	defer rows.Close()
	var out []SubscriptionStatus
	for rows.Next() {
		var s SubscriptionStatus
		var secs float64
		if err := rows.Scan(&s.Name, &s.Member, &s.GroupSize, &s.Checkpoint.TransactionID, &s.Checkpoint.GlobalPosition,
			&s.EventsBehind, &s.Capped, &secs, &s.LeaseHolder, &s.LeaseActive, &s.DeadLetters); err != nil {
			return nil, wrapf(err, "subscription status %q", name)
		}
		s.TimeBehind = time.Duration(secs * float64(time.Second))
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapf(mapError(err), "subscription status %q", name)
	}
	return out, nil
}

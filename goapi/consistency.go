package annals

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Consistency says where a read may be served when the Client has replicas (ClientOptions.Replicas), and
// what it must see. Set it per call on the context with WithConsistency; without it a read is
// Eventual. Writes, owner operations, subscription reads and checkpoints (SubscriptionStatus
// excepted), CheckSchema, DecideTagged and repository loads always use the primary.
type Consistency struct {
	mode  consistencyMode
	token uint64
}

type consistencyMode uint8

const (
	modeEventual consistencyMode = iota
	modePrimary
	modeReadYourWrites
)

var (
	// Eventual reads from a replica that is up and no further behind than
	// ReplicaOptions.MaxLag; from the primary when none is. The default.
	Eventual = Consistency{mode: modeEventual}
	// OnPrimary reads from the primary: everything committed is visible.
	OnPrimary = Consistency{mode: modePrimary}
)

// ReadYourWrites reads from a replica once the transaction whose TransactionID an append returned
// (AppendResult.TransactionID, the consistency token) is visible there, waiting for its replay up
// to ReplicaOptions.WaitBound, then from the primary. Token 0 is Eventual.
func ReadYourWrites(token uint64) Consistency {
	if token == 0 {
		return Eventual
	}
	return Consistency{mode: modeReadYourWrites, token: token}
}

// Token is the consistency token a ReadYourWrites read waits for (0 for the others).
func (c Consistency) Token() uint64 { return c.token }

func (c Consistency) String() string {
	switch c.mode {
	case modePrimary:
		return "primary"
	case modeReadYourWrites:
		return fmt.Sprintf("read-your-writes(%d)", c.token)
	}
	return "eventual"
}

type consistencyKey struct{}

// consistencyValue is what WithConsistency stores: the Consistency, and the replica the first
// read through the context went to, which the later ones keep while it stays usable.
type consistencyValue struct {
	c      Consistency
	pinned atomic.Pointer[replica]
}

// WithConsistency returns a context whose reads through a Client use c. The reads through one
// such context stick to one replica while it stays usable: after WaitForProjection(ctx, ...),
// ReadPool(ctx) is the replica that has the projection's rows, and a later read never sees less
// than an earlier one.
func WithConsistency(ctx context.Context, c Consistency) context.Context {
	return context.WithValue(ctx, consistencyKey{}, &consistencyValue{c: c})
}

// ConsistencyFrom returns the Consistency set on ctx (Eventual when none is).
func ConsistencyFrom(ctx context.Context) Consistency {
	if v, ok := ctx.Value(consistencyKey{}).(*consistencyValue); ok {
		return v.c
	}
	return Eventual
}

// waitPoll is how often a client-side wait asks the server again: each ask is one statement
// with a zero timeout, so no snapshot is held between asks (the SQL functions, waiting inside one
// statement, would hold that statement's).
const (
	waitPollFirst = 500 * time.Microsecond
	waitPollMax   = 8 * time.Millisecond
)

// WaitFor waits until the transaction token (an append's TransactionID) is visible on the server
// ctx's Consistency reads from (a replica for Eventual, the primary for OnPrimary), for at most
// timeout. It reports false when timeout passed first. Errors: ErrInvalidArgument for token 0 or
// a token the primary has not assigned yet.
func (c *Client) WaitFor(ctx context.Context, token uint64, timeout time.Duration) (bool, error) {
	return c.poll(ctx, timeout, fmt.Sprintf("wait for %d", token), func(db dbtx) (bool, error) {
		return waitForTransaction(ctx, db, token, 0)
	})
}

// WaitForTx is WaitFor inside the caller's transaction: one call of annals.wait_for, which holds
// the statement's snapshot while it waits, and sees nothing new in a REPEATABLE READ transaction.
func (c *Client) WaitForTx(ctx context.Context, tx pgx.Tx, token uint64, timeout time.Duration) (bool, error) {
	return waitForTransaction(ctx, tx, token, timeout)
}

// WaitForProjection waits until projection name has processed every event it selects of the
// transaction token, on the server ctx's Consistency reads from, for at most timeout: an inline
// projection as soon as the transaction is visible there, an async one once its checkpoint has
// passed them. Query the projection's tables through ReadPool(ctx) afterwards. It reports false
// when timeout passed first. Errors: ErrNotFound for an unknown projection, ErrInvalidArgument.
func (c *Client) WaitForProjection(ctx context.Context, name string, token uint64, timeout time.Duration) (bool, error) {
	return c.poll(ctx, timeout, fmt.Sprintf("wait for projection %q", name), func(db dbtx) (bool, error) {
		return waitForProjection(ctx, db, name, token, 0)
	})
}

// WaitForProjectionTx is WaitForProjection inside the caller's transaction (one call of
// annals.wait_for_projection).
func (c *Client) WaitForProjectionTx(ctx context.Context, tx pgx.Tx, name string, token uint64, timeout time.Duration) (bool, error) {
	return waitForProjection(ctx, tx, name, token, timeout)
}

// poll asks check on the read server until it reports true or timeout passes, sleeping between
// asks. A replica that fails is marked down and the wait moves to the primary.
func (c *Client) poll(ctx context.Context, timeout time.Duration, op string, check func(dbtx) (bool, error)) (bool, error) {
	if timeout < 0 {
		return false, invalid("timeout", "must be >= 0, got %s", timeout)
	}
	db, r := c.readServer(ctx)
	deadline := time.Now().Add(timeout)
	sleep := waitPollFirst
	for {
		ok, err := check(db)
		if err != nil && r != nil && replicaUnavailable(err) && ctx.Err() == nil {
			c.replicas.markDown(ctx, r, err)
			db, r = c.db(ctx), nil
			continue
		}
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		t := time.NewTimer(min(sleep, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return false, wrapf(ctx.Err(), "%s", op)
		case <-t.C:
		}
		sleep = min(2*sleep, waitPollMax)
	}
}

func waitForTransaction(ctx context.Context, db dbtx, token uint64, timeout time.Duration) (bool, error) {
	if token == 0 {
		return false, invalid("transaction_id", "must not be 0; pass the TransactionID an append returned")
	}
	var ok bool
	err := db.QueryRow(ctx, "SELECT annals.wait_for($1::xid8, $2)", token, timeout).Scan(&ok)
	if err != nil {
		return false, wrapf(mapError(err), "wait for %d", token)
	}
	return ok, nil
}

func waitForProjection(ctx context.Context, db dbtx, name string, token uint64, timeout time.Duration) (bool, error) {
	if token == 0 {
		return false, invalid("transaction_id", "must not be 0; pass the TransactionID an append returned")
	}
	var ok bool
	err := db.QueryRow(ctx, "SELECT annals.wait_for_projection($1, $2::xid8, $3)", name, token, timeout).Scan(&ok)
	if err != nil {
		return false, wrapf(mapError(err), "wait for projection %q", name)
	}
	return ok, nil
}

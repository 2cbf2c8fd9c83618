package annals

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Client calls Annals' SQL functions through a pool the caller owns. It is safe for concurrent
// use and holds no state besides its settings. New makes no round trip; call CheckSchema at
// start-up to fail fast when the database is not migrated.
type Client struct {
	pool         *pgxpool.Pool
	appendTries  int
	readPageSize int
	replicas     *replicaSet // ClientOptions.Replicas; nil: every read goes to pool
	tenant       string      // ClientOptions.Tenant; "": none
}

// ClientOptions configure a Client. The zero value gives the defaults.
type ClientOptions struct {
	// AppendAttempts is how many times Append tries an append that failed with a retryable error
	// or a lost connection (default 3; 1 disables retries). Retrying is safe: event ids are fixed
	// before the first try, so an append that did commit is recognized as a replay. Repositories
	// do not use it: they retry their appends in their own loop, the only one
	// (domain.RepositoryOptions.MaxAttempts).
	AppendAttempts int
	// ReadPageSize is how many events ReadStream fetches per round trip (default 1000).
	ReadPageSize int
	// Replicas are pools on streaming hot standbys of pool. Reads go to them (round robin)
	// unless the context asks for another Consistency; writes, subscriptions and repository
	// loads stay on the primary. A replica that is down or lagging beyond Replica.MaxLag is
	// skipped, with a log line and a count in ReplicaStats, never an error to the caller.
	Replicas []*pgxpool.Pool
	// Replica tunes how Replicas are used (zero: the defaults).
	Replica ReplicaOptions
	// Tenant, when not empty, is the tenant every call of this client runs under (the README's
	// "Tenants"): each statement goes out with the tenant set for its own transaction, in the same
	// round trip, so it holds through poolers. WithTenant overrides it for one context's calls.
	// The …Tx calls run in the caller's transaction: call SetTenant on it first. "" (the default):
	// no tenant, and calls go out exactly as without tenancy.
	Tenant string
}

// New returns a Client over pool (opts: the zero value for the defaults). The pool's role needs
// the annals_writer role to append and annals_reader (or annals_writer) to read.
func New(pool *pgxpool.Pool, opts ClientOptions) *Client {
	c := &Client{pool: pool, appendTries: 3, readPageSize: 1000}
	if opts.AppendAttempts > 0 {
		c.appendTries = opts.AppendAttempts
	}
	if opts.ReadPageSize > 0 {
		c.readPageSize = opts.ReadPageSize
	}
	c.replicas = newReplicaSet(opts.Replicas, opts.Replica)
	c.tenant = opts.Tenant
	return c
}

// Pool returns the pool the client was built with.
func (c *Client) Pool() *pgxpool.Pool { return c.pool }

// dbtx is what both a pool and a transaction offer.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ExpectedVersion is the optimistic-concurrency condition of an append. The zero value is Any.
type ExpectedVersion struct {
	v   int64
	set bool
}

var (
	// Any appends whatever the stream's version.
	Any = ExpectedVersion{}
	// NoStream requires that the stream has no events yet.
	NoStream = ExpectedVersion{v: 0, set: true}
	// StreamExists requires that the stream has at least one event.
	StreamExists = ExpectedVersion{v: -1, set: true}
)

// Exact requires the stream to be at exactly version v (Exact(0) is NoStream). A negative v is
// rejected by Append with ErrInvalidArgument.
func Exact(v int64) ExpectedVersion { return ExpectedVersion{v: v, set: true} }

// IsAny reports whether e is Any.
func (e ExpectedVersion) IsAny() bool { return !e.set }

// Version returns the exact version and true, or false for Any and StreamExists.
func (e ExpectedVersion) Version() (int64, bool) { return e.v, e.set && e.v >= 0 }

// arg is the SQL argument: NULL for Any.
func (e ExpectedVersion) arg() *int64 {
	if !e.set {
		return nil
	}
	return &e.v
}

func (e ExpectedVersion) String() string {
	switch {
	case !e.set:
		return "any"
	case e.v == -1:
		return "stream exists"
	case e.v == 0:
		return "no stream"
	}
	return strconv.FormatInt(e.v, 10)
}

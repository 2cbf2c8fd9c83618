package domain_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/goapi/domain"
)

// Two small domains for the domain-layer tests: a tally (decider style) whose fold depends on
// event order, and a bank account (aggregate style).

type Added struct {
	N int64 `json:"n"`
}

type Scaled struct {
	Factor int64 `json:"factor"`
}

type Named struct {
	Name string `json:"name"`
}

type Tagged struct {
	Tag string `json:"tag"`
}

// Tally's fold is order-sensitive (add then scale differs from scale then add), so a snapshot
// taken at the wrong version or a tail read from the wrong place shows.
type Tally struct {
	Value  int64    `json:"value"`
	Name   string   `json:"name"`
	Tags   []string `json:"tags"`
	Events int      `json:"events"`
}

// TallyCmd is the tally's command: the events to record, or Fail to reject.
type TallyCmd struct {
	Events []any
	Fail   bool
}

var errRejected = errors.New("rejected by the rules")

func tallyDecider() domain.Decider[Tally, TallyCmd] {
	return domain.Decider[Tally, TallyCmd]{
		Initial: func() Tally { return Tally{} },
		Decide: func(_ Tally, c TallyCmd) ([]any, error) {
			if c.Fail {
				return nil, errRejected
			}
			return c.Events, nil
		},
		Evolve: func(s Tally, ev any) Tally {
			switch e := ev.(type) {
			case Added:
				s.Value = (s.Value + e.N) % 1_000_003
			case Scaled:
				s.Value = (s.Value * e.Factor) % 1_000_003
			case Named:
				s.Name = e.Name
			case Tagged:
				s.Tags = append(s.Tags[:len(s.Tags):len(s.Tags)], e.Tag) // copy on write: states are values
			}
			s.Events++
			return s
		},
	}
}

func tallyRegistry() *domain.Registry {
	reg := domain.NewRegistry()
	domain.Register[Added](reg, "tally.added")
	domain.Register[Scaled](reg, "tally.scaled")
	domain.Register[Named](reg, "tally.named")
	domain.Register[Tagged](reg, "tally.tagged")
	return reg
}

type Opened struct {
	Owner string `json:"owner"`
}

type Deposited struct {
	Amount int `json:"amount"`
}

type Withdrawn struct {
	Amount int `json:"amount"`
}

var errInsufficientFunds = errors.New("insufficient funds")

// Account is an aggregate: state changes only in Apply, command methods Raise events.
type Account struct {
	domain.AggregateBase
	Owner   string `json:"owner"`
	Balance int    `json:"balance"`
	Open    bool   `json:"open"`
}

func newAccount() *Account { return &Account{} }

func (a *Account) Apply(event any) {
	switch e := event.(type) {
	case Opened:
		a.Owner, a.Open = e.Owner, true
	case Deposited:
		a.Balance += e.Amount
	case Withdrawn:
		a.Balance -= e.Amount
	}
}

func (a *Account) OpenFor(owner string) error {
	if a.Open {
		return errors.New("already open")
	}
	domain.Raise(a, Opened{Owner: owner})
	return nil
}

func (a *Account) Deposit(amount int) error {
	if !a.Open || amount <= 0 {
		return errors.New("cannot deposit")
	}
	domain.Raise(a, Deposited{Amount: amount})
	return nil
}

func (a *Account) Withdraw(amount int) error {
	if a.Balance < amount {
		return fmt.Errorf("withdraw %d from %d: %w", amount, a.Balance, errInsufficientFunds)
	}
	domain.Raise(a, Withdrawn{Amount: amount})
	return nil
}

func accountRegistry() *domain.Registry {
	reg := domain.NewRegistry()
	domain.Register[Opened](reg, "account.opened")
	domain.Register[Deposited](reg, "account.deposited")
	domain.Register[Withdrawn](reg, "account.withdrawn")
	return reg
}

var domainSeq atomic.Int64

// streamName returns a stream id unique within the test binary.
func streamName(category string) string {
	return fmt.Sprintf("%s-%d", category, domainSeq.Add(1))
}

// domainDB is a fresh database and a client over it.
func domainDB(t *testing.T) (*pgxpool.Pool, *annals.Client) {
	t.Helper()
	pool := annalstest.NewDB(t)
	return pool, annals.New(pool, annals.ClientOptions{})
}

// storedRows returns a stream's rows as stored (type, schema version, data text), read as
// superuser straight from the events table.
func storedRows(t *testing.T, pool *pgxpool.Pool, streamID string) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT e.event_type || ' v' || e.schema_version || ' ' || e.data::text
		FROM annals_internal.events AS e WHERE e.stream_id = $1 ORDER BY e.stream_version`, streamID)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// discardLogger drops log records (for tests that provoke logged snapshot failures).
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package annalstest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/stretchr/testify/require"
)

type Deposited struct {
	Amount int `json:"amount"`
}

type Withdrawn struct {
	Amount int `json:"amount"`
}

type lossy struct {
	hidden int // unexported: lost in JSON
}

var errOverdraw = errors.New("overdraw")

// Move changes a balance by Amount: positive deposits, negative withdraws.
type Move struct{ Amount int }

func wallet() domain.Decider[int, Move] {
	return domain.Decider[int, Move]{
		Initial: func() int { return 0 },
		Decide: func(balance int, m Move) ([]any, error) {
			switch {
			case m.Amount > 0:
				return []any{Deposited{Amount: m.Amount}}, nil
			case balance+m.Amount < 0:
				return nil, fmt.Errorf("balance %d: %w", balance, errOverdraw)
			case m.Amount < 0:
				return []any{Withdrawn{Amount: -m.Amount}}, nil
			}
			return nil, nil
		},
		Evolve: func(balance int, ev any) int {
			switch e := ev.(type) {
			case Deposited:
				return balance + e.Amount
			case Withdrawn:
				return balance - e.Amount
			}
			return balance
		},
	}
}

func registry() *domain.Registry {
	reg := domain.NewRegistry()
	domain.Register[Deposited](reg, "deposited")
	domain.Register[Withdrawn](reg, "withdrawn")
	domain.Register[lossy](reg, "lossy")
	return reg
}

type Wallet struct {
	domain.AggregateBase
	Balance int
}

func (w *Wallet) Apply(ev any) { w.Balance = wallet().Evolve(w.Balance, ev) }

func (w *Wallet) Move(amount int) error {
	events, err := wallet().Decide(w.Balance, Move{Amount: amount})
	for _, ev := range events {
		domain.Raise(w, ev)
	}
	return err
}

func TestDeciderScenario(t *testing.T) {
	t.Parallel()
	state := annalstest.Decider(t, wallet()).WithRegistry(registry()).
		Given(Deposited{Amount: 10}, Withdrawn{Amount: 3}).
		When(Move{Amount: -5}).
		Then(Withdrawn{Amount: 5})
	require.Equal(t, 2, state, "Then returns the state after the new events")

	annalstest.Decider(t, wallet()).When(Move{Amount: 0}).Then()
	err := annalstest.Decider(t, wallet()).Given(Deposited{Amount: 1}).When(Move{Amount: -2}).ThenError(errOverdraw)
	require.ErrorContains(t, err, "balance 1")
}

func TestAggregateScenario(t *testing.T) {
	t.Parallel()
	w := annalstest.Aggregate(t, func() *Wallet { return &Wallet{} }).WithRegistry(registry()).
		ForStream("wallet-7").
		Given(Deposited{Amount: 10}).
		When(func(w *Wallet) error { return w.Move(-4) }).
		Then(Withdrawn{Amount: 4})
	require.Equal(t, 6, w.Balance)
	require.Equal(t, "wallet-7", w.ID())
	require.Equal(t, int64(1), w.Version(), "the history counts, the new event is pending")

	annalstest.Aggregate(t, func() *Wallet { return &Wallet{} }).
		When(func(w *Wallet) error { return w.Move(-1) }).
		ThenError(errOverdraw)
}

// The kit must fail the test, with a useful message, whenever the outcome differs.
func TestScenarioFailures(t *testing.T) {
	t.Parallel()
	newWallet := func() *Wallet { return &Wallet{} }
	for name, tc := range map[string]struct {
		run  func(tb testing.TB)
		want string
	}{
		"other events": {func(tb testing.TB) {
			annalstest.Decider(tb, wallet()).When(Move{Amount: 5}).Then(Deposited{Amount: 6})
		}, "decided events"},
		"an error instead of events": {func(tb testing.TB) {
			annalstest.Decider(tb, wallet()).When(Move{Amount: -5}).Then(Withdrawn{Amount: 5})
		}, "Decide failed"},
		"events instead of an error": {func(tb testing.TB) {
			annalstest.Decider(tb, wallet()).When(Move{Amount: 5}).ThenError(errOverdraw)
		}, "Decide's error"},
		"no When": {func(tb testing.TB) {
			annalstest.Decider(tb, wallet()).Given(Deposited{Amount: 1}).Then()
		}, "Then without When"},
		"an unregistered event": {func(tb testing.TB) {
			annalstest.Decider(tb, wallet()).WithRegistry(domain.NewRegistry()).When(Move{Amount: 5}).Then(Deposited{Amount: 5})
		}, "unknown event type"},
		"a field lost in JSON": {func(tb testing.TB) {
			annalstest.Decider(tb, wallet()).WithRegistry(registry()).Given(lossy{hidden: 1}).When(Move{}).Then()
		}, "does not survive a JSON round trip"},
		"aggregate: other events": {func(tb testing.TB) {
			annalstest.Aggregate(tb, newWallet).When(func(w *Wallet) error { return w.Move(2) }).Then(Deposited{Amount: 3})
		}, "raised events"},
		"aggregate: unexpected error": {func(tb testing.TB) {
			annalstest.Aggregate(tb, newWallet).When(func(w *Wallet) error { return w.Move(-2) }).Then()
		}, "the command failed"},
		"aggregate: wrong error": {func(tb testing.TB) {
			annalstest.Aggregate(tb, newWallet).When(func(w *Wallet) error { return errors.New("other") }).ThenError(errOverdraw)
		}, "the command's error"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ft := &fakeT{TB: t}
			func() {
				defer func() {
					if r := recover(); r != nil && r != errStopped {
						panic(r)
					}
				}()
				tc.run(ft)
			}()
			require.True(t, ft.failed, "the scenario should have failed")
			require.Contains(t, ft.log.String(), tc.want)
		})
	}
}

var errStopped = errors.New("FailNow")

// fakeT records failures instead of failing the real test; FailNow stops the scenario with a
// panic the test recovers.
type fakeT struct {
	testing.TB
	failed bool
	log    strings.Builder
}

func (f *fakeT) Helper() {}

func (f *fakeT) Errorf(format string, args ...any) {
	f.failed = true
	fmt.Fprintf(&f.log, format, args...)
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	panic(errStopped)
}

func (f *fakeT) Fatal(args ...any) {
	f.failed = true
	fmt.Fprint(&f.log, args...)
	panic(errStopped)
}

func (f *fakeT) FailNow() {
	f.failed = true
	panic(errStopped)
}

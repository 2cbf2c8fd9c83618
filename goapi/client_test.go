package annals_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// Every Client call that reads or writes has a Tx twin taking the caller's pgx.Tx right after
// the context, with the same other parameters and results, so any of them can commit with the
// caller's own writes.
func TestClientCallsHaveTxTwins(t *testing.T) {
	t.Parallel()
	ctxType := reflect.TypeFor[context.Context]()
	txType := reflect.TypeFor[pgx.Tx]()
	client := reflect.TypeFor[*annals.Client]()
	calls := 0
	for i := range client.NumMethod() {
		m := client.Method(i)
		// ListenEvents holds a connection of its own until it is closed: notifications arrive
		// between transactions, never inside the caller's.
		// ReplicaStats and ReadPool touch no database: they report and pick among the pools.
		if m.Name == "Pool" || m.Name == "ListenEvents" || m.Name == "ReplicaStats" || m.Name == "ReadPool" ||
			strings.HasSuffix(m.Name, "Tx") {
			continue
		}
		calls++
		plain := m.Type // receiver first
		require.GreaterOrEqual(t, plain.NumIn(), 2, "%s takes a context", m.Name)
		require.Equal(t, ctxType, plain.In(1), "%s takes a context first", m.Name)
		twinName := m.Name + "Tx"
		if m.Name == "AppendOnce" {
			twinName = "AppendTx" // which never retries: one round trip inside the caller's transaction
		}
		twin, ok := client.MethodByName(twinName)
		if !ok {
			t.Errorf("%s has no %s", m.Name, twinName)
			continue
		}
		tx := twin.Type
		require.Equal(t, plain.NumIn()+1, tx.NumIn(), "%sTx takes %s's parameters plus a pgx.Tx", m.Name, m.Name)
		require.Equal(t, ctxType, tx.In(1), "%sTx takes a context first", m.Name)
		require.Equal(t, txType, tx.In(2), "%sTx takes a pgx.Tx after the context", m.Name)
		for j := 2; j < plain.NumIn(); j++ {
			require.Equal(t, plain.In(j), tx.In(j+1), "%sTx parameter %d", m.Name, j)
		}
		require.Equal(t, plain.IsVariadic(), tx.IsVariadic(), "%sTx variadic", m.Name)
		require.Equal(t, plain.NumOut(), tx.NumOut(), "%sTx results", m.Name)
		for j := range plain.NumOut() {
			require.Equal(t, plain.Out(j), tx.Out(j), "%sTx result %d", m.Name, j)
		}
	}
	require.Greater(t, calls, 20, "the check saw the client's calls")
}

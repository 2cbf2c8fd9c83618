package feed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// restoreEvents simulates a pg_dump restored into a younger cluster: events (and their streams)
// whose transaction ids this cluster has not reached, written directly as the superuser would.
// It returns the event ids in feed (position) order.
func restoreEvents(t *testing.T, e env, streams, perStream int) []uuid.UUID {
	t.Helper()
	var out []uuid.UUID
	for s := range streams {
		stream := fmt.Sprintf("restored-%d", s)
		xid := fmt.Sprint(uint64(5_000_000_000) + uint64(s))
		for v := 1; v <= perStream; v++ {
			id := uuid.Must(uuid.NewV7())
			_, err := e.pool.Exec(e.ctx, `INSERT INTO annals_internal.events
				(stream_id, stream_version, event_id, event_type, schema_version, data, metadata, transaction_id, recorded_at)
				VALUES ($1, $2, $3, 'Restored', 1, '{}', '{}', $4::xid8, now())`, stream, v, id, xid)
			require.NoError(t, err)
			out = append(out, id)
		}
		_, err := e.pool.Exec(e.ctx, `INSERT INTO annals_internal.streams
			(stream_id, category, stream_version, last_transaction_id, created_at, updated_at)
			VALUES ($1, 'restored', $2, $3::xid8, now(), now())`, stream, perStream, xid)
		require.NoError(t, err)
	}
	return out
}

func requireRestoredError(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, annals.ErrFeedRestored)
	pgErr := requirePgCode(t, err, "ST503")
	require.Contains(t, pgErr.Message, "annals.rebase_transaction_ids", "the message names the remedy")
	require.Contains(t, err.Error(), "annals.rebase_transaction_ids", "so does the Go error's text")
	require.Contains(t, pgErr.Hint, "annals.rebase_transaction_ids")
}

func TestLogicalRestoreIsDetectedAndRepaired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	restored := restoreEvents(t, e, 3, 2)
	_, err := e.store.CreateSubscription(e.ctx, "after-restore", annals.SubscriptionOptions{})
	require.NoError(t, err)
	// A subscription whose checkpoint came along with the dump: after the second restored event.
	_, err = e.store.CreateSubscription(e.ctx, "restored-checkpoint", annals.SubscriptionOptions{})
	require.NoError(t, err)
	var secondPos int64
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT e.global_position FROM annals_internal.events AS e
		WHERE e.stream_id = 'restored-0' AND e.stream_version = 2`).Scan(&secondPos))
	_, err = e.store.ResetSubscription(e.ctx, "restored-checkpoint", annals.Checkpoint{TransactionID: 5_000_000_000, GlobalPosition: secondPos}, -1)
	require.NoError(t, err)

	// Every feed read refuses, naming the remedy.
	_, err = e.store.ReadAll(e.ctx, annals.Checkpoint{}, annals.FeedOptions{})
	requireRestoredError(t, err)
	_, err = e.store.ReadCategory(e.ctx, "restored", annals.Checkpoint{}, annals.FeedOptions{MaxCount: 100})
	requireRestoredError(t, err)
	_, err = e.pool.Exec(e.ctx, "SELECT count(*) FROM annals.read_subscription('after-restore')")
	requirePgCode(t, err, "ST503")
	// So does an append to a restored stream (it would otherwise be a 40001 forever).
	_, err = e.store.Append(e.ctx, "restored-1", annals.Any, annals.EventData{Type: "AfterRestore"})
	requireRestoredError(t, err)
	// A new stream takes appends; it is ordered after the restored history once repaired.
	native, err := e.store.Append(e.ctx, "native-1", annals.NoStream, annals.EventData{Type: "AfterRestore"})
	require.NoError(t, err)

	// Only the owner may repair.
	tx, err := e.pool.Begin(e.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(e.ctx, "SET LOCAL ROLE annals_writer")
	require.NoError(t, err)
	_, err = tx.Exec(e.ctx, "SELECT annals.rebase_transaction_ids()")
	requirePgCode(t, err, "42501")
	require.NoError(t, tx.Rollback(e.ctx))

	tx, err = e.pool.Begin(e.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(e.ctx, "SET LOCAL ROLE annals_owner")
	require.NoError(t, err)
	var rebased int64
	require.NoError(t, tx.QueryRow(e.ctx, "SELECT annals.rebase_transaction_ids('restored from the old cluster')").Scan(&rebased))
	require.NoError(t, tx.Commit(e.ctx))
	require.EqualValues(t, len(restored), rebased)

	// The feed delivers the restored history in position order, then what came after.
	all := drain(t, e.pool, annals.Checkpoint{}, 4, len(restored)+1)
	require.Equal(t, concat(restored, native.EventIDs), ids(all))
	after := appendEvents(t, e.pool, "restored-1", "AfterRepair", 1)
	require.EqualValues(t, 3, after.StreamVersion, "appends to restored streams work again")
	require.Equal(t, after.IDs, ids(drain(t, e.pool, all[len(all)-1].Checkpoint(), 10, 1)))
	require.Equal(t, concat(ids(all), after.IDs), ids(consumeAll(t, e, "after-restore", 0, 3, len(all)+1)))
	// The restored checkpoint was moved along: it continues right after the second restored event.
	require.Equal(t, concat(ids(all[2:]), after.IDs), ids(consumeAll(t, e, "restored-checkpoint", 0, 100, len(all)-1)))

	// Audited, once.
	var (
		n           int
		operation   string
		count       int64
		performedBy string
		reason      string
		at          time.Time
	)
	require.NoError(t, e.pool.QueryRow(e.ctx, `SELECT count(*) OVER (), l.operation, l.stream_version, l.performed_by, l.reason, l.performed_at
		FROM annals_internal.lifecycle_log AS l WHERE l.operation = 'rebase_transaction_ids'`).
		Scan(&n, &operation, &count, &performedBy, &reason, &at))
	require.Equal(t, 1, n)
	require.EqualValues(t, len(restored), count)
	require.Equal(t, "restored from the old cluster", reason)
	require.NotEmpty(t, performedBy)

	// Nothing left to repair: a no-op, not audited again.
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT annals.rebase_transaction_ids()").Scan(&rebased))
	require.Zero(t, rebased)
	require.NoError(t, e.pool.QueryRow(e.ctx, "SELECT count(*) FROM annals_internal.lifecycle_log AS l WHERE l.operation = 'rebase_transaction_ids'").Scan(&n))
	require.Equal(t, 1, n)
}

// A transaction's own appends are no logical restore: in REPEATABLE READ its snapshot may predate
// its transaction id, so its own events sit at or above the snapshot's xmax.
func TestFeedReadAfterOwnAppendIsNoRestore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tx, err := e.pool.BeginTx(e.ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.Exec(e.ctx, "SELECT count(*) FROM annals.read_all('0', 0, 10)") // the snapshot, before any id
	require.NoError(t, err)
	_, err = tx.Exec(e.ctx, `SELECT FROM annals.append_events('own-1', NULL, '[{"type": "A"}]')`)
	require.NoError(t, err)
	_, err = tx.Exec(e.ctx, "SELECT count(*) FROM annals.read_all('0', 0, 10)")
	require.NoError(t, err, "its own append is not a restored transaction id")
}

// Package cold tests cold storage (annals.compress_events, annals.archive_stream,
// annals.storage_stats): every read returns the same rows whether an event is hot or cold.
package cold

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

type fixture struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	store *annals.Client
}

func setup(t *testing.T) fixture {
	t.Helper()
	pool := annalstest.NewDB(t)
	return fixture{ctx: t.Context(), pool: pool, store: annals.New(pool, annals.ClientOptions{})}
}

func (f fixture) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := f.pool.Exec(f.ctx, sql, args...)
	require.NoError(t, err, sql)
}

func scalar[T any](t *testing.T, f fixture, sql string, args ...any) T {
	t.Helper()
	var v T
	require.NoError(t, f.pool.QueryRow(f.ctx, sql, args...).Scan(&v), sql)
	return v
}

// rowsText runs a query and returns its rows as text, one per line, in the order returned.
func rowsText(t *testing.T, ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) string {
	t.Helper()
	rows, err := db.Query(ctx, "SELECT r::text FROM ("+sql+") AS r", args...)
	require.NoError(t, err, sql)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err, sql)
	return strings.Join(lines, "\n")
}

// waitBarrier waits until the feed's barrier (cluster-wide: other tests' transactions hold it)
// has passed every stored event, so compress_events may move them all.
func waitBarrier(t *testing.T, f fixture) {
	t.Helper()
	for try := 0; ; try++ {
		require.Less(t, try, 600, "the barrier stays below the stored events")
		if scalar[bool](t, f, `SELECT coalesce(pg_snapshot_xmin(pg_current_snapshot()) > max(e.transaction_id), true)
		                        FROM annals_internal.events AS e`) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ev is an inventory-like event.
func ev(typ string, i int) annals.EventData {
	id, _ := uuid.NewV7()
	return annals.EventData{ID: id, Type: typ,
		Data: map[string]any{"sku": fmt.Sprintf("sku-%d", i%17), "quantity": i % 9, "note": "cold storage test",
			"lines": []any{map[string]any{"n": 1, "qty": i % 4}}},
		Metadata: map[string]any{"user": fmt.Sprintf("user-%d", i%5), "correlation_id": uuid.NewString()}}
}

// loginRole creates a LOGIN role that is a member of grants (dropped at the end) and returns a
// pool logged in as it.
func loginRole(t *testing.T, f fixture, grants ...string) *pgxpool.Pool {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "annals_t_cold_" + hex.EncodeToString(b)
	f.exec(t, "CREATE ROLE "+name+" LOGIN")
	for _, g := range grants {
		f.exec(t, "GRANT "+pgx.Identifier{g}.Sanitize()+" TO "+name)
	}
	cfg := f.pool.Config().Copy()
	cfg.ConnConfig.User = name
	cfg.ConnConfig.Password = ""
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(f.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		pool.Close()
		ctx := context.Background()
		_, _ = f.pool.Exec(ctx, "DROP OWNED BY "+name)
		if _, err := f.pool.Exec(ctx, "DROP ROLE "+name); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	return pool
}

// splitLines splits rowsText's result into its rows (none for an empty result).
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Package domain tests the Go domain layer (registry, repositories, snapshots, temporal loads)
// the way an application runs it: through login roles holding only annals_writer,
// annals_reader or annals_bi, never as a superuser.
package domain

import (
	"context"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/goapi/domain"
	"github.com/annals-db/annals/internal/inventory"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// loginAs creates a LOGIN role that is a member of group (dropped when the test ends) and
// returns a pool on url's database logged in as it, with an empty search_path.
func loginAs(t *testing.T, admin *pgxpool.Pool, url, group string) *pgxpool.Pool {
	t.Helper()
	ctx := t.Context()
	name := "annals_t_login_" + pgutil.RandomHex(6)
	_, err := admin.Exec(ctx, "CREATE ROLE "+name+" LOGIN IN ROLE "+pgx.Identifier{group}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() { // before the database is dropped: cleanups run last-in first-out
		ctx := context.Background()
		_, _ = admin.Exec(ctx, "DROP OWNED BY "+name)
		if _, err := admin.Exec(ctx, "DROP ROLE "+name); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.User = name
	cfg.ConnConfig.RuntimeParams["search_path"] = ""
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func requireSQLState(t *testing.T, err error, code string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, code, pgErr.Code, pgErr.Message)
}

func TestDomainLayerUnderApplicationRoles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := annalstest.NewDBURL(t)
	admin, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(admin.Close)

	writer := annals.New(loginAs(t, admin, url, "annals_writer"), annals.ClientOptions{})
	reader := annals.New(loginAs(t, admin, url, "annals_reader"), annals.ClientOptions{})
	bi := annals.New(loginAs(t, admin, url, "annals_bi"), annals.ClientOptions{})
	opts := domain.RepositoryOptions{SnapshotEvery: 2}

	t.Run("a writer handles commands, saves and loads snapshots", func(t *testing.T) {
		service := inventory.NewService(writer, opts)
		_, err := service.AddItem(ctx, "w1", "Widget", 3)
		require.NoError(t, err)
		for range 4 {
			_, err = service.AdjustCount(ctx, "w1", 1, "delivery")
			require.NoError(t, err)
		}
		snap, ok, err := writer.LoadSnapshot(ctx, inventory.StreamID("w1"), inventory.SnapshotType, 1)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, int64(4), snap.StreamVersion)
		item, err := service.Item(ctx, "w1")
		require.NoError(t, err)
		require.Equal(t, 7, item.Count)
		past, err := service.ItemAt(ctx, "w1", annals.AtVersion(2))
		require.NoError(t, err)
		require.Equal(t, 4, past.Count)
	})

	t.Run("a reader loads (snapshots included) but cannot write", func(t *testing.T) {
		_, err := writer.Append(ctx, inventory.StreamID("r1"), annals.NoStream,
			annals.EventData{Type: inventory.TypeItemAdded, Data: inventory.ItemAdded{SKU: "r1", Name: "Read", Count: 2}})
		require.NoError(t, err)
		_, err = writer.SaveSnapshot(ctx, annals.Snapshot{StreamID: inventory.StreamID("r1"), Type: inventory.SnapshotType,
			SchemaVersion: 1, StreamVersion: 1, State: []byte(`{"sku":"r1","name":"Read","count":2,"exists":true}`)})
		require.NoError(t, err)

		service := inventory.NewService(reader, opts)
		item, err := service.Item(ctx, "r1")
		require.NoError(t, err)
		require.Equal(t, 2, item.Count)
		_, err = service.AdjustCount(ctx, "r1", 1, "delivery")
		requireSQLState(t, err, "42501")
		_, err = reader.SaveSnapshot(ctx, annals.Snapshot{StreamID: inventory.StreamID("r1"), Type: "x",
			SchemaVersion: 1, StreamVersion: 1, State: []byte(`{}`)})
		requireSQLState(t, err, "42501")
	})

	t.Run("BI may neither load nor save snapshots", func(t *testing.T) {
		_, _, err := bi.LoadSnapshot(ctx, inventory.StreamID("w1"), inventory.SnapshotType, 1)
		requireSQLState(t, err, "42501")
		_, err = bi.SaveSnapshot(ctx, annals.Snapshot{StreamID: inventory.StreamID("w1"), Type: "x",
			SchemaVersion: 1, StreamVersion: 1, State: []byte(`{}`)})
		requireSQLState(t, err, "42501")
	})
}

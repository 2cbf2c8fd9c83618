package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/internal/pgbouncertest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// tenancySetup is a fresh database with tenancy on.
func tenancySetup(t *testing.T) fixture {
	t.Helper()
	f := setup(t)
	on, err := f.store.EnableTenancy(f.ctx)
	require.NoError(t, err)
	require.True(t, on)
	return f
}

// asTenant runs fn in a transaction of pool under tenant ("" none), committed when fn returns nil.
func asTenant(t *testing.T, pool *pgxpool.Pool, tenant string, fn func(tx pgx.Tx) error) error {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	// For this transaction only, as the Go client does: set_tenant sets the session's tenant,
	// which a pooled connection would keep. Always, so no earlier session setting applies.
	if _, err := tx.Exec(ctx, "SELECT pg_catalog.set_config('annals.tenant', $1, true)", tenant); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// strings1 runs a one-column text query under tenant and returns its rows.
func stringsAs(t *testing.T, pool *pgxpool.Pool, tenant, sql string, args ...any) []string {
	t.Helper()
	var out []string
	require.NoError(t, asTenant(t, pool, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(t.Context(), sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}), sql)
	return out
}

func int64As(t *testing.T, pool *pgxpool.Pool, tenant, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, asTenant(t, pool, tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(t.Context(), sql, args...).Scan(&n)
	}), sql)
	return n
}

func appendAs(t *testing.T, pool *pgxpool.Pool, tenant, streamID string, events string) {
	t.Helper()
	require.NoError(t, asTenant(t, pool, tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(t.Context(), "SELECT * FROM annals.append_events($1, NULL, $2::jsonb)", streamID, events)
		return err
	}))
}

// seedTenants writes order-1 and a tagged event for tenants acme and globex and for no tenant,
// each with data {"who": <tenant or "none">}.
func seedTenants(t *testing.T, f fixture) {
	t.Helper()
	for _, tenant := range []string{"acme", "globex", ""} {
		who := tenant
		if who == "" {
			who = "none"
		}
		appendAs(t, f.pool, tenant, "order-1", fmt.Sprintf(`[{"type": "Placed", "data": {"who": %q}, "tags": ["t:1"]},
			{"type": "Paid", "data": {"who": %q}}]`, who, who))
		appendAs(t, f.pool, tenant, "invoice-"+who, fmt.Sprintf(`[{"type": "Issued", "data": {"who": %q}}]`, who))
	}
}

// Two tenants use the same stream ids: each has its own stream with its own versions.
func TestTenantsShareStreamIDs(t *testing.T) {
	t.Parallel()
	f := tenancySetup(t)
	appendAs(t, f.pool, "acme", "order-1", `[{"type": "A", "data": {}}, {"type": "B", "data": {}}]`)
	appendAs(t, f.pool, "globex", "order-1", `[{"type": "A", "data": {}}]`)
	appendAs(t, f.pool, "", "order-1", `[{"type": "A", "data": {}}, {"type": "B", "data": {}}, {"type": "C", "data": {}}]`)

	require.Equal(t, int64(2), int64As(t, f.pool, "acme", "SELECT stream_version FROM annals.stream_info('order-1')"))
	require.Equal(t, int64(1), int64As(t, f.pool, "globex", "SELECT stream_version FROM annals.stream_info('order-1')"))
	require.Equal(t, int64(3), int64As(t, f.pool, "", "SELECT stream_version FROM annals.stream_info('order-1')"))

	// Expected versions are per tenant: globex's stream is at 1, whatever acme's is.
	require.NoError(t, asTenant(t, f.pool, "globex", func(tx pgx.Tx) error {
		_, err := tx.Exec(f.ctx, `SELECT * FROM annals.append_events('order-1', 1, '[{"type": "B", "data": {}}]')`)
		return err
	}))
	err := asTenant(t, f.pool, "acme", func(tx pgx.Tx) error {
		_, err := tx.Exec(f.ctx, `SELECT * FROM annals.append_events('order-1', 0, '[{"type": "B", "data": {}}]')`)
		return err
	})
	pgErr := requirePgError(t, err, "ST409")
	require.Equal(t, "order-1", detailOf(t, pgErr)["stream_id"], "the DETAIL names the caller's id")
	require.NotContains(t, pgErr.Message, "\x1f")
	require.Equal(t, float64(2), detailOf(t, pgErr)["actual"])

	// Every event carries its tenant, and reads show the caller's ids.
	require.Equal(t, []string{`{"$tenant": "acme"}`, `{"$tenant": "acme"}`},
		stringsAs(t, f.pool, "acme", "SELECT metadata::text FROM annals.read_stream('order-1')"))
	require.Equal(t, []string{"order-1", "order-1"},
		stringsAs(t, f.pool, "acme", "SELECT stream_id FROM annals.read_stream('order-1')"))
	require.Equal(t, []string{"{}", "{}", "{}"},
		stringsAs(t, f.pool, "", "SELECT metadata::text FROM annals.read_stream('order-1')"))

	// A retry of an append is recognized under the tenant (the stored "$tenant" does not count as content).
	id := uuid.New()
	batch := fmt.Sprintf(`[{"id": %q, "type": "R", "data": {"x": 1}, "metadata": {"m": 1}}]`, id)
	for range 2 {
		require.NoError(t, asTenant(t, f.pool, "acme", func(tx pgx.Tx) error {
			_, err := tx.Exec(f.ctx, "SELECT * FROM annals.append_events('order-1', 2, $1::jsonb)", batch)
			return err
		}))
	}
	require.Equal(t, int64(3), int64As(t, f.pool, "acme", "SELECT stream_version FROM annals.stream_info('order-1')"))
}

// Every read path sees only the session tenant's streams; a reader with no tenant sees only the
// untenanted ones.
func TestTenantEveryReadPath(t *testing.T) {
	t.Parallel()
	f := tenancySetup(t)
	_, err := f.pool.Exec(f.ctx, "SELECT annals.create_subscription('subs-acme'), annals.create_subscription('subs-none')")
	require.NoError(t, err)
	seedTenants(t, f)
	settleFeed(t, f)

	for _, tc := range []struct{ tenant, who string }{{"acme", "acme"}, {"globex", "globex"}, {"", "none"}} {
		t.Run("tenant="+tc.who, func(t *testing.T) {
			who := func(sql string, args ...any) []string {
				t.Helper()
				return stringsAs(t, f.pool, tc.tenant, sql, args...)
			}
			only := func(got []string, n int, what string) {
				t.Helper()
				require.Len(t, got, n, what)
				for _, g := range got {
					require.Equal(t, tc.who, g, what)
				}
			}
			only(who("SELECT data->>'who' FROM annals.read_stream('order-1')"), 2, "read_stream")
			only(who("SELECT data->>'who' FROM annals.read_stream('order-1', NULL, 10, true)"), 2, "read_stream backwards")
			only(who("SELECT data->>'who' FROM annals.read_stream_as_of('order-1', as_of_version => 1)"), 1, "read_stream_as_of")
			only(who("SELECT data->>'who' FROM annals.read_stream_as_of('order-1', as_of_time => now() + interval '1 hour')"), 2, "read_stream_as_of time")
			require.Equal(t, []string{"2"}, who("SELECT annals.stream_version_at('order-1', now() + interval '1 hour')::text"))
			require.Equal(t, []string{"order-1"}, who("SELECT stream_id FROM annals.stream_info('order-1')"))
			require.Empty(t, who("SELECT stream_id FROM annals.stream_info('invoice-' || $1)", map[string]string{"acme": "globex", "globex": "none", "none": "acme"}[tc.who]),
				"another tenant's stream does not exist here")
			require.Equal(t, []string{"invoice-" + tc.who, "order-1"}, who("SELECT stream_id FROM annals.list_streams()"))
			require.Equal(t, []string{"order-1"}, who("SELECT stream_id FROM annals.list_streams('order')"))
			require.Equal(t, []string{"order-1"}, who("SELECT stream_id FROM annals.list_streams(NULL, 'invoice-' || $1)", tc.who))
			require.Equal(t, []string{"2"}, who("SELECT event_count::text FROM annals.stream_stats('order-1')"))
			only(who("SELECT data->>'who' FROM annals.read_all()"), 3, "read_all")
			only(who("SELECT data->>'who' FROM annals.read_all(categories => ARRAY['order'])"), 2, "read_all by category")
			only(who("SELECT data->>'who' FROM annals.read_category('order')"), 2, "read_category")
			only(append(who("SELECT data->>'who' FROM annals.read_category('invoice', consumer_member => 0, consumer_size => 2)"),
				who("SELECT data->>'who' FROM annals.read_category('invoice', consumer_member => 1, consumer_size => 2)")...), 1, "read_category by member")
			only(who(`SELECT data->>'who' FROM annals.read_tagged('[{"tags": ["t:1"]}]')`), 1, "read_tagged")
			require.Equal(t, []string{"order-1"}, who(`SELECT stream_id FROM annals.read_tagged('[{"tags": ["t:1"]}]')`))

			// read_event by id: only this tenant's events are found.
			ids := map[string]string{}
			for _, other := range []struct{ tenant, who string }{{"acme", "acme"}, {"globex", "globex"}, {"", "none"}} {
				ids[other.who] = stringsAs(t, f.pool, other.tenant, "SELECT event_id::text FROM annals.read_stream('order-1', NULL, 1)")[0]
			}
			for w, id := range ids {
				got := who("SELECT data->>'who' FROM annals.read_event($1::uuid)", id)
				if w == tc.who {
					require.Equal(t, []string{tc.who}, got, "read_event of its own event")
				} else {
					require.Empty(t, got, "read_event of %s's event", w)
				}
			}

			// Snapshots belong to the tenant's stream.
			require.NoError(t, asTenant(t, f.pool, tc.tenant, func(tx pgx.Tx) error {
				_, err := tx.Exec(f.ctx, `SELECT annals.save_snapshot('order-1', 'Order', 1, 2, jsonb_build_object('who', $1::text))`, tc.who)
				return err
			}))
			require.Equal(t, []string{tc.who}, who("SELECT state->>'who' FROM annals.load_snapshot('order-1', 'Order', 1)"))
		})
	}
	// Snapshots were saved by each tenant for its own order-1: none overwrote another's.
	require.Equal(t, []string{"acme"}, stringsAs(t, f.pool, "acme", "SELECT state->>'who' FROM annals.load_snapshot('order-1', 'Order', 1)"))

	// A subscription read under a tenant delivers that tenant's events; dead letters too.
	require.Equal(t, []string{"acme", "acme", "acme"},
		stringsAs(t, f.pool, "acme", "SELECT data->>'who' FROM annals.read_subscription('subs-acme', 0, 100)"))
	require.Equal(t, []string{"none", "none", "none"},
		stringsAs(t, f.pool, "", "SELECT data->>'who' FROM annals.read_subscription('subs-none', 0, 100)"))
	require.NoError(t, asTenant(t, f.pool, "acme", func(tx pgx.Tx) error {
		_, err := tx.Exec(f.ctx, "SELECT annals.park_event('subs-acme', 0, 'order-1', 1, 3, 'boom')")
		return err
	}))
	require.Equal(t, int64(0), int64As(t, f.pool, "globex", "SELECT annals.retry_dead_letters('subs-acme')"), "globex sees no dead letter to retry")
	require.Equal(t, int64(1), int64As(t, f.pool, "acme", "SELECT annals.retry_dead_letters('subs-acme')"))
	require.Equal(t, []string{"order-1"}, stringsAs(t, f.pool, "acme", "SELECT (event).stream_id FROM annals.read_dead_letters('subs-acme')"))
	require.Equal(t, []string{"order-1"}, stringsAs(t, f.pool, "acme", "SELECT stream_id FROM annals.dead_letters"))
	require.Empty(t, stringsAs(t, f.pool, "globex", "SELECT (event).stream_id FROM annals.read_dead_letters('subs-acme')"))
	require.Empty(t, stringsAs(t, f.pool, "", "SELECT stream_id FROM annals.dead_letters"))
}

// Row-level security holds for a client that calls nothing of Annals' and reads or writes the
// tables directly as a member of annals_owner (FORCE: the tables' owner is bound too).
func TestTenantPoliciesBindDirectAccess(t *testing.T) {
	t.Parallel()
	f := tenancySetup(t)
	seedTenants(t, f)
	member := loginRole(t, f, "annals_owner")
	pool, _ := f.as(t, member)

	require.Equal(t, []string{"acme\x1finvoice-acme", "acme\x1forder-1", "acme\x1forder-1"},
		stringsAs(t, pool, "acme", "SELECT stream_id FROM annals_internal.events ORDER BY stream_id"))
	require.Equal(t, []string{"invoice-none", "order-1", "order-1"},
		stringsAs(t, pool, "", "SELECT stream_id FROM annals_internal.events ORDER BY stream_id"))
	require.Equal(t, []string{"globex\x1finvoice-globex", "globex\x1forder-1"},
		stringsAs(t, pool, "globex", "SELECT stream_id FROM annals_internal.streams ORDER BY stream_id"))
	// A raw SET of the setting is honoured by the policies the same way.
	require.NoError(t, asTenant(t, pool, "", func(tx pgx.Tx) error {
		if _, err := tx.Exec(f.ctx, "SET LOCAL annals.tenant = 'globex'"); err != nil {
			return err
		}
		var n int64
		if err := tx.QueryRow(f.ctx, "SELECT count(*) FROM annals_internal.events").Scan(&n); err != nil {
			return err
		}
		require.Equal(t, int64(3), n)
		return nil
	}))

	// WITH CHECK: a row of another tenant can never be written, not even by the owner's members.
	err := asTenant(t, pool, "acme", func(tx pgx.Tx) error {
		_, err := tx.Exec(f.ctx, `UPDATE annals_internal.streams SET stream_id = 'globex' || chr(31) || 'order-9'
			WHERE stream_id = 'acme' || chr(31) || 'order-1'`)
		return err
	})
	requirePgError(t, err, "42501")
	err = asTenant(t, pool, "acme", func(tx pgx.Tx) error {
		_, err := tx.Exec(f.ctx, `INSERT INTO annals_internal.snapshots (stream_id, snapshot_type, schema_version, stream_version, state, saved_at)
			VALUES ('globex' || chr(31) || 'order-1', 'X', 1, 1, '{}', now())`)
		return err
	})
	requirePgError(t, err, "42501")
	// Under '*' an owner member sees every tenant.
	require.Equal(t, int64(9), int64As(t, pool, "*", "SELECT count(*) FROM annals_internal.events"))

	// Every table holding per-stream rows has the policy, with FORCE.
	rows := stringsAs(t, f.pool, "", `SELECT c.relname || ':' || c.relrowsecurity || ':' || c.relforcerowsecurity
		FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
		WHERE n.nspname = 'annals_internal' AND c.relkind IN ('r', 'p')
		  AND EXISTS (SELECT FROM pg_catalog.pg_attribute AS a WHERE a.attrelid = c.oid AND a.attname = 'stream_id')
		ORDER BY 1`)
	for _, r := range rows {
		if strings.HasPrefix(r, "lifecycle_log:") {
			continue // the audit trail is the owner's, read by no Annals read
		}
		require.True(t, strings.HasSuffix(r, ":true:true"), r)
	}
	require.NotEmpty(t, rows)
}

// The tenant cannot change inside a transaction once it has written or set a tenant (ST424).
func TestTenantSwitchInsideTransaction(t *testing.T) {
	t.Parallel()
	f := tenancySetup(t)
	ctx := f.ctx

	// After a write.
	err := asTenant(t, f.pool, "acme", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT * FROM annals.append_events('order-1', NULL, '[{"type": "A", "data": {}}]')`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT annals.set_tenant('globex')")
		return err
	})
	pgErr := requirePgError(t, err, "ST424")
	require.Equal(t, map[string]any{"tenant": "globex", "current": "acme"}, detailOf(t, pgErr))
	require.NotEmpty(t, pgErr.Hint)
	require.True(t, errors.Is(mapped(err), annals.ErrTenantSwitch))

	// Clearing it after a write is a switch too.
	err = asTenant(t, f.pool, "acme", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT * FROM annals.append_events('order-1', NULL, '[{"type": "A", "data": {}}]')`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT annals.set_tenant(NULL)")
		return err
	})
	requirePgError(t, err, "ST424")

	// After set_tenant set another one in this transaction, before any write.
	err = asTenant(t, f.pool, "", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT annals.set_tenant('acme')"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT annals.set_tenant('globex')")
		return err
	})
	requirePgError(t, err, "ST424")
	// A raw SET LOCAL is not checked (the README says so): set_tenant may follow it before a write.
	require.NoError(t, asTenant(t, f.pool, "acme", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT annals.set_tenant('globex')")
		return err
	}))

	// Setting the same tenant again is no switch; a new transaction may switch.
	require.NoError(t, asTenant(t, f.pool, "acme", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT * FROM annals.append_events('order-2', NULL, '[{"type": "A", "data": {}}]')`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT annals.set_tenant('acme')")
		return err
	}))
	conn, err := f.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	for _, tenant := range []string{"acme", "globex", "", "acme"} {
		require.NoError(t, annals.SetTenant(ctx, conn, tenant))
		var got *string
		require.NoError(t, conn.QueryRow(ctx, "SELECT annals.current_tenant()").Scan(&got))
		if tenant == "" {
			require.Nil(t, got)
		} else {
			require.Equal(t, tenant, *got)
		}
	}
	require.NoError(t, annals.SetTenant(ctx, conn, ""))
	// SetTenant inside a transaction maps ST424 to ErrTenantSwitch.
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, annals.SetTenant(ctx, tx, "acme"))
	err = annals.SetTenant(ctx, tx, "globex")
	require.ErrorIs(t, err, annals.ErrTenantSwitch)
	require.NoError(t, tx.Rollback(ctx))
}

// mapped runs a raw driver error through the client's error mapping (annals.Kind).
func mapped(err error) error {
	if k := annals.Kind(err); k != nil {
		return k
	}
	return err
}

// Tenant names follow the name rule; '*' is for members of annals_owner; "$tenant" is Annals'.
func TestTenantNamesAndScopes(t *testing.T) {
	t.Parallel()
	f := tenancySetup(t)
	ctx := f.ctx
	for name, code := range map[string]string{
		"a-b": "ST422", strings.Repeat("x", 64): "ST422", " a": "ST422", "a\x01": "ST422", "a*": "ST422", "$sys": "ST403",
	} {
		_, err := f.pool.Exec(ctx, "SELECT annals.set_tenant($1)", name)
		requirePgError(t, err, code)
	}
	// A raw SET of a malformed tenant is refused by the append.
	err := asTenant(t, f.pool, "", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL annals.tenant = 'a-b'"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `SELECT * FROM annals.append_events('order-1', NULL, '[{"type": "A", "data": {}}]')`)
		return err
	})
	requirePgError(t, err, "ST422")
	// The "$tenant" metadata key is set by Annals only.
	for _, sql := range []string{
		`SELECT * FROM annals.append_events('order-1', NULL, '[{"type": "A", "data": {}, "metadata": {"$tenant": "globex"}}]')`,
		`SELECT * FROM annals.append_event('order-1', NULL, 'A', '{}', '{"$tenant": "globex"}')`,
	} {
		for _, tenant := range []string{"acme", ""} {
			err := asTenant(t, f.pool, tenant, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, sql); return err })
			requirePgError(t, err, "ST403")
		}
	}

	// '*' is refused to a login that is not a member of annals_owner; the raw setting gives it nothing.
	writer := loginRole(t, f, "annals_writer")
	wpool, _ := f.as(t, writer)
	appendAs(t, f.pool, "acme", "order-1", `[{"type": "A", "data": {}}]`)
	appendAs(t, f.pool, "", "order-1", `[{"type": "A", "data": {}}]`)
	_, err = wpool.Exec(ctx, "SELECT annals.set_tenant('*')")
	requirePgError(t, err, "42501")
	require.NoError(t, asTenant(t, wpool, "", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL annals.tenant = '*'"); err != nil {
			return err
		}
		var n int64
		require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM annals.read_all()").Scan(&n))
		require.Zero(t, n, "a non-owner under '*' sees nothing")
		return nil
	}))
	settleFeed(t, f)
	require.Equal(t, int64(2), int64As(t, f.pool, "*", "SELECT count(*) FROM annals.read_all()"))
	require.Equal(t, int64(2), int64As(t, f.pool, "*", "SELECT count(*) FROM annals.read_category('order')"))

	// Feed-wide work needs '*' when tenancy is on.
	for _, sql := range []string{"SELECT annals.run_async_projections()", "SELECT count(*) FROM annals.refresh_views()",
		"SELECT annals.compress_events(interval '1 day')"} {
		for _, tenant := range []string{"acme", ""} {
			err := asTenant(t, f.pool, tenant, func(tx pgx.Tx) error { _, err := tx.Exec(ctx, sql); return err })
			requirePgError(t, err, "42501")
		}
		require.NoError(t, asTenant(t, f.pool, "*", func(tx pgx.Tx) error { _, err := tx.Exec(ctx, sql); return err }), sql)
	}
	// Tenancy cannot be turned off while tenants' streams exist.
	_, err = f.pool.Exec(ctx, "SELECT annals.disable_tenancy()")
	requirePgError(t, err, "ST409")
}

// Without tenancy configured nothing changes: no policy exists, no row-level security is on, and
// setting a tenant is refused (it would isolate nothing).
func TestTenancyOff(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var n int64
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT count(*) FROM pg_catalog.pg_policies WHERE schemaname = 'annals_internal'`).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT count(*) FROM pg_catalog.pg_class AS c
		JOIN pg_catalog.pg_namespace AS ns ON ns.oid = c.relnamespace
		WHERE ns.nspname = 'annals_internal' AND (c.relrowsecurity OR c.relforcerowsecurity)`).Scan(&n))
	require.Zero(t, n)
	on, err := f.store.TenancyEnabled(f.ctx)
	require.NoError(t, err)
	require.False(t, on)
	_, err = f.pool.Exec(f.ctx, "SELECT annals.set_tenant('acme')")
	requirePgError(t, err, "55000")
	err = asTenant(t, f.pool, "", func(tx pgx.Tx) error {
		if _, err := tx.Exec(f.ctx, "SET LOCAL annals.tenant = 'acme'"); err != nil {
			return err
		}
		_, err := tx.Exec(f.ctx, `SELECT * FROM annals.append_events('order-1', NULL, '[{"type": "A", "data": {}}]')`)
		return err
	})
	requirePgError(t, err, "55000")

	// The policies change the history tables, which the history guard leaves to superusers.
	member := loginRole(t, f, "annals_owner")
	_, memberClient := f.as(t, member)
	_, err = memberClient.EnableTenancy(f.ctx)
	requirePgError(t, err, "ST401")

	// On and off again while no tenant has a stream.
	_, err = f.store.EnableTenancy(f.ctx)
	require.NoError(t, err)
	again, err := f.store.EnableTenancy(f.ctx)
	require.NoError(t, err)
	require.False(t, again, "idempotent")
	var dropped bool
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT annals.disable_tenancy()").Scan(&dropped))
	require.True(t, dropped)
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT count(*) FROM pg_catalog.pg_policies WHERE schemaname = 'annals_internal'`).Scan(&n))
	require.Zero(t, n)
}

// The feed under one tenant stays gap-free while tenants append interleaved: an older open
// transaction of any tenant holds the barrier, and a reader following its checkpoint sees every
// event of its tenant exactly once, in order.
func TestTenantFeedGapFree(t *testing.T) {
	t.Parallel()
	f := tenancySetup(t)
	ctx := f.ctx

	// The barrier: acme's open append holds back acme's later committed one.
	open, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = open.Exec(ctx, "SELECT annals.set_tenant('acme')")
	require.NoError(t, err)
	_, err = open.Exec(ctx, `SELECT * FROM annals.append_events('slow-1', NULL, '[{"type": "A", "data": {}}]')`)
	require.NoError(t, err)
	appendAs(t, f.pool, "acme", "fast-1", `[{"type": "A", "data": {}}]`)
	appendAs(t, f.pool, "globex", "fast-1", `[{"type": "A", "data": {}}]`)
	require.Empty(t, stringsAs(t, f.pool, "acme", "SELECT stream_id FROM annals.read_all()"))
	require.Empty(t, stringsAs(t, f.pool, "globex", "SELECT stream_id FROM annals.read_all()"), "any older transaction holds the barrier")
	require.NoError(t, open.Commit(ctx))
	// Other tests' transactions (the barrier is cluster-wide) may hold it a while longer.
	require.Eventually(t, func() bool {
		return len(stringsAs(t, f.pool, "acme", "SELECT stream_id FROM annals.read_all()")) == 2
	}, time.Minute, 20*time.Millisecond)
	require.Equal(t, []string{"slow-1", "fast-1"}, stringsAs(t, f.pool, "acme", "SELECT stream_id FROM annals.read_all()"))

	// Interleaved writers of two tenants, a follower per tenant.
	const writers, each = 4, 25
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := []string{"acme", "globex"}[w%2]
			client := annals.New(f.pool, annals.ClientOptions{Tenant: tenant})
			for i := range each {
				_, err := client.Append(ctx, fmt.Sprintf("w%d-%d", w, i%3), annals.Any, ev(t, "E", map[string]any{"w": w, "i": i}))
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	seen := map[string][]string{}
	total := map[string]int{"acme": 2 + writers/2*each, "globex": 1 + writers/2*each}
	var mu sync.Mutex
	var followers sync.WaitGroup
	for _, tenant := range []string{"acme", "globex"} {
		followers.Add(1)
		go func() {
			defer followers.Done()
			client := annals.New(f.pool, annals.ClientOptions{Tenant: tenant})
			var cp annals.Checkpoint
			deadline := time.Now().Add(2 * time.Minute)
			for n := 0; n < total[tenant] && time.Now().Before(deadline); {
				page, err := client.ReadAll(ctx, cp, annals.FeedOptions{MaxCount: 7})
				if err != nil {
					t.Error(err)
					return
				}
				for _, e := range page {
					if got := metaTenant(t, e); got != tenant {
						t.Errorf("%s's follower got an event of %q", tenant, got)
					}
					mu.Lock()
					seen[tenant] = append(seen[tenant], e.EventID.String())
					mu.Unlock()
					cp = annals.Checkpoint{TransactionID: e.TransactionID, GlobalPosition: e.GlobalPosition}
					n++
				}
				if len(page) == 0 {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	<-done
	followers.Wait()
	settleFeed(t, f)
	for _, tenant := range []string{"acme", "globex"} {
		want := stringsAs(t, f.pool, tenant, "SELECT event_id::text FROM annals.read_all(max_count => 100000)")
		require.Len(t, want, total[tenant])
		require.Equal(t, want, seen[tenant], "the follower saw every event of %s once, in feed order", tenant)
	}
}

// Projection tables opt in: BI logins with a tenant each (ALTER ROLE ... SET annals.tenant) see
// their tenant's rows only, in the projection table and through the event reads.
func TestTenantProjectionPolicyAndBI(t *testing.T) {
	t.Parallel()
	f := tenancySetup(t)
	ctx := f.ctx
	_, err := f.pool.Exec(ctx, `
		CREATE SCHEMA rm AUTHORIZATION annals_owner;
		CREATE TABLE rm.orders (tenant text, stream_id text NOT NULL, n bigint NOT NULL,
		                        CONSTRAINT orders_key UNIQUE NULLS NOT DISTINCT (stream_id, tenant));
		ALTER TABLE rm.orders OWNER TO annals_owner;
		CREATE FUNCTION rm.on_orders(events annals.event[]) RETURNS void LANGUAGE sql AS $fn$
			INSERT INTO rm.orders AS o (tenant, stream_id, n)
			SELECT e.metadata->>'$tenant', e.stream_id, count(*) FROM pg_catalog.unnest(events) AS e
			 GROUP BY 1, 2
			ON CONFLICT ON CONSTRAINT orders_key DO UPDATE SET n = o.n + excluded.n
		$fn$;
		ALTER FUNCTION rm.on_orders(annals.event[]) OWNER TO annals_owner;
		GRANT USAGE ON SCHEMA rm TO annals_bi;
		GRANT SELECT ON rm.orders TO annals_bi;
		SELECT annals.register_projection('orders', 'rm.on_orders(annals.event[])'::regprocedure, ARRAY['rm.orders'::regclass],
		                                  categories => ARRAY['order']);`)
	require.NoError(t, err)

	// Not a projection's table: refused; a login outside annals_owner: refused.
	_, err = f.pool.Exec(ctx, "CREATE TABLE rm.other (tenant text)")
	require.NoError(t, err)
	_, err = f.store.EnableTenantPolicy(ctx, "rm.other", "")
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	_, err = f.store.EnableTenantPolicy(ctx, "rm.orders", "nope")
	require.ErrorIs(t, err, annals.ErrInvalidArgument)
	writer := loginRole(t, f, "annals_writer")
	_, wclient := f.as(t, writer)
	_, err = wclient.EnableTenantPolicy(ctx, "rm.orders", "")
	require.ErrorIs(t, err, annals.ErrPermissionDenied)

	created, err := f.store.EnableTenantPolicy(ctx, "rm.orders", "")
	require.NoError(t, err)
	require.True(t, created)
	created, err = f.store.EnableTenantPolicy(ctx, "rm.orders", "tenant")
	require.NoError(t, err)
	require.False(t, created, "idempotent")

	seedTenants(t, f) // inline projection: each tenant's handler call fills its rows
	settleFeed(t, f)

	bi := map[string]*pgxpool.Pool{}
	for _, tenant := range []string{"acme", "globex"} {
		role := loginRole(t, f, "annals_bi", "annals_reader")
		_, err := f.pool.Exec(ctx, "ALTER ROLE "+role+" SET annals.tenant = '"+tenant+"'")
		require.NoError(t, err)
		bi[tenant], _ = f.as(t, role)
	}
	noTenant := loginRole(t, f, "annals_bi", "annals_reader")
	bi[""], _ = f.as(t, noTenant)
	for tenant, pool := range bi {
		rows, err := pool.Query(ctx, "SELECT coalesce(tenant, '') || '/' || stream_id || '/' || n FROM rm.orders ORDER BY 1")
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{tenant + "/order-1/2"}, got, "BI login of tenant %q", tenant)

		rows, err = pool.Query(ctx, "SELECT stream_id || ':' || coalesce(metadata->>'$tenant', '') FROM annals.read_all()")
		require.NoError(t, err)
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		sort.Strings(got)
		want := []string{"invoice-" + map[string]string{"": "none"}[tenant] + tenant + ":" + tenant, "order-1:" + tenant, "order-1:" + tenant}
		require.Equal(t, want, got, "event reads of tenant %q", tenant)
	}
	// The owner (who runs the handlers) is not bound; '*' members see all rows.
	require.Equal(t, int64(3), int64As(t, f.pool, "*", "SELECT count(*) FROM rm.orders"))
}

// The Go client carries a tenant per pool (ClientOptions.Tenant) and per call (WithTenant),
// through every read and write.
func TestTenantGoClient(t *testing.T) {
	t.Parallel()
	f := tenancySetup(t)
	ctx := f.ctx
	acme := annals.New(f.pool, annals.ClientOptions{Tenant: "acme"})
	plain := annals.New(f.pool, annals.ClientOptions{})

	_, err := acme.Append(ctx, "order-1", annals.NoStream, ev(t, "Placed", map[string]any{"who": "acme"}))
	require.NoError(t, err)
	_, err = plain.Append(annals.WithTenant(ctx, "globex"), "order-1", annals.NoStream, ev(t, "Placed", map[string]any{"who": "globex"}))
	require.NoError(t, err)
	_, err = plain.Append(ctx, "order-1", annals.NoStream, ev(t, "Placed", map[string]any{"who": "none"}),
		ev(t, "Paid", map[string]any{"who": "none"}))
	require.NoError(t, err)
	// A per-call tenant overrides the client's; "" means none.
	_, err = acme.Append(annals.WithTenant(ctx, "globex"), "order-1", annals.Exact(1), ev(t, "Paid", map[string]any{"who": "globex"}))
	require.NoError(t, err)
	settleFeed(t, f)

	for _, tc := range []struct {
		ctx    context.Context
		client *annals.Client
		who    string
		n      int64
	}{
		{ctx, acme, "acme", 1},
		{annals.WithTenant(ctx, "globex"), plain, "globex", 2},
		{annals.WithTenant(ctx, "globex"), acme, "globex", 2},
		{annals.WithTenant(ctx, ""), acme, "none", 2},
		{ctx, plain, "none", 2},
	} {
		info, err := tc.client.StreamInfo(tc.ctx, "order-1")
		require.NoError(t, err)
		require.Equal(t, tc.n, info.StreamVersion, tc.who)
		for e, err := range tc.client.ReadStream(tc.ctx, "order-1", annals.ReadOptions{}) {
			require.NoError(t, err)
			require.Equal(t, "order-1", e.StreamID)
			var d struct{ Who string }
			require.NoError(t, json.Unmarshal(e.Data, &d))
			require.Equal(t, tc.who, d.Who, "ReadStream")
		}
		all, err := tc.client.ReadAll(tc.ctx, annals.Checkpoint{}, annals.FeedOptions{})
		require.NoError(t, err)
		require.Len(t, all, int(tc.n))
		cat, err := tc.client.ReadCategory(tc.ctx, "order", annals.Checkpoint{}, annals.FeedOptions{})
		require.NoError(t, err)
		require.Len(t, cat, int(tc.n))
		var listed []string
		for s, err := range tc.client.ListStreams(tc.ctx, annals.ListStreamsOptions{}) {
			require.NoError(t, err)
			listed = append(listed, s.StreamID)
		}
		require.Equal(t, []string{"order-1"}, listed)
		got, err := tc.client.CurrentTenant(tc.ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"none": ""}[tc.who]+strings.TrimPrefix(tc.who, "none"), got)
	}

	// A subscriber of a tenant client gets that tenant's events only.
	_, err = plain.CreateSubscription(ctx, "acme-orders", annals.SubscriptionOptions{})
	require.NoError(t, err)
	got := make(chan string, 10)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := &annals.Subscriber{Client: acme, Name: "acme-orders", Handler: func(_ context.Context, _ pgx.Tx, e annals.RecordedEvent) error {
		got <- e.StreamID + ":" + metaTenant(t, e)
		return nil
	}}
	go func() { _ = sub.Run(sctx) }()
	require.Equal(t, "order-1:acme", <-got)

	// Its dead letters too: parked under acme, then retried (read in the tenant's transaction).
	_, err = plain.CreateSubscription(ctx, "acme-poison", annals.SubscriptionOptions{})
	require.NoError(t, err)
	var poisoned atomic.Bool
	poisoned.Store(true)
	retried := make(chan string, 10)
	poison := &annals.Subscriber{Client: acme, Name: "acme-poison", MaxAttempts: 1, PollInterval: 20 * time.Millisecond,
		Handler: func(_ context.Context, _ pgx.Tx, e annals.RecordedEvent) error {
			if poisoned.Load() {
				return errors.New("cannot digest")
			}
			retried <- e.StreamID + ":" + metaTenant(t, e)
			return nil
		}}
	go func() { _ = poison.Run(sctx) }()
	require.Eventually(t, func() bool { return poison.Stats().Parked == 1 }, time.Minute, 10*time.Millisecond)
	poisoned.Store(false)
	require.Equal(t, int64(1), int64As(t, f.pool, "acme", "SELECT annals.retry_dead_letters('acme-poison')"))
	select {
	case e := <-retried:
		require.Equal(t, "order-1:acme", e)
	case <-time.After(time.Minute):
		t.Fatal("the subscriber did not retry its tenant's dead letter")
	}

	// The Tx twins run in the caller's transaction under the tenant SetTenant set there.
	tx, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	require.NoError(t, annals.SetTenant(ctx, tx, "globex"))
	info, err := plain.StreamInfoTx(ctx, tx, "order-1")
	require.NoError(t, err)
	require.Equal(t, int64(2), info.StreamVersion)
}

// settleFeed waits until the feed's barrier (cluster-wide: other tests' transactions count) has
// passed every stored event.
func settleFeed(t *testing.T, f fixture) {
	t.Helper()
	var stored int64
	require.NoError(t, f.pool.QueryRow(f.ctx, "SELECT count(*) FROM annals_internal.events").Scan(&stored)) // superuser: no policy
	require.Eventually(t, func() bool {
		return int64As(t, f.pool, "*", "SELECT count(*) FROM annals.read_all(max_count => 1000000)") == stored
	}, 2*time.Minute, 20*time.Millisecond)
}

// metaTenant is the "$tenant" of an event's metadata.
func metaTenant(t *testing.T, e annals.RecordedEvent) string {
	var m map[string]any
	require.NoError(t, json.Unmarshal(e.Metadata, &m))
	s, _ := m["$tenant"].(string)
	return s
}

// Through PgBouncer in transaction mode, on one server connection that both tenants' clients
// share, each call carries its own tenant and leaves none behind, in every query mode the
// pooler supports.
func TestTenantThroughPgBouncer(t *testing.T) {
	t.Parallel()
	bouncer := pgbouncertest.Start(t, annalstest.AdminURL(t), pgbouncertest.Options{PoolSize: 1})
	for _, m := range queryModes[1:] {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			direct := annalstest.NewDBURL(t)
			setupPool := connect(t, direct, "", "")
			_, err := setupPool.Exec(t.Context(), "SELECT annals.enable_tenancy()")
			require.NoError(t, err)
			pool := modePool(t, bouncer.URL(t, direct), m.mode)
			ctx := t.Context()
			clients := map[string]*annals.Client{
				"acme":   annals.New(pool, annals.ClientOptions{Tenant: "acme"}),
				"globex": annals.New(pool, annals.ClientOptions{Tenant: "globex"}),
				"":       annals.New(pool, annals.ClientOptions{}),
			}
			for i := range 5 {
				for tenant, c := range clients {
					_, err := c.Append(ctx, "order-1", annals.Exact(int64(i)), ev(t, "E", map[string]any{"who": tenant}))
					require.NoError(t, err, "%s append %d", tenant, i)
					got, err := c.CurrentTenant(ctx)
					require.NoError(t, err)
					require.Equal(t, tenant, got)
				}
			}
			for tenant, c := range clients {
				for e, err := range c.ReadStream(ctx, "order-1", annals.ReadOptions{}) {
					require.NoError(t, err)
					require.Equal(t, tenant, metaTenant(t, e))
				}
				info, err := c.StreamInfo(ctx, "order-1")
				require.NoError(t, err)
				require.Equal(t, int64(5), info.StreamVersion)
			}
		})
	}
}

// Cold tagged events stay their tenant's: after a compress, read_tagged and a conditional
// append's check see only the session tenant's tagged events, and a conflict names the caller's
// stream id.
func TestTenantColdTags(t *testing.T) {
	t.Parallel()
	f := tenancySetup(t)
	ctx := f.ctx
	appendAs(t, f.pool, "acme", "order-1", `[{"type": "Placed", "data": {"who": "acme"}, "tags": ["t:1"]}]`)
	settleFeed(t, f)
	// acme decides after its own tagged event; then globex appends one with the same tag.
	var afterTx string
	var afterPos int64
	require.NoError(t, asTenant(t, f.pool, "acme", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT transaction_id::text, global_position FROM annals.read_tagged('[{"tags": ["t:1"]}]')`).
			Scan(&afterTx, &afterPos)
	}))
	appendAs(t, f.pool, "globex", "order-1", `[{"type": "Placed", "data": {"who": "globex"}, "tags": ["t:1"]}]`)
	settleFeed(t, f)
	require.NoError(t, asTenant(t, f.pool, "*", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT annals.compress_events(interval '0 seconds')")
		return err
	}))
	var cold int64
	require.NoError(t, f.pool.QueryRow(ctx, "SELECT count(*) FROM annals_internal.cold_tags").Scan(&cold)) // superuser: no policy
	require.EqualValues(t, 2, cold, "both tenants' tagged events are cold")

	for _, who := range []string{"acme", "globex"} {
		require.Equal(t, []string{who}, stringsAs(t, f.pool, who, `SELECT data->>'who' FROM annals.read_tagged('[{"tags": ["t:1"]}]')`))
	}
	condition := fmt.Sprintf(`{"query": [{"tags": ["t:1"]}], "after": {"transaction_id": %q, "position": %d}}`, afterTx, afterPos)
	appends := `[{"stream_id": "order-2", "expected_version": 0, "events": [{"type": "Placed", "tags": ["t:1"]}]}]`
	require.NoError(t, asTenant(t, f.pool, "acme", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT * FROM annals.append_conditional($1::jsonb, $2::jsonb)", appends, condition)
		return err
	}), "globex's cold event does not touch acme's facts")
	// Globex's own cold event is after that position: its check fails and names its stream as it knows it.
	err := asTenant(t, f.pool, "globex", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT * FROM annals.append_conditional($1::jsonb, $2::jsonb)", appends, condition)
		return err
	})
	pgErr := requirePgError(t, err, "ST409")
	require.Equal(t, "order-1", detailOf(t, pgErr)["stream_id"])
	require.NotContains(t, pgErr.Message, "\x1f")
}

// A 40001 for an append under a tenant names the stream as the tenant wrote it, in the message
// and the DETAIL (raise_error strips the stored prefix).
func TestTenant40001NamesTheStreamAsWritten(t *testing.T) {
	t.Parallel()
	f := tenancySetup(t)
	begin := func() pgx.Tx {
		tx, err := f.pool.Begin(f.ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(f.ctx)) })
		require.NoError(t, annals.SetTenant(f.ctx, tx, "acme"))
		return tx
	}
	txA := begin()
	_, err := txA.Exec(f.ctx, "SELECT pg_catalog.pg_current_xact_id()") // A's id is the older
	require.NoError(t, err)
	txB := begin()
	_, err = f.store.AppendTx(f.ctx, txB, "order-9", annals.Any, ev(t, "Placed", nil))
	require.NoError(t, err)
	require.NoError(t, txB.Commit(f.ctx))

	_, err = f.store.AppendTx(f.ctx, txA, "order-9", annals.Any, ev(t, "Placed", nil))
	pgErr := requirePgError(t, err, "40001")
	require.Equal(t, "order-9", detailOf(t, pgErr)["stream_id"])
	require.Contains(t, pgErr.Message, "stream 'order-9' was appended to by a younger transaction")
	require.NotContains(t, pgErr.Message+pgErr.Detail, "acme")
}

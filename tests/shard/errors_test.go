package shard_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/annals-db/annals/goapi/shard"
	"github.com/annals-db/annals/internal/pgutil"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// Every contract error of the stream calls reaches a caller of the proxy exactly as a caller of
// the owning shard gets it: same SQLSTATE, message, JSON DETAIL and HINT. Each case runs the same
// failing call both ways against the same shard state, so the two errors must be identical.
func TestErrorsPassThroughTheProxyUnchanged(t *testing.T) {
	t.Parallel()
	s := newStore(t, 3)
	ctx := s.ctx
	const id = "00000000-0000-4000-8000-00000000000a"

	setup := []string{
		`SELECT * FROM annals.append_events('acct-1', 0, '[{"type": "Opened", "data": {}}]')`,
		`SELECT * FROM annals.append_events('acct-2', 0, '[{"type": "Opened", "data": {}, "id": "` + id + `"}]')`,
		`SELECT * FROM annals.append_events('gone-1', 0, '[{"type": "Opened", "data": {}}]')`,
		`SELECT annals.delete_stream('gone-1', 1, 'test')`,
		`SELECT annals.save_snapshot('acct-1', 'Account', 1, 1, '{}')`,
	}
	for _, q := range setup {
		_, err := s.proxy.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	for _, pool := range s.shards {
		_, err := pool.Exec(ctx, "SELECT annals.configure(max_batch_events => 3)")
		require.NoError(t, err)
	}

	cases := []struct {
		code, stream, sql string
	}{
		{"ST409", "acct-1", `SELECT * FROM annals.append_events('acct-1', 0, '[{"type": "Deposited", "data": {}}]')`},
		{"ST409", "acct-1", `SELECT * FROM annals.append_events('acct-1', 5, '[{"type": "Deposited", "data": {}}]')`},
		{"ST409", "acct-1", `SELECT * FROM annals.append_event('acct-1', 7, 'Deposited', '{}')`},
		{"ST409", "acct-1", `SELECT annals.delete_stream('acct-1', 3)`},
		{"ST412", "acct-2", `SELECT * FROM annals.append_events('acct-2', NULL, '[{"type": "Other", "data": {"x": 1}, "id": "` + id + `"}]')`},
		{"ST410", "gone-1", `SELECT * FROM annals.append_events('gone-1', NULL, '[{"type": "Deposited", "data": {}}]')`},
		{"ST413", "acct-1", `SELECT * FROM annals.append_events('acct-1', NULL, '[{"type": "A", "data": {}}, {"type": "A", "data": {}}, {"type": "A", "data": {}}, {"type": "A", "data": {}}]')`},
		{"ST422", "", `SELECT * FROM annals.append_events(NULL, 0, '[{"type": "A", "data": {}}]')`},
		{"ST422", "acct-1", `SELECT * FROM annals.append_events('acct-1', -7, '[{"type": "A", "data": {}}]')`},
		{"ST422", "acct-1", `SELECT * FROM annals.append_events('acct-1', NULL, '[{"data": {}}]')`},
		{"ST422", "acct-1", `SELECT * FROM annals.append_event('acct-1', NULL, '', '{}')`},
		{"ST422", "acct-1", `SELECT * FROM annals.read_stream('acct-1', max_count => 0)`},
		{"ST422", "acct-1", `SELECT * FROM annals.read_stream_as_of('acct-1', as_of_version => 1, as_of_time => now())`},
		{"ST422", "acct-1", `SELECT annals.stream_version_at('acct-1', NULL)`},
		{"ST422", "acct-1", `SELECT annals.save_snapshot('acct-1', 'Account', 1, 99, '{}')`},
		{"ST422", "", `SELECT * FROM annals.list_streams(max_count => 0)`},
		{"ST403", "acct-1", `SELECT * FROM annals.append_events('acct-1', NULL, '[{"type": "$internal", "data": {}}]')`},
		{"22P02", "acct-1", `SELECT * FROM annals.append_events('acct-1', NULL, '[{"type": "A", "data": {}, "id": "not-a-uuid"}]')`},
	}
	for _, c := range cases {
		t.Run(c.code+" "+c.sql[:min(len(c.sql), 60)], func(t *testing.T) {
			owner := s.shards[0]
			if c.stream != "" {
				owner = s.shards[s.shardOf(t, c.stream)-1]
			}
			viaProxy := pgErr(t, s.proxy, c.sql)
			direct := pgErr(t, owner, c.sql)
			require.Equal(t, direct.Code, viaProxy.Code)
			if c.code != "22P02" {
				require.Equal(t, c.code, viaProxy.Code)
			}
			require.Equal(t, direct.Message, viaProxy.Message)
			require.Equal(t, direct.Detail, viaProxy.Detail)
			require.Equal(t, direct.Hint, viaProxy.Hint)
		})
	}

	// The per-shard feed calls: a shard's errors pass unchanged, an unknown shard is ST422.
	for _, c := range []struct{ viaProxy, direct string }{
		{`SELECT * FROM annals.read_all(2, max_count => 0)`, `SELECT * FROM annals.read_all(max_count => 0)`},
		{`SELECT * FROM annals.read_category(3, '')`, `SELECT * FROM annals.read_category('')`},
		{`SELECT * FROM annals.read_category(1, 'acct', consumer_member => 2, consumer_size => 2)`,
			`SELECT * FROM annals.read_category('acct', consumer_member => 2, consumer_size => 2)`},
	} {
		got, want := pgErr(t, s.proxy, c.viaProxy), pgErr(t, s.shards[0], c.direct)
		require.Equal(t, "ST422", want.Code, c.direct)
		require.Equal(t, []string{want.Code, want.Message, want.Detail, want.Hint},
			[]string{got.Code, got.Message, got.Detail, got.Hint}, c.viaProxy)
	}
	unknown := pgErr(t, s.proxy, `SELECT * FROM annals.read_all(4)`)
	require.Equal(t, "ST422", unknown.Code)
	require.JSONEq(t, `{"argument": "shard", "reason": "no shard 4"}`, unknown.Detail)
	_, err := s.client.ReadShard(ctx, 0, annals.Checkpoint{}, annals.FeedOptions{})
	require.ErrorIs(t, err, annals.ErrInvalidArgument)

	// The Go client maps them the same way: typed errors with the DETAIL's fields.
	_, err = s.client.Append(ctx, "acct-1", annals.Exact(4), event("Deposited", 1))
	var wrong *annals.WrongExpectedVersionError
	require.ErrorAs(t, err, &wrong)
	require.Equal(t, "acct-1", wrong.StreamID)
	require.EqualValues(t, 1, wrong.Actual)
	_, err = s.client.Append(ctx, "gone-1", annals.Any, event("Deposited", 1))
	require.ErrorIs(t, err, annals.ErrStreamDeleted)
}

// A role the proxy does not let append gets the same 42501 as from a shard; a role that may append
// reaches the shard as itself (PL/Proxy connects as the caller), so a shard's own privileges apply.
func TestPrivilegesThroughTheProxy(t *testing.T) {
	t.Parallel()
	s := newStore(t, 3)
	reader := "shard_reader_" + pgutil.RandomHex(4)
	writer := "shard_writer_" + pgutil.RandomHex(4)
	for _, q := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN IN ROLE annals_reader", reader),
		fmt.Sprintf("CREATE ROLE %s LOGIN IN ROLE annals_writer", writer),
	} {
		_, err := s.proxy.Exec(s.ctx, q)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for _, r := range []string{reader, writer} {
			_, _ = s.shards[0].Exec(t.Context(), "DROP ROLE IF EXISTS "+r)
		}
	})
	asRole := func(role string) *pgxpool.Pool {
		cfg, err := pgx.ParseConfig(s.proxyURL)
		require.NoError(t, err)
		cfg.User = role
		cfg.Password = ""
		return connect(t, "postgres://"+role+"@"+cfg.Host+":"+fmt.Sprint(cfg.Port)+"/"+cfg.Database+"?sslmode=disable")
	}
	const appendSQL = `SELECT * FROM annals.append_events('doc-1', NULL, '[{"type": "Written", "data": {}}]')`
	viaProxy := pgErr(t, asRole(reader), appendSQL)
	require.Equal(t, "42501", viaProxy.Code)
	require.Equal(t, "permission denied for function append_events", viaProxy.Message)
	_, err := annals.New(asRole(reader), annals.ClientOptions{}).Append(s.ctx, "doc-1", annals.Any, event("Written", 1))
	require.ErrorIs(t, err, annals.ErrPermissionDenied)

	w := annals.New(asRole(writer), annals.ClientOptions{})
	res, err := w.Append(s.ctx, "doc-1", annals.NoStream, event("Written", 1))
	require.NoError(t, err)
	require.EqualValues(t, 1, res.StreamVersion)
	var recordedBy string
	require.NoError(t, s.shards[s.shardOf(t, "doc-1")-1].QueryRow(s.ctx,
		"SELECT usename FROM pg_stat_activity WHERE usename = $1 LIMIT 1", writer).Scan(&recordedBy),
		"the proxy's connection to the shard runs as the calling role")
	evs := readStream(t, annals.New(asRole(reader), annals.ClientOptions{}), "doc-1")
	require.Len(t, evs, 1)
}

func pgErr(t *testing.T, pool *pgxpool.Pool, sql string) *pgconn.PgError {
	t.Helper()
	_, err := pool.Exec(t.Context(), sql)
	var pe *pgconn.PgError
	require.True(t, errors.As(err, &pe), "%s: want a database error, got %v", sql, err)
	return pe
}

// A proxy database whose annals schema someone else created first is refused: its owner could
// put a function beside the routed calls.
func TestProxySetupRefusesAForeignSchema(t *testing.T) {
	t.Parallel()
	requirePlproxy(t)
	shardURL := annalstest.NewDBURL(t)
	info, err := shard.Conninfo(shardURL)
	require.NoError(t, err)
	proxyURL := newEmptyDB(t)
	proxy := connect(t, proxyURL)
	role := "annals_t_" + pgutil.RandomHex(6)
	_, err = proxy.Exec(t.Context(), "CREATE ROLE "+role+" NOLOGIN; CREATE SCHEMA annals_proxy AUTHORIZATION "+role)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = proxy.Exec(context.Background(), "DROP SCHEMA IF EXISTS annals_proxy CASCADE; DROP ROLE IF EXISTS "+role)
	})

	_, err = shard.Init(t.Context(), proxy, []shard.Shard{{Name: "s1", Pool: connect(t, shardURL), Conninfo: info}},
		shard.InitOptions{Partitions: 16})
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "42501", pgErr.Code)
	require.Contains(t, pgErr.Message, "schema annals_proxy already exists and belongs to "+role)
}

package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"

	annals "github.com/annals-db/annals/goapi"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// shadowFunctions are pg_catalog functions the Annals functions call, re-created in schema evil
// with the same signatures. Each raises SQLSTATE EV001 when it runs.
var shadowFunctions = []struct{ name, args, returns string }{
	{"jsonb_array_elements", "jsonb", "SETOF jsonb"},
	{"jsonb_typeof", "jsonb", "text"},
	{"jsonb_object_keys", "jsonb", "SETOF text"},
	{"pg_advisory_xact_lock", "bigint", "void"},
	{"hashtextextended", "text, bigint", "bigint"},
	{"gen_random_uuid", "", "uuid"},
	{"pg_current_xact_id", "", "xid8"},
	{"clock_timestamp", "", "timestamptz"},
	{"now", "", "timestamptz"},
	{"nextval", "regclass", "bigint"},
	{"split_part", "text, text, integer", "text"},
	{"octet_length", "text", "integer"},
	{"left", "text, integer", "text"},
	{"pg_column_size", "jsonb", "integer"},
}

// shadowOperators are operators on the types Annals compares, re-created in schema evil.
var shadowOperators = []struct{ op, left, right, returns string }{
	{"=", "text", "text", "boolean"},
	{"<>", "text", "text", "boolean"},
	{"=", "uuid", "uuid", "boolean"},
	{"=", "bigint", "bigint", "boolean"},
	{"->>", "jsonb", "text", "text"},
	{"->", "jsonb", "text", "jsonb"},
	{"~", "text", "text", "boolean"},
	{">", "xid8", "xid8", "boolean"},
}

func TestSearchPathHijack(t *testing.T) {
	t.Parallel()
	f := setup(t)
	role := loginRole(t, f, "annals_writer")
	_, err := f.pool.Exec(f.ctx, "CREATE SCHEMA evil AUTHORIZATION "+role)
	require.NoError(t, err)

	// The attacker, an ordinary application login, fills the schema it owns with look-alikes.
	attacker := connect(t, f.pool.Config().ConnString(), "", role)
	var ddl []string
	for _, fn := range shadowFunctions {
		ddl = append(ddl, fmt.Sprintf(`CREATE FUNCTION evil.%s(%s) RETURNS %s LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION USING ERRCODE = 'EV001', MESSAGE = 'shadow %s ran'; END $$`,
			pgx.Identifier{fn.name}.Sanitize(), fn.args, fn.returns, fn.name))
	}
	for i, op := range shadowOperators {
		fn := fmt.Sprintf("evil.op_%d", i)
		ddl = append(ddl,
			fmt.Sprintf(`CREATE FUNCTION %s(%s, %s) RETURNS %s LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION USING ERRCODE = 'EV001', MESSAGE = 'shadow operator %s ran'; END $$`,
				fn, op.left, op.right, op.returns, op.op),
			fmt.Sprintf("CREATE OPERATOR evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %s)", op.op, op.left, op.right, fn))
	}
	ddl = append(ddl,
		`CREATE TABLE evil.events (stream_id text, stream_version bigint)`,
		`CREATE TABLE evil.streams (stream_id text, stream_version bigint)`,
		`CREATE TABLE evil.settings (max_event_bytes integer)`,
		`INSERT INTO evil.settings VALUES (1)`)
	for _, q := range ddl {
		_, err := attacker.Exec(f.ctx, q)
		require.NoError(t, err, q)
	}

	// hijacked returns a single-session client whose search_path puts the look-alikes first and
	// whose session also holds temporary tables named like Annals' own.
	hijacked := func(t *testing.T, searchPath string) (*pgxpool.Pool, *annals.Client) {
		t.Helper()
		cfg, err := pgxpool.ParseConfig(f.pool.Config().ConnString())
		require.NoError(t, err)
		cfg.ConnConfig.User = role
		cfg.ConnConfig.RuntimeParams["search_path"] = searchPath
		cfg.MaxConns = 1
		cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			for _, q := range []string{
				"CREATE TEMP TABLE events (stream_id text, stream_version bigint)",
				"CREATE TEMP TABLE streams (stream_id text, stream_version bigint, state text)",
				"INSERT INTO pg_temp.streams VALUES ('hijack-1', 99, 'deleted')",
				"CREATE TEMP TABLE settings (max_event_bytes integer, max_batch_events integer, max_batch_bytes integer)",
				"INSERT INTO pg_temp.settings VALUES (1, 1, 1)",
			} {
				if _, err := conn.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		}
		pool, err := pgxpool.NewWithConfig(f.ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		return pool, annals.New(pool, annals.ClientOptions{})
	}

	for i, searchPath := range []string{
		"evil, pg_temp, public",
		"evil, pg_catalog, pg_temp",
		"pg_temp, evil, pg_catalog, public",
	} {
		t.Run(searchPath, func(t *testing.T) {
			pool, client := hijacked(t, searchPath)
			if strings.Index(searchPath, "evil") < strings.Index(searchPath, "pg_catalog") {
				// The look-alikes really do win in this session: the test is not vacuous.
				_, err := pool.Exec(f.ctx, "SELECT count(*) FROM jsonb_array_elements('[1]')")
				requirePgError(t, err, "EV001")
				_, err = pool.Exec(f.ctx, "SELECT 'a'::text = 'a'::text")
				requirePgError(t, err, "EV001")
			}

			s := fmt.Sprintf("hijack-%d", i+1)
			res, err := client.Append(f.ctx, s, annals.NoStream,
				annals.EventData{Type: "First", Data: map[string]any{"n": 1}, Metadata: map[string]any{"actor": "a"}},
				annals.EventData{Type: "Second", Data: map[string]any{"n": 2}})
			require.NoError(t, err)
			require.EqualValues(t, 2, res.StreamVersion)
			_, err = pool.Exec(f.ctx, `SELECT * FROM annals.append_events($1, 2, '[{"type":"Third","data":{"n":3}}]')`, s)
			require.NoError(t, err)
			replay, err := client.Append(f.ctx, s, annals.NoStream, annals.EventData{ID: res.EventIDs[0], Type: "First",
				Data: map[string]any{"n": 1}, Metadata: map[string]any{"actor": "a"}},
				annals.EventData{ID: res.EventIDs[1], Type: "Second", Data: map[string]any{"n": 2}})
			require.NoError(t, err, "the replay path runs under the same search path")
			require.Equal(t, res, replay)
			_, err = client.Append(f.ctx, s, annals.Exact(1), annals.EventData{Type: "Late"})
			require.ErrorIs(t, err, annals.ErrWrongExpectedVersion)
			_, err = client.Append(f.ctx, s, annals.Any, annals.EventData{Type: " bad"})
			require.ErrorIs(t, err, annals.ErrInvalidArgument, "validation runs under the same search path")

			got := collect(t, client.ReadStream(f.ctx, s, annals.ReadOptions{}))
			require.Len(t, got, 3)
			for j, e := range got {
				require.EqualValues(t, j+1, e.StreamVersion)
				require.JSONEq(t, fmt.Sprintf(`{"n":%d}`, j+1), string(e.Data))
			}
			require.Len(t, collect(t, client.ReadStream(f.ctx, s, annals.ReadOptions{Backwards: true, Limit: 2})), 2)
			require.Len(t, collect(t, client.ReadStreamAsOf(f.ctx, s, annals.AtVersion(1))), 1)
			require.Len(t, collect(t, client.ReadStreamAsOf(f.ctx, s, annals.AtTime(got[2].RecordedAt))), 3)
			info, err := client.StreamInfo(f.ctx, s)
			require.NoError(t, err)
			require.Equal(t, annals.StreamInfo{StreamID: s, StreamVersion: 3, CreatedAt: info.CreatedAt,
				UpdatedAt: info.UpdatedAt, State: "active"}, info)
			require.NoError(t, client.CheckSchema(f.ctx))
			_, err = client.DeleteStream(f.ctx, s, annals.Exact(3), "hijack test")
			require.NoError(t, err)

			// The real tables hold the real rows; the decoys are untouched.
			var decoys int64
			require.NoError(t, pool.QueryRow(f.ctx, `SELECT (SELECT count(*) FROM pg_temp.events)
				+ (SELECT count(*) FROM evil.events) + (SELECT count(*) FROM evil.streams)`).Scan(&decoys))
			require.Zero(t, decoys)
			require.EqualValues(t, 3, f.countRows(t, s))
		})
	}
}

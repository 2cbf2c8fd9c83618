package main

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// pgx's cached statements behind a pooler in transaction mode fail with 42P05 or 26000: the
// hint names the pooler and the remedy, not migrations.
func TestExplainPreparedStatementErrorsNamePoolers(t *testing.T) {
	t.Parallel()
	for code, msg := range map[string]string{
		"42P05": `prepared statement "stmtcache_4ab1c2" already exists`,
		"26000": `prepared statement "stmtcache_4ab1c2" does not exist`,
	} {
		err := fmt.Errorf("annals: read all: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: msg})
		got := explain(err)
		require.Contains(t, got, "SQLSTATE "+code+" prepared statement", got)
		require.Contains(t, got, "default_query_exec_mode=cache_describe", got)
		require.Contains(t, got, "max_prepared_statements", got)
		require.NotContains(t, got, "annals migrate", got)
	}
}

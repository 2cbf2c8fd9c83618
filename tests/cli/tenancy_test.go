package cli_test

import (
	"bytes"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// M15 tenants from the command line: turning tenancy on, --tenant and ANNALS_TENANT scoping
// appends and reads, a bad tenant name as a usage error.
func TestCLITenancy(t *testing.T) {
	t.Parallel()
	db := newDB(t)

	require.Contains(t, ok(t, db, "tenancy", "status"), "tenancy: off")
	require.Contains(t, ok(t, db, "tenancy", "enable"), "tenancy enabled")
	require.Contains(t, ok(t, db, "tenancy", "enable"), "tenancy was already enabled")
	require.Regexp(t, `tenancy: on\ntenant: +acme`, ok(t, db, "tenancy", "status", "--tenant", "acme"))

	ok(t, db, "append", "order-1", "--tenant", "acme", "--expected", "no-stream", "--type", "Placed", "--data", `{"who": "acme"}`)
	// ANNALS_TENANT, as the environment gives it.
	cmd := exec.CommandContext(t.Context(), bin, "append", "order-1", "--expected", "no-stream", "--type", "Placed", "--data", `{"who": "globex"}`)
	cmd.Env = env("DATABASE_URL="+db, "ANNALS_TENANT=globex")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Run(), out.String())

	acme := ok(t, db, "read", "order-1", "--tenant", "acme")
	require.Contains(t, acme, `"who": "acme"`)
	require.NotContains(t, acme, "globex")
	globex := ok(t, db, "read", "order-1", "--tenant", "globex")
	require.Contains(t, globex, `"who": "globex"`)
	require.NotContains(t, globex, `"acme"`)
	none := annals(t, db, "read", "order-1")
	require.NotContains(t, none.stdout+none.stderr, "acme")
	require.NotContains(t, none.stdout+none.stderr, "globex")

	r := annals(t, db, "read", "order-1", "--tenant", "a-b")
	require.Equal(t, 2, r.code, "a malformed tenant is a usage error: %s", r.stderr)
	require.Contains(t, r.stderr, "tenant")
}

// With tenancy on, annals worker works for every tenant ('*'): an async projection gets both
// tenants' events and the untenanted ones.
func TestCLIWorkerUnderTenancy(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := poolFor(t, db)
	installAsyncCounter(t, pool, "")
	ok(t, db, "tenancy", "enable")
	for _, tenant := range []string{"acme", "globex", ""} {
		args := []string{"append", "order-1", "--expected", "no-stream", "--type", "Placed", "--data", "{}"}
		if tenant != "" {
			args = append(args, "--tenant", tenant)
		}
		ok(t, db, args...)
	}
	w := start(t, db, "worker", "--metrics-addr", "", "--poll-interval", "100ms")
	w.waitFor(t, w.stderr, regexp.MustCompile(`tenancy is on: working for every tenant`), 30*time.Second)
	deadline := time.Now().Add(feedTimeout)
	for {
		var n int
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT coalesce(sum(n), 0) FROM public.event_counts`).Scan(&n))
		if n == 3 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the worker applied %d of 3 events; log:\n%s", n, w.stderr.String())
		time.Sleep(100 * time.Millisecond)
	}
}

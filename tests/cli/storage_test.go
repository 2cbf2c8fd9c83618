package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// annals storage: stats before and after compress and archive, reads unchanged, and the errors.
func TestCLIStorage(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	appendEvent(t, db, "order-1", "no-stream", "OrderPlaced", `{"total": 12}`)
	appendEvent(t, db, "order-1", "1", "OrderPaid", `{"amount": 12}`)
	appendEvent(t, db, "order-2", "no-stream", "OrderPlaced", `{"total": 7}`)
	before := ok(t, db, "read", "order-1", "--json")

	out := ok(t, db, "storage", "stats")
	require.Regexp(t, `(?m)^hot\s+3\s`, out)
	require.Regexp(t, `(?m)^cold\s+0\s`, out)

	// Nothing is 30 days old.
	require.Contains(t, ok(t, db, "storage", "compress", "--older-than", "30d"), "moved 0 events")
	out = ok(t, db, "storage", "archive", "order-1", "--expected", "2")
	require.Equal(t, "archived order-1: 2 events moved to cold storage\n", out)
	require.Equal(t, before, ok(t, db, "read", "order-1", "--json"))
	// Only events below every running transaction move (the feed's barrier is cluster-wide, and
	// other tests' transactions may hold it for a moment): try until order-2's event has moved.
	for try := 0; ; try++ {
		require.Less(t, try, 300, "order-2's event never moved")
		out := ok(t, db, "storage", "compress", "--older-than", "0d", "--batch", "1")
		require.Regexp(t, `^moved [01] events to cold storage in `, out)
		if strings.HasPrefix(out, "moved 1 events") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	lines := jsonLines(t, ok(t, db, "storage", "stats", "--json"))
	require.Len(t, lines, 2)
	require.Equal(t, "hot", lines[0]["tier"])
	require.EqualValues(t, 0, lines[0]["events"])
	require.Equal(t, "cold", lines[1]["tier"])
	require.EqualValues(t, 3, lines[1]["events"])
	require.Contains(t, ok(t, db, "doctor"), "cold: 3 events")

	r := annals(t, db, "storage", "archive", "order-9")
	require.Equal(t, 3, r.code, r.stderr)
	r = annals(t, db, "storage", "archive", "order-2", "--expected", "5")
	require.Equal(t, 4, r.code, r.stderr)
	r = annals(t, db, "storage", "compress")
	require.Equal(t, 2, r.code, r.stderr)
	require.True(t, strings.Contains(r.stderr, "--older-than is required"), r.stderr)
	r = annals(t, db, "storage", "compress", "--older-than", "soon")
	require.Equal(t, 2, r.code, r.stderr)
}

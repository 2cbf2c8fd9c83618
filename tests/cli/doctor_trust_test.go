package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A projection registered over history it never applied, and one whose rebuild failed on its
// first event: doctor fails on both and names the call that fixes each.
func TestCLIDoctorFailsOnIncompleteAndStaleProjections(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := poolFor(t, db)
	appendEvent(t, db, "misc-1", "no-stream", "Old", `{"v":1}`)
	counter := func(name, guard string) {
		execSQL(t, pool, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS public.%[1]s (event_type text PRIMARY KEY, n bigint NOT NULL);
			GRANT SELECT, INSERT, UPDATE, DELETE ON public.%[1]s TO annals_owner;
			CREATE OR REPLACE FUNCTION public.count_%[1]s(events annals.event[]) RETURNS void LANGUAGE plpgsql AS $$
			BEGIN %[2]s
				INSERT INTO public.%[1]s AS c SELECT e.event_type, count(*) FROM unnest(events) AS e GROUP BY 1
				ON CONFLICT (event_type) DO UPDATE SET n = c.n + excluded.n;
			END $$;`, name, guard))
	}
	counter("late", "")
	counter("strict", `IF EXISTS (SELECT FROM unnest(events) AS e WHERE e.event_type = 'Old') THEN
		RAISE EXCEPTION 'cannot count an old event'; END IF;`)
	for _, name := range []string{"late", "strict"} {
		execSQL(t, pool, fmt.Sprintf(`SELECT annals.register_projection('%[1]s', 'public.count_%[1]s(annals.event[])', ARRAY['public.%[1]s']::regclass[])`, name))
	}

	r := annals(t, db, "projections", "rebuild", "strict")
	require.NotEqual(t, 0, r.code, "the rebuild fails on the first event:\n%s\n%s", r.stdout, r.stderr)

	r = annals(t, db, "doctor")
	require.Equal(t, 1, r.code, "doctor must fail:\n%s\n%s", r.stdout, r.stderr)
	lines := strings.Join(doctorLines(t, r.stdout)["projections"], "\n")
	require.Contains(t, lines, "FAIL strict is stale: its last rebuild failed, so its tables are not a replay of history; fix the cause, then annals projections rebuild strict", r.stdout)
	require.Contains(t, lines, "FAIL late is incomplete: it was registered (or changed) after matching events were stored, and its tables miss them; annals projections rebuild late (SELECT annals.rebuild_projection('late'))", r.stdout)

	ok(t, db, "projections", "rebuild", "late")
	counter("strict", "")
	ok(t, db, "projections", "rebuild", "strict")
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "%s\n%s", r.stdout, r.stderr)
}

// A registration that lets a role outside annals_owner run code as annals_owner: a projection
// table handed to such a role after registration.
func TestCLIDoctorFailsOnUntrustedProjectionTables(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	pool := installInventory(t, db)
	role := fmt.Sprintf("annals_cli_dev_%d", time.Now().UnixNano())
	execSQL(t, pool, "CREATE ROLE "+role)
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
	execSQL(t, pool, "ALTER TABLE inventory.item_counts_p2 OWNER TO "+role)

	r := annals(t, db, "doctor")
	require.Equal(t, 1, r.code, "doctor must fail:\n%s\n%s", r.stdout, r.stderr)
	require.Contains(t, doctorLines(t, r.stdout)["projections"],
		"FAIL projection inventory_item_counts runs code others control: inventory.item_counts_p2 is owned by "+role+
			", who is not a member of annals_owner and could add a trigger that runs as annals_owner; ALTER TABLE inventory.item_counts_p2 OWNER TO annals_owner", r.stdout)

	execSQL(t, pool, "ALTER TABLE inventory.item_counts_p2 OWNER TO annals_owner")
	r = annals(t, db, "doctor")
	require.Equal(t, 0, r.code, "%s\n%s", r.stdout, r.stderr)
}

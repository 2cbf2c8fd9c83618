package cli_test

import (
	"context"
	"testing"
	"time"

	"github.com/annals-db/annals/internal/pgcluster"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// annals doctor on a hot standby says it streams and replays, and how far behind it is; with
// replay paused it warns. On the primary it lists the standby.
func TestCLIDoctorOnAStandby(t *testing.T) {
	t.Parallel()
	primary := pgcluster.ForTest(t, pgcluster.Options{})
	ok(t, primary.URL("postgres"), "migrate")
	standby := pgcluster.StandbyForTest(t, primary)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, pgcluster.WaitForReplay(ctx, primary.URL("postgres"), standby.URL("postgres")))

	r := annals(t, standby.URL("postgres"), "doctor")
	require.Equal(t, 0, r.code, "doctor on a standby:\n%s\n%s", r.stdout, r.stderr)
	lines := doctorLines(t, r.stdout)
	require.Len(t, lines["replication"], 1, r.stdout)
	require.Regexp(t, `^OK a hot standby, WAL receiver streaming from 127\.0\.0\.1:\d+, replay \d+ B(ytes)? behind what it received`, lines["replication"][0])

	r = annals(t, primary.URL("postgres"), "doctor")
	require.Equal(t, 0, r.code, "doctor on the primary:\n%s\n%s", r.stdout, r.stderr)
	lines = doctorLines(t, r.stdout)
	require.Regexp(t, `^OK a primary streaming to 1 standby\(s\): \S+ \(127\.0\.0\.1\) streaming, replay .* behind`, lines["replication"][0])

	conn, err := pgx.Connect(ctx, standby.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT pg_wal_replay_pause()")
	require.NoError(t, err)
	r = annals(t, standby.URL("postgres"), "doctor")
	lines = doctorLines(t, r.stdout)
	require.Regexp(t, `^WARN a hot standby whose replay is paused .*pg_wal_replay_resume\(\)`, lines["replication"][0], r.stdout)
}

package cli_test

import (
	"context"
	"regexp"
	"syscall"
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
	require.Regexp(t, `^OK a hot standby, WAL receiver streaming from 127\.0\.0\.1:\d+, replay (\d+ B|\d+\.\d [KMG]iB) behind what it received`, lines["replication"][0])

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

// annals worker exports each streaming standby's replay lag: bytes and seconds; with the
// standby's replay paused and appends going on, the bytes grow.
func TestCLIWorkerExportsReplicaLag(t *testing.T) {
	t.Parallel()
	primary := pgcluster.ForTest(t, pgcluster.Options{})
	db := primary.URL("postgres")
	ok(t, db, "migrate")
	standby := pgcluster.StandbyForTest(t, primary)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, pgcluster.WaitForReplay(ctx, db, standby.URL("postgres")))

	w := start(t, db, "worker", "--metrics-addr", "127.0.0.1:0", "--metrics-every", "100ms", "--poll-interval", "100ms")
	url := w.waitFor(t, w.stderr, regexp.MustCompile(`metrics=(http://127\.0\.0\.1:\d+/metrics)`), 30*time.Second)[1]
	lagBytes := `annals_replica_lag_bytes\{addr="127\.0\.0\.1",standby="[^"]+"\}`
	var body string
	require.Eventually(t, func() bool {
		body = scrape(t, url)
		_, found := metric(body, lagBytes)
		return found
	}, feedTimeout, 100*time.Millisecond, "no replica lag metric")
	_, found := metric(body, `annals_replica_lag_seconds\{addr="127\.0\.0\.1",standby="[^"]+"\}`)
	require.True(t, found, body)

	conn, err := pgx.Connect(ctx, standby.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT pg_wal_replay_pause()")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		appendEvent(t, db, "acct-1", "any", "Deposited", `{"n":1}`)
		v, _ := metric(scrape(t, url), lagBytes)
		return v > 0
	}, feedTimeout, 100*time.Millisecond, "the paused standby's lag never showed")
	require.Equal(t, 0, w.stop(t, syscall.SIGTERM, 10*time.Second), w.stderr.String())
}

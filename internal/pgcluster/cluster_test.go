package pgcluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/annals-db/annals/internal/pgcluster"
)

func TestPrimaryStandbyCrashRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	primary := pgcluster.ForTest(t, pgcluster.Options{})
	standby := pgcluster.StandbyForTest(t, primary)

	exec := func(url, sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	count := func(url string) int {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	exec(primary.URL("postgres"), "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 5)")
	if err := pgcluster.WaitForReplay(ctx, primary.URL("postgres"), standby.URL("postgres")); err != nil {
		t.Fatal(err)
	}
	if got := count(standby.URL("postgres")); got != 5 {
		t.Fatalf("standby sees %d rows, want 5", got)
	}
	conn, err := pgx.Connect(ctx, standby.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("standby in recovery = %v, %v", inRecovery, err)
	}
	conn.Close(ctx)

	// A committed row survives an immediate shutdown and crash recovery.
	exec(primary.URL("postgres"), "INSERT INTO t VALUES (6)")
	if err := primary.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	if err := primary.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(primary.URL("postgres")); got != 6 {
		t.Fatalf("after crash recovery the primary has %d rows, want 6", got)
	}
}

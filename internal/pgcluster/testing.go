package pgcluster

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ForTest starts a cluster for one test and removes it when the test ends, also when it fails.
// Without the server binaries (or, as root, without a postgres OS user) the test is skipped,
// unless the CI environment variable is set: then it fails, so CI never passes by skipping.
func ForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("pgcluster: %v", err)
		}
	})
	return c
}

// StandbyForTest starts a streaming hot standby of primary for one test; it is removed when the
// test ends (before the primary, whose cleanup was registered first).
func StandbyForTest(t testing.TB, primary *Cluster) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := primary.StartStandby(ctx)
	if err != nil {
		t.Fatalf("pgcluster: start a standby: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("pgcluster: %v", err)
		}
	})
	return s
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("pgcluster: cannot start a throwaway cluster, and CI is set: %v", err)
	}
	t.Skipf("pgcluster: cannot start a throwaway cluster: %v", err)
}

// WaitForReplay waits until the standby has replayed everything the primary has written so far
// (its current WAL position), so a read on the standby sees every commit made before the call.
func WaitForReplay(ctx context.Context, primaryURL, standbyURL string) error {
	p, err := pgx.Connect(ctx, primaryURL)
	if err != nil {
		return err
	}
	defer p.Close(context.Background())
	var lsn string
	if err := p.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return err
	}
	s, err := pgx.Connect(ctx, standbyURL)
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	for {
		var done bool
		err := s.QueryRow(ctx,
			"SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", lsn).Scan(&done)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("standby did not replay up to %s: %w", lsn, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

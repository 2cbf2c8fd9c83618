package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	annals "github.com/annals-db/annals/goapi"
	"github.com/annals-db/annals/internal/pgcluster"
	"github.com/jackc/pgx/v5/pgxpool"
)

// replicaScenario measures read-your-writes through a streaming hot standby against the same
// read on the primary. It starts its own throwaway primary and standby (internal/pgcluster; a
// standby of the server under test would need replication rights there), so it is opt-in.
func replicaScenario() scenario {
	iterations := func(b *Bench) int {
		if b.cfg.Quick {
			return 50
		}
		return 300
	}
	return scenario{
		name:    "replica",
		summary: "append on a primary, then read it back on a hot standby with read-your-writes vs on the primary",
		optIn:   true,
		estimate: func(b *Bench) time.Duration {
			return 15*time.Second + time.Duration(b.reps*iterations(b))*3*time.Millisecond
		},
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			b.prog.step("replica: start a primary and a hot standby", 10*time.Second)
			primary, err := pgcluster.Start(ctx, pgcluster.Options{Prefix: "annals-bench-"})
			if err != nil {
				return nil, fmt.Errorf("replica: %w", err)
			}
			defer primary.Stop() //nolint:errcheck
			pp, err := pgxpool.New(ctx, primary.URL("postgres"))
			if err != nil {
				return nil, err
			}
			defer pp.Close()
			if _, err := annals.Migrate(ctx, pp); err != nil {
				return nil, err
			}
			standby, err := primary.StartStandby(ctx)
			if err != nil {
				return nil, fmt.Errorf("replica: %w", err)
			}
			defer standby.Stop() //nolint:errcheck
			if err := pgcluster.WaitForReplay(ctx, primary.URL("postgres"), standby.URL("postgres")); err != nil {
				return nil, err
			}
			sp, err := pgxpool.New(ctx, standby.URL("postgres"))
			if err != nil {
				return nil, err
			}
			defer sp.Close()
			client := annals.New(pp, annals.ClientOptions{Replicas: []*pgxpool.Pool{sp},
				Replica: annals.ReplicaOptions{WaitBound: 10 * time.Second}})

			k := iterations(b)
			var rywS, primS, extraS, checkS, pingS []float64
			fallbacks := uint64(0)
			for rep := -1; rep < b.reps; rep++ { // rep -1 warms up
				if rep >= 0 {
					b.prog.step(fmt.Sprintf("replica (%d/%d)", rep+1, b.reps), time.Duration(k)*3*time.Millisecond)
				}
				var ryw, prim, extra, check, ping []float64
				for i := range k {
					stream := fmt.Sprintf("replica-%d-%d", rep+1, i)
					res, err := client.Append(ctx, stream, annals.NoStream, annals.EventData{Type: "Happened"})
					if err != nil {
						return nil, err
					}
					read := func(c annals.Consistency) (float64, error) {
						t0 := time.Now()
						info, err := client.StreamInfo(annals.WithConsistency(ctx, c), stream)
						d := ms(time.Since(t0))
						if err == nil && info.StreamVersion != 1 {
							err = errors.New("replica: a stale read")
						}
						return d, err
					}
					// Alternate which goes first: the second read finds a warmer cache.
					var r, p float64
					if i%2 == 0 {
						r, err = read(annals.ReadYourWrites(res.TransactionID))
						if err == nil {
							p, err = read(annals.OnPrimary)
						}
					} else {
						p, err = read(annals.OnPrimary)
						if err == nil {
							r, err = read(annals.ReadYourWrites(res.TransactionID))
						}
					}
					if err != nil {
						return nil, err
					}
					ryw, prim, extra = append(ryw, r), append(prim, p), append(extra, r-p)
					// The check alone (it has replayed by now) against the cheapest statement.
					t0 := time.Now()
					if _, err := sp.Exec(ctx, "SELECT annals.wait_for($1::xid8, '0')", res.TransactionID); err != nil {
						return nil, err
					}
					check = append(check, ms(time.Since(t0)))
					t0 = time.Now()
					if _, err := sp.Exec(ctx, "SELECT 1"); err != nil {
						return nil, err
					}
					ping = append(ping, ms(time.Since(t0)))
				}
				if rep >= 0 {
					rywS, primS, extraS = append(rywS, median(ryw)), append(primS, median(prim)), append(extraS, median(extra))
					checkS, pingS = append(checkS, median(check)), append(pingS, median(ping))
				}
			}
			fallbacks = client.ReplicaStats().WaitFallbacks
			method := fmt.Sprintf("Go client, one append on the primary then StreamInfo of that stream twice, alternated: with ReadYourWrites(token) "+
				"(served by the standby after annals.wait_for(token, '0'), polling while it replays) and OnPrimary; throwaway primary and standby on this machine; "+
				"%d reps of %d, median of medians; %d waits fell back to the primary", b.reps, k, fallbacks)
			extra := figure("read-your-writes extra latency over a primary read", "ms", extraS, nil, "", method, &goal{onValue: true, x: 5})
			return []Result{
				figure("read-your-writes read on a standby", "ms", rywS, primS, "the same read on the primary", method, nil),
				extra,
				figure("wait_for(token, '0') on a standby, replayed", "ms", checkS, pingS, "SELECT 1 on the standby",
					fmt.Sprintf("one pooled connection each, %d reps of %d, median of medians", b.reps, k), nil),
			}, nil
		},
	}
}

package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The tenancy scenario measures what multi-tenancy (functions/003_tenancy.sql) costs an append:
// single-event append_events calls with tenancy on (row-level security on the store's tables)
// and no tenant set, against the same calls with tenancy off, in alternated blocks (turning
// tenancy on and off is DDL: not between single calls); then, tenancy on, calls under a tenant
// against calls with none, alternated call by call. What the code for tenancy costs with tenancy
// off is the append-variants scenario's m15_without_tenancy.

func tenancyScenario() scenario {
	iterations := func(b *Bench) int {
		if b.cfg.Quick {
			return 200
		}
		return 1000
	}
	return scenario{
		name:    "tenancy",
		summary: "single-event appends with tenancy on (no tenant, and under a tenant) vs tenancy off",
		optIn:   true,
		estimate: func(b *Bench) time.Duration {
			return time.Duration(b.reps*iterations(b)*4) * 300 * time.Microsecond
		},
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			conns, err := b.connect(ctx, 1, nil)
			if err != nil {
				return nil, err
			}
			defer closeAll(conns)
			c := conns[0]
			k := iterations(b)
			seq := 0
			one := func(tenant string) func() (time.Duration, error) {
				return func() (time.Duration, error) {
					seq++
					return timedTenantAppend(ctx, c, tenant, seq)
				}
			}
			// block times k appends with no tenant and returns their median.
			block := func() (time.Duration, error) {
				ds := make([]float64, 0, k)
				for range k {
					d, err := one("")()
					if err != nil {
						return 0, err
					}
					ds = append(ds, float64(d))
				}
				return time.Duration(median(ds)), nil
			}
			toggle := func(on bool) error {
				q := "SELECT annals.disable_tenancy()"
				if on {
					q = "SELECT annals.enable_tenancy()"
				}
				_, err := c.Exec(ctx, q)
				return err
			}
			inMode := func(on bool) func() (time.Duration, error) {
				return func() (time.Duration, error) {
					if err := toggle(on); err != nil {
						return 0, err
					}
					if _, err := block(); err != nil { // warm up after the DDL
						return 0, err
					}
					return block()
				}
			}
			method := func(what string) string {
				return fmt.Sprintf("Go/pgx, one connection, one-event append_events per call, the tenant set by set_config in the same batch on both sides, 100 streams; %d reps of %s, median of medians", b.reps, what)
			}
			var out []Result

			// 1. Tenancy on, no tenant, vs tenancy off (no tenant stream exists yet, so it can be turned off).
			var onS, offS []float64
			for rep := range b.reps {
				b.prog.step(fmt.Sprintf("tenancy: on vs off (%d/%d)", rep+1, b.reps), time.Duration(8*k)*300*time.Microsecond)
				x, y, err := alternate(2, inMode(true), inMode(false))
				if err != nil {
					return out, err
				}
				onS, offS = append(onS, x*1000), append(offS, y*1000)
			}
			out = append(out, figure("one-event append, tenancy on, no tenant set", "µs", onS, offS,
				"the same append with tenancy off (annals.disable_tenancy between blocks)",
				method(fmt.Sprintf("2 alternated blocks of %d calls per mode (the median of a block)", k)), ratioAtMost(1.10)))

			// 2. Under a tenant vs no tenant, tenancy on.
			if err := toggle(true); err != nil {
				return out, err
			}
			var tS, nS []float64
			for rep := range b.reps {
				b.prog.step(fmt.Sprintf("tenancy: tenant vs none (%d/%d)", rep+1, b.reps), time.Duration(2*k)*300*time.Microsecond)
				x, y, err := alternate(k, one("acme"), one(""))
				if err != nil {
					return out, err
				}
				tS, nS = append(tS, x*1000), append(nS, y*1000)
			}
			out = append(out, figure("one-event append under a tenant, tenancy on", "µs", tS, nS,
				"the same append with no tenant set, tenancy on",
				method(fmt.Sprintf("%d alternated calls", k)), nil))
			return out, nil
		},
	}
}

// timedTenantAppend times one one-event append to one of 100 streams under tenant ("" none),
// set for that call's transaction only.
func timedTenantAppend(ctx context.Context, c *pgx.Conn, tenant string, seq int) (time.Duration, error) {
	batch := &pgx.Batch{}
	batch.Queue("SELECT pg_catalog.set_config('annals.tenant', $1, true)", tenant)
	batch.Queue(`SELECT annals.append_events('tn-' || $1::text, NULL, '[{"type": "BenchEvent", "data": {"n": 1}}]')`, fmt.Sprint(seq%100))
	t0 := time.Now()
	err := c.SendBatch(ctx, batch).Close()
	return time.Since(t0), err
}

package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The personal-data scenario measures crypto-shredding (functions/430_personal_data.sql): what a
// registration costs appends of event types without personal data (the append reads the list of
// registered types in the statement that reads its limits, so the only difference is that list
// being NULL or not: the scenario switches it between alternated calls), and what encrypting two
// fields per event costs at append and decrypting them costs at read, next to the same events of
// a type without personal data.

const personalBatch = 100

// personalEvents is an append_events batch of n events of typ, each with a subject and two
// string fields (encrypted when typ is registered).
func personalEvents(typ string) string {
	return `(SELECT jsonb_agg(jsonb_build_object('type', '` + typ + `', 'data', jsonb_build_object(
	    'customer_id', 'c-' || (g % 50), 'email', 'someone' || g || '@example.com',
	    'address', jsonb_build_object('street', 'Main Street ' || g, 'city', 'Springfield'))))
	   FROM generate_series(1, ` + fmt.Sprint(personalBatch) + `) AS g)`
}

// timedExec runs sql once and returns how long it took.
func timedExec(ctx context.Context, c *pgx.Conn, sql string, args ...any) (time.Duration, error) {
	t0 := time.Now()
	_, err := c.Exec(ctx, sql, args...)
	return time.Since(t0), err
}

// alternate runs a and b k times each, alternating which goes first, and returns the median
// duration of each in ms.
func alternate(k int, a, b func() (time.Duration, error)) (float64, float64, error) {
	var at, bt []float64
	for i := range k {
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, which := range order {
			f := a
			if which == 1 {
				f = b
			}
			d, err := f()
			if err != nil {
				return 0, 0, err
			}
			ms := float64(d) / float64(time.Millisecond)
			if which == 0 {
				at = append(at, ms)
			} else {
				bt = append(bt, ms)
			}
		}
	}
	return median(at), median(bt), nil
}

func personalDataScenario() scenario {
	iterations := func(b *Bench) int {
		if b.cfg.Quick {
			return 10
		}
		return 60
	}
	return scenario{
		name:           "personal-data",
		summary:        "crypto-shredding: appends of other types with a registration present, encrypted appends and decrypted reads vs plain ones",
		optIn:          true,
		needsSuperuser: true,
		estimate: func(b *Bench) time.Duration {
			return time.Duration(b.reps*iterations(b)*3) * 60 * time.Millisecond
		},
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			if _, err := b.pool.Exec(ctx, `SELECT annals.register_personal_data('BenchPII', '{$.email,$.address.street}', '$.customer_id')`); err != nil {
				return nil, err
			}
			conns, err := b.connect(ctx, 1, nil)
			if err != nil {
				return nil, err
			}
			defer closeAll(conns)
			c := conns[0]
			k := iterations(b)
			appendSQL := func(typ string) string {
				return `SELECT annals.append_events('pd-' || $1::text, NULL, ` + personalEvents(typ) + `)`
			}
			n := 0
			appendAs := func(typ string) func() (time.Duration, error) {
				return func() (time.Duration, error) {
					n++
					return timedExec(ctx, c, appendSQL(typ), fmt.Sprint(n%20))
				}
			}
			setList := func(on bool) error {
				q := `UPDATE annals_internal.settings SET personal_data_types = NULL`
				if on {
					q = `UPDATE annals_internal.settings SET personal_data_types = '{BenchPII}'`
				}
				_, err := c.Exec(ctx, q)
				return err
			}
			withList := func(on bool, f func() (time.Duration, error)) func() (time.Duration, error) {
				return func() (time.Duration, error) {
					if err := setList(on); err != nil {
						return 0, err
					}
					return f()
				}
			}
			var out []Result
			per := fmt.Sprintf("%d events of 4 fields per append_events call", personalBatch)

			// 1. Another type's append, with and without a registration.
			var otherS, otherBase []float64
			for rep := range b.reps {
				b.prog.step(fmt.Sprintf("personal-data: other types' appends (%d/%d)", rep+1, b.reps), time.Duration(2*k)*20*time.Millisecond)
				x, y, err := alternate(k, withList(true, appendAs("BenchEvent")), withList(false, appendAs("BenchEvent")))
				if err != nil {
					return out, err
				}
				otherS, otherBase = append(otherS, x), append(otherBase, y)
			}
			if err := setList(true); err != nil {
				return out, err
			}
			out = append(out, figure("append of a type without personal data, a registration present", "ms", otherS, otherBase,
				"the same append with no type registered (settings.personal_data_types NULL, switched between calls)",
				fmt.Sprintf("Go/pgx, one connection, %s; %d reps of %d alternated calls, median of medians", per, b.reps, k),
				ratioAtMost(1.05)))

			// 2. Encrypting two fields per event.
			var pdS, plainS []float64
			for rep := range b.reps {
				b.prog.step(fmt.Sprintf("personal-data: encrypted appends (%d/%d)", rep+1, b.reps), time.Duration(2*k)*30*time.Millisecond)
				x, y, err := alternate(k, appendAs("BenchPII"), appendAs("BenchEvent"))
				if err != nil {
					return out, err
				}
				pdS, plainS = append(pdS, x), append(plainS, y)
			}
			out = append(out, figure("append with 2 personal-data fields per event", "ms", pdS, plainS,
				"the same events under a type without personal data",
				fmt.Sprintf("Go/pgx, one connection, %s (50 subjects, keys created on first use); %d reps of %d alternated calls, median of medians", per, b.reps, k),
				nil))

			// 3. Decrypting on read: a 1,000-event stream of each.
			for _, s := range []struct{ stream, typ string }{{"pdread-pii", "BenchPII"}, {"pdread-plain", "BenchEvent"}} {
				for range 1000 / personalBatch {
					if _, err := b.pool.Exec(ctx, `SELECT annals.append_events($1, NULL, `+personalEvents(s.typ)+`)`, s.stream); err != nil {
						return out, err
					}
				}
			}
			readSQL := "SELECT " + eventSQL + " FROM annals.read_stream($1, NULL, 1000) AS e"
			read := func(stream string) func() (time.Duration, error) {
				return func() (time.Duration, error) {
					d, got, err := timedRead(ctx, c, readSQL, stream)
					if err == nil && got != 1000 {
						err = fmt.Errorf("read %s: %d events", stream, got)
					}
					return d, err
				}
			}
			var rdS, rdBase []float64
			for rep := range b.reps {
				b.prog.step(fmt.Sprintf("personal-data: decrypted reads (%d/%d)", rep+1, b.reps), time.Duration(2*k)*20*time.Millisecond)
				x, y, err := alternate(k, read("pdread-pii"), read("pdread-plain"))
				if err != nil {
					return out, err
				}
				rdS, rdBase = append(rdS, x), append(rdBase, y)
			}
			out = append(out, figure("read 1,000 events with 2 personal-data fields each", "ms", rdS, rdBase,
				"the same events under a type without personal data",
				fmt.Sprintf("Go/pgx, one connection, annals.read_stream(id, NULL, 1000) decoded; %d reps of %d alternated reads, median of medians", b.reps, k),
				nil))
			return out, nil
		},
	}
}

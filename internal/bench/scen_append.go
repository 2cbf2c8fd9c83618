package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/jackc/pgx/v5"
)

// benchData is the payload of every benchmark event: small, like most domain events.
const benchData = `{"sku":"sku-0042","count":1,"note":"a small event payload"}`

const rawLabel = "plain INSERT into bench.raw_events (same columns, checks, unique keys, feed indexes and partitions as annals_internal.events; no function, no version read)"

// streamsPerClient is how many streams each client appends to (chosen at random per append).
func (b *Bench) streamsPerClient() int {
	if b.cfg.Quick {
		return 10
	}
	return 100
}

func appendWorkload(streams int) workload {
	return workload{streams: streams, sql: `SELECT annals.append_events('bench-' || :client_id::text || '-' || :s::text, NULL,
		'[{"type":"BenchEvent","data":` + benchData + `}]'::jsonb)`}
}

func rawRow(stream string) string {
	return `(` + stream + `, nextval('bench.raw_version_seq'), gen_random_uuid(), 'BenchEvent', 1, '` + benchData +
		`'::jsonb, '{}'::jsonb, pg_current_xact_id(), clock_timestamp())`
}

const rawColumns = `INSERT INTO bench.raw_events (stream_id, stream_version, event_id, event_type, schema_version,
	data, metadata, transaction_id, recorded_at) VALUES `

func rawInsertWorkload(streams int) workload {
	return workload{streams: streams, sql: rawColumns + rawRow(`'raw-' || :client_id::text || '-' || :s::text`)}
}

// batchSize is the number of events per call in the batch scenario.
const batchSize = 100

func batchWorkload(streams int) workload {
	evs := make([]string, batchSize)
	for i := range evs {
		evs[i] = `{"type":"BenchEvent","data":` + benchData + `}`
	}
	return workload{streams: streams, sql: `SELECT annals.append_events('batch-' || :client_id::text || '-' || :s::text, NULL,
		'[` + strings.Join(evs, ",") + `]'::jsonb)`}
}

func rawBatchWorkload(streams int) workload {
	rows := make([]string, batchSize)
	for i := range rows {
		rows[i] = rawRow(`'rawbatch-' || :client_id::text || '-' || :s::text`)
	}
	return workload{streams: streams, sql: rawColumns + strings.Join(rows, ",\n")}
}

// pair is an alternated comparison's outcome: events/s samples and sampled server waits.
type pair struct {
	base, subj           []float64
	baseWaits, subjWaits waits
}

// compareThroughput warms both workloads, then alternates them, sampling the server's wait
// events while each runs.
func (b *Bench) compareThroughput(ctx context.Context, label string, clients, perTx int,
	base, subject workload, baseName, subjectName string,
	beforeBase, beforeSubject func(context.Context) error) (pair, error) {
	p := pair{baseWaits: waits{}, subjWaits: waits{}}
	b.prog.step(label+": warm-up", b.warmEstimate(clients, perTx))
	if beforeBase != nil {
		if err := beforeBase(ctx); err != nil {
			return p, err
		}
	}
	if err := b.warm(ctx, base, clients); err != nil {
		return p, err
	}
	if beforeSubject != nil {
		if err := beforeSubject(ctx); err != nil {
			return p, err
		}
	}
	if err := b.warm(ctx, subject, clients); err != nil {
		return p, err
	}
	run := func(w workload, before func(context.Context) error, into waits) func(context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			if before != nil {
				if err := before(ctx); err != nil {
					return 0, err
				}
			}
			stop := b.sampleWaits(ctx)
			tps, err := b.tps(ctx, w, clients, b.dur)
			into.add(stop())
			return tps * float64(perTx), err
		}
	}
	s, err := b.alternate(ctx, label,
		side{baseName, b.measureEstimate(), run(base, beforeBase, p.baseWaits)},
		side{subjectName, b.measureEstimate(), run(subject, beforeSubject, p.subjWaits)})
	if err != nil {
		return p, err
	}
	p.base, p.subj = s[0], s[1]
	return p, nil
}

func (b *Bench) measureEstimate() time.Duration {
	if b.pgbench != "" {
		return time.Duration(pgbenchSeconds(b.dur))*time.Second + 300*time.Millisecond
	}
	return b.dur + 200*time.Millisecond
}

func (b *Bench) warmEstimate(clients, perTx int) time.Duration {
	return time.Duration(2*clients*b.streamsPerClient()*perTx) * 150 * time.Microsecond
}

func (b *Bench) pairEstimate(clients, perTx int) time.Duration {
	return b.warmEstimate(clients, perTx) + time.Duration(2*b.reps)*b.measureEstimate()
}

func appendScenario() scenario {
	return scenario{
		name:    "append",
		summary: "single-event appends at each --clients count, each client on its own streams, vs a plain single-row INSERT",
		estimate: func(b *Bench) time.Duration {
			var d time.Duration
			for _, c := range b.clients {
				d += b.pairEstimate(c, 1)
			}
			return d
		},
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			var out []Result
			for _, c := range b.clients {
				label := fmt.Sprintf("append, %d client%s", c, plural(c))
				p, err := b.compareThroughput(ctx, label, c, 1,
					rawInsertWorkload(b.streamsPerClient()), appendWorkload(b.streamsPerClient()),
					"plain INSERT", "append_events", nil, nil)
				if err != nil {
					return out, err
				}
				var g *goal
				if c == 8 {
					g = ratioAtLeast(0.6)
				}
				r := figure(label, "events/s", p.subj, p.base, rawLabel, b.method(c)+
					fmt.Sprintf("; SELECT annals.append_events(stream, NULL, one event) on %d streams per client; NOTIFY off (see the notify figure)", b.streamsPerClient()), g)
				out = append(out, r.withWaits(p.subjWaits, p.baseWaits, "append_events", "INSERT"))
			}
			return out, nil
		},
	}
}

func batchScenario() scenario {
	return scenario{
		name:     "batch",
		summary:  "100-event appends vs one 100-row multi-row INSERT",
		estimate: func(b *Bench) time.Duration { return b.pairEstimate(b.conc, batchSize) },
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			label := fmt.Sprintf("batch of %d, %d clients", batchSize, b.conc)
			streams := max(b.streamsPerClient()/10, 2)
			p, err := b.compareThroughput(ctx, label, b.conc, batchSize,
				rawBatchWorkload(streams), batchWorkload(streams), "100-row INSERT", "append_events x100", nil, nil)
			if err != nil {
				return nil, err
			}
			r := figure(label, "events/s", p.subj, p.base, "one 100-row multi-row INSERT into bench.raw_events",
				b.method(b.conc)+"; one append_events call with 100 events per transaction", ratioAtLeast(0.6))
			return []Result{r.withWaits(p.subjWaits, p.baseWaits, "append_events", "INSERT")}, nil
		},
	}
}

func notifyScenario() scenario {
	return scenario{
		name:     "notify",
		summary:  "single-event appends with NOTIFY on (the default) vs off, one listener connected; other throughput scenarios run with it off",
		estimate: func(b *Bench) time.Duration { return b.pairEstimate(b.conc, 1) },
		run: func(ctx context.Context, b *Bench) (_ []Result, err error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			// A subscriber is listening in real deployments; keep one listener draining.
			conns, err := b.connect(ctx, 1, nil)
			if err != nil {
				return nil, err
			}
			lctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			defer func() { stop(); <-done; closeAll(conns) }()
			if _, err := conns[0].Exec(ctx, "LISTEN annals_events"); err != nil {
				close(done)
				return nil, err
			}
			go func() {
				defer close(done)
				for {
					if _, err := conns[0].WaitForNotification(lctx); err != nil {
						return
					}
				}
			}()
			setNotify := func(on bool) func(context.Context) error {
				return func(ctx context.Context) error { return b.setNotify(ctx, on) }
			}
			defer func() {
				if e := b.setNotify(context.WithoutCancel(ctx), false); e != nil && err == nil {
					err = e
				}
			}()
			label := fmt.Sprintf("NOTIFY on vs off, %d clients", b.conc)
			w := appendWorkload(b.streamsPerClient())
			p, err := b.compareThroughput(ctx, label, b.conc, 1, w, w, "notify off", "notify on",
				setNotify(false), setNotify(true))
			if err != nil {
				return nil, err
			}
			r := figure(label, "events/s", p.subj, p.base, "the same appends with annals.configure(notify => false)",
				b.method(b.conc)+"; one LISTEN annals_events connection draining", nil)
			return []Result{r.withWaits(p.subjWaits, p.baseWaits, "notify on", "notify off")}, nil
		},
	}
}

func projectionScenario() scenario {
	return scenario{
		name:     "projection",
		summary:  "single-event appends with the inventory inline projection on vs off",
		estimate: func(b *Bench) time.Duration { return b.pairEstimate(b.conc, 1) + 2*time.Second },
		run: func(ctx context.Context, b *Bench) (_ []Result, err error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			b.prog.step("projection: install the inventory read models", 2*time.Second)
			if err := readmodels.Install(ctx, b.pool); err != nil {
				return nil, err
			}
			setEnabled := func(on bool) func(context.Context) error {
				return func(ctx context.Context) error {
					_, err := b.pool.Exec(ctx, "SELECT annals.set_projection_enabled('inventory_item_counts', $1)", on)
					return err
				}
			}
			defer func() { // later scenarios must not pay for it
				if e := setEnabled(false)(context.WithoutCancel(ctx)); e != nil && err == nil {
					err = e
				}
			}()
			streams := b.streamsPerClient()
			// Every item exists before the measurement: the appends adjust counts, as in steady state.
			_, err = b.pool.Exec(ctx, `SELECT count(*)
				FROM generate_series(0, $1 - 1) AS c, generate_series(1, $2) AS s,
				     LATERAL annals.append_events('inventory-' || c || 'x' || s, NULL,
				         jsonb_build_array(jsonb_build_object('type', 'ItemAdded',
				             'data', jsonb_build_object('sku', c || 'x' || s, 'name', 'bench item', 'count', 100)))) AS a`,
				b.conc, streams)
			if err != nil {
				return nil, err
			}
			w := workload{streams: streams, sql: `SELECT annals.append_events('inventory-' || :client_id::text || 'x' || :s::text, NULL,
				'[{"type":"ItemAdjusted","data":{"delta":1,"reason":"bench"}}]'::jsonb)`}
			label := fmt.Sprintf("inline projection on vs off, %d clients", b.conc)
			p, err := b.compareThroughput(ctx, label, b.conc, 1, w, w, "projection off", "projection on",
				setEnabled(false), setEnabled(true))
			if err != nil {
				return nil, err
			}
			var moved int64
			if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM inventory.item_counts WHERE count > 100").Scan(&moved); err != nil {
				return nil, err
			}
			r := figure(label, "events/s", p.subj, p.base, "the same appends with annals.set_projection_enabled('inventory_item_counts', false)",
				b.method(b.conc)+"; ItemAdjusted events on existing inventory-* items, handler inventory.project_item_counts", ratioAtLeast(0.75))
			r.Note = fmt.Sprintf("the projection moved %d item counts", moved)
			return []Result{r.withWaits(p.subjWaits, p.baseWaits, "projection on", "projection off")}, nil
		},
	}
}

// appendOne appends a single event on c; used by the latency probes.
func appendOne(ctx context.Context, c *pgx.Conn, stream string) error {
	_, err := c.Exec(ctx, `SELECT annals.append_events($1, NULL, '[{"type":"BenchEvent","data":`+benchData+`}]'::jsonb)`, stream)
	return err
}

// setNotify switches NOTIFY on append (annals.configure(notify => on)). The run keeps it off
// except where a scenario measures it: a notifying commit holds a cluster-wide lock through its
// WAL flush, which would make every throughput figure a figure of that lock.
func (b *Bench) setNotify(ctx context.Context, on bool) error {
	_, err := b.pool.Exec(ctx, "SELECT annals.configure(notify => $1)", on)
	return err
}

package bench

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/annals-db/annals/internal/inventory/readmodels"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// appendWorkload is a single-event append the way the Go client sends one: append_event, the
// scalar fast path (append_events with a one-event batch costs 13-17% more server CPU).
func appendWorkload(streams int) workload {
	return workload{streams: streams, sql: `SELECT annals.append_event('bench-' || :client_id::text || '-' || :s::text, NULL,
		'BenchEvent', '` + benchData + `'::jsonb)`}
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

// guideTable is the events table a user would write by hand, as the guide has it: no
// partitions, no feed columns, no function; the version is max(version) + 1.
const guideTable = `CREATE TABLE bench.guide_events (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	stream_id text NOT NULL,
	version int NOT NULL,
	type text NOT NULL,
	data jsonb NOT NULL,
	metadata jsonb,
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (stream_id, version))`

const guideLabel = "the guide's hand-written table (id identity, stream_id, version, type, data, metadata, created_at; UNIQUE (stream_id, version)) and its append: " +
	"SELECT max(version) + INSERT, here one INSERT ... SELECT coalesce(max(version), 0) + 1 statement (one round trip fewer than the guide's two)"

// guideInsert appends n events to stream at max(version)+1.., the guide's append in one statement.
func guideInsert(stream string, n int) string {
	return `INSERT INTO bench.guide_events (stream_id, version, type, data)
		SELECT ` + stream + `, m.v + g, 'BenchEvent', '` + benchData + `'::jsonb
		  FROM (SELECT coalesce(max(e.version), 0) AS v FROM bench.guide_events AS e WHERE e.stream_id = ` + stream + `) AS m,
		       generate_series(1, ` + fmt.Sprint(n) + `) AS g`
}

func guideAppendWorkload(streams int) workload {
	return workload{streams: streams, sql: guideInsert(`'guide-' || :client_id::text || '-' || :s::text`, 1)}
}

func guideBatchWorkload(streams int) workload {
	return workload{streams: streams, sql: guideInsert(`'guidebatch-' || :client_id::text || '-' || :s::text`, batchSize)}
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

// arm is one workload of a same-run comparison; before, when set, runs before each of its
// repetitions (and before its warm-up).
type arm struct {
	name   string
	w      workload
	before func(context.Context) error
}

// armResult is an arm's events/s samples and the server waits sampled while it ran.
type armResult struct {
	samples []float64
	waits   waits
}

// compareThroughput warms both workloads, then alternates them, sampling the server's wait
// events while each runs.
func (b *Bench) compareThroughput(ctx context.Context, label string, clients, perTx int,
	base, subject workload, baseName, subjectName string,
	beforeBase, beforeSubject func(context.Context) error) (pair, error) {
	rs, err := b.compareArms(ctx, label, clients, perTx,
		arm{baseName, base, beforeBase}, arm{subjectName, subject, beforeSubject})
	if err != nil {
		return pair{}, err
	}
	return pair{base: rs[0].samples, subj: rs[1].samples, baseWaits: rs[0].waits, subjWaits: rs[1].waits}, nil
}

// compareArms warms every arm's workload, then alternates them (ABBA over all arms), sampling
// the server's wait events while each runs.
func (b *Bench) compareArms(ctx context.Context, label string, clients, perTx int, arms ...arm) ([]armResult, error) {
	out := make([]armResult, len(arms))
	b.prog.step(label+": warm-up", time.Duration(len(arms))*b.warmEstimate(clients, perTx)/2)
	for i, a := range arms {
		out[i].waits = waits{}
		if a.before != nil {
			if err := a.before(ctx); err != nil {
				return out, err
			}
		}
		if err := b.warm(ctx, a.w, clients); err != nil {
			return out, err
		}
	}
	sides := make([]side, len(arms))
	for i, a := range arms {
		into := out[i].waits
		sides[i] = side{a.name, b.measureEstimate(), func(ctx context.Context) (float64, error) {
			if a.before != nil {
				if err := a.before(ctx); err != nil {
					return 0, err
				}
			}
			stop := b.sampleWaits(ctx)
			tps, err := b.tps(ctx, a.w, clients, b.dur)
			into.add(stop())
			return tps * float64(perTx), err
		}}
	}
	s, err := b.alternate(ctx, label, sides...)
	if err != nil {
		return out, err
	}
	for i := range out {
		out[i].samples = s[i]
	}
	return out, nil
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

func (b *Bench) armsEstimate(clients, perTx, arms int) time.Duration {
	return time.Duration(arms)*b.warmEstimate(clients, perTx)/2 + time.Duration(arms*b.reps)*b.measureEstimate()
}

func appendScenario() scenario {
	return scenario{
		name:    "append",
		summary: "single-event appends at each --clients count, each client on its own streams, vs a plain single-row INSERT",
		estimate: func(b *Bench) time.Duration {
			var d time.Duration
			for _, c := range b.clients {
				d += b.armsEstimate(c, 1, 3)
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
				rs, err := b.compareArms(ctx, label, c, 1,
					arm{name: "plain INSERT", w: rawInsertWorkload(b.streamsPerClient())},
					arm{name: "guide's append", w: guideAppendWorkload(b.streamsPerClient())},
					arm{name: "append_event", w: appendWorkload(b.streamsPerClient())})
				if err != nil {
					return out, err
				}
				var g *goal
				if c == 8 {
					g = ratioAtLeast(0.6)
				}
				method := b.method(c) + fmt.Sprintf("; SELECT annals.append_event(stream, NULL, type, data) on %d streams per client (the Go client's one-event path); NOTIFY off (see the notify figure); the plain INSERT, the guide's append and append_event alternated in one rotation", b.streamsPerClient())
				r := figure(label, "events/s", rs[2].samples, rs[0].samples, rawLabel, method, g)
				out = append(out, r.withWaits(rs[2].waits, rs[0].waits, "append_event", "INSERT"))
				out = append(out, guideFigure(label, rs[2], rs[1], rs[0], method, "append_event"))
			}
			return out, nil
		},
	}
}

func batchScenario() scenario {
	return scenario{
		name:     "batch",
		summary:  "100-event appends vs one 100-row multi-row INSERT",
		estimate: func(b *Bench) time.Duration { return b.armsEstimate(b.conc, batchSize, 3) },
		run: func(ctx context.Context, b *Bench) ([]Result, error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			label := fmt.Sprintf("batch of %d, %d clients", batchSize, b.conc)
			streams := max(b.streamsPerClient()/10, 2)
			rs, err := b.compareArms(ctx, label, b.conc, batchSize,
				arm{name: "100-row INSERT", w: rawBatchWorkload(streams)},
				arm{name: "guide's append x100", w: guideBatchWorkload(streams)},
				arm{name: "append_events x100", w: batchWorkload(streams)})
			if err != nil {
				return nil, err
			}
			method := b.method(b.conc) + "; one append_events call with 100 events per transaction; the 100-row INSERT, the guide's 100-event append and append_events alternated in one rotation"
			r := figure(label, "events/s", rs[2].samples, rs[0].samples, "one 100-row multi-row INSERT into bench.raw_events", method, ratioAtLeast(0.6))
			return []Result{r.withWaits(rs[2].waits, rs[0].waits, "append_events", "INSERT"),
				guideFigure(label, rs[2], rs[1], rs[0], method, "append_events")}, nil
		},
	}
}

// notifyModes are the ways an append can notify: not at all, through Annals' gated trigger
// (the default), or, for comparison, on every appending statement as before M9 (a trigger the
// bench adds; it needs a superuser).
const (
	notifyOff     = "off"
	notifyGated   = "gated"
	notifyUngated = "ungated"
)

// ungatedNotifySQL adds, disabled, the notify trigger Annals had before the gate: NOTIFY on every
// appending statement.
var ungatedNotifySQL = []string{
	`CREATE OR REPLACE FUNCTION bench.notify_every_append() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM pg_notify('annals_events', '');
		RETURN NULL;
	END $$`,
	`CREATE OR REPLACE TRIGGER bench_notify_ungated AFTER INSERT ON annals_internal.events
		FOR EACH STATEMENT EXECUTE FUNCTION bench.notify_every_append()`,
	`ALTER TABLE annals_internal.events DISABLE TRIGGER bench_notify_ungated`,
}

// canUngate reports whether the ungated comparison can run (it adds a trigger to Annals' table).
func (b *Bench) canUngate() bool { return b.superuser }

// setNotifyMode switches between notifyOff, notifyGated and notifyUngated.
func (b *Bench) setNotifyMode(ctx context.Context, mode string) error {
	if err := b.setNotify(ctx, mode == notifyGated); err != nil {
		return err
	}
	if !b.canUngate() {
		return nil
	}
	var exists bool
	if err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger AS t
		WHERE t.tgrelid = 'annals_internal.events'::regclass AND t.tgname = 'bench_notify_ungated')`).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		if mode != notifyUngated {
			return nil
		}
		for _, q := range ungatedNotifySQL {
			if _, err := b.pool.Exec(ctx, q); err != nil {
				return fmt.Errorf("ungated notify trigger: %w", err)
			}
		}
	}
	op := "DISABLE"
	if mode == notifyUngated {
		op = "ENABLE"
	}
	_, err := b.pool.Exec(ctx, "ALTER TABLE annals_internal.events "+op+" TRIGGER bench_notify_ungated")
	return err
}

// notifyListener is a LISTEN annals_events connection that drains and counts notifications.
type notifyListener struct {
	n    atomic.Int64
	stop func()
}

func (b *Bench) listenCounting(ctx context.Context) (*notifyListener, error) {
	conns, err := b.connect(ctx, 1, nil)
	if err != nil {
		return nil, err
	}
	if _, err := conns[0].Exec(ctx, "LISTEN annals_events"); err != nil {
		closeAll(conns)
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	l := &notifyListener{stop: func() { cancel(); <-done; closeAll(conns) }}
	go func() {
		defer close(done)
		receive(lctx, conns[0], func(*pgconn.Notification) { l.n.Add(1) })
	}()
	return l, nil
}

// receive calls got for every notification conn receives (it must LISTEN already), until ctx
// ends or the connection fails. The benchmark counts and times each notification, so it reads
// them itself rather than through annals.EventListener, which coalesces them into wake-ups.
func receive(ctx context.Context, conn *pgx.Conn, got func(*pgconn.Notification)) {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return
		}
		got(n)
	}
}

func notifyScenario() scenario {
	return scenario{
		name: "notify",
		summary: "single-event appends with NOTIFY on (the default, gated to about one per 20 ms) vs off, and with the pre-M9 " +
			"NOTIFY on every append (superuser only), one listener connected; other throughput scenarios run with it off",
		estimate: func(b *Bench) time.Duration { return b.armsEstimate(b.conc, 1, 3) },
		run: func(ctx context.Context, b *Bench) (_ []Result, err error) {
			if err := b.reset(ctx); err != nil {
				return nil, err
			}
			// A subscriber is listening in real deployments; keep one listener draining.
			l, err := b.listenCounting(ctx)
			if err != nil {
				return nil, err
			}
			defer l.stop()
			defer func() {
				if e := b.setNotifyMode(context.WithoutCancel(ctx), notifyOff); e != nil && err == nil {
					err = e
				}
			}()
			// Notifications per second while each mode was on, counted from one switch to the next.
			rates := map[string]*[2]float64{} // mode -> {notifications, seconds}
			cur, since, at := "", time.Time{}, int64(0)
			mode := func(m string) func(context.Context) error {
				return func(ctx context.Context) error {
					if cur != "" {
						r := rates[cur]
						if r == nil {
							r = &[2]float64{}
							rates[cur] = r
						}
						r[0] += float64(l.n.Load() - at)
						r[1] += time.Since(since).Seconds()
					}
					if err := b.setNotifyMode(ctx, m); err != nil {
						return err
					}
					cur, since, at = m, time.Now(), l.n.Load()
					return nil
				}
			}
			rate := func(m string) string {
				r := rates[m]
				if r == nil || r[1] == 0 {
					return "?"
				}
				return formatNumber(r[0] / r[1])
			}
			label := fmt.Sprintf("NOTIFY on vs off, %d clients", b.conc)
			w := appendWorkload(b.streamsPerClient())
			arms := []arm{{"notify off", w, mode(notifyOff)}, {"notify on (gated)", w, mode(notifyGated)}}
			if b.canUngate() {
				arms = append(arms, arm{"notify on every append (before M9)", w, mode(notifyUngated)})
			}
			rs, err := b.compareArms(ctx, label, b.conc, 1, arms...)
			if err != nil {
				return nil, err
			}
			if err := mode(notifyOff)(ctx); err != nil {
				return nil, err
			}
			method := b.method(b.conc) + "; one LISTEN annals_events connection draining; the modes alternated in one rotation"
			r := figure(label, "events/s", rs[1].samples, rs[0].samples, "the same appends with annals.configure(notify => false)", method, nil)
			r.Note = fmt.Sprintf("notify on: the listener received %s notifications/s (appends notify at most about once per 20 ms)", rate(notifyGated))
			out := []Result{r.withWaits(rs[1].waits, rs[0].waits, "notify on", "notify off")}
			if len(rs) > 2 {
				r := figure(fmt.Sprintf("NOTIFY on every append (before M9) vs off, %d clients", b.conc), "events/s", rs[2].samples, rs[0].samples,
					"the same appends with annals.configure(notify => false)", method+"; before M9 = a statement trigger calling pg_notify on every append, as Annals had", nil)
				r.Note = fmt.Sprintf("the listener received %s notifications/s", rate(notifyUngated))
				out = append(out, r.withWaits(rs[2].waits, rs[0].waits, "notify every append", "notify off"))
			}
			return out, nil
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

// guideFigure is an Annals append (annalsName) against the guide's append, measured in the same rotation; its
// note gives the guide's own ratio to the plain INSERT.
func guideFigure(label string, annals, guide, raw armResult, method, annalsName string) Result {
	r := figure(label+", vs the guide's table", "events/s", annals.samples, guide.samples, guideLabel, method, nil)
	r.Note = fmt.Sprintf("the guide's append itself: %s events/s, %.2fx the plain INSERT", formatNumber(median(guide.samples)),
		median(guide.samples)/median(raw.samples))
	return r.withWaits(annals.waits, guide.waits, annalsName, "guide's append")
}

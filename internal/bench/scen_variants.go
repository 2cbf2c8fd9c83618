package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The append-variants scenario answers "which change to functions/021_append_events.sql would
// make appends faster, and by how much": it copies the installed annals.append_events, with
// textual edits, into a schema per variant (bench_v_<name>) of the scratch database (the body
// qualifies its parameters with the function's name, so the name stays), checks that every copy
// answers a set of valid and invalid calls exactly like the original (same SQLSTATE, message
// and DETAIL), and measures them side by side. The edits look for text of the current
// function; when 021 changes so that an edit no longer applies, that variant is reported as
// skipped instead of measured.

// edit replaces the text from `from` up to (not including) `to` with `with`, or with what fn
// makes of it; with to empty it replaces exactly `from`. from must occur once.
type edit struct {
	from, to, with string
	fn             func(old string) (string, error)
}

type variant struct {
	name, summary string
	edits         []edit
	diagnostic    bool // not a proposal: shows what a part costs
	// noDispatchTrigger measures with the (disabled) inline-projection dispatch trigger dropped.
	noDispatchTrigger bool
	// recommended marks the proposal whose throughput is measured too.
	recommended bool
}

// fastValidation checks the whole batch with one inline CASE per event and calls
// annals_internal.event_problem only when that finds something: event_problem is an IMMUTABLE
// SQL function that cannot be inlined (it uses stable text || integer concatenation,
// jsonb_build_object and a scalar subquery), so every call plans and runs its body afresh.
var fastValidation = []edit{
	{from: "    v_problem    jsonb;\n", with: "    v_problem    jsonb;\n    v_valid      boolean;\n    v_max_event_bytes integer;\n"},
	{from: "    SELECT b.n, b.n_distinct, b.n_with_id, f.problem,", to: "    IF v_count > v_max_events THEN", with: `    SELECT b.n, b.n_distinct, b.n_with_id, b.all_valid, s.max_batch_events, s.max_batch_bytes, s.max_event_bytes
      INTO v_count, v_distinct, v_with_id, v_valid, v_max_events, v_max_bytes, v_max_event_bytes
      FROM annals_internal.settings AS s
     CROSS JOIN LATERAL (
            SELECT count(*) AS n,
                   count(DISTINCT CASE WHEN x.ev ->> 'id' ~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$'
                                       THEN (x.ev ->> 'id')::uuid END) AS n_distinct,
                   count(x.ev ->> 'id') AS n_with_id,
                   -- true only for events event_problem finds nothing wrong with; anything else
                   -- takes the slow path below, which names the problem.
                   coalesce(bool_and(CASE
                       WHEN jsonb_typeof(x.ev) IS DISTINCT FROM 'object' THEN false
                       WHEN (x.ev - '{type,data,metadata,id,schema_version}'::text[]) <> '{}'::jsonb THEN false
                       WHEN jsonb_typeof(x.ev -> 'type') IS DISTINCT FROM 'string' THEN false
                       WHEN octet_length(x.ev ->> 'type') NOT BETWEEN 1 AND 256 THEN false
                       WHEN (x.ev ->> 'type') ~ '[[:cntrl:]]|^\s|\s$|^\$' THEN false
                       WHEN coalesce(jsonb_typeof(x.ev -> 'data'), 'null') NOT IN ('object', 'null') THEN false
                       WHEN coalesce(jsonb_typeof(x.ev -> 'metadata'), 'null') NOT IN ('object', 'null') THEN false
                       WHEN (x.ev ->> 'id') IS NOT NULL AND NOT (jsonb_typeof(x.ev -> 'id') = 'string'
                            AND (x.ev ->> 'id') ~ '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$') THEN false
                       WHEN (x.ev ->> 'schema_version') IS NOT NULL AND NOT (jsonb_typeof(x.ev -> 'schema_version') = 'number'
                            AND (x.ev ->> 'schema_version') ~ '^[1-9][0-9]{0,8}$') THEN false
                       WHEN octet_length((x.ev -> 'data')::text) > s.max_event_bytes THEN false
                       ELSE true END), true) AS all_valid
              FROM jsonb_array_elements(append_events.events) AS x(ev)) AS b;
    IF NOT v_valid THEN
        SELECT annals_internal.event_problem(x.ev, x.ord - 1, v_max_event_bytes) INTO v_problem
          FROM jsonb_array_elements(append_events.events) WITH ORDINALITY AS x(ev, ord)
         WHERE annals_internal.event_problem(x.ev, x.ord - 1, v_max_event_bytes) IS NOT NULL
         ORDER BY x.ord
         LIMIT 1;
    END IF;

`},
}

// inlineStreamCheck tests the stream id with one plpgsql expression and calls check_stream_id
// (whose name_problem is not inlined either, for the same concatenation) only to raise.
var inlineStreamCheck = []edit{{
	from: "    PERFORM annals_internal.check_stream_id(append_events.stream_id);\n",
	with: `    IF append_events.stream_id IS NULL OR octet_length(append_events.stream_id) NOT BETWEEN 1 AND 512
       OR append_events.stream_id ~ '[[:cntrl:]]|^\s|\s$|^\$' THEN
        PERFORM annals_internal.check_stream_id(append_events.stream_id);  -- raises the precise error
    END IF;
`}}

// idArbiter makes the event-id key the only ON CONFLICT arbiter: versions cannot collide under
// the stream's advisory lock, so the primary key need not be probed before every insert.
var idArbiter = []edit{{from: "        ON CONFLICT DO NOTHING\n", with: "        ON CONFLICT ON CONSTRAINT events_event_id_key DO NOTHING\n"}}

// updateExisting moves an existing stream's row with a plain UPDATE instead of INSERT ... ON
// CONFLICT DO UPDATE (a speculative insertion that probes the key, fails and then updates): the
// function has just read the row, so it knows which of the two it needs. New streams keep the
// original statement.
var updateExisting = []edit{{from: "    WITH ins AS (\n", to: "    IF v_inserted < v_count THEN", fn: func(block string) (string, error) {
	upd, err := applyEdits(block, []edit{{from: "    ), upsert AS (\n", to: "    )\n    SELECT res.n, res.g", with: `    ), upd AS (
        UPDATE annals_internal.streams AS s
           SET stream_version = res.v, last_transaction_id = v_xid, updated_at = v_now
          FROM res
         WHERE s.stream_id = append_events.stream_id AND res.n = v_count
`}})
	if err != nil {
		return "", err
	}
	return "    IF v_current > 0 THEN\n" + upd + "    ELSE\n" + block + "    END IF;\n\n", nil
}}}

func variants() []variant {
	cat := func(es ...[]edit) []edit {
		var out []edit
		for _, e := range es {
			out = append(out, e...)
		}
		return out
	}
	return []variant{
		{name: "a_fast_validation", summary: "A: inline set-based validity check, event_problem only on failure", edits: fastValidation},
		{name: "ab_inline_stream_check", summary: "A + B: also test the stream id inline, check_stream_id only to raise",
			edits: cat(fastValidation, inlineStreamCheck), recommended: true},
		{name: "abc_event_id_arbiter", summary: "A + B + C: also ON CONFLICT ON CONSTRAINT events_event_id_key",
			edits: cat(fastValidation, inlineStreamCheck, idArbiter)},
		{name: "abcd_update_existing", summary: "A + B + C + D: UPDATE the stream row when the stream exists instead of INSERT ... ON CONFLICT DO UPDATE",
			edits: cat(fastValidation, inlineStreamCheck, idArbiter, updateExisting)},
		{name: "abcd_no_dispatch_trigger", noDispatchTrigger: true,
			summary: "A..D with the disabled events_dispatch_inline trigger dropped (a change to 210, not 021: a disabled trigger with a transition table still makes every insert capture its rows)",
			edits:   cat(fastValidation, inlineStreamCheck, idArbiter, updateExisting)},
		{name: "diag_no_validation", diagnostic: true, summary: "diagnostic only, not a proposal: B + C + D with no batch validation at all (the ceiling of A)",
			edits: cat([]edit{{from: "    SELECT b.n, b.n_distinct, b.n_with_id, f.problem,", to: "    IF v_count > v_max_events THEN",
				with: "    v_count := jsonb_array_length(append_events.events);\n    v_distinct := 0; v_with_id := 0; v_max_events := 10000; v_max_bytes := 67108864;\n\n"}},
				inlineStreamCheck, idArbiter, updateExisting)},
	}
}

func applyEdits(def string, edits []edit) (string, error) {
	for _, e := range edits {
		if strings.Count(def, e.from) != 1 {
			return "", fmt.Errorf("edit anchor %q found %d times", firstLine(e.from), strings.Count(def, e.from))
		}
		i := strings.Index(def, e.from)
		j := i + len(e.from)
		if e.to != "" {
			k := strings.Index(def[i:], e.to)
			if k < 0 {
				return "", fmt.Errorf("edit end %q not found", firstLine(e.to))
			}
			j = i + k
		}
		with := e.with
		if e.fn != nil {
			var err error
			if with, err = e.fn(def[i:j]); err != nil {
				return "", err
			}
		}
		def = def[:i] + with + def[j:]
	}
	return def, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// smokeCalls are (stream, expected version, events) triples the variants must answer exactly
// like the original.
var smokeCalls = []struct {
	stream   string
	expected *int64
	events   string
}{
	{"smoke-a", nil, `[{"type":"T","data":{"a":1}}]`},
	{"smoke-a", ptr(int64(1)), `[{"type":"T","data":{},"metadata":{"m":1},"schema_version":2,"id":"0190a0a0-0000-7000-8000-000000000001"}]`},
	{"smoke-a", ptr(int64(1)), `[{"type":"T","data":{}}]`},
	{"smoke-a", ptr(int64(5)), `[{"type":"T","data":{}}]`},
	{"smoke-b", nil, `[{"type":"T","data":{}},{"type":"U"}]`},
	{"smoke-b", nil, `[]`},
	{"smoke-b", nil, `[{"type":"","data":{}}]`},
	{"smoke-b", nil, `[{"type":" T","data":{}}]`},
	{"smoke-b", nil, `[{"type":"$T","data":{}}]`},
	{"smoke-b", nil, `[{"type":"T","data":[]}]`},
	{"smoke-b", nil, `[{"type":"T","data":{},"metadata":3}]`},
	{"smoke-b", nil, `[{"type":"T","data":{},"extra":1}]`},
	{"smoke-b", nil, `[{"type":"T","data":{},"id":"nope"}]`},
	{"smoke-b", nil, `[{"type":"T","data":{},"id":5}]`},
	{"smoke-b", nil, `[{"type":"T","data":{},"schema_version":0}]`},
	{"smoke-b", nil, `[{"type":"T","data":{},"schema_version":"2"}]`},
	{"smoke-b", nil, `[{"type":3,"data":{}}]`},
	{"smoke-b", nil, `[1]`},
	{"smoke-b", nil, `{"type":"T"}`},
	{"smoke-b", nil, `[{"type":"T","id":"0190a0a0-0000-7000-8000-000000000002"},{"type":"T","id":"0190a0a0-0000-7000-8000-000000000002"}]`},
	{"", nil, `[{"type":"T","data":{}}]`},
	{" x", nil, `[{"type":"T","data":{}}]`},
	{"$x", nil, `[{"type":"T","data":{}}]`},
	{"smoke-c", ptr(int64(-2)), `[{"type":"T","data":{}}]`},
}

// callOutcome runs one call in a transaction that is rolled back, and describes its result.
func callOutcome(ctx context.Context, c *pgx.Conn, fn, stream string, expected *int64, events string) (string, error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	var v *int64
	err = tx.QueryRow(ctx, "SELECT r.stream_version FROM "+fn+"($1, $2, $3::jsonb) AS r", stream, expected, events).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Sprintf("%s %s %s", pgErr.Code, pgErr.Message, pgErr.Detail), nil
	}
	if err != nil {
		return "", err
	}
	if v == nil {
		return "ok <nil>", nil
	}
	return "ok " + strconv.FormatInt(*v, 10), nil
}

// sameAsOriginal replays smokeCalls against the original and the variant (the state each call
// sees: the earlier calls of the list, committed for both alike).
func sameAsOriginal(ctx context.Context, c *pgx.Conn, fn string) error {
	for i, call := range smokeCalls {
		want, err := callOutcome(ctx, c, "annals.append_events", call.stream, call.expected, call.events)
		if err != nil {
			return err
		}
		got, err := callOutcome(ctx, c, fn, call.stream, call.expected, call.events)
		if err != nil {
			return err
		}
		if want != got {
			return fmt.Errorf("call %d (%s, %s) differs: original %q, variant %q", i, call.stream, call.events, want, got)
		}
		if i == 0 { // later calls need the stream to exist
			if _, err := c.Exec(ctx, "SELECT annals.append_events($1, NULL, $2::jsonb)", call.stream, call.events); err != nil {
				return err
			}
		}
	}
	return nil
}

// backendCPU returns the CPU time a local server process has used so far, from /proc; false
// when the server is not on this machine (or not Linux).
func backendCPU(pid int, db string) (time.Duration, bool) {
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmd), "postgres") || !strings.Contains(string(cmd), db) {
		return 0, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 on
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}

// cpuPerCall runs sql n times on c (one transaction each) and returns the server CPU per call
// in microseconds.
func cpuPerCall(ctx context.Context, c *pgx.Conn, db string, sql string, n int) (float64, bool, error) {
	pid, err := backendPID(ctx, c)
	if err != nil {
		return 0, false, err
	}
	before, ok := backendCPU(pid, db)
	if !ok {
		return 0, false, nil
	}
	for i := range n {
		if _, err := c.Exec(ctx, sql, strconv.Itoa(i%100)); err != nil {
			return 0, false, err
		}
	}
	after, _ := backendCPU(pid, db)
	return float64(after-before) / float64(time.Microsecond) / float64(n), true, nil
}

func variantsScenario() scenario {
	return scenario{
		name:    "append-variants",
		summary: "copies of append_events with proposed edits, checked against the original and measured side by side",
		optIn:   true,
		estimate: func(b *Bench) time.Duration {
			return 3*b.warmEstimate(b.conc, 1) + 3*b.warmEstimate(b.conc, batchSize/10) +
				time.Duration(6*b.reps)*b.measureEstimate() + time.Duration((len(variants())+2)*b.reps)*2*time.Second
		},
		run: runVariants,
	}
}

func runVariants(ctx context.Context, b *Bench) ([]Result, error) {
	if err := b.reset(ctx); err != nil {
		return nil, err
	}
	var def string
	if err := b.pool.QueryRow(ctx, "SELECT pg_catalog.pg_get_functiondef('annals.append_events(text,bigint,jsonb)'::regprocedure)").Scan(&def); err != nil {
		return nil, err
	}
	conns, err := b.connect(ctx, 1, map[string]string{"synchronous_commit": "off"})
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	c := conns[0]

	type arm struct {
		name, fn, summary string
		diagnostic        bool
		noTrigger         bool
		recommended       bool
	}
	arms := []arm{{name: "current", fn: "annals.append_events", summary: "the installed function"}}
	var out []Result
	for _, v := range variants() {
		// Same function name in a schema of its own: the body qualifies its parameters with it.
		schema := "bench_v_" + v.name
		fn := schema + ".append_events"
		body, err := applyEdits(def, v.edits)
		for _, s := range []string{"CREATE SCHEMA IF NOT EXISTS " + schema, "GRANT USAGE, CREATE ON SCHEMA " + schema + " TO annals_owner"} {
			if err == nil {
				_, err = b.pool.Exec(ctx, s)
			}
		}
		if err == nil {
			body = strings.Replace(body, "FUNCTION annals.append_events(", "FUNCTION "+fn+"(", 1)
			_, err = b.pool.Exec(ctx, body)
		}
		if err == nil {
			_, err = b.pool.Exec(ctx, "ALTER FUNCTION "+fn+"(text, bigint, jsonb) OWNER TO annals_owner")
		}
		if err == nil && !v.diagnostic {
			err = sameAsOriginal(ctx, c, fn)
		}
		if err != nil {
			out = append(out, Result{Scenario: "variant " + v.name, Unit: "-", Method: "skipped",
				Note: fmt.Sprintf("skipped (%s): %v", v.summary, err)})
			continue
		}
		arms = append(arms, arm{name: v.name, fn: fn, summary: v.summary, diagnostic: v.diagnostic,
			noTrigger: v.noDispatchTrigger, recommended: v.recommended})
	}

	// Throughput: the plain INSERT, the current function and the recommended variant, alternated
	// in one rotation, for single events and for 100-event batches. The other variants are
	// judged by their server CPU below, which is far less noisy than throughput here.
	tput := []arm{arms[0]}
	for _, a := range arms[1:] {
		if a.recommended {
			tput = append(tput, a)
		}
	}
	streams := b.streamsPerClient()
	for _, batch := range []bool{false, true} {
		perTx, st := 1, streams
		raw := rawInsertWorkload(st)
		rawName, what := "plain INSERT", fmt.Sprintf("%d clients", b.conc)
		if batch {
			perTx, st = batchSize, max(streams/10, 2)
			raw, rawName, what = rawBatchWorkload(st), "100-row INSERT", fmt.Sprintf("batch of %d, %d clients", batchSize, b.conc)
		}
		b.prog.step("append-variants: warm-up", b.warmEstimate(b.conc, perTx)*3/2)
		if err := b.warm(ctx, raw, b.conc); err != nil {
			return out, err
		}
		sides := []side{{name: rawName, est: b.measureEstimate(), run: func(ctx context.Context) (float64, error) {
			tps, err := b.tps(ctx, raw, b.conc, b.dur)
			return tps * float64(perTx), err
		}}}
		for _, a := range tput {
			w := appendWorkload(st)
			if batch {
				w = batchWorkload(st)
			}
			w.sql = strings.Replace(w.sql, "annals.append_events(", a.fn+"(", 1)
			if err := b.warm(ctx, w, b.conc); err != nil {
				return out, err
			}
			sides = append(sides, side{name: a.name, est: b.measureEstimate(), run: func(ctx context.Context) (float64, error) {
				tps, err := b.tps(ctx, w, b.conc, b.dur)
				return tps * float64(perTx), err
			}})
		}
		s, err := b.alternate(ctx, "append variants, "+what, sides...)
		if err != nil {
			return out, err
		}
		for i, a := range tput {
			r := figure(fmt.Sprintf("variant %s, %s", a.name, what), "events/s", s[i+1], s[0], rawLabel,
				b.method(b.conc)+"; the plain INSERT, the current function and the recommended variant alternated in one rotation", ratioAtLeast(0.6))
			r.Note = fmt.Sprintf("%s; %.2fx the current function", a.summary, r.Value/median(s[1]))
			out = append(out, r)
		}
	}

	// Server CPU per call, one connection, no WAL flush wait: the least noisy comparison.
	cpuN := 3000
	if b.cfg.Quick {
		cpuN = 300
	}
	cpuSQL := func(fn string) string {
		return `SELECT ` + fn + `('cpu-' || $1::text, NULL, '[{"type":"BenchEvent","data":` + benchData + `}]'::jsonb)`
	}
	rawCPU := rawColumns + rawRow(`'rawcpu-' || $1::text`)
	cpuSides := []side{{name: "plain INSERT", est: 2 * time.Second, run: func(ctx context.Context) (float64, error) {
		v, ok, err := cpuPerCall(ctx, c, b.db, rawCPU, cpuN)
		if !ok && err == nil {
			err = errNotLocal
		}
		return v, err
	}}}
	for _, a := range arms {
		cpuSides = append(cpuSides, side{name: a.name + " (CPU)", est: 2 * time.Second, run: func(ctx context.Context) (float64, error) {
			return b.maybeWithoutDispatchTrigger(ctx, a.noTrigger, func() (float64, error) {
				v, ok, err := cpuPerCall(ctx, c, b.db, cpuSQL(a.fn), cpuN)
				if !ok && err == nil {
					err = errNotLocal
				}
				return v, err
			})
		}})
	}
	cs, err := b.alternate(ctx, "server CPU per append", cpuSides...)
	if errors.Is(err, errNotLocal) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	for i, a := range arms {
		r := figure(fmt.Sprintf("server CPU per append, %s", a.name), "us", cs[i+1], cs[0],
			"server CPU per single-row plain INSERT",
			fmt.Sprintf("Go/pgx, one connection with synchronous_commit=off, %d calls per sample; CPU time of the server process from /proc; %d reps, median", cpuN, b.reps), nil)
		r.Note = a.summary
		out = append(out, r)
	}
	return out, nil
}

var errNotLocal = errors.New("the server is not on this machine: no CPU figures")

// maybeWithoutDispatchTrigger runs f, with the events_dispatch_inline trigger dropped when drop
// is set; the trigger is re-created as it was (definition and enabled state) afterwards.
func (b *Bench) maybeWithoutDispatchTrigger(ctx context.Context, drop bool, f func() (float64, error)) (_ float64, err error) {
	if !drop {
		return f()
	}
	var def, enabled string
	err = b.pool.QueryRow(ctx, `SELECT pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled::text FROM pg_catalog.pg_trigger AS t
		WHERE t.tgrelid = 'annals_internal.events'::regclass AND t.tgname = 'events_dispatch_inline'`).Scan(&def, &enabled)
	if err != nil {
		return 0, fmt.Errorf("find the dispatch trigger: %w", err)
	}
	if _, err := b.pool.Exec(ctx, "DROP TRIGGER events_dispatch_inline ON annals_internal.events"); err != nil {
		return 0, err
	}
	defer func() {
		restore := []string{def}
		if enabled == "D" {
			restore = append(restore, "ALTER TABLE annals_internal.events DISABLE TRIGGER events_dispatch_inline")
		}
		for _, s := range restore {
			if _, e := b.pool.Exec(context.WithoutCancel(ctx), s); e != nil && err == nil {
				err = fmt.Errorf("restore the dispatch trigger: %w", e)
			}
		}
	}()
	return f()
}

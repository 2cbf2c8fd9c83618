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
// skipped instead of measured. Diagnostic variants are not proposals (they drop checks the
// contract requires) and skip the equivalence check: they show what a part costs.

// edit replaces the text from `from` up to (not including) `to` with `with`, or with what fn
// makes of it; with to empty it replaces exactly `from`. from must occur once.
type edit struct {
	from, to, with string
	fn             func(old string) (string, error)
}

type variant struct {
	name, summary string
	edits         []edit
	// body, when set, replaces the function instead of edits (a reference implementation).
	body       string
	diagnostic bool
	// noDispatchTrigger measures with the (disabled) inline-projection dispatch trigger dropped.
	noDispatchTrigger bool
	// throughput: measured at --clients too, in the rotation with the INSERT and the current
	// function; the others are judged by server CPU only.
	throughput bool
}

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

// noEventChecks drops the per-event checks (annals_internal.event_fault) from the batch scan.
var noEventChecks = []edit{{from: "                   min(x.ord) FILTER (WHERE annals_internal.event_fault(x.ev, s.max_event_bytes) IS NOT NULL) AS first_bad,\n",
	with: "                   NULL::bigint AS first_bad,\n"}}

// withoutTags undoes M15's edits to append_events (tags: the batch scan's bool_or, the tagged
// lock branch, the tags column of the INSERT), so the bench measures what tag support costs an
// untagged append. (event_fault's one `ev ? 'tags'` test stays: it is in 002, not 021.)
var withoutTags = []edit{
	{from: "                   bool_or(x.ev ? 'tags') AS tagged\n", with: "                   NULL::boolean AS tagged\n"},
	{from: "    IF v_tagged THEN\n", to: "v_count > 0 AND NOT pg_try_advisory_xact_lock", with: "    IF "},
	{from: ", recorded_at, tags)", with: ", recorded_at)"},
	{from: "               v_now,\n               CASE WHEN v_tagged THEN annals_internal.tags_of(x.ev) END  -- M15\n", with: "               v_now\n"},
}

// withoutTenancy undoes M15's tenancy edits to append_events (functions/003_tenancy.sql: reading
// the tenant setting, qualifying the stream id, "$tenant" in the metadata), so the bench measures
// what the tenancy code costs an append with tenancy off. (event_fault's one `? '$tenant'` test
// stays: it is in 002, not 021.)
var withoutTenancy = []edit{
	{from: "    v_tenant     text := nullif(current_setting('annals.tenant', true), '');  -- M15 tenancy: NULL when none\n", with: ""},
	{from: "    -- M15: a tenant's stream is stored as tenant", to: "    -- One pass over the batch.", with: ""},
	{from: "               CASE WHEN v_tenant IS NULL THEN coalesce(nullif(p.ev -> 'metadata', 'null'), '{}')  -- M15: the event's tenant\n",
		to: "               v_xid,\n", with: "               coalesce(nullif(p.ev -> 'metadata', 'null'), '{}'),\n"},
}

// noValidation drops the whole batch scan: no per-event checks, no duplicate ids, no limits.
var noValidation = []edit{{from: "    -- One pass over the batch.", to: "    IF v_count > v_max_events THEN",
	with: "    v_count := jsonb_array_length(append_events.events);\n    v_distinct := 0; v_with_id := 0; v_max_events := 10000; v_max_bytes := 67108864;\n\n"}}

// bareAppend is the reference point, "a bare append function": the advisory lock, the
// stream row upsert and one INSERT ... SELECT FROM jsonb_array_elements; no validation, no
// expected version, no idempotency, no transaction-order check. What any append function with
// the same round trip and writes costs at least.
const bareAppend = `CREATE OR REPLACE FUNCTION annals.append_events(stream_id text, expected_version bigint, events jsonb)
RETURNS TABLE (stream_version bigint, global_position bigint, transaction_id xid8)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    v_current bigint;
    v_n       bigint;
    v_g       bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(append_events.stream_id, 0));
    SELECT s.stream_version INTO v_current FROM annals_internal.streams AS s WHERE s.stream_id = append_events.stream_id;
    v_current := coalesce(v_current, 0);
    WITH ins AS (
        INSERT INTO annals_internal.events AS e
               (stream_id, stream_version, event_id, event_type, schema_version, data, metadata, transaction_id, recorded_at)
        SELECT append_events.stream_id, v_current + x.ord, gen_random_uuid(), x.ev ->> 'type', 1,
               coalesce(x.ev -> 'data', '{}'), '{}', pg_current_xact_id(), clock_timestamp()
          FROM jsonb_array_elements(append_events.events) WITH ORDINALITY AS x(ev, ord)
        RETURNING e.global_position)
    SELECT count(*), max(ins.global_position) INTO v_n, v_g FROM ins;
    INSERT INTO annals_internal.streams AS s (stream_id, category, stream_version, last_transaction_id, created_at, updated_at)
    VALUES (append_events.stream_id, split_part(append_events.stream_id, '-', 1), v_current + v_n, pg_current_xact_id(), now(), now())
    ON CONFLICT ON CONSTRAINT streams_pkey DO UPDATE
       SET stream_version = excluded.stream_version, last_transaction_id = excluded.last_transaction_id, updated_at = excluded.updated_at;
    RETURN QUERY SELECT v_current + v_n, v_g, pg_current_xact_id();
END
$$`

func variants() []variant {
	cat := func(es ...[]edit) []edit {
		var out []edit
		for _, e := range es {
			out = append(out, e...)
		}
		return out
	}
	return []variant{
		{name: "c_event_id_arbiter", summary: "C: ON CONFLICT ON CONSTRAINT events_event_id_key instead of every unique key",
			edits: idArbiter},
		{name: "cd_update_existing", summary: "C + D: also UPDATE the stream row when the stream exists instead of INSERT ... ON CONFLICT DO UPDATE",
			edits: cat(idArbiter, updateExisting)},
		{name: "cd_no_dispatch_trigger", noDispatchTrigger: true,
			summary: "C + D with the disabled events_dispatch_inline trigger dropped (a change to 210, not 021: a disabled trigger with a transition table still makes every insert capture its rows)",
			edits:   cat(idArbiter, updateExisting)},
		{name: "diag_no_event_checks", diagnostic: true, summary: "diagnostic only, not a proposal: no per-event checks (event_fault) in the batch scan",
			edits: noEventChecks},
		{name: "diag_no_validation", diagnostic: true, summary: "diagnostic only, not a proposal: no batch scan at all (no checks, duplicate ids or limits)",
			edits: noValidation},
		{name: "m14_without_tags", throughput: true, edits: withoutTags,
			summary: "M15 check: append_events without its tag support (the function before M15), against the current one; a tagged call differs, untagged ones must not"},
		{name: "m15_without_tenancy", throughput: true, edits: withoutTenancy,
			summary: "M15 check: append_events without its tenancy code (the function before tenancy), against the current one, tenancy off: they must cost the same"},
		{name: "ref_bare_append", diagnostic: true, throughput: true, body: bareAppend,
			summary: "reference, not a proposal: the issue's bare append function (advisory lock, stream row upsert, one INSERT ... SELECT FROM jsonb_array_elements; nothing checked)"},
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
		throughput        bool
	}
	arms := []arm{{name: "current", fn: "annals.append_events", summary: "the installed function"}}
	var out []Result
	for _, v := range variants() {
		// Same function name in a schema of its own: the body qualifies its parameters with it.
		schema := "bench_v_" + v.name
		fn := schema + ".append_events"
		body, err := v.body, error(nil)
		if body == "" {
			body, err = applyEdits(def, v.edits)
		}
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
			noTrigger: v.noDispatchTrigger, throughput: v.throughput})
	}

	// Throughput: the plain INSERT, the current function and the throughput variants, alternated
	// in one rotation, for single events and for 100-event batches. The other variants are
	// judged by their server CPU below, which is far less noisy than throughput here.
	tput := []arm{arms[0]}
	for _, a := range arms[1:] {
		if a.throughput {
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
				b.method(b.conc)+"; the plain INSERT, the current function and the reference alternated in one rotation", ratioAtLeast(0.6))
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

package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// These tests cover the pure parts (statistics, formatting, parsing, scenario selection, the
// variant edits). The measurements themselves run with `annals bench`, never in go test.

func TestMedianAndPercentile(t *testing.T) {
	t.Parallel()
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	if !math.IsNaN(median(nil)) || !math.IsNaN(percentile(nil, 50)) {
		t.Error("empty input must give NaN")
	}
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i) // 100..1, unsorted on purpose
	}
	for p, want := range map[float64]float64{50: 50, 99: 99, 100: 100, 1: 1} {
		if got := percentile(xs, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if xs[0] != 100 {
		t.Error("percentile must not sort its input in place")
	}
}

func TestFigureRatioAndGoal(t *testing.T) {
	t.Parallel()
	r := figure("x", "events/s", []float64{60, 70, 80}, []float64{100, 100, 100}, "raw", "m", ratioAtLeast(0.6))
	if r.Value != 70 || *r.Baseline != 100 || math.Abs(*r.Ratio-0.7) > 1e-9 || !*r.Met || r.Target != ">= 0.60x" {
		t.Errorf("figure = %+v", r)
	}
	r = figure("lat", "ms", []float64{1.3}, []float64{1}, "", "m", ratioAtMost(1.2))
	if *r.Met {
		t.Error("1.3x must miss <= 1.2x")
	}
	r = figure("feed", "events/s", []float64{150_000}, nil, "", "m", valueAtLeast(200_000))
	if r.Baseline != nil || r.Ratio != nil || *r.Met || r.Target != ">= 200,000" {
		t.Errorf("absolute goal: %+v", r)
	}
	r = figure("no goal", "ms", []float64{1}, []float64{2}, "", "m", nil)
	if r.Met != nil || r.Target != "" {
		t.Errorf("no goal: %+v", r)
	}
}

func TestFormatNumber(t *testing.T) {
	t.Parallel()
	for x, want := range map[float64]string{
		0: "0", 0.01234: "0.0123", 1.234: "1.23", 12.34: "12.3", 123.4: "123", 1234.5: "1,235",
		1234567: "1,234,567", -4321: "-4,321", math.NaN(): "n/a",
	} {
		if got := formatNumber(x); got != want {
			t.Errorf("formatNumber(%v) = %q, want %q", x, got, want)
		}
	}
	if got := formatCount(10_000_000); got != "10M" {
		t.Errorf("formatCount = %q", got)
	}
}

func TestWriteTableAndJSON(t *testing.T) {
	t.Parallel()
	rs := []Result{
		figure("append, 8 clients", "events/s", []float64{6000}, []float64{10000}, "plain INSERT", "pgbench", ratioAtLeast(0.6)),
		{Scenario: "growth", Unit: "-", Method: "skipped", Note: "needs a superuser"},
	}
	var table bytes.Buffer
	WriteTable(&table, rs)
	for _, want := range []string{"append, 8 clients", "6,000", "10,000", "0.60x", ">= 0.60x", "yes", "skipped", "needs a superuser"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, rs); err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"scenario", "value", "unit", "baseline", "ratio"} {
		if _, ok := back[0][key]; !ok {
			t.Errorf("JSON object lacks %q: %s", key, js.String())
		}
	}
	if back[1]["baseline"] != nil || back[1]["ratio"] != nil {
		t.Errorf("a figure without baseline must have null baseline and ratio: %v", back[1])
	}
	js.Reset()
	if err := WriteJSON(&js, nil); err != nil || strings.TrimSpace(js.String()) != "[]" {
		t.Errorf("no results must be an empty array, got %q", js.String())
	}
}

func TestWorkloadSubstitution(t *testing.T) {
	t.Parallel()
	w := workload{streams: 7, sql: "SELECT f('s-' || :client_id::text || '-' || :s::text, '{}'::jsonb, 1::smallint)"}
	if got, want := w.goSQL(), "SELECT f('s-' || $1::text || '-' || $2::text, '{}'::jsonb, 1::smallint)"; got != want {
		t.Errorf("goSQL = %q, want %q", got, want)
	}
	if got := w.pgbenchScript(); !strings.HasPrefix(got, "\\set s random(1, 7)\n") || !strings.HasSuffix(got, ");\n") {
		t.Errorf("pgbench script = %q", got)
	}
}

func TestPgbenchOutputParsing(t *testing.T) {
	t.Parallel()
	out := []byte(`transaction type: x.sql
number of transactions actually processed: 5012
number of failed transactions: 0 (0.000%)
latency average = 1.596 ms
initial connection time = 12.345 ms
tps = 5012.345678 (without initial connection time)
`)
	m := tpsLine.FindSubmatch(out)
	if m == nil || string(m[1]) != "5012.345678" {
		t.Errorf("tps match = %q", m)
	}
	if f := failedLine.FindSubmatch(out); f == nil || string(f[1]) != "0" {
		t.Errorf("failed match = %q", f)
	}
	if pgbenchSeconds(300*time.Millisecond) != 1 || pgbenchSeconds(2600*time.Millisecond) != 3 {
		t.Error("pgbench durations are whole seconds, at least 1")
	}
}

func TestLibpqConnString(t *testing.T) {
	t.Parallel()
	got, err := libpqConnString("postgres://u:p@h:5433/app?sslmode=require&pool_max_conns=4", "annals_bench_x")
	if err != nil || got != "postgres://u:p@h:5433/annals_bench_x?sslmode=require" {
		t.Errorf("URL form = %q, %v", got, err)
	}
	got, err = libpqConnString("host=h user=u dbname=app pool_max_conns=4 sslmode=disable", "annals_bench_x")
	if err != nil || got != "host=h user=u dbname=app sslmode=disable dbname=annals_bench_x" {
		t.Errorf("key=value form = %q, %v", got, err)
	}
}

func TestSelectScenarios(t *testing.T) {
	t.Parallel()
	def, err := selectScenarios(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range def {
		if s.optIn {
			t.Errorf("default set includes opt-in %s", s.name)
		}
	}
	got, err := selectScenarios([]string{"feed-catchup", " append"})
	if err != nil || len(got) != 2 || got[0].name != "append" || got[1].name != "feed-catchup" {
		t.Errorf("selection must follow run order: %v, %v", got, err)
	}
	if all, _ := selectScenarios([]string{"all"}); len(all) != len(allScenarios()) {
		t.Errorf("all = %d scenarios", len(all))
	}
	if _, err := selectScenarios([]string{"nope"}); err == nil || !strings.Contains(err.Error(), "append") {
		t.Errorf("unknown scenario error must list the known ones: %v", err)
	}
}

func TestApplyEdits(t *testing.T) {
	t.Parallel()
	def := "a\nBEGIN x\nstuff\nEND\nz\n"
	got, err := applyEdits(def, []edit{{from: "BEGIN x\n", to: "END\n", with: "NEW\n"}, {from: "z\n", with: "zz\n"}})
	if err != nil || got != "a\nNEW\nEND\nzz\n" {
		t.Errorf("applyEdits = %q, %v", got, err)
	}
	if _, err := applyEdits(def, []edit{{from: "missing", with: ""}}); err == nil {
		t.Error("a missing anchor must be an error (the variant is then skipped)")
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	if got := ParseList(" a, ,b "); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("ParseList = %q", got)
	}
	if got, err := ParseClients("1, 8,32"); err != nil || len(got) != 3 || got[2] != 32 {
		t.Errorf("ParseClients = %v, %v", got, err)
	}
	for _, bad := range []string{"x", "0", "-3"} {
		if _, err := ParseClients(bad); err == nil {
			t.Errorf("ParseClients(%q) must fail", bad)
		}
	}
}

func TestAppendLoadWindows(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &appendLoad{}
	for i := range 100 {
		l.samples = append(l.samples,
			appendSample{batch: false, start: t0.Add(time.Duration(i) * time.Millisecond), ms: float64(i + 1)},
			appendSample{batch: true, start: t0.Add(time.Duration(i) * time.Millisecond), ms: float64(10 * (i + 1))})
	}
	got, at := l.window(t0.Add(10*time.Millisecond), t0.Add(20*time.Millisecond), false)
	if len(got) != 10 || got[0] != 11 || got[9] != 20 || !at.Equal(t0.Add(19*time.Millisecond)) {
		t.Errorf("window counts appends that started in [from, to): %v, longest at %v", got, at)
	}
	st, err := statsOf(l, t0, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.singleMax != 100 || st.singleP99 != 99 || st.batchMax != 1000 || st.batchP99 != 990 || st.singleMaxBeforeEnd != 901*time.Millisecond {
		t.Errorf("stats = %+v", st)
	}
	if _, err := statsOf(l, t0.Add(time.Hour), t0.Add(2*time.Hour)); err == nil {
		t.Error("a window without appends must be an error, not a zero figure")
	}
}

func TestGuideWorkloads(t *testing.T) {
	t.Parallel()
	one := guideAppendWorkload(3).goSQL()
	if strings.Contains(one, ":client_id") || strings.Contains(one, ":s") || !strings.Contains(one, "$1") || !strings.Contains(one, "$2") {
		t.Errorf("guide append placeholders: %s", one)
	}
	if !strings.Contains(one, "generate_series(1, 1)") || !strings.Contains(one, "max(e.version)") {
		t.Errorf("guide append: %s", one)
	}
	if b := guideBatchWorkload(3).sql; !strings.Contains(b, fmt.Sprintf("generate_series(1, %d)", batchSize)) {
		t.Errorf("guide batch: %s", b)
	}
	if !strings.Contains(guideTable, "UNIQUE (stream_id, version)") {
		t.Error("the guide's table needs its unique key")
	}
}

package bench

import (
	"fmt"
	"math"
	"slices"
)

// Result is one figure: the subject's value next to its same-run baseline.
type Result struct {
	// Scenario names the figure, e.g. "append, 8 clients".
	Scenario string `json:"scenario"`
	// Value is the median of the subject's repetitions (or the percentile named in Scenario).
	Value float64 `json:"value"`
	// Unit of Value and Baseline, e.g. "events/s" or "ms".
	Unit string `json:"unit"`
	// Baseline is the same measurement of the baseline, in the same run; nil when none applies.
	Baseline *float64 `json:"baseline"`
	// Ratio is Value / Baseline; nil without a baseline.
	Ratio *float64 `json:"ratio"`
	// BaselineLabel says what the baseline is.
	BaselineLabel string `json:"baseline_label,omitempty"`
	// Target is the goal from the benchmark issue, e.g. ">= 0.60x"; empty when none.
	Target string `json:"target,omitempty"`
	// Met reports whether Target is met; nil without a target.
	Met *bool `json:"met,omitempty"`
	// Method says how it was measured (pgbench or Go, clients, repetitions).
	Method string `json:"method"`
	// Samples and BaselineSamples are the per-repetition values behind the medians.
	Samples         []float64 `json:"samples,omitempty"`
	BaselineSamples []float64 `json:"baseline_samples,omitempty"`
	// Waits and BaselineWaits are the shares of sampled server-process states (wait events,
	// "CPU" for none) while the subject and the baseline ran, where sampled.
	Waits         map[string]float64 `json:"waits,omitempty"`
	BaselineWaits map[string]float64 `json:"baseline_waits,omitempty"`
	// Note explains anything unusual about the figure.
	Note string `json:"note,omitempty"`
}

// goal is a target from the issue: a bound on the ratio or on the value itself.
type goal struct {
	atLeast bool    // lower bound (else upper)
	onValue bool    // bound on Value (else on Ratio)
	x       float64 // the bound
}

func ratioAtLeast(x float64) *goal { return &goal{atLeast: true, x: x} }
func ratioAtMost(x float64) *goal  { return &goal{x: x} }
func valueAtLeast(x float64) *goal { return &goal{atLeast: true, onValue: true, x: x} }

func (g *goal) String() string {
	op := "<="
	if g.atLeast {
		op = ">="
	}
	if g.onValue {
		return fmt.Sprintf("%s %s", op, formatNumber(g.x))
	}
	return fmt.Sprintf("%s %.2fx", op, g.x)
}

// figure builds a Result from the subject's and the baseline's samples (baseline may be nil).
func figure(name, unit string, samples, baseline []float64, baseLabel, method string, g *goal) Result {
	r := Result{Scenario: name, Unit: unit, Value: median(samples), Samples: samples,
		BaselineSamples: baseline, BaselineLabel: baseLabel, Method: method}
	if len(baseline) > 0 {
		bv := median(baseline)
		r.Baseline = &bv
		if bv != 0 {
			ratio := r.Value / bv
			r.Ratio = &ratio
		}
	}
	r.setGoal(g)
	return r
}

func (r *Result) setGoal(g *goal) {
	if g == nil {
		return
	}
	r.Target = g.String()
	v := r.Value
	if !g.onValue {
		if r.Ratio == nil {
			return
		}
		v = *r.Ratio
	}
	met := v <= g.x
	if g.atLeast {
		met = v >= g.x
	}
	r.Met = &met
}

// median of xs (NaN when empty); xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of xs; NaN when empty.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

func ptr[T any](v T) *T { return &v }

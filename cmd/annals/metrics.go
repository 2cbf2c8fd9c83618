package main

import (
	"math"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// workerMetrics is the worker's Prometheus registry (its own, not the global one): counters the
// worker updates as it goes, and a collector serving the latest sample of the database's state.
type workerMetrics struct {
	registry  *prometheus.Registry
	errors    *prometheus.CounterVec
	projected prometheus.Counter
	refreshes *prometheus.CounterVec
	// On a sharded store's proxy only: each shard's reachability and events projected.
	shardUp        *prometheus.GaugeVec
	shardProjected *prometheus.CounterVec

	mu     sync.Mutex
	latest *snapshot
}

var (
	descHeadPosition = prometheus.NewDesc("annals_feed_head_position",
		"Global position of the newest event readable in the gap-free feed.", nil, nil)
	descAppendRate = prometheus.NewDesc("annals_append_rate_events_per_second",
		"Events appended per second, from the feed head's position between the last two samples (positions may have gaps).", nil, nil)
	descBarrierAge = prometheus.NewDesc("annals_feed_barrier_age_seconds",
		"Age of the oldest open transaction holding the feed's barrier (0 when none): events of younger transactions wait for it.", nil, nil)
	descProjectionBehind = prometheus.NewDesc("annals_projection_events_behind",
		"Events an async projection has yet to apply (counted up to 100000; 0 for inline projections).", []string{"projection", "mode"}, nil)
	descProjectionSecondsBehind = prometheus.NewDesc("annals_projection_seconds_behind",
		"Age of the oldest event an async projection has yet to apply (0 when caught up).", []string{"projection"}, nil)
	descProjectionState = prometheus.NewDesc("annals_projection_state",
		"1 for the projection's current state (active, failing, disabled, rebuilding), 0 for the others.", []string{"projection", "state"}, nil)
	descProjectionDeadLetters = prometheus.NewDesc("annals_projection_dead_letters",
		"Events an async projection parked as dead letters, not yet resolved.", []string{"projection"}, nil)
	descSubscriptionBehind = prometheus.NewDesc("annals_subscription_events_behind",
		"Events a subscription member has yet to acknowledge (counted up to 100000).", []string{"subscription", "member"}, nil)
	descSubscriptionSecondsBehind = prometheus.NewDesc("annals_subscription_seconds_behind",
		"Age of the oldest event a subscription member has yet to acknowledge (0 when caught up).", []string{"subscription", "member"}, nil)
	descSubscriptionDeadLetters = prometheus.NewDesc("annals_subscription_dead_letters",
		"A subscription member's dead letters that are not resolved.", []string{"subscription", "member"}, nil)
	descViewAge = prometheus.NewDesc("annals_view_age_seconds",
		"Seconds since a registered materialized view was last refreshed (+Inf when never).", []string{"view"}, nil)
	descViewBehind = prometheus.NewDesc("annals_view_events_behind",
		"Events appended since a materialized view's last refresh (counted up to 100000).", []string{"view"}, nil)
	descReplicaLagBytes = prometheus.NewDesc("annals_replica_lag_bytes",
		"Bytes of WAL a streaming standby has yet to replay (pg_stat_replication; reads there are that far behind).", []string{"standby", "addr"}, nil)
	descReplicaLagSeconds = prometheus.NewDesc("annals_replica_lag_seconds",
		"A streaming standby's last measured replay lag (0 once it has caught up).", []string{"standby", "addr"}, nil)
	descSampleTime = prometheus.NewDesc("annals_worker_last_sample_timestamp_seconds",
		"When the worker last read the values above from the database (Unix time).", nil, nil)
)

var projectionStates = []string{"active", "failing", "disabled", "rebuilding"}

func newWorkerMetrics() *workerMetrics {
	m := &workerMetrics{
		registry: prometheus.NewRegistry(),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_worker_errors_total",
			Help: "Errors the worker met, by task (projections, views, metrics).",
		}, []string{"task"}),
		projected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "annals_worker_projected_events_total",
			Help: "Events this worker applied to async projections.",
		}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_worker_view_refreshes_total",
			Help: "Materialized-view refreshes this worker ran, by view and result (refreshed, failed).",
		}, []string{"view", "result"}),
		shardUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "annals_worker_shard_up",
			Help: "On a sharded store's proxy: 1 when the shard's last call succeeded, 0 when it failed.",
		}, []string{"shard", "name"}),
		shardProjected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "annals_worker_shard_projected_events_total",
			Help: "On a sharded store's proxy: events this worker applied to the shard's async projections.",
		}, []string{"shard", "name"}),
	}
	for _, task := range []string{"projections", "views", "metrics"} {
		m.errors.WithLabelValues(task) // export 0s from the start, so rate() works at once
	}
	m.registry.MustRegister(m.errors, m.projected, m.refreshes, m.shardUp, m.shardProjected, m,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *workerMetrics) set(s *snapshot) {
	m.mu.Lock()
	m.latest = s
	m.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (m *workerMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHeadPosition, descAppendRate, descBarrierAge, descProjectionBehind,
		descProjectionSecondsBehind, descProjectionState, descProjectionDeadLetters, descSubscriptionBehind,
		descSubscriptionSecondsBehind, descSubscriptionDeadLetters, descViewAge, descViewBehind, descReplicaLagBytes,
		descReplicaLagSeconds, descSampleTime} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the latest sample, nothing before the first one.
func (m *workerMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	s := m.latest
	m.mu.Unlock()
	if s == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descHeadPosition, float64(s.headPosition))
	gauge(descAppendRate, s.appendRate)
	gauge(descBarrierAge, s.barrierAge)
	gauge(descSampleTime, float64(s.at.UnixNano())/1e9)
	for _, p := range s.projections {
		gauge(descProjectionBehind, float64(p.EventsBehind), p.Name, p.Mode)
		gauge(descProjectionSecondsBehind, p.SecondsBehind, p.Name)
		gauge(descProjectionDeadLetters, float64(p.DeadLetters), p.Name)
		for _, st := range projectionStates {
			v := 0.0
			if p.State == st {
				v = 1
			}
			gauge(descProjectionState, v, p.Name, st)
		}
	}
	for _, sm := range s.members {
		member := strconv.Itoa(sm.Member)
		gauge(descSubscriptionBehind, float64(sm.EventsBehind), sm.Name, member)
		gauge(descSubscriptionSecondsBehind, sm.TimeBehind.Seconds(), sm.Name, member)
		gauge(descSubscriptionDeadLetters, float64(sm.DeadLetters), sm.Name, member)
	}
	for _, r := range s.standbys {
		if r.Behind == nil { // not visible to this login
			continue
		}
		lag := 0.0
		if r.Lag != nil && *r.Behind > 0 {
			lag = *r.Lag
		}
		gauge(descReplicaLagBytes, float64(max(*r.Behind, 0)), r.Name, r.Addr)
		gauge(descReplicaLagSeconds, lag, r.Name, r.Addr)
	}
	for _, v := range s.views {
		age := math.Inf(1)
		if v.AgeSeconds != nil {
			age = *v.AgeSeconds
		}
		gauge(descViewAge, age, v.Name)
		gauge(descViewBehind, float64(v.EventsBehind), v.Name)
	}
}

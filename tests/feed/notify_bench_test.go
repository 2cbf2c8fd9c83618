package feed_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-db/annals/goapi/annalstest"
	"github.com/jackc/pgx/v5"
)

// The cost of NOTIFY on append throughput: single-event appends from 8 goroutines, each on its
// own stream (so stream locks do not interfere), with notifications on and off. A listener drains
// the notifications, as a running subscriber would. Run with
//
//	go test -run '^$' -bench Notify -benchtime 3s ./tests/feed/
func BenchmarkAppendNotifyOn(b *testing.B)  { benchmarkAppend(b, true) }
func BenchmarkAppendNotifyOff(b *testing.B) { benchmarkAppend(b, false) }

func benchmarkAppend(b *testing.B, notify bool) {
	const writers = 8
	ctx := context.Background()
	pool := annalstest.NewDB(b)
	if _, err := pool.Exec(ctx, "SELECT annals.configure(notify => $1)", notify); err != nil {
		b.Fatal(err)
	}

	cfg := pool.Config().ConnConfig.Copy()
	listener, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := listener.Exec(ctx, "LISTEN annals_events"); err != nil {
		b.Fatal(err)
	}
	lctx, stop := context.WithCancel(ctx)
	var received atomic.Int64
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			if _, err := listener.WaitForNotification(lctx); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	defer func() {
		stop()
		<-drained
		_ = listener.Close(ctx)
	}()

	var streams atomic.Int64
	batch := []byte(`[{"type": "Benchmarked", "data": {"n": 1}}]`)
	b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	began := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		stream := fmt.Sprintf("bench-%d", streams.Add(1))
		for pb.Next() {
			if _, err := pool.Exec(ctx, "SELECT annals.append_events($1, NULL, $2::jsonb)", stream, batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(began)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	b.ReportMetric(float64(streams.Load()), "writers")
	if !notify && received.Load() > 0 {
		b.Fatalf("%d notifications with notify off", received.Load())
	}
}

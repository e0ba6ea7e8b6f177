package dedupe_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ordersync/ordersync/internal/redistest"
	"github.com/ordersync/ordersync/pkg/dedupe"
)

// BenchmarkClaimComplete measures the store's cost per processed event, Claim + Complete on a distinct key
// (2 round trips), against a real redis-server on loopback with 1, 16 and 128 concurrent callers. It
// reports events/s and round trips/s; ns/op is wall time per event across all callers.
func BenchmarkClaimComplete(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 256, ContextTimeoutEnabled: true})
	b.Cleanup(func() { _ = rdb.Close() })
	s, err := dedupe.New(rdb, dedupe.Config{Prefix: "bench:"})
	if err != nil {
		b.Fatal(err)
	}
	outcome := make([]byte, 600) // about the size of an outcome event (orders.results)
	for i := range outcome {
		outcome[i] = 'a' + byte(i%26)
	}
	var seq atomic.Int64 // keys stay distinct across the benchmark's repeated runs

	for _, callers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			ctx := context.Background()
			if err := rdb.FlushDB(ctx).Err(); err != nil { // keep the server's memory flat between runs
				b.Fatal(err)
			}
			b.ReportAllocs()
			var done atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range callers {
				wg.Go(func() {
					for done.Add(1) <= int64(b.N) {
						key := dedupe.Key{Channel: "bench", ID: strconv.FormatInt(seq.Add(1), 10)}
						c, err := s.Claim(ctx, key, "fp", "owner", 30*time.Second)
						if err != nil || c.State != dedupe.Claimed {
							b.Errorf("Claim(%s) = %+v, %v; want Claimed", key, c, err)
							return
						}
						if err := s.Complete(ctx, key, "owner", c.Token, outcome, time.Hour); err != nil {
							b.Errorf("Complete(%s): %v", key, err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start).Seconds()
			b.ReportMetric(float64(b.N)/elapsed, "events/s")
			b.ReportMetric(2*float64(b.N)/elapsed, "roundtrips/s")
		})
	}
}

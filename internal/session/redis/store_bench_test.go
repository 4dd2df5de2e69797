package redis_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session/redis"
	"github.com/openqps/openqps/internal/session/redis/redistest"
)

// benchRedis returns a store on a fresh redis-server holding n sessions
// and their ids.
func benchRedis(b *testing.B, n int) (*redis.Store, []string) {
	b.Helper()
	srv := redistest.Start(b)
	s := open(b, srv.Addr, redis.Options{})
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		sess := testSession("User1", 30*time.Minute)
		ids[i] = sess.ID
		if err := s.Add(ctx, sess); err != nil {
			b.Fatal(err)
		}
	}
	return s, ids
}

// BenchmarkRedisAdd adds sessions from many goroutines (the add script
// and the index updates: two round trips each).
func BenchmarkRedisAdd(b *testing.B) {
	s, _ := benchRedis(b, 0)
	ctx := context.Background()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Add(ctx, testSession("User1", 30*time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRedisGet is the cookie lookup of every proxied request; after
// the first read of a session it is served from the client-side cache.
func BenchmarkRedisGet(b *testing.B) {
	s, ids := benchRedis(b, 1000)
	ctx := context.Background()
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			if _, err := s.Get(ctx, "sales", ids[i%len(ids)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkRedisTouch is the last-use update after every lookup: a
// cached read, and a write only when the stored LastUsed is older than
// the granularity (here: never, within the benchmark's second or so).
func BenchmarkRedisTouch(b *testing.B) {
	s, ids := benchRedis(b, 1000)
	ctx := context.Background()
	now := time.Now()
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			if err := s.Touch(ctx, "sales", ids[i%len(ids)], now); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

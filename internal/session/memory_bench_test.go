package session_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/session"
)

const benchSessions = 100_000

// benchMemory returns a store holding benchSessions sessions of one
// virtual proxy and their ids.
func benchMemory(b *testing.B) (*session.Memory, []string) {
	b.Helper()
	m := session.NewMemory()
	b.Cleanup(func() { m.Close() })
	ctx := context.Background()
	ids := make([]string, benchSessions)
	for i := range ids {
		ids[i] = session.NewID()
		s := session.Session{
			Prefix: "vp", ID: ids[i], UserDirectory: "DOMAIN", UserID: "user" + ids[i][:4],
			Attributes: []session.Attribute{{Key: "Group", Value: "Sales"}},
			Timeout:    30 * time.Minute,
		}
		if err := m.Add(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
	return m, ids
}

// BenchmarkMemoryGet is the cookie lookup of every proxied request, from
// many goroutines at once. A hit must not allocate.
func BenchmarkMemoryGet(b *testing.B) {
	m, ids := benchMemory(b)
	ctx := context.Background()
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919)) // each goroutine starts elsewhere
		for pb.Next() {
			if _, err := m.Get(ctx, "vp", ids[i%benchSessions]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkMemoryTouch is the last-use update that follows every lookup.
func BenchmarkMemoryTouch(b *testing.B) {
	m, ids := benchMemory(b)
	ctx := context.Background()
	now := time.Now()
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			if err := m.Touch(ctx, "vp", ids[i%benchSessions], now); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkMemoryAdd is a login: a new session with its user index entry.
func BenchmarkMemoryAdd(b *testing.B) {
	m := session.NewMemory()
	b.Cleanup(func() { m.Close() })
	ctx := context.Background()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = session.NewID()
	}
	attrs := []session.Attribute{{Key: "Group", Value: "Sales"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s := session.Session{
			Prefix: "vp", ID: ids[i], UserDirectory: "DOMAIN", UserID: "user" + ids[i][:4],
			Attributes: attrs, Timeout: 30 * time.Minute,
		}
		if err := m.Add(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}

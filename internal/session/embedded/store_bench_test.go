package embedded_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/openqps/openqps/internal/session/embedded"
)

// BenchmarkEmbeddedAdd adds sessions from many goroutines, as a busy
// login module does: each add waits for its fsync'd commit, and group
// commit shares one fsync among the adds that arrive meanwhile. It reports
// the adds per commit.
func BenchmarkEmbeddedAdd(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), embedded.FileName), embedded.Options{})
	ctx := context.Background()
	before := s.Commits()
	b.SetParallelism(32) // concurrent adds per CPU: API calls wait on the disk, not the CPU
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Add(ctx, testSession(time.Now(), "User1", 30*time.Minute)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(max(s.Commits()-before, 1)), "adds/commit")
}

// benchStore returns a store holding n sessions and their ids.
func benchStore(b *testing.B, n int) (*embedded.Store, []string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), embedded.FileName)
	ids := fillFile(b, path, n)
	return open(b, path, embedded.Options{}), ids
}

// fillFile writes n sessions straight into a new store file, in large
// transactions (the API would take one commit per group of adds).
func fillFile(b *testing.B, path string, n int) []string {
	b.Helper()
	s, err := embedded.Open(path, embedded.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	now := time.Now()
	const perTx = 50_000
	for start := 0; start < n; start += perTx {
		err := embedded.Update(s, func(tx *bolt.Tx) error {
			bk := tx.Bucket([]byte("sessions"))
			for i := start; i < min(start+perTx, n); i++ {
				sess := testSession(now, "user"+strconv.Itoa(i), 30*time.Minute)
				ids[i] = sess.ID
				if err := bk.Put([]byte(sess.Prefix+"\x00"+sess.ID), embedded.EncodeSession(sess)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return ids
}

// BenchmarkEmbeddedGet is the cookie lookup of every proxied request: it
// is served from memory.
func BenchmarkEmbeddedGet(b *testing.B) {
	s, ids := benchStore(b, 100_000)
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

// BenchmarkEmbeddedTouch is the last-use update after every lookup: in
// memory, with a write recorded for the next flush at most once per
// session per flush interval.
func BenchmarkEmbeddedTouch(b *testing.B) {
	s, ids := benchStore(b, 100_000)
	ctx := context.Background()
	start := time.Now()
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			at := start.Add(time.Duration(i) * time.Millisecond)
			if err := s.Touch(ctx, "sales", ids[i%len(ids)], at); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkEmbeddedRestart opens a store file holding many sessions:
// the time openqps needs to come back after a restart. The count is
// OPENQPS_RESTART_SESSIONS (default 100,000; the target is 1,000,000
// in at most 5 s).
func BenchmarkEmbeddedRestart(b *testing.B) {
	n := 100_000
	if v := os.Getenv("OPENQPS_RESTART_SESSIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), embedded.FileName)
	fillFile(b, path, n)
	b.ResetTimer()
	for b.Loop() {
		s, err := embedded.Open(path, embedded.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if s.Len() != n {
			b.Fatalf("%d sessions loaded, want %d", s.Len(), n)
		}
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "sessions")
}

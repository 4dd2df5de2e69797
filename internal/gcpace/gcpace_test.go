package gcpace

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentKeepsGarbageWithinBounds(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 800},        // before the first cycle: Go's 4 MB floor, 32 MB of garbage
		{1 * mb, 800},   // a tiny heap counts as 4 MB
		{20 * mb, 160},  // 32 MB of garbage on 20 MB
		{48 * mb, 100},  // as much garbage as is live
		{200 * mb, 32},  // a million sessions: 64 MB of garbage, not 200
		{1024 * mb, 25}, // never under a quarter of the live heap
	} {
		if got := Percent(c.live); got != c.want {
			t.Errorf("Percent(%d MB) = %d, want %d", c.live/mb, got, c.want)
		}
	}
}

// collectUntil runs collections until cond holds, for at most 10 s.
func collectUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s of collections: %s", what)
		}
		runtime.GC()
		runtime.Gosched() // let the cleanup goroutine run
	}
}

func TestPacerFollowsTheLiveHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)

	p := Start()
	if p == nil {
		t.Fatal("Start returned nil without GOGC or GOMEMLIMIT set")
	}
	big := make([]byte, 256<<20) // live, and without pointers, like the session store
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	collectUntil(t, "the percentage never dropped for a 256 MB heap", func() bool {
		pct := p.CurrentPercent()
		return pct > 0 && pct <= 26 // 64 MB of garbage on 256 MB or more is 25 %, the floor
	})
	runtime.KeepAlive(big)
	big = nil
	collectUntil(t, "the percentage never rose after the heap shrank", func() bool {
		return p.CurrentPercent() >= 400 // 32 MB of garbage on a few MB
	})

	p.Stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("after Stop the GC percentage is %d, want the 100 Start found", got)
	}
	runtime.GC()
	runtime.GC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("a retune after Stop changed the GC percentage to %d", got)
	}
}

func TestStartLeavesAnOperatorsChoiceAlone(t *testing.T) {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv("GOGC", "")
			t.Setenv("GOMEMLIMIT", "")
			t.Setenv(env, "200")
			if p := Start(); p != nil {
				p.Stop()
				t.Fatalf("Start paced the collector although %s is set", env)
			}
			var p *Pacer
			p.Stop() // a nil Pacer does nothing
			if p.CurrentPercent() != 0 {
				t.Error("a nil Pacer reports a percentage")
			}
		})
	}
}

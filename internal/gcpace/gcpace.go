// Package gcpace paces Go's garbage collector by how much garbage a cycle
// may leave behind, instead of by a fixed percentage of the live heap.
//
// Go's default, GOGC=100, lets the heap grow by as much as is live before
// it collects, with a floor of 4 MB. Neither end suits openqps. Its live
// heap is mostly the session store, which holds no pointers and so costs
// the collector almost nothing to mark, while every request leaves a few
// kilobytes of short-lived garbage:
//
//   - with a million sessions (about 200 MB live) the default lets 200 MB
//     of request garbage pile up between cycles, and the process's
//     resident size under load is twice what the sessions need;
//   - with a few sessions the 4 MB floor makes the collector run some
//     fifty times a second under load.
//
// A Pacer sets the GC percentage after every cycle so that the garbage
// allowed until the next one is as much as is live, but at least 32 MB and
// at most 64 MB, and never less than a quarter of the live
// heap, so that a large heap full of pointers is not marked over and over.
// A small heap is then collected far less often under load, and with a
// million sessions the heap stays within 64 MB of what is live
// (bench/scale; bench/README.md has the figures).
package gcpace

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The garbage a cycle may leave: as much as is live, but at least
// minGarbage and at most maxGarbage bytes, and never less than
// minPercent of the live heap. heapFloor is the smallest live heap this
// reckons with, Go's own minimum heap: before the first cycle the live
// heap reads 0.
const (
	minGarbage = 32 << 20
	maxGarbage = 64 << 20
	minPercent = 25
	heapFloor  = 4 << 20
)

// Pacer retunes the garbage collector after each cycle. The GC percentage
// is process-wide: run one Pacer at a time.
type Pacer struct {
	mu       sync.Mutex // guards the fields below; orders retunes against Stop
	stopped  bool
	original int // the percentage Start found
	percent  int // the last percentage a retune set; 0 before the first
}

// Start starts pacing and returns the Pacer; Stop restores the GC
// percentage it found. When the GOGC or GOMEMLIMIT environment variable
// is set, the operator has chosen, and Start returns nil: a nil Pacer's
// methods do nothing.
func Start() *Pacer {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	p := &Pacer{}
	p.mu.Lock()
	p.original = debug.SetGCPercent(Percent(liveHeap()))
	p.mu.Unlock()
	p.arm()
	return p
}

// Percent is the GC percentage for a heap with live bytes live: it lets
// the heap grow by as many bytes of garbage, clamped to [minGarbage,
// maxGarbage], and by at least minPercent of live.
func Percent(live uint64) int {
	live = max(live, heapFloor)
	garbage := max(minGarbage, min(live, maxGarbage))
	return max(int(garbage*100/live), minPercent)
}

// CurrentPercent is the GC percentage the pacer set last, 0 before its
// first retune.
func (p *Pacer) CurrentPercent() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.percent
}

// Stop ends the pacing and restores the GC percentage Start found.
func (p *Pacer) Stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.stopped = true
		debug.SetGCPercent(p.original)
	}
}

// sentinel is an object nothing refers to: the cycle that collects it
// runs its cleanup, which retunes and allocates the next one. It is big
// enough not to share a tiny-allocator block with anything else.
type sentinel struct{ _ [64]byte }

func (p *Pacer) arm() {
	runtime.AddCleanup(new(sentinel), (*Pacer).retune, p)
}

// retune runs on the runtime's cleanup goroutine after each cycle.
func (p *Pacer) retune() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	pct := Percent(liveHeap())
	// Changes under 5% are not worth the heap lock SetGCPercent takes.
	if last := p.percent; last == 0 || pct*20 < last*19 || pct*20 > last*21 {
		debug.SetGCPercent(pct)
		p.percent = pct
	}
	p.arm()
}

// liveHeap is the heap the last cycle marked live, in bytes.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

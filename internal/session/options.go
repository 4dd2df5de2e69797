package session

import "time"

// DefaultSweepInterval is how often a Memory store removes expired
// sessions and tickets when WithSweepInterval is not given.
// Expiry itself is exact: an expired entry is treated as absent at once;
// the sweep only frees its memory and reports Expired to watchers.
const DefaultSweepInterval = 30 * time.Second

// Option configures a Memory store.
type Option func(*memoryConfig)

type memoryConfig struct {
	now           func() time.Time
	sweepInterval time.Duration
	hashMask      uint64 // tests narrow it to force hash collisions
	attributeSets int    // per shard; tests lower it to reach the arena fallback
	compactMin    int    // dead arena bytes before a shard compacts; tests lower it

	journal        Journal
	useGranularity time.Duration
	maxSessions    int
}

// WithClock sets the clock the store decides expiry by. Tests inject a
// settable clock; the default (and a nil now) is time.Now. now must be
// safe for concurrent use.
func WithClock(now func() time.Time) Option {
	return func(c *memoryConfig) {
		if now != nil {
			c.now = now
		}
	}
}

// WithSweepInterval sets how often the store's background sweeper removes
// expired entries. d <= 0 means DefaultSweepInterval.
func WithSweepInterval(d time.Duration) Option {
	return func(c *memoryConfig) {
		if d > 0 {
			c.sweepInterval = d
		}
	}
}

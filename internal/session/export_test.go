package session

import "time"

// Sweep exposes the sweeper's single pass to the external tests, which
// drive it with a fake clock instead of waiting for the ticker.
func (m *Memory) Sweep(now time.Time) { m.sweep(now) }

// WithHashMask keeps only the mask's bits of every session and user hash,
// so tests can make collisions common.
func WithHashMask(mask uint64) Option {
	return func(c *memoryConfig) { c.hashMask = mask }
}

// WithAttributeSetLimit bounds the shared attribute lists of each shard,
// so tests can reach the lists kept in the arena.
func WithAttributeSetLimit(n int) Option {
	return func(c *memoryConfig) { c.attributeSets = n }
}

// WithCompactMin lets a shard compact its arena once min bytes are dead
// (and half of it is), so tests with few sessions compact often.
func WithCompactMin(min int) Option {
	return func(c *memoryConfig) { c.compactMin = min }
}

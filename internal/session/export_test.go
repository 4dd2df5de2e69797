package session

import "time"

// Sweep exposes the sweeper's single pass to the external tests, which
// drive it with a fake clock instead of waiting for the ticker.
func (m *Memory) Sweep(now time.Time) { m.sweep(now) }

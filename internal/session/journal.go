package session

import (
	"errors"
	"time"
)

// ErrFull: the store holds as many sessions as it is allowed to
// (WithMaxSessions). The API answers 429.
var ErrFull = errors.New("session store is full")

// Journal makes a Memory store durable. The store reports every change
// of its sessions and tickets to its journal, which writes them
// down; the store keeps serving every lookup from memory. The embedded
// store (internal/session/embedded) is a Memory with a journal on disk.
//
// The Session* methods are called with the session's lock held, so the
// changes of one session reach the journal in the order the store made
// them. They must queue the change and return at once; the store calls
// the returned Commit after releasing its lock, and acknowledges the
// change only when Commit returns nil.
type Journal interface {
	// SessionAdded records a new session (replacing an expired one with
	// the same prefix and id).
	SessionAdded(s Session) Commit
	// SessionRemoved records that a session was deleted, logged out or
	// swept after it expired.
	SessionRemoved(prefix, id string) Commit
	// SessionUsed reports that a session's LastUsed moved into a new
	// interval of the store's use granularity (WithJournal). It is called
	// on the request path, at most about once per session per interval,
	// must not block, and is persisted when convenient: the session may
	// have been removed or replaced (with another created time) since.
	SessionUsed(prefix, id string, created, lastUsed time.Time)
	// TicketPut records a ticket. The store makes it visible only after
	// Commit returns nil.
	TicketPut(t Ticket) Commit
	// TicketTaken records that a ticket was redeemed (it must never be
	// redeemed again, not even after a restart).
	TicketTaken(id string) Commit
}

// Commit waits until a change is durable. It returns an error wrapping
// ErrUnavailable when the change could not be written.
type Commit func() error

// WithJournal attaches a journal (see Journal). useGranularity is the
// precision of the LastUsed times the journal persists: Touch reports a
// session to SessionUsed when its LastUsed enters a new interval of this
// length. After a crash a session may therefore expire up to about
// useGranularity (plus the journal's own flush delay) early.
// useGranularity <= 0 means 5 seconds.
func WithJournal(j Journal, useGranularity time.Duration) Option {
	return func(c *memoryConfig) {
		if useGranularity <= 0 {
			useGranularity = 5 * time.Second
		}
		c.journal, c.useGranularity = j, useGranularity
	}
}

// WithMaxSessions caps the number of sessions the store holds: Add
// returns ErrFull at the cap. n <= 0 means no cap.
func WithMaxSessions(n int) Option {
	return func(c *memoryConfig) { c.maxSessions = n }
}

// nopJournal is the journal of a store without one.
type nopJournal struct{}

func noCommit() error { return nil }

func (nopJournal) SessionAdded(Session) Commit                      { return noCommit }
func (nopJournal) SessionRemoved(string, string) Commit             { return noCommit }
func (nopJournal) SessionUsed(string, string, time.Time, time.Time) {}
func (nopJournal) TicketPut(Ticket) Commit                          { return noCommit }
func (nopJournal) TicketTaken(string) Commit                        { return noCommit }

package session

import (
	"context"
	"time"
)

// Store keeps sessions, tickets and secrets. Every method is safe for
// concurrent use. Methods that reach a remote backend return an error
// wrapping ErrUnavailable when it cannot be reached.
type Store interface {
	// Add stores a new session. It returns ErrExists when a live session
	// with the same prefix and id exists; it never overwrites one.
	// Durable stores return only once the session is durable.
	Add(ctx context.Context, s Session) error
	// Get returns the live session, or ErrNotFound when it is absent or
	// has expired. Get does not count as use; call Touch for that.
	Get(ctx context.Context, prefix, id string) (Session, error)
	// Touch records that the session was used at the given time, sliding
	// its inactivity timeout. It is called on every proxied request, so
	// stores keep it in memory and persist it coarsely.
	Touch(ctx context.Context, prefix, id string, at time.Time) error
	// Delete removes a session and returns it (ErrNotFound when absent).
	// Watchers see an Event of kind Deleted.
	Delete(ctx context.Context, prefix, id string) (Session, error)
	// ByUser returns the live sessions of a user in a virtual proxy,
	// matching directory and user id case-insensitively; empty when none.
	ByUser(ctx context.Context, prefix, directory, userID string) ([]Session, error)
	// DeleteUser removes every session of a user and returns them.
	// Watchers see an Event of kind LoggedOut for each.
	DeleteUser(ctx context.Context, prefix, directory, userID string) ([]Session, error)
	// List returns every live session of a virtual proxy.
	List(ctx context.Context, prefix string) ([]Session, error)

	// PutTicket stores a ticket until its Expires time.
	PutTicket(ctx context.Context, t Ticket) error
	// TakeTicket returns the ticket and removes it, atomically: of two
	// concurrent calls with the same id at most one succeeds. An absent,
	// expired or already taken ticket is ErrNotFound.
	TakeTicket(ctx context.Context, id string) (Ticket, error)

	// Secret returns the secret key of the given name: SecretSize random
	// bytes, made the first time any node asks for that name and the same
	// on every node that shares the store, for as long as the store's data
	// lives (embedded: in its file; Redis: in Redis; memory: in this
	// process). It keys what openqps signs so that every node can check
	// it (targetIds, CSRF tokens). The caller must not modify the slice.
	Secret(ctx context.Context, name string) ([]byte, error)

	// Watch returns a channel of sessions that ended (deleted, logged out,
	// expired) anywhere — on any node, for shared stores — after Watch
	// returned. The channel is closed when ctx ends or the store is
	// closed. Slow receivers may miss events; the channel is buffered.
	Watch(ctx context.Context) <-chan Event
	// Close releases the store's resources. It may be called more than once.
	Close() error
}

// EventKind says why a session ended.
type EventKind int

const (
	Deleted   EventKind = iota + 1 // DELETE session through the API
	LoggedOut                      // DELETE user, or personal logout
	Expired                        // inactivity timeout
)

// String returns the kind's name as used in logs and metrics.
func (k EventKind) String() string {
	switch k {
	case Deleted:
		return "deleted"
	case LoggedOut:
		return "logged_out"
	case Expired:
		return "expired"
	}
	return "unknown"
}

// Event reports that a session ended.
type Event struct {
	Kind   EventKind
	Prefix string
	ID     string
	// UserDirectory and UserID are set where the store knows them.
	UserDirectory string
	UserID        string
}

// Pinger is implemented by stores that depend on a service that can be
// down (Redis). Health and readiness checks call Ping; it returns an
// error wrapping ErrUnavailable when the service does not answer.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Counter is implemented by stores that count the live sessions of a
// virtual proxy without reading them all (for metrics); List is the
// fallback.
type Counter interface {
	Count(ctx context.Context, prefix string) (int, error)
}

// Package session holds the identity records openqps keeps: sessions that a
// browser presents by cookie, one-minute login tickets, and the signed
// target ids that carry the URL a browser first asked for. It defines the Store interface
// that every backend implements and the in-memory reference store.
//
// The package imports none of openqps's other packages.
package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// Sentinel errors that callers act on. Compare with errors.Is.
var (
	// ErrNotFound: the session or ticket does not exist, has expired, or
	// (for tickets) was already taken; or a targetId does not open.
	ErrNotFound = errors.New("not found")
	// ErrExists: a live session with the same virtual proxy and id exists.
	ErrExists = errors.New("session already exists")
	// ErrUnavailable: the store cannot be reached (e.g. Redis down).
	// Requests that need the store fail closed.
	ErrUnavailable = errors.New("session store unavailable")
)

// Attribute is one entry of a session's attribute list. QPS keeps
// attributes as an ordered list of one-key objects whose keys may repeat,
// e.g. [{"Group":"A"},{"Group":"B"}].
type Attribute struct {
	Key   string
	Value string
}

// Session is an authenticated browser session of one virtual proxy.
// The pair (Prefix, ID) is the key; the same ID in another virtual proxy
// is another session.
//
// A Session returned by a Store may share its Attributes slice with the
// store: treat it as read-only.
type Session struct {
	Prefix        string // virtual proxy prefix; "" is the default virtual proxy
	ID            string // the cookie value
	UserDirectory string
	UserID        string
	Attributes    []Attribute
	Created       time.Time
	LastUsed      time.Time
	// Timeout is the inactivity timeout: the session ends when it is not
	// used for this long. Zero means it never times out.
	Timeout time.Duration
}

// ExpiresAt is when the session ends unless it is used again.
// It is the zero time for a session without an inactivity timeout.
func (s Session) ExpiresAt() time.Time {
	if s.Timeout <= 0 {
		return time.Time{}
	}
	return s.LastUsed.Add(s.Timeout)
}

// Expired reports whether the session has timed out at now.
func (s Session) Expired(now time.Time) bool {
	return s.Timeout > 0 && !now.Before(s.ExpiresAt())
}

// Ticket is a single-use login ticket issued by the ticket API and
// redeemed once on the front end of its virtual proxy.
type Ticket struct {
	ID            string
	Prefix        string
	UserDirectory string
	UserID        string
	Attributes    []Attribute
	TargetURI     string
	Expires       time.Time
}

// UserKey is the case-insensitive key of a user within a virtual proxy,
// as used by the user API and the per-user index of every store.
func UserKey(prefix, directory, userID string) string {
	return prefix + "\x00" + strings.ToLower(directory) + "\x00" + strings.ToLower(userID)
}

// NewID returns a random 128-bit id as 32 lower-case hex characters,
// the form openqps uses for sessions it creates itself.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error()) // never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// NewTicketID returns a fresh ticket: 22 URL-safe characters carrying
// 128 bits from crypto/rand.
func NewTicketID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Redact returns a short, stable, non-reversible tag of a secret (a session
// id or ticket) that is safe to log.
func Redact(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:4])
}

// SecretSize is the length of the keys Store.Secret returns: the size of
// an HMAC-SHA256 key that adds nothing by being longer.
const SecretSize = 32

// NewSecret returns SecretSize bytes from crypto/rand, for stores that
// make a secret on first use.
func NewSecret() []byte {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return b
}

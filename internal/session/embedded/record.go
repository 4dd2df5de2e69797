package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/openqps/openqps/internal/session"
)

// The file holds one bucket per kind of record. A session's key is its
// prefix, a zero byte and its id; a ticket's key is its id.
var (
	sessionsBucket = []byte("sessions")
	ticketsBucket  = []byte("tickets")
	// oldTargetsBucket is where openqps kept login targets before
	// targetIds were signed (session.SealTarget); Open deletes it.
	oldTargetsBucket = []byte("targets")
	metaBucket       = []byte("meta")
	// secretsBucket holds Store.Secret's keys by name.
	secretsBucket = []byte("secrets")
	formatKey     = []byte("format")
)

// format is the version of the record layout below, kept in the meta
// bucket so that a future layout can recognise and convert old files.
const format = 1

// A session record is
//
//	lastUsed, created (unix nanoseconds), timeout (nanoseconds): 8 bytes each, big-endian
//	user directory, user id: strings
//	attribute count (uvarint), then key and value strings
//
// where a string is its length (uvarint) and its bytes. lastUsed comes
// first and has a fixed size so that a flush of use times patches it in
// place.
const sessionFixed = 24

func sessionKey(prefix, id string) []byte {
	return []byte(prefix + "\x00" + id)
}

func splitSessionKey(k []byte) (prefix, id string, ok bool) {
	prefix, id, ok = strings.Cut(string(k), "\x00")
	return prefix, id, ok
}

func encodeSession(s session.Session) []byte {
	b := make([]byte, sessionFixed, sessionFixed+32+len(s.UserDirectory)+len(s.UserID))
	binary.BigEndian.PutUint64(b[0:], uint64(s.LastUsed.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], uint64(s.Created.UnixNano()))
	binary.BigEndian.PutUint64(b[16:], uint64(s.Timeout))
	b = appendString(b, s.UserDirectory)
	b = appendString(b, s.UserID)
	return appendAttributes(b, s.Attributes)
}

func decodeSession(k, v []byte) (session.Session, error) {
	prefix, id, ok := splitSessionKey(k)
	if !ok {
		return session.Session{}, errors.New("session key without a prefix separator")
	}
	if len(v) < sessionFixed {
		return session.Session{}, errors.New("session record too short")
	}
	s := session.Session{
		Prefix:   prefix,
		ID:       id,
		LastUsed: unixTime(v[0:]),
		Created:  unixTime(v[8:]),
		Timeout:  time.Duration(binary.BigEndian.Uint64(v[16:])),
	}
	r := reader{b: v[sessionFixed:]}
	s.UserDirectory = r.string()
	s.UserID = r.string()
	s.Attributes = r.attributes()
	return s, r.done("session")
}

// A ticket record is expires (8 bytes), then the strings prefix, user
// directory, user id, target URI, and the attributes as in a session.
func encodeTicket(t session.Ticket) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(t.Expires.UnixNano()))
	b = appendString(b, t.Prefix)
	b = appendString(b, t.UserDirectory)
	b = appendString(b, t.UserID)
	b = appendString(b, t.TargetURI)
	return appendAttributes(b, t.Attributes)
}

func decodeTicket(k, v []byte) (session.Ticket, error) {
	if len(v) < 8 {
		return session.Ticket{}, errors.New("ticket record too short")
	}
	t := session.Ticket{ID: string(k), Expires: unixTime(v)}
	r := reader{b: v[8:]}
	t.Prefix = r.string()
	t.UserDirectory = r.string()
	t.UserID = r.string()
	t.TargetURI = r.string()
	t.Attributes = r.attributes()
	return t, r.done("ticket")
}

// expires reads the expiry time that leads ticket records.
func expires(v []byte) (time.Time, bool) {
	if len(v) < 8 {
		return time.Time{}, false
	}
	return unixTime(v), true
}

func unixTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendAttributes(b []byte, attrs []session.Attribute) []byte {
	b = binary.AppendUvarint(b, uint64(len(attrs)))
	for _, a := range attrs {
		b = appendString(b, a.Key)
		b = appendString(b, a.Value)
	}
	return b
}

// reader decodes the variable part of a record; the first error sticks,
// so a record is decoded straight through and checked once at the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	n, size := binary.Uvarint(r.b)
	if size <= 0 {
		r.err = errors.New("bad length")
		return 0
	}
	r.b = r.b[size:]
	return n
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errors.New("string runs past the end of the record")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) attributes() []session.Attribute {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(r.b)) { // each attribute takes two bytes at least
		r.err = errors.New("attribute count runs past the end of the record")
		return nil
	}
	attrs := make([]session.Attribute, n)
	for i := range attrs {
		attrs[i] = session.Attribute{Key: r.string(), Value: r.string()}
	}
	return attrs
}

func (r *reader) done(what string) error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the end", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("%s record: %w", what, r.err)
	}
	return nil
}

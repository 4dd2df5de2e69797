package redis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/openqps/openqps/internal/session"
)

// attributesJSON keeps an attribute list as [[key, value], ...]: order
// and repeated keys survive, as QPS requires.
type attributesJSON [][2]string

func toAttributesJSON(attrs []session.Attribute) attributesJSON {
	out := make(attributesJSON, len(attrs))
	for i, a := range attrs {
		out[i] = [2]string{a.Key, a.Value}
	}
	return out
}

func (a attributesJSON) list() []session.Attribute {
	if len(a) == 0 {
		return nil
	}
	out := make([]session.Attribute, len(a))
	for i, kv := range a {
		out[i] = session.Attribute{Key: kv[0], Value: kv[1]}
	}
	return out
}

type ticketJSON struct {
	Prefix     string         `json:"p"`
	Directory  string         `json:"d"`
	User       string         `json:"u"`
	Attributes attributesJSON `json:"a"`
	TargetURI  string         `json:"t"`
	Expires    int64          `json:"e"` // unix ms
}

// absent reports whether an HMGET of sessionFields found no session.
func absent(fields []rueidis.RedisMessage) bool {
	return len(fields) != len(sessionFields) || fields[4].IsNil()
}

// decodeSession reads the HMGET of sessionFields: ErrNotFound when there
// is no session; an error when the hash does not parse (reported, not
// taken as absent).
func decodeSession(prefix, id string, fields []rueidis.RedisMessage) (session.Session, error) {
	if absent(fields) {
		return session.Session{}, session.ErrNotFound
	}
	var v [6]string
	for i := range fields {
		v[i], _ = fields[i].ToString() // a missing field reads as ""
	}
	created, err1 := strconv.ParseInt(v[3], 10, 64)
	lastUsed, err2 := strconv.ParseInt(v[4], 10, 64)
	timeout, err3 := strconv.ParseInt(v[5], 10, 64)
	attrs, err4 := decodeAttributes(v[2])
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			return session.Session{}, fmt.Errorf("session %s in redis is damaged: %w", session.Redact(id), err)
		}
	}
	return session.Session{
		Prefix: prefix, ID: id, UserDirectory: v[0], UserID: v[1],
		Attributes: attrs,
		Created:    time.UnixMilli(created).UTC(),
		LastUsed:   time.UnixMilli(lastUsed).UTC(),
		Timeout:    time.Duration(timeout) * time.Millisecond,
	}, nil
}

// A session's attributes are kept as a count and each key and value, as
// uvarint lengths and bytes: cheaper to read on every request than JSON.
func encodeAttributes(attrs []session.Attribute) string {
	b := binary.AppendUvarint(nil, uint64(len(attrs)))
	for _, a := range attrs {
		b = binary.AppendUvarint(b, uint64(len(a.Key)))
		b = append(b, a.Key...)
		b = binary.AppendUvarint(b, uint64(len(a.Value)))
		b = append(b, a.Value...)
	}
	return string(b)
}

var errBadAttributes = errors.New("bad attribute list")

func decodeAttributes(s string) ([]session.Attribute, error) {
	bad := errBadAttributes
	count, i := uvarint(s, 0)
	if i < 0 || count > uint64(len(s)) {
		return nil, bad
	}
	if count == 0 {
		return nil, nil
	}
	field := func() string {
		n, start := uvarint(s, i)
		if start < 0 || n > uint64(len(s)-start) {
			i = -1
			return ""
		}
		i = start + int(n)
		return s[start:i]
	}
	attrs := make([]session.Attribute, count)
	for j := range attrs {
		if attrs[j].Key = field(); i < 0 {
			return nil, bad
		}
		if attrs[j].Value = field(); i < 0 {
			return nil, bad
		}
	}
	if i != len(s) {
		return nil, bad
	}
	return attrs, nil
}

// uvarint reads a uvarint at s[i:] and returns it with the index after
// it, or -1 when it is not there.
func uvarint(s string, i int) (uint64, int) {
	var x uint64
	for shift := uint(0); i < len(s) && shift < 64; shift += 7 {
		c := s[i]
		i++
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x, i
		}
	}
	return 0, -1
}

// An event on the Pub/Sub channel is its kind, prefix, id, directory and
// user, separated by zero bytes.
func encodeEvent(kind session.EventKind, s session.Session) string {
	return strings.Join([]string{strconv.Itoa(int(kind)), s.Prefix, s.ID, s.UserDirectory, s.UserID}, "\x00")
}

func decodeEvent(msg string) (session.Event, bool) {
	f := strings.Split(msg, "\x00")
	if len(f) != 5 {
		return session.Event{}, false
	}
	kind, err := strconv.Atoi(f[0])
	if err != nil || kind < int(session.Deleted) || kind > int(session.Expired) {
		return session.Event{}, false
	}
	return session.Event{Kind: session.EventKind(kind), Prefix: f[1], ID: f[2], UserDirectory: f[3], UserID: f[4]}, true
}

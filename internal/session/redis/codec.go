package redis

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

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

type targetJSON struct {
	Prefix  string `json:"p"`
	URI     string `json:"u"`
	Expires int64  `json:"e"` // unix ms
}

// decodeSession reads a session hash. A hash that does not parse is
// reported, not taken as absent.
func decodeSession(prefix, id string, f map[string]string) (session.Session, error) {
	created, err1 := strconv.ParseInt(f[fCreated], 10, 64)
	lastUsed, err2 := strconv.ParseInt(f[fLastUsed], 10, 64)
	timeout, err3 := strconv.ParseInt(f[fTimeout], 10, 64)
	var attrs attributesJSON
	err4 := json.Unmarshal([]byte(f[fAttributes]), &attrs)
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			return session.Session{}, fmt.Errorf("session %s in redis is damaged: %w", session.Redact(id), err)
		}
	}
	return session.Session{
		Prefix: prefix, ID: id, UserDirectory: f[fDirectory], UserID: f[fUser],
		Attributes: attrs.list(),
		Created:    time.UnixMilli(created).UTC(),
		LastUsed:   time.UnixMilli(lastUsed).UTC(),
		Timeout:    time.Duration(timeout) * time.Millisecond,
	}, nil
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

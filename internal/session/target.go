package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"
	"time"
)

// Target is the exact URL a browser asked for before it was sent to the
// login module, bound to its virtual proxy until Expires. It is not
// stored: the front end seals it into the targetId it hands the login
// module (SealTarget), and the ticket API opens the targetId the module
// echoes back (OpenTarget). So a stranger's requests, however many and
// however long their URLs, cost openqps nothing it keeps, and any node
// that shares the store's TargetSecret opens a targetId any node sealed.
type Target struct {
	Prefix  string
	URI     string
	Expires time.Time
}

// TargetSecret is the name of the Store.Secret that keys targetIds.
const TargetSecret = "target-id"

// MaxTargetURI bounds the URL a targetId carries. The targetId travels in
// the login module's URL, so its length is the URL's plus about a third:
// 4 KB keeps the login address under the 8 KB request line that common
// servers (nginx, Apache, Node) accept by default, while a browser's
// address very rarely comes near it. (IIS refuses query strings over
// 2 KB unless maxQueryString is raised: a login module there needs it
// raised for URLs over about 1.4 KB.)
const MaxTargetURI = 4096

// maxTargetPrefix bounds a virtual proxy prefix in a targetId (one
// length byte).
const maxTargetPrefix = 255

// ErrTargetTooLong: the URL is longer than MaxTargetURI.
var ErrTargetTooLong = fmt.Errorf("the URL is longer than %d bytes", MaxTargetURI)

// A targetId is base64url (no padding) of
//
//	version (1 byte, targetVersion)
//	expires (unix seconds, 8 bytes big-endian)
//	prefix length (1 byte), prefix
//	URI (the rest, up to the MAC)
//	HMAC-SHA256 under the TargetSecret of everything before it (32 bytes)
//
// The version byte lets a later layout tell its own targetIds apart.
const (
	targetVersion = 1
	targetHeader  = 1 + 8 + 1
	targetMAC     = sha256.Size
)

var targetEncoding = base64.RawURLEncoding.Strict()

// maxTargetID is the length of the longest targetId; anything longer is
// refused before it is decoded.
var maxTargetID = targetEncoding.EncodedLen(targetHeader + maxTargetPrefix + MaxTargetURI + targetMAC)

// SealTarget returns the targetId of t under key, the TargetSecret. The
// result is URL-safe. It fails for a URI longer than MaxTargetURI
// (ErrTargetTooLong) and a prefix longer than 255 bytes.
func SealTarget(key []byte, t Target) (string, error) {
	if len(t.URI) > MaxTargetURI {
		return "", ErrTargetTooLong
	}
	if len(t.Prefix) > maxTargetPrefix {
		return "", fmt.Errorf("virtual proxy prefix of %d bytes: a targetId holds at most %d", len(t.Prefix), maxTargetPrefix)
	}
	b := make([]byte, 0, targetHeader+len(t.Prefix)+len(t.URI)+targetMAC)
	b = append(b, targetVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Expires.Unix()))
	b = append(b, byte(len(t.Prefix)))
	b = append(b, t.Prefix...)
	b = append(b, t.URI...)
	b = targetHMAC(key, b).Sum(b)
	return targetEncoding.EncodeToString(b), nil
}

// OpenTarget checks a targetId under key and returns its target. An id
// that this store's key did not seal (malformed, altered, from another
// installation) and one that expired at now are errors that match
// ErrNotFound (errors.Is) and whose text says which, for the caller.
func OpenTarget(key []byte, id string, now time.Time) (Target, error) {
	if len(id) > maxTargetID {
		return Target{}, targetError("targetId is longer than any openqps issues")
	}
	// Strict, and no line breaks (which the decoder skips): one target,
	// one spelling.
	b, err := targetEncoding.DecodeString(id)
	if err != nil || strings.ContainsAny(id, "\r\n") || len(b) < targetHeader+targetMAC || b[0] != targetVersion {
		return Target{}, targetError("not a targetId openqps issued")
	}
	body, mac := b[:len(b)-targetMAC], b[len(b)-targetMAC:]
	if !hmac.Equal(mac, targetHMAC(key, body).Sum(nil)) {
		return Target{}, targetError("targetId was not issued by this openqps (its signature does not match)")
	}
	n := int(body[targetHeader-1])
	if targetHeader+n > len(body) {
		// Signed, so sealed by us: only a bug could get here.
		return Target{}, targetError("targetId is damaged")
	}
	t := Target{
		Expires: time.Unix(int64(binary.BigEndian.Uint64(body[1:9])), 0).UTC(),
		Prefix:  string(body[targetHeader : targetHeader+n]),
		URI:     string(body[targetHeader+n:]),
	}
	if !now.Before(t.Expires) {
		return Target{}, targetError("targetId expired at " + t.Expires.Format(time.RFC3339))
	}
	return t, nil
}

// targetError says why a targetId does not open; it is an ErrNotFound.
type targetError string

func (e targetError) Error() string     { return string(e) }
func (e targetError) Is(err error) bool { return err == ErrNotFound }

func targetHMAC(key, body []byte) hash.Hash {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m
}

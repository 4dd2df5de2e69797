package proxy

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
)

// credentialIndex remembers, on this node, the session that a header
// value or bearer token last logged in, so that a client without a
// cookie jar (a script) that sends the same credential on every request
// reuses one session instead of piling up one per request.
//
// Session ids themselves are random per login: the index only points at
// a session, and every use checks the session in the store first, so a
// session that was logged out, deleted or expired anywhere is never
// revived; the next request with the credential is a new login with a
// new id, and the old cookie stays dead.
//
// An entry is claimed — removed — as soon as a request comes back with
// the session's cookie: that client keeps cookies (a browser), so the
// session is its own, and the next cookie-less request with the same
// credential (another browser of the same user) gets a session of its
// own instead of sharing it.
//
// The index is per node and bounded: with several nodes a script gets
// at most one session per node, and when the index is full it is
// emptied, which costs each script one more login.
//
// It is safe for concurrent use.
type credentialIndex struct {
	mu           sync.Mutex
	byCredential map[credentialKey]string // → unclaimed session id
	bySession    map[string]credentialKey // prefix\x00id → its entry
	// entries mirrors len(byCredential), so that requests with a cookie
	// skip the lock while nothing is unclaimed.
	entries atomic.Int64
}

// credentialKey is the hash of a virtual proxy's prefix and a
// credential: the index does not hold the credentials themselves.
type credentialKey [sha256.Size]byte

// maxCredentialEntries bounds the index.
const maxCredentialEntries = 1 << 14

func newCredentialKey(prefix, credential string) credentialKey {
	h := sha256.New()
	h.Write([]byte(prefix))
	h.Write([]byte{0})
	h.Write([]byte(credential))
	var k credentialKey
	h.Sum(k[:0])
	return k
}

// lookup returns the unclaimed session id last remembered for k.
func (x *credentialIndex) lookup(k credentialKey) (string, bool) {
	if x.entries.Load() == 0 {
		return "", false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	id, ok := x.byCredential[k]
	return id, ok
}

// remember points k at the session prefix/id, replacing what it pointed
// at.
func (x *credentialIndex) remember(k credentialKey, prefix, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byCredential == nil || len(x.byCredential) >= maxCredentialEntries {
		x.byCredential = make(map[credentialKey]string)
		x.bySession = make(map[string]credentialKey)
	}
	if old, ok := x.byCredential[k]; ok {
		delete(x.bySession, prefix+"\x00"+old)
	}
	x.byCredential[k] = id
	x.bySession[prefix+"\x00"+id] = k
	x.entries.Store(int64(len(x.byCredential)))
}

// claim removes the entry of session prefix/id, whose cookie a client
// just sent.
func (x *credentialIndex) claim(prefix, id string) {
	if x.entries.Load() == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	sk := prefix + "\x00" + id
	k, ok := x.bySession[sk]
	if !ok {
		return
	}
	delete(x.bySession, sk)
	delete(x.byCredential, k)
	x.entries.Store(int64(len(x.byCredential)))
}

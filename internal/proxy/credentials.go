package proxy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// useIdentity is the verdict of a login method whose credential (a header
// value, a token) names dir\user with attrs on every request. The known
// session stays when it is that user's (case-insensitively, as QPS
// matches users) — for a token, with the same attributes; otherwise the
// credential logs in (see credentialSession) and its session's cookie
// replaces the old one. A session of the token's user with other
// attributes is ended: the token is newer than the session, so its claims
// win.
func (p *Proxy) useIdentity(rq *request, known verdict, dir, user, credential string, attrs []session.Attribute) (verdict, error) {
	superseded := ""
	if known.kind == identified && sameUser(known.session, dir, user) {
		// A header carries no attributes: it does not replace those a
		// login module gave the session. A token's claims do.
		if rq.vp.cfg.Auth.AuthenticationMethod != config.AuthJWT || sameAttributes(known.session.Attributes, attrs) {
			return verdict{}, nil
		}
		superseded = known.session.ID
	}
	s, err := p.credentialSession(rq, dir, user, credential, attrs)
	if err != nil {
		return verdict{}, fmt.Errorf("session for %s user: %w", rq.vp.cfg.Auth.AuthenticationMethod, err)
	}
	if superseded != "" && superseded != s.ID {
		if _, err := p.store.Delete(rq.r.Context(), s.Prefix, superseded); err != nil && !errors.Is(err, session.ErrNotFound) {
			return verdict{}, fmt.Errorf("end the session the credential superseded: %w", err)
		}
		p.log.Info("session superseded by newer credentials", "event", "session.superseded", "vp", s.Prefix,
			"user_directory", dir, "user_id", user, "session", session.Redact(superseded), "by", session.Redact(s.ID))
	}
	rq.vp.setCookie(rq, s.ID)
	return identity(s), nil
}

func sameUser(s session.Session, dir, user string) bool {
	return strings.EqualFold(s.UserDirectory, dir) && strings.EqualFold(s.UserID, user)
}

// sameAttributes reports whether two attribute lists are equal, in order
// (X-Qlik-Security lists them in order).
func sameAttributes(a, b []session.Attribute) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// credentialSession logs in a user vouched for by credential: it returns
// the live session this node last made for the same credential when it
// is still unclaimed by a browser (see credentialIndex) and names the
// same user and attributes, and otherwise creates a session with a new
// random id.
func (p *Proxy) credentialSession(rq *request, dir, user, credential string, attrs []session.Attribute) (session.Session, error) {
	ctx, prefix := rq.r.Context(), rq.vp.cfg.Prefix
	key := newCredentialKey(prefix, credential)
	if id, ok := p.credentials.lookup(key); ok {
		s, err := p.store.Get(ctx, prefix, id)
		switch {
		case err == nil && sameUser(s, dir, user) && sameAttributes(s.Attributes, attrs):
			if err := p.store.Touch(ctx, prefix, id, p.opts.Now()); err != nil && !errors.Is(err, session.ErrNotFound) {
				return session.Session{}, err
			}
			return s, nil
		case err != nil && !errors.Is(err, session.ErrNotFound):
			return session.Session{}, err
		}
		// Ended (logged out, deleted, expired) or changed: a new login.
	}
	now := p.opts.Now()
	s := session.Session{
		Prefix: prefix, ID: session.NewID(), UserDirectory: dir, UserID: user,
		Attributes: attrs, Created: now, LastUsed: now, Timeout: rq.vp.cfg.SessionInactivityTimeout,
	}
	if err := p.store.Add(ctx, s); err != nil {
		return session.Session{}, err
	}
	p.credentials.remember(key, prefix, s.ID)
	p.log.Info("user authenticated", "event", "auth.login", "method", rq.vp.cfg.Auth.AuthenticationMethod, "vp", prefix,
		"user_directory", dir, "user_id", user, "session", session.Redact(s.ID), "remote", rq.r.RemoteAddr)
	return s, nil
}

// claimCredentialSession tells the credential index that the known
// session came back by its cookie: its client keeps cookies, so the
// session is no longer offered to cookie-less requests.
func (p *Proxy) claimCredentialSession(known verdict) {
	if known.kind == identified {
		p.credentials.claim(known.session.Prefix, known.session.ID)
	}
}

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

package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// Anonymous sessions are not stored. An anonymous session holds nothing
// but a random user id and the time of its last use, and both fit in its
// cookie, signed with a key every node shares (Store.Secret). So a
// visitor nobody vouched for costs openqps no store space, no disk write
// and no Redis key, however many requests arrive without a cookie:
// strangers cannot fill store.max_sessions, and a full store never
// refuses a logged-in user because of them. Every node recognises the
// cookie, and a restart keeps it.
//
// The cookie is
//
//	base64url(random[16] ‖ signed-at, big-endian seconds[8]) "." base64url(HMAC-SHA256(key, prefix, payload)[:16])
//
// The session id (for the CSRF token, sticky balancing, websockets) is
// the random part, which stays while the cookie is signed again: the
// signed-at time slides like a stored session's last use, renewed on a
// response once it is older than a tenth of the inactivity timeout, and
// the cookie ends when it is older than the timeout.
//
// What a stored session has and an anonymous one has not: the trusted
// API does not list anonymous sessions (nor can it delete them); a
// logout (personal API) clears the cookie and ends the session on the
// node that served it, which remembers the id until the cookie would
// have expired (anonymousEnded), but a copy of the cookie presented to
// another node stays valid until its timeout.

// anonymousSecret names the key of anonymous cookies in Store.Secret.
const anonymousSecret = "anonymous-session"

const (
	anonymousPayloadLen = 16 + 8
	anonymousMACLen     = 16
	// anonymousCookieLen is the length of an anonymous cookie value.
	anonymousCookieLen = (anonymousPayloadLen*8+5)/6 + 1 + (anonymousMACLen*8+5)/6
	// anonymousClockSkew is how far ahead of this node's clock another
	// node may have signed a cookie.
	anonymousClockSkew = time.Minute
)

// anonymousCookie is a parsed, verified anonymous cookie.
type anonymousCookie struct {
	random   [16]byte
	signedAt time.Time
}

// id is the session id of the anonymous session.
func (c anonymousCookie) id() string {
	return base64.RawURLEncoding.EncodeToString(c.random[:])
}

// userID is the anonymous user's id, anonymous<GUID> as QPS names them,
// derived from the random part (which the back ends must not learn: with
// the key it is the cookie).
func (c anonymousCookie) userID() string {
	sum := sha256.Sum256(append([]byte("openqps anonymous user\x00"), c.random[:]...))
	return "anonymous" + formatGUID(sum[:16])
}

// session is the anonymous session the cookie stands for.
func (c anonymousCookie) session(prefix string, now time.Time, timeout time.Duration) session.Session {
	return session.Session{
		Prefix: prefix, ID: c.id(), UserDirectory: anonymousDirectory, UserID: c.userID(),
		Created: c.signedAt, LastUsed: now, Timeout: timeout,
	}
}

// signAnonymous returns the cookie value of c under key.
func signAnonymous(key []byte, prefix string, c anonymousCookie) string {
	var payload [anonymousPayloadLen]byte
	copy(payload[:16], c.random[:])
	binary.BigEndian.PutUint64(payload[16:], uint64(c.signedAt.Unix()))
	enc := base64.RawURLEncoding
	var b strings.Builder
	b.Grow(anonymousCookieLen)
	b.WriteString(enc.EncodeToString(payload[:]))
	b.WriteByte('.')
	b.WriteString(enc.EncodeToString(anonymousMAC(key, prefix, payload[:])))
	return b.String()
}

func anonymousMAC(key []byte, prefix string, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(prefix))
	m.Write([]byte{0})
	m.Write(payload)
	return m.Sum(nil)[:anonymousMACLen]
}

// parseAnonymous verifies an anonymous cookie value of virtual proxy
// prefix. Values of any other form (session ids of stored sessions) are
// not anonymous cookies.
func parseAnonymous(key []byte, prefix, value string) (anonymousCookie, bool) {
	if len(value) != anonymousCookieLen || value[(anonymousPayloadLen*8+5)/6] != '.' {
		return anonymousCookie{}, false
	}
	p, m, _ := strings.Cut(value, ".")
	enc := base64.RawURLEncoding.Strict()
	var payload [anonymousPayloadLen]byte
	var mac [anonymousMACLen]byte
	if n, err := enc.Decode(payload[:], []byte(p)); err != nil || n != len(payload) {
		return anonymousCookie{}, false
	}
	if n, err := enc.Decode(mac[:], []byte(m)); err != nil || n != len(mac) {
		return anonymousCookie{}, false
	}
	if !hmac.Equal(mac[:], anonymousMAC(key, prefix, payload[:])) {
		return anonymousCookie{}, false
	}
	var c anonymousCookie
	copy(c.random[:], payload[:16])
	secs := binary.BigEndian.Uint64(payload[16:])
	if secs > 1<<40 {
		return anonymousCookie{}, false
	}
	c.signedAt = time.Unix(int64(secs), 0)
	return c, true
}

// anonymousKey returns the key of anonymous cookies.
func (p *Proxy) anonymousKey(rq *request) ([]byte, error) {
	key, err := p.store.Secret(rq.r.Context(), anonymousSecret)
	if err != nil {
		return nil, fmt.Errorf("key of anonymous sessions: %w", err)
	}
	return key, nil
}

// anonymousFromCookie is the verdict of an anonymous cookie value:
// identified when it is one, valid, not expired and not ended on this
// node, noVerdict otherwise. It signs the cookie again when its
// signature is getting old.
func (p *Proxy) anonymousFromCookie(rq *request, key []byte, value string) verdict {
	c, ok := parseAnonymous(key, rq.vp.cfg.Prefix, value)
	if !ok {
		return verdict{}
	}
	now, timeout := p.opts.Now(), rq.vp.cfg.SessionInactivityTimeout
	age := now.Sub(c.signedAt)
	if age < -anonymousClockSkew || (timeout > 0 && age >= timeout) {
		return verdict{}
	}
	if p.anonymousEnded.ended(rq.vp.cfg.Prefix, c.id(), now) {
		return verdict{}
	}
	if timeout > 0 && age > timeout/10 {
		resigned := c
		resigned.signedAt = now
		rq.vp.setCookie(rq, signAnonymous(key, rq.vp.cfg.Prefix, resigned))
	}
	return anonymousIdentity(c.session(rq.vp.cfg.Prefix, now, timeout))
}

func anonymousIdentity(s session.Session) verdict {
	v := identity(s)
	v.anonymous = true
	return v
}

// anonymousLogin gives a request nobody vouched for an anonymous session
// (UserDirectory NONE, UserId anonymous<GUID>; it lives in its cookie,
// not in the store) when the virtual proxy allows it (anonymous_access
// allow or always); ?forceAuthentication=yes sends it to the login
// module instead when anonymous use is allowed but not forced. The
// cookie of an anonymous session is recognised by cookieLogin.
type anonymousLogin struct{ p *Proxy }

func (a anonymousLogin) login(rq *request, _ verdict) (verdict, error) {
	p := a.p
	if rq.vp.cfg.Auth.AnonymousAccess == config.AnonymousAllow && forceAuthentication(rq) {
		return verdict{}, nil
	}
	v, err := p.newAnonymous(rq)
	if err != nil {
		return verdict{}, err
	}
	// Debug, not info: nothing was stored, and cookie-less requests (a
	// script, a scanner) make one each.
	p.log.Debug("anonymous session", "event", "auth.anonymous", "vp", v.session.Prefix, "user_id", v.session.UserID,
		"session", session.Redact(v.session.ID), "remote", rq.r.RemoteAddr)
	return v, nil
}

// newAnonymous gives the request a new anonymous identity and sets its
// cookie. Nothing is stored.
func (p *Proxy) newAnonymous(rq *request) (verdict, error) {
	key, err := p.anonymousKey(rq)
	if err != nil {
		return verdict{}, err
	}
	var c anonymousCookie
	rand.Read(c.random[:])
	now := p.opts.Now()
	c.signedAt = now.Truncate(time.Second)
	rq.vp.setCookie(rq, signAnonymous(key, rq.vp.cfg.Prefix, c))
	return anonymousIdentity(c.session(rq.vp.cfg.Prefix, now, rq.vp.cfg.SessionInactivityTimeout)), nil
}

// formatGUID writes 16 bytes as a version 4 GUID.
func formatGUID(b []byte) string {
	var g [16]byte
	copy(g[:], b)
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	var out strings.Builder
	out.Grow(36)
	for i, c := range g {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out.WriteByte('-')
		}
		out.WriteByte(hex[c>>4])
		out.WriteByte(hex[c&0xf])
	}
	return out.String()
}

// endedAnonymous remembers the anonymous sessions logged out on this node
// until their cookies would have expired, so that a copy of a logged-out
// cookie is refused here. It is bounded: when full, expired entries are
// dropped, then arbitrary ones down to three quarters. It is safe for
// concurrent use.
type endedAnonymous struct {
	mu    sync.RWMutex
	until map[string]time.Time // prefix\x00id → when its cookie expires
}

// maxEndedAnonymous bounds endedAnonymous.
const maxEndedAnonymous = 1 << 16

// end remembers that the anonymous session prefix/id ended; its cookies
// expire by until.
func (e *endedAnonymous) end(prefix, id string, until, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.until == nil {
		e.until = make(map[string]time.Time)
	}
	if len(e.until) >= maxEndedAnonymous {
		for k, t := range e.until {
			if !t.After(now) || len(e.until) > maxEndedAnonymous*3/4 {
				delete(e.until, k)
			}
		}
	}
	e.until[prefix+"\x00"+id] = until
}

func (e *endedAnonymous) ended(prefix, id string, now time.Time) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if len(e.until) == 0 {
		return false
	}
	t, ok := e.until[prefix+"\x00"+id]
	return ok && t.After(now)
}

// endAnonymous logs the request's anonymous session out on this node.
func (p *Proxy) endAnonymous(rq *request) {
	now, timeout := p.opts.Now(), rq.vp.cfg.SessionInactivityTimeout
	until := now.Add(100 * 365 * 24 * time.Hour) // no timeout: its cookie never expires
	if timeout > 0 {
		until = now.Add(timeout + anonymousClockSkew)
	}
	p.anonymousEnded.end(rq.session.Prefix, rq.session.ID, until, now)
	if n := p.tunnels.endSession(rq.session.Prefix, rq.session.ID, endFor(session.LoggedOut)); n > 0 {
		p.log.Info("websockets of an ended session closed", "event", "websocket.session_ended", "vp", rq.session.Prefix,
			"session", session.Redact(rq.session.ID), "reason", "logged_out", "websockets", n)
	}
}

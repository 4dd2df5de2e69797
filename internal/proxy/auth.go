package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// loginPipeline is a virtual proxy's login methods, in the order
// authenticate asks them (see loginMethod).
type loginPipeline struct {
	// ticket and cookie are every virtual proxy's, called by their
	// concrete types: the cookie is on every request's path.
	ticket ticketLogin
	cookie cookieLogin
	// method is the authentication_method's; nil for "ticket".
	method loginMethod
	// taker is method when it is a credentialTaker.
	taker credentialTaker
	// anonymous is nil when anonymous_access is none.
	anonymous loginMethod
}

var (
	_ loginMethod = ticketLogin{}
	_ loginMethod = cookieLogin{}
	_ loginMethod = anonymousLogin{}
)

// newLoginPipeline makes the login methods of vp.
func newLoginPipeline(p *Proxy, vp *virtualProxy) (loginPipeline, error) {
	l := loginPipeline{ticket: ticketLogin{p}, cookie: cookieLogin{p}}
	a := &vp.cfg.Auth
	newMethod, ok := vpLoginMethods[a.AuthenticationMethod]
	if !ok {
		return loginPipeline{}, fmt.Errorf("virtual proxy %q: unknown authentication_method %q", vp.cfg.Prefix, a.AuthenticationMethod)
	}
	if newMethod != nil {
		m, err := newMethod(p, vp)
		if err != nil {
			return loginPipeline{}, fmt.Errorf("virtual proxy %q: %s: %w", vp.cfg.Prefix, a.AuthenticationMethod, err)
		}
		l.method = m
		l.taker, _ = m.(credentialTaker)
	}
	if a.AnonymousAccess != config.AnonymousNone {
		l.anonymous = anonymousLogin{p}
	}
	return l, nil
}

// authenticate finds who sent the request, first that applies: a ticket
// in the query (an explicit, fresh login, so it wins over a cookie), the
// session cookie, then the virtual proxy's own method (header, JWT),
// which may replace the cookie's identity, then an anonymous session. It
// returns an error only when the store failed. The verdict is for the
// handler to answer: identified, noVerdict (nobody: the login module or
// 401), failedLogin (a refused ticket and nobody else), refused or
// answered.
func (p *Proxy) authenticate(rq *request) (verdict, error) {
	l := &rq.vp.logins
	if l.taker != nil {
		l.taker.takeCredential(rq)
	}
	failed, err := l.ticket.login(rq, verdict{})
	if err != nil || failed.kind != noVerdict && failed.kind != failedLogin {
		return failed, err
	}
	known, err := l.cookie.login(rq, verdict{})
	if err != nil {
		return known, err
	}
	if l.method != nil {
		v, err := l.method.login(rq, known)
		switch {
		case err != nil:
			return v, err
		case v.kind == failedLogin:
			if failed.kind == noVerdict {
				failed = v
			}
		case v.kind != noVerdict && v.kind != identified:
			return v, nil
		case v.kind == identified:
			known = v
		}
	}
	if known.kind == identified {
		if failed.kind == failedLogin && rq.r.Method == http.MethodGet && !isUpgrade(rq.r) {
			// A stale ticket next to a valid cookie (a bookmark, the
			// back button): drop it from the address bar.
			return redirect(urlWithoutCredential(rq)), nil
		}
		if !p.forcedLogin(rq, known.session) {
			return known, nil
		}
	}
	if failed.kind == failedLogin || l.anonymous == nil {
		// A refused ticket is a failed login, not a wish to be anonymous.
		return failed, nil
	}
	return l.anonymous.login(rq, verdict{})
}

// answer writes a login method's own response (answered).
func (p *Proxy) answer(rq *request, v verdict) {
	h := rq.w.Header()
	if v.location != "" {
		h.Set("Location", v.location)
	}
	if v.challenge != "" {
		h.Set("WWW-Authenticate", v.challenge)
	}
	h.Set("Cache-Control", "no-store")
	rq.w.WriteHeader(v.status)
}

// urlWithoutCredential is the request's own URL, as a path and query,
// after the login method removed its credential from rq.r.URL.
func urlWithoutCredential(rq *request) string {
	u := *rq.r.URL
	u.Scheme, u.Host = "", ""
	loc := u.RequestURI()
	if strings.HasPrefix(loc, "//") {
		// "//evil.example/x" is a protocol-relative URL to another
		// host; the front end served it as the path /evil.example/x.
		loc = "/" + strings.TrimLeft(loc, "/")
	}
	return loc
}

// startSession creates a session for a user the front end authenticated
// itself (a ticket, an identity provider) and sets its cookie.
func (p *Proxy) startSession(rq *request, dir, user string, attrs []session.Attribute) (session.Session, error) {
	now := p.opts.Now()
	s := session.Session{
		Prefix: rq.vp.cfg.Prefix, ID: session.NewID(), UserDirectory: dir, UserID: user,
		Attributes: attrs, Created: now, LastUsed: now, Timeout: rq.vp.cfg.SessionInactivityTimeout,
	}
	if err := p.store.Add(rq.r.Context(), s); err != nil {
		return session.Session{}, err
	}
	rq.vp.setCookie(rq, s.ID)
	return s, nil
}

// anonymousDirectory is the user directory of anonymous users, as QPS
// names it.
const anonymousDirectory = "NONE"

// forcedLogin reports whether an anonymous user (s) asked to log in with
// ?forceAuthentication=yes on a virtual proxy that allows anonymous use.
func (p *Proxy) forcedLogin(rq *request, s session.Session) bool {
	if rq.vp.cfg.Auth.AnonymousAccess != config.AnonymousAllow || s.UserDirectory != anonymousDirectory {
		return false
	}
	return forceAuthentication(rq)
}

// forceAuthentication reports whether the request asks to log in
// (?forceAuthentication=yes, any case) rather than stay anonymous.
func forceAuthentication(rq *request) bool {
	v, _, found := queryParamFold(rq.r.URL.RawQuery, "forceauthentication")
	return found && strings.EqualFold(v, "yes")
}

// cleanIdentity applies the session API's rules to a user directory or
// user id the front end read from a request: trimmed, not blank, no
// backslash, no control character, printable ASCII or UTF-8, 256 bytes
// at most.
func cleanIdentity(what, source, v string) (string, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return "", fmt.Errorf("%s: the %s is missing or blank", source, what)
	case len(v) > 256:
		return "", fmt.Errorf("%s: the %s is longer than 256 bytes", source, what)
	case strings.ContainsRune(v, '\\'):
		return "", fmt.Errorf("%s: the %s %q contains a backslash, which QPS forbids", source, what, v)
	case !utf8.ValidString(v):
		return "", fmt.Errorf("%s: the %s is not valid UTF-8", source, what)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%s: the %s contains a control character", source, what)
		}
	}
	return v, nil
}

// credentialsHint tells a caller without a session what the virtual
// proxy, which has no login module, expects instead.
func credentialsHint(vp *virtualProxy) string {
	a := &vp.cfg.Auth
	switch a.AuthenticationMethod {
	case config.AuthHeaderStatic, config.AuthHeaderDynamic:
		return fmt.Sprintf("no valid session: virtual proxy %q takes the user from the %s header, set by the trusted front end", vp.cfg.Prefix, a.HeaderName)
	case config.AuthJWT:
		return fmt.Sprintf("no valid session: send Authorization: Bearer <JWT> signed with the key of virtual proxy %q", vp.cfg.Prefix)
	case config.AuthOIDC:
		return fmt.Sprintf("no valid session: open the page in a browser to log in at virtual proxy %q's identity provider", vp.cfg.Prefix)
	}
	return fmt.Sprintf("virtual proxy %q has no authentication module (authentication_module_redirect_uri); a login module must create a session through the trusted API", vp.cfg.Prefix)
}

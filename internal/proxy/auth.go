package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// authenticate finds who sent the request, first that applies: a ticket
// in the query (an explicit, fresh login, so it wins over a cookie), the
// session cookie, then the virtual proxy's own method (header, JWT,
// anonymous). It returns an error only when the store failed; a request
// it cannot authenticate leaves rq.authed false, and one whose
// credentials it refused outright is answered (rq.answered).
func (p *Proxy) authenticate(rq *request) error {
	var bearer string
	var hasBearer bool
	if rq.vp.cfg.Auth.AuthenticationMethod == config.AuthJWT {
		bearer, hasBearer = takeBearerToken(rq)
	}
	if err := p.redeemTicket(rq); err != nil || rq.authed || rq.answered {
		return err
	}
	if err := p.authenticateSession(rq); err != nil {
		return err
	}
	var err error
	switch rq.vp.cfg.Auth.AuthenticationMethod {
	case config.AuthHeaderStatic, config.AuthHeaderDynamic:
		p.claimCredentialSession(rq)
		err = p.authenticateHeader(rq)
	case config.AuthJWT:
		p.claimCredentialSession(rq)
		err = p.authenticateJWT(rq, bearer, hasBearer)
	}
	if err != nil || rq.answered {
		return err
	}
	if rq.authed {
		if rq.denied != "" && rq.r.Method == http.MethodGet && !isUpgrade(rq.r) {
			// A stale ticket next to a valid cookie (a bookmark, the
			// back button): drop it from the address bar.
			p.redirectWithoutTicket(rq)
			return nil
		}
		if !p.forcedLogin(rq) {
			return nil
		}
		rq.authed = false
	}
	return p.authenticateAnonymous(rq)
}

// authenticateHeader takes the user from the virtual proxy's header, as
// set by a trusted front (a single sign-on gateway). The header names
// the user on every request: a session cookie of another user gives way
// to a new session. Without the header, the cookie alone still counts.
func (p *Proxy) authenticateHeader(rq *request) error {
	a := &rq.vp.cfg.Auth
	values := rq.r.Header.Values(a.HeaderName)
	if len(values) == 0 {
		return nil
	}
	dir, user, err := rq.vp.headerUser(values)
	if err != nil {
		p.reject(rq, http.StatusBadRequest, "invalid user header", err.Error())
		return nil
	}
	return p.useIdentity(rq, dir, user, "header\x00"+values[0], nil)
}

// headerUser parses the values of the user header into a directory and
// user id.
func (vp *virtualProxy) headerUser(values []string) (dir, user string, err error) {
	a := &vp.cfg.Auth
	if len(values) != 1 {
		return "", "", fmt.Errorf("the %s header is sent %d times; send it once", a.HeaderName, len(values))
	}
	v := values[0]
	if a.AuthenticationMethod == config.AuthHeaderStatic {
		dir, user = a.StaticUserDirectory, v
	} else {
		pat := vp.userPattern
		rest, ok := strings.CutPrefix(v, pat.Prefix)
		if ok {
			rest, ok = strings.CutSuffix(rest, pat.Suffix)
		}
		var first, second string
		if ok {
			// A directory never holds the separator; a user id (an
			// e-mail address, say) may.
			if pat.DirectoryFirst {
				first, second, ok = strings.Cut(rest, pat.Separator)
			} else if i := strings.LastIndex(rest, pat.Separator); i >= 0 {
				first, second = rest[:i], rest[i+len(pat.Separator):]
			} else {
				ok = false
			}
		}
		if !ok {
			return "", "", fmt.Errorf("the %s header %q does not match the pattern %q", a.HeaderName, v, a.DynamicUserDirectory)
		}
		dir, user = first, second
		if !pat.DirectoryFirst {
			dir, user = second, first
		}
	}
	if dir, err = cleanIdentity("user directory", a.HeaderName, dir); err != nil {
		return "", "", err
	}
	if user, err = cleanIdentity("user id", a.HeaderName, user); err != nil {
		return "", "", err
	}
	return dir, user, nil
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

// useIdentity authenticates the request as dir\user with attrs, vouched
// for by credential (the header value or the token). The current session
// stays when it is that user's (case-insensitively, as QPS matches users)
// — for a token, with the same attributes; otherwise the credential logs
// in (see credentialSession) and its session's cookie replaces the old
// one. A session of the token's user with other attributes is ended: the
// token is newer than the session, so its claims win.
func (p *Proxy) useIdentity(rq *request, dir, user, credential string, attrs []session.Attribute) error {
	superseded := ""
	if rq.authed && sameUser(rq.session, dir, user) {
		// A header carries no attributes: it does not replace those a
		// login module gave the session. A token's claims do.
		if rq.vp.cfg.Auth.AuthenticationMethod != config.AuthJWT || sameAttributes(rq.session.Attributes, attrs) {
			return nil
		}
		superseded = rq.session.ID
	}
	s, err := p.credentialSession(rq, dir, user, credential, attrs)
	if err != nil {
		return fmt.Errorf("session for %s user: %w", rq.vp.cfg.Auth.AuthenticationMethod, err)
	}
	if superseded != "" && superseded != s.ID {
		if _, err := p.store.Delete(rq.r.Context(), s.Prefix, superseded); err != nil && !errors.Is(err, session.ErrNotFound) {
			return fmt.Errorf("end the session the credential superseded: %w", err)
		}
		p.log.Info("session superseded by newer credentials", "event", "session.superseded", "vp", s.Prefix,
			"user_directory", dir, "user_id", user, "session", session.Redact(superseded), "by", session.Redact(s.ID))
	}
	rq.session, rq.authed = s, true
	rq.vp.setCookie(rq, s.ID)
	return nil
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

// claimCredentialSession tells the credential index that the request's
// session came back by its cookie: its client keeps cookies, so the
// session is no longer offered to cookie-less requests.
func (p *Proxy) claimCredentialSession(rq *request) {
	if rq.authed {
		p.credentials.claim(rq.session.Prefix, rq.session.ID)
	}
}

// anonymousDirectory is the user directory of anonymous users, as QPS
// names it.
const anonymousDirectory = "NONE"

// forcedLogin reports whether an anonymous user asked to log in with
// ?forceAuthentication=yes on a virtual proxy that allows anonymous use.
func (p *Proxy) forcedLogin(rq *request) bool {
	if rq.vp.cfg.Auth.AnonymousAccess != config.AnonymousAllow || rq.session.UserDirectory != anonymousDirectory {
		return false
	}
	v, _, found := queryParamFold(rq.r.URL.RawQuery, "forceauthentication")
	return found && strings.EqualFold(v, "yes")
}

// authenticateAnonymous gives a request nobody vouched for an anonymous
// session (UserDirectory NONE, UserId anonymous<GUID>; see anonymous.go:
// it lives in its cookie, not in the store) when the virtual proxy allows
// it; ?forceAuthentication=yes sends it to the login module
// instead when anonymous use is allowed but not forced.
func (p *Proxy) authenticateAnonymous(rq *request) error {
	switch rq.vp.cfg.Auth.AnonymousAccess {
	case config.AnonymousAlways:
	case config.AnonymousAllow:
		if v, _, found := queryParamFold(rq.r.URL.RawQuery, "forceauthentication"); found && strings.EqualFold(v, "yes") {
			return nil
		}
	default:
		return nil
	}
	if rq.denied != "" {
		// A refused ticket is a failed login, not a wish to be anonymous.
		return nil
	}
	if err := p.newAnonymous(rq); err != nil {
		return err
	}
	// Debug, not info: nothing was stored, and cookie-less requests (a
	// script, a scanner) make one each.
	p.log.Debug("anonymous session", "event", "auth.anonymous", "vp", rq.session.Prefix, "user_id", rq.session.UserID,
		"session", session.Redact(rq.session.ID), "remote", rq.r.RemoteAddr)
	return nil
}

// authenticateSession looks up the session named by the virtual proxy's
// cookie and marks it used.
//
// At most maxSessionCookies values of the cookie are looked up: a browser
// sends one, or a few when cookies of several paths or domains share the
// name; hundreds in one header would make every request hundreds of store
// lookups (network round trips with Redis).
func (p *Proxy) authenticateSession(rq *request) error {
	ctx := rq.r.Context()
	var storeErr error
	var anonymousKey []byte
	anonymousVP := rq.vp.cfg.Auth.AnonymousAccess != config.AnonymousNone
	looked := 0
	cookieValues(rq.r.Header["Cookie"], rq.vp.cookie(rq.scheme), func(id string) bool {
		if looked++; looked > maxSessionCookies {
			return true
		}
		if anonymousVP && len(id) == anonymousCookieLen {
			if anonymousKey == nil {
				if anonymousKey, storeErr = p.anonymousKey(rq); storeErr != nil {
					return true
				}
			}
			if p.anonymousFromCookie(rq, anonymousKey, id) {
				return true
			}
		}
		s, err := p.store.Get(ctx, rq.vp.cfg.Prefix, id)
		switch {
		case err == nil:
			rq.session, rq.authed = s, true
			return true
		case !errors.Is(err, session.ErrNotFound):
			storeErr = err
			return true
		}
		return false
	})
	if storeErr != nil || !rq.authed || rq.anonymous {
		return storeErr
	}
	if err := p.store.Touch(ctx, rq.session.Prefix, rq.session.ID, p.opts.Now()); err != nil && !errors.Is(err, session.ErrNotFound) {
		return err
	}
	return nil
}

// maxSessionCookies bounds the session cookie values one request may make
// openqps look up.
const maxSessionCookies = 4

// redeemTicket turns a qlikTicket query parameter (any case, anywhere in
// the query) into a session and sets its cookie on this very response.
//
// The ticket is removed from the request whatever happens, so it never
// reaches a back end and never becomes part of a login target (a refused
// ticket left in the target would come back first and loop). A GET
// navigation is then redirected to its URL without the ticket, to keep
// the ticket out of the address bar, history and Referer; other requests,
// websocket upgrades among them, are served in place. A refused ticket
// sets rq.denied; a valid cookie may still authenticate the request.
func (p *Proxy) redeemTicket(rq *request) error {
	raw, rest, found := queryParamFold(rq.r.URL.RawQuery, "qlikticket")
	if !found {
		return nil
	}
	dropTicket(rq, rest)
	navigation := rq.r.Method == http.MethodGet && !isUpgrade(rq.r)

	id, err := url.QueryUnescape(raw)
	if err != nil || id == "" {
		p.refuseTicket(rq, raw, http.StatusBadRequest, "the qlikTicket query parameter is empty or not URL-encoded; ask the login module for a new ticket")
		return nil
	}
	ctx := rq.r.Context()
	t, err := p.store.TakeTicket(ctx, id)
	switch {
	case errors.Is(err, session.ErrNotFound):
		p.refuseTicket(rq, id, http.StatusUnauthorized, "the ticket is unknown, expired or already used; a ticket is valid once, for "+rq.routes.cfg.Sessions.TicketTTL.String()+": ask the login module for a new one")
		return nil
	case err != nil:
		return err
	case t.Prefix != rq.vp.cfg.Prefix:
		p.refuseTicket(rq, id, http.StatusForbidden, fmt.Sprintf("the ticket was issued for virtual proxy %q, not %q; request it from /qps/%s/ticket", t.Prefix, rq.vp.cfg.Prefix, rq.vp.cfg.Prefix))
		return nil
	}
	s, err := p.newSession(rq, t.UserDirectory, t.UserID, t.Attributes)
	if err != nil {
		return fmt.Errorf("add session for redeemed ticket: %w", err)
	}
	p.log.Info("ticket redeemed", "event", "ticket.redeemed", "vp", s.Prefix, "user_directory", s.UserDirectory,
		"user_id", s.UserID, "ticket", session.Redact(id), "session", session.Redact(s.ID), "remote", rq.r.RemoteAddr)
	if navigation {
		p.redirectWithoutTicket(rq)
	}
	return nil
}

// refuseTicket records why a ticket was refused and logs it once.
func (p *Proxy) refuseTicket(rq *request, ticket string, status int, reason string) {
	p.log.Warn("ticket refused", "event", "ticket.rejected", "vp", rq.vp.cfg.Prefix, "ticket", session.Redact(ticket),
		"status", status, "reason", reason, "remote", rq.r.RemoteAddr)
	rq.denied, rq.deniedStatus = reason, status
}

// newSession creates a session for a user the front end authenticated
// itself (ticket, header, token, anonymous) and sets its cookie.
func (p *Proxy) newSession(rq *request, dir, user string, attrs []session.Attribute) (session.Session, error) {
	now := p.opts.Now()
	s := session.Session{
		Prefix: rq.vp.cfg.Prefix, ID: session.NewID(), UserDirectory: dir, UserID: user,
		Attributes: attrs, Created: now, LastUsed: now, Timeout: rq.vp.cfg.SessionInactivityTimeout,
	}
	if err := p.store.Add(rq.r.Context(), s); err != nil {
		return session.Session{}, err
	}
	rq.session, rq.authed = s, true
	rq.vp.setCookie(rq, s.ID)
	return s, nil
}

// dropTicket removes the ticket from the request's URL and request URI,
// leaving rest as the query.
func dropTicket(rq *request, rest string) {
	rq.r.URL.RawQuery = rest
	path, _, _ := strings.Cut(rq.r.RequestURI, "?")
	if rest != "" {
		path += "?" + rest
	}
	rq.r.RequestURI = path
}

// redirectWithoutTicket answers a navigation with a redirect to the same
// URL, whose ticket dropTicket has already removed.
func (p *Proxy) redirectWithoutTicket(rq *request) {
	u := *rq.r.URL
	u.Scheme, u.Host = "", ""
	loc := u.RequestURI()
	if strings.HasPrefix(loc, "//") {
		// "//evil.example/x" is a protocol-relative URL to another
		// host; the front end served it as the path /evil.example/x.
		loc = "/" + strings.TrimLeft(loc, "/")
	}
	rq.w.Header().Set("Location", loc)
	rq.w.Header().Set("Cache-Control", "no-store")
	rq.w.WriteHeader(http.StatusFound)
	rq.answered = true
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
	}
	return fmt.Sprintf("virtual proxy %q has no authentication module (authentication_module_redirect_uri); a login module must create a session through the trusted API", vp.cfg.Prefix)
}

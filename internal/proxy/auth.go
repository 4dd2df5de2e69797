package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/openqps/openqps/internal/session"
)

// authenticate finds who sent the request, first that applies: a ticket
// in the query (an explicit, fresh login, so it wins over a cookie), the
// session cookie, then the virtual proxy's own method (header, JWT,
// anonymous). It returns an error only when the store failed; a request
// it cannot authenticate leaves rq.authed false, and one whose
// credentials it refused outright is answered (rq.answered).
func (p *Proxy) authenticate(rq *request) error {
	if err := p.redeemTicket(rq); err != nil || rq.authed || rq.answered {
		return err
	}
	if err := p.authenticateSession(rq); err != nil || rq.authed {
		if rq.authed && rq.denied != "" && rq.r.Method == http.MethodGet && !isUpgrade(rq.r) {
			// A stale ticket next to a valid cookie (a bookmark, the
			// back button): drop it from the address bar.
			p.redirectWithoutTicket(rq)
		}
		return err
	}
	return nil
}

// authenticateSession looks up the session named by the virtual proxy's
// cookie and marks it used.
func (p *Proxy) authenticateSession(rq *request) error {
	ctx := rq.r.Context()
	var storeErr error
	cookieValues(rq.r.Header["Cookie"], rq.vp.cookie(rq.scheme), func(id string) bool {
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
	if storeErr != nil || !rq.authed {
		return storeErr
	}
	if err := p.store.Touch(ctx, rq.session.Prefix, rq.session.ID, p.opts.Now()); err != nil && !errors.Is(err, session.ErrNotFound) {
		return err
	}
	return nil
}

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
	rq.w.Header().Set("Location", u.RequestURI())
	rq.w.Header().Set("Cache-Control", "no-store")
	rq.w.WriteHeader(http.StatusFound)
	rq.answered = true
}

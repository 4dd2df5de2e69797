package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/openqps/openqps/internal/session"
)

// ticketLogin redeems a qlikTicket query parameter (any case, anywhere in
// the query): a one-time ticket a login module got from the trusted API
// for a user. Every virtual proxy takes tickets, whatever its
// authentication_method, and a ticket wins over a cookie: it is an
// explicit, fresh login.
type ticketLogin struct{ p *Proxy }

// login turns the ticket into a session and sets its cookie on this very
// response.
//
// The ticket is removed from the request whatever happens, so it never
// reaches a back end and never becomes part of a login target (a refused
// ticket left in the target would come back first and loop). A GET
// navigation is then redirected to its URL without the ticket, to keep
// the ticket out of the address bar, history and Referer; other requests,
// websocket upgrades among them, are served in place. A refused ticket is
// a failedLogin: a valid cookie may still authenticate the request.
func (t ticketLogin) login(rq *request, _ verdict) (verdict, error) {
	p := t.p
	raw, rest, found := queryParamFold(rq.r.URL.RawQuery, "qlikticket")
	if !found {
		return verdict{}, nil
	}
	dropTicket(rq, rest)
	navigation := rq.r.Method == http.MethodGet && !isUpgrade(rq.r)

	id, err := url.QueryUnescape(raw)
	if err != nil || id == "" {
		return t.refuse(rq, raw, http.StatusBadRequest, "the qlikTicket query parameter is empty or not URL-encoded; ask the login module for a new ticket"), nil
	}
	tk, err := p.store.TakeTicket(rq.r.Context(), id)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return t.refuse(rq, id, http.StatusUnauthorized, "the ticket is unknown, expired or already used; a ticket is valid once, for "+rq.routes.cfg.Sessions.TicketTTL.String()+": ask the login module for a new one"), nil
	case err != nil:
		return verdict{}, err
	case tk.Prefix != rq.vp.cfg.Prefix:
		return t.refuse(rq, id, http.StatusForbidden, fmt.Sprintf("the ticket was issued for virtual proxy %q, not %q; request it from /qps/%s/ticket", tk.Prefix, rq.vp.cfg.Prefix, rq.vp.cfg.Prefix)), nil
	}
	s, err := p.startSession(rq, tk.UserDirectory, tk.UserID, tk.Attributes)
	if err != nil {
		return verdict{}, fmt.Errorf("add session for redeemed ticket: %w", err)
	}
	p.log.Info("ticket redeemed", "event", "ticket.redeemed", "vp", s.Prefix, "user_directory", s.UserDirectory,
		"user_id", s.UserID, "ticket", session.Redact(id), "session", session.Redact(s.ID), "remote", rq.r.RemoteAddr)
	if navigation {
		return redirect(urlWithoutCredential(rq)), nil
	}
	return identity(s), nil
}

// refuse logs a refused ticket once and returns its failedLogin verdict.
func (t ticketLogin) refuse(rq *request, ticket string, status int, reason string) verdict {
	t.p.log.Warn("ticket refused", "event", "ticket.rejected", "vp", rq.vp.cfg.Prefix, "ticket", session.Redact(ticket),
		"status", status, "reason", reason, "remote", rq.r.RemoteAddr)
	return verdict{kind: failedLogin, status: status, error: "ticket refused", reason: reason}
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

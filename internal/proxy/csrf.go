package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Cross-site websocket hijacking: a page on another site can open a
// websocket to openqps and the browser sends the session cookie along.
// Two checks stop it, as in QPS: the upgrade's Origin must be this proxy's
// own origin or in the virtual proxy's websocket_origin_allow_list; and,
// when the virtual proxy sets csrf_token, the upgrade must carry the
// session's qlik-csrf-token, which only a page of an allowed origin can
// read (GET /{prefix}/qps/csrftoken).

// csrfParam is the query parameter of the token on the upgrade URL.
const csrfParam = "qlik-csrf-token"

// websocketAllowed checks a websocket upgrade's Origin and CSRF token and
// answers 403 when they fail.
func (p *Proxy) websocketAllowed(rq *request) bool {
	if origin := rq.r.Header.Get("Origin"); origin != "" && !rq.routes.originAllowed(origin, rq) {
		p.log.Warn("Cross-Site Websocket Hijacking attack prevention check failed", "event", "websocket.origin_refused",
			"vp", rq.vp.cfg.Prefix, "origin", origin, "remote", rq.r.RemoteAddr)
		p.reject(rq, http.StatusForbidden, "websocket origin not allowed",
			fmt.Sprintf("origin %q may not open websockets here; add its host to the virtual proxy's websocket_origin_allow_list", origin))
		return false
	}
	if !rq.vp.cfg.Proxying.CSRFToken {
		return true
	}
	token := takeCSRFToken(rq)
	if token == "" || !hmac.Equal([]byte(token), []byte(csrfToken(rq.session.Prefix, rq.session.ID))) {
		p.log.Warn("Cross-Site Websocket Hijacking attack prevention check failed", "event", "websocket.csrf_refused",
			"vp", rq.vp.cfg.Prefix, "token_given", token != "", "remote", rq.r.RemoteAddr)
		p.reject(rq, http.StatusForbidden, "websocket CSRF token missing or wrong",
			"add ?"+csrfParam+"=<token> to the websocket URL; the token is in the qlik-csrf-token header of GET /"+prefixSlash(rq.vp.cfg.Prefix)+"qps/csrftoken")
		return false
	}
	return true
}

// takeCSRFToken finds the token of an upgrade and removes it from the
// request, so the back end does not see it. enigma.js's examples append
// "&qlik-csrf-token=" to a URL without a query, so the path is searched
// too, as QPS tolerates.
func takeCSRFToken(rq *request) string {
	if raw, rest, found := queryParamFold(rq.r.URL.RawQuery, csrfParam); found {
		rq.r.URL.RawQuery = rest
		v, _ := url.QueryUnescape(raw)
		return v
	}
	if i := strings.Index(rq.path, "&"+csrfParam+"="); i >= 0 {
		v := rq.path[i+len(csrfParam)+2:]
		rq.path = rq.path[:i]
		v, _ = url.QueryUnescape(v)
		return v
	}
	return ""
}

// csrfToken is the CSRF token of a session: an HMAC of its id, so every
// openqps node derives the same token without storing it, and only the
// holder of the session cookie (or a page it lets read the token) has it.
func csrfToken(prefix, sessionID string) string {
	m := hmac.New(sha256.New, []byte("openqps qlik-csrf-token v1"))
	m.Write([]byte(prefix))
	m.Write([]byte{0})
	m.Write([]byte(sessionID))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// originAllowed reports whether a browser page from origin may open a
// websocket on vp: the front end's own origin (the Host the request was
// sent to) or a host of the allow list.
func (rt *routes) originAllowed(origin string, rq *request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false // includes "null": sandboxed frames and file: pages
	}
	if u.Scheme == rq.scheme && strings.EqualFold(withDefaultPort(u.Host, u.Scheme), withDefaultPort(rq.r.Host, rq.scheme)) {
		return true
	}
	h := hostOnly(u.Host)
	for _, allowed := range rq.vp.cfg.Proxying.HostAllowList {
		if hostOnly(allowed) == h || strings.EqualFold(allowed, u.Host) {
			return true
		}
	}
	return false
}

func withDefaultPort(host, scheme string) string {
	if strings.LastIndexByte(host, ':') > strings.LastIndexByte(host, ']') {
		return host
	}
	if scheme == "https" {
		return host + ":443"
	}
	return host + ":80"
}

// serveCSRFToken answers GET /{prefix}/qps/csrftoken as QPS does: 204 with
// the token in the qlik-csrf-token header.
func (p *Proxy) serveCSRFToken(rq *request) {
	if rq.r.Method != http.MethodGet && rq.r.Method != http.MethodHead {
		rq.w.Header().Set("Allow", "GET")
		p.reject(rq, http.StatusMethodNotAllowed, "method not allowed", "use GET")
		return
	}
	if !rq.authed {
		p.reject(rq, http.StatusUnauthorized, "not authenticated", "the CSRF token belongs to a session: send the session cookie "+rq.vp.cookie(rq.scheme))
		return
	}
	h := rq.w.Header()
	h.Set("qlik-csrf-token", csrfToken(rq.session.Prefix, rq.session.ID))
	h.Set("Cache-Control", "no-store")
	rq.w.WriteHeader(http.StatusNoContent)
}

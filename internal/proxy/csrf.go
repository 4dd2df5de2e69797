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

// websocketAllowed checks an authenticated websocket upgrade's CSRF token,
// when the virtual proxy asks for one, and answers 403 when it fails. Its
// Origin was checked before authentication (websocketOriginAllowed).
func (p *Proxy) websocketAllowed(rq *request) bool {
	if !rq.vp.cfg.Proxying.CSRFToken {
		return true
	}
	token := takeCSRFToken(rq)
	want, err := p.csrfToken(rq)
	if err != nil {
		p.storeFailed(rq, err)
		return false
	}
	if token == "" || !hmac.Equal([]byte(token), []byte(want)) {
		p.log.Warn("Cross-Site Websocket Hijacking attack prevention check failed", "event", "websocket.csrf_refused",
			"vp", rq.vp.cfg.Prefix, "token_given", token != "", "remote", rq.r.RemoteAddr)
		p.reject(rq, http.StatusForbidden, "websocket CSRF token missing or wrong",
			"add ?"+csrfParam+"=<token> to the websocket URL; the token is in the qlik-csrf-token header of GET /"+prefixSlash(rq.vp.cfg.Prefix)+"qps/csrftoken")
		return false
	}
	return true
}

// websocketOriginAllowed checks a websocket upgrade's Origin and answers
// 403 when it is not allowed. It reads only the request, so it runs
// before anything is done for it: a ticket in the URL of a refused
// upgrade stays unspent, and no cookie is set. A request without Origin
// is not a browser's (browsers send it on every websocket), so it cannot
// carry a victim's cookie against the victim's will; an Origin header
// that is present but empty is no browser's either, and is refused.
func (p *Proxy) websocketOriginAllowed(rq *request) bool {
	values, sent := rq.r.Header["Origin"]
	if !sent {
		return true
	}
	origin := ""
	if len(values) == 1 {
		origin = values[0]
	}
	if len(values) != 1 || !rq.routes.originAllowed(origin, rq) {
		p.log.Warn("Cross-Site Websocket Hijacking attack prevention check failed", "event", "websocket.origin_refused",
			"vp", rq.vp.cfg.Prefix, "origin", origin, "remote", rq.r.RemoteAddr)
		p.reject(rq, http.StatusForbidden, "websocket origin not allowed",
			fmt.Sprintf("origin %q may not open websockets here: a page's origin must be %s, and https when the websocket is", origin, rq.routes.addressHint(rq.scheme)))
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

// csrfSecret names the Store.Secret that keys CSRF tokens.
const csrfSecret = "csrf-token"

// csrfToken is the CSRF token of the request's session: an HMAC of its
// virtual proxy and id under the store's csrfSecret. Every node that
// shares the store derives the same token without storing it; knowing a
// session id (a cookie that leaked to a back end, say) is not enough to
// compute it, as the key never leaves openqps and its store.
func (p *Proxy) csrfToken(rq *request) (string, error) {
	key, err := p.store.Secret(rq.r.Context(), csrfSecret)
	if err != nil {
		return "", err
	}
	return csrfTokenOf(key, rq.session.Prefix, rq.session.ID), nil
}

func csrfTokenOf(key []byte, prefix, sessionID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(prefix))
	m.Write([]byte{0})
	m.Write([]byte(sessionID))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// originAllowed reports whether a browser page from origin (an Origin
// header: scheme://host[:port], nothing more) may open a websocket on
// rq's virtual proxy: its scheme, host and port must be an address of
// this proxy (routes.addressAllowed). The Host the upgrade was sent to
// proves nothing: a page of an attacker's name that resolves to this
// proxy (DNS rebinding) sends its own name in both. A websocket over
// https accepts only https pages: a plain-http page's script may be
// anyone's, inserted on the way.
func (rt *routes) originAllowed(origin string, rq *request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.Opaque != "" {
		return false // includes "null": sandboxed frames and file: pages
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && rq.scheme == "http":
	default:
		return false
	}
	return rt.addressAllowed(u.Scheme, u.Host, rq.vp)
}

// serveCSRFToken answers GET /{prefix}/qps/csrftoken as QPS does: 204 with
// the token in the qlik-csrf-token header.
func (p *Proxy) serveCSRFToken(rq *request) {
	if rq.r.Method != http.MethodGet && rq.r.Method != http.MethodHead {
		rq.w.Header().Set("Allow", "GET")
		p.reject(rq, http.StatusMethodNotAllowed, "method not allowed", "use GET")
		return
	}
	if !rq.authenticated() {
		p.reject(rq, http.StatusUnauthorized, "not authenticated", "the CSRF token belongs to a session: send the session cookie "+rq.vp.cookie(rq.scheme))
		return
	}
	token, err := p.csrfToken(rq)
	if err != nil {
		p.storeFailed(rq, err)
		return
	}
	h := rq.w.Header()
	h.Set("qlik-csrf-token", token)
	h.Set("Cache-Control", "no-store")
	rq.w.WriteHeader(http.StatusNoContent)
}

package proxy

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/openqps/openqps/internal/session"
)

// loginTarget is the URL a browser returns to after logging in: the URL
// it asked for, or its reloadUri query parameter (QPS: the initial
// target when the browser is sent to the authentication module). A
// reloadUri must stay on this proxy: a relative path, or an http(s) URL
// whose scheme, host and port are an address of this proxy
// (routes.addressAllowed), and not plain http when the browser came over
// https. Anything else would make openqps an open redirect or leak the
// ticket.
func (p *Proxy) loginTarget(rq *request) (string, error) {
	raw, _, found := queryParamFold(rq.r.URL.RawQuery, "reloaduri")
	if !found {
		return p.originalURL(rq), nil
	}
	return p.allowedTarget(rq, "reloadUri", raw)
}

// allowedTarget checks a URL-encoded target a browser asked to return to
// (the query parameter param) and returns it absolute.
func (p *Proxy) allowedTarget(rq *request, param, raw string) (string, error) {
	reload, err := url.QueryUnescape(raw)
	if err != nil {
		return "", fmt.Errorf("%s is not URL-encoded", param)
	}
	if strings.IndexFunc(reload, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) >= 0 {
		// Control characters would end up in a Location header;
		// browsers read a backslash as a slash ("/\\evil.example").
		return "", fmt.Errorf("%s contains a control character or a backslash", param)
	}
	if strings.HasPrefix(reload, "/") && !strings.HasPrefix(reload, "//") {
		base := rq.scheme + "://" + rq.r.Host
		if pub := rq.routes.cfg.Frontend.PublicURL; pub != "" {
			base = strings.TrimSuffix(pub, "/")
		}
		reload = base + reload
	}
	u, err := url.Parse(reload)
	switch {
	case err != nil, u.Host == "", u.User != nil, u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("%s must be a path on this proxy or an http(s) URL of one of its hosts; %q is neither", param, reload)
	case u.Scheme == "http" && rq.scheme == "https":
		// The ticket the login module appends would cross the network
		// in clear text.
		return "", fmt.Errorf("%s %q is plain http while this request came over https", param, reload)
	case !rq.routes.addressAllowed(u.Scheme, u.Host, rq.vp):
		return "", fmt.Errorf("%s %q is not an address of this proxy: use a path, or %s", param, u.Scheme+"://"+u.Host, rq.routes.addressHint(u.Scheme))
	}
	return u.String(), nil
}

// loginURL returns the address of the virtual proxy's authentication
// module that logs the browser in and sends it back to uri: the module
// gets proxyRestUri (where to ask for a ticket) and targetId (which the
// ticket API turns into TargetUri). The targetId is uri itself, sealed
// under the store's TargetSecret (session.SealTarget), so sending a
// stranger to the login module stores nothing: however many come, they
// cannot fill anything others need. A uri longer than
// session.MaxTargetURI is session.ErrTargetTooLong.
func (p *Proxy) loginURL(rq *request, uri string) (string, error) {
	vp := rq.vp
	if len(uri) > session.MaxTargetURI {
		return "", session.ErrTargetTooLong // before asking the store for anything
	}
	key, err := p.store.Secret(rq.r.Context(), session.TargetSecret)
	if err != nil {
		return "", err
	}
	targetID, err := session.SealTarget(key, session.Target{
		Prefix:  vp.cfg.Prefix,
		URI:     uri,
		Expires: p.opts.Now().Add(rq.routes.cfg.Sessions.TargetTTL),
	})
	if err != nil {
		return "", err
	}
	login := vp.cfg.AuthenticationModuleRedirectURI
	if strings.HasPrefix(login, "/") {
		login = rq.scheme + "://" + rq.r.Host + login
	}
	sep := "?"
	if strings.Contains(login, "?") {
		sep = "&"
	}
	return login + sep + "proxyRestUri=" + url.QueryEscape(p.proxyRestURI(rq)) + "&targetId=" + targetID, nil // URL-safe already
}

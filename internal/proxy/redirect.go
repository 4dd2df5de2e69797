package proxy

import (
	"fmt"
	"net/url"
	"strings"
)

// loginTarget is the URL a browser returns to after logging in: the URL
// it asked for, or its reloadUri query parameter (QPS: the initial
// target when the browser is sent to the authentication module). A
// reloadUri must stay on this proxy: a relative path, or an http(s) URL
// whose host is a name of this proxy or in the virtual proxy's host allow
// list, and not plain http when the browser came over https. Anything
// else would make openqps an open redirect or leak the ticket.
func (p *Proxy) loginTarget(rq *request) (string, error) {
	raw, _, found := queryParamFold(rq.r.URL.RawQuery, "reloaduri")
	if !found {
		return p.originalURL(rq), nil
	}
	reload, err := url.QueryUnescape(raw)
	if err != nil {
		return "", fmt.Errorf("reloadUri is not URL-encoded")
	}
	if strings.IndexFunc(reload, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) >= 0 {
		// Control characters would end up in a Location header;
		// browsers read a backslash as a slash ("/\\evil.example").
		return "", fmt.Errorf("reloadUri contains a control character or a backslash")
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
		return "", fmt.Errorf("reloadUri must be a path on this proxy or an http(s) URL of one of its hosts; %q is neither", reload)
	case u.Scheme == "http" && rq.scheme == "https":
		// The ticket the login module appends would cross the network
		// in clear text.
		return "", fmt.Errorf("reloadUri %q is plain http while this request came over https", reload)
	case !rq.routes.hostAllowed(u.Host, rq.vp):
		return "", fmt.Errorf("reloadUri host %q is not a name of this proxy; add it to the virtual proxy's websocket_origin_allow_list", hostOnly(u.Host))
	}
	return u.String(), nil
}

package proxy

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/openqps/openqps/internal/config"
)

// routes is the configuration as the request path uses it, built once per
// (re)load so the hot path only reads.
type routes struct {
	cfg      *config.Config
	byPrefix map[string]*virtualProxy
	def      *virtualProxy   // prefix ""; nil when not configured
	hosts    map[string]bool // names of this proxy, see Options.Hosts
}

// virtualProxy is one configured virtual proxy, ready to serve.
type virtualProxy struct {
	cfg        *config.VirtualProxy
	cookieName string
	backends   []*url.URL
	next       atomic.Uint64 // round robin
	proxy      *httputil.ReverseProxy
	// userPattern is the parsed dynamic_user_directory (header_dynamic).
	userPattern config.UserPattern
}

func newRoutes(cfg *config.Config, p *Proxy) (*routes, error) {
	rt := &routes{cfg: cfg, byPrefix: map[string]*virtualProxy{}, hosts: map[string]bool{}}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, p.opts.Hosts...) {
		rt.hosts[hostOnly(h)] = true
	}
	if u, err := url.Parse(cfg.Frontend.PublicURL); err == nil && u.Host != "" {
		rt.hosts[hostOnly(u.Host)] = true
	}
	for i := range cfg.VirtualProxies {
		c := &cfg.VirtualProxies[i]
		if len(c.BackendURLs) == 0 {
			return nil, fmt.Errorf("virtual proxy %q has no back end", c.Prefix)
		}
		vp := &virtualProxy{cfg: c, cookieName: c.SessionCookieName, backends: c.BackendURLs}
		vp.proxy = p.newReverseProxy()
		if c.Auth.AuthenticationMethod == config.AuthHeaderDynamic {
			vp.userPattern, _ = config.ParseUserPattern(c.Auth.DynamicUserDirectory) // validated with the config
		}
		if c.Prefix == "" {
			rt.def = vp
		} else {
			rt.byPrefix[c.Prefix] = vp
		}
	}
	return rt, nil
}

// hostAllowed reports whether host (a Host header) names this proxy for
// the virtual proxy vp.
func (rt *routes) hostAllowed(host string, vp *virtualProxy) bool {
	h := hostOnly(host)
	if rt.hosts[h] {
		return true
	}
	for _, allowed := range vp.cfg.Proxying.HostAllowList {
		if hostOnly(allowed) == h || strings.EqualFold(allowed, host) {
			return true
		}
	}
	return false
}

// pickBackend chooses the back end for one request, round robin.
func (vp *virtualProxy) pickBackend() *url.URL {
	if len(vp.backends) == 1 {
		return vp.backends[0]
	}
	n := vp.next.Add(1)
	return vp.backends[n%uint64(len(vp.backends))]
}

// setCookie sets the virtual proxy's session cookie: a browser-session
// cookie (no Expires), HttpOnly, Secure over HTTPS.
func (vp *virtualProxy) setCookie(rq *request, id string) {
	c := &http.Cookie{
		Name:     vp.cookieName,
		Value:    id,
		Path:     "/",
		Domain:   vp.cfg.SessionCookieDomain,
		HttpOnly: true,
		Secure:   rq.scheme == "https",
	}
	http.SetCookie(rq.w, c)
}

// clearCookie tells the browser to forget the session cookie.
func (vp *virtualProxy) clearCookie(rq *request) {
	http.SetCookie(rq.w, &http.Cookie{
		Name: vp.cookieName, Value: "", Path: "/", Domain: vp.cfg.SessionCookieDomain,
		MaxAge: -1, HttpOnly: true, Secure: rq.scheme == "https",
	})
}

// addResponseHeaders adds the virtual proxy's configured headers to every
// response.
func (vp *virtualProxy) addResponseHeaders(w http.ResponseWriter) {}

// newGUID returns a random (version 4) GUID, the form QPS uses for
// targetId values.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	var out strings.Builder
	out.Grow(36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out.WriteByte('-')
		}
		out.WriteByte(hex[c>>4])
		out.WriteByte(hex[c&0xf])
	}
	return out.String()
}

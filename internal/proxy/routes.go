package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/upstream"
)

// routes is the configuration as the request path uses it, built once per
// (re)load so the hot path only reads.
type routes struct {
	cfg      *config.Config
	byPrefix map[string]*virtualProxy
	def      *virtualProxy   // prefix ""; nil when not configured
	hosts    map[string]bool // names of this proxy, see Options.Hosts
	// publicHost is the Host back ends are told (X-Forwarded-Host) when a
	// request's own Host is not a name of this proxy: frontend.public_url's
	// host, else the first of Options.Hosts.
	publicHost string
	// sessionCookies are the session cookie names of every virtual proxy
	// (isSessionCookieName).
	sessionCookies sessionCookieNames
	// credentialHeaders are the canonical names of the headers that
	// header-auth virtual proxies read the user from: they are the
	// front's credential, for openqps only, and no back end gets them.
	credentialHeaders map[string]bool
	ports             map[string]int // scheme → the port its front-end listener is bound to
	public            address        // frontend.public_url; zero when it is not set
	// stopHealth ends the active health checks of these routes.
	stopHealth context.CancelFunc
}

// virtualProxy is one configured virtual proxy, ready to serve.
type virtualProxy struct {
	cfg        *config.VirtualProxy
	cookieName string // over HTTPS
	// cookieNameHTTP is the cookie over the plain-HTTP listener: QPS
	// appends "-HTTP", so a cookie set without Secure never stands in
	// for the HTTPS one.
	cookieNameHTTP string
	pool           *pool
	upstream       *upstream.Transport // pooled connections, with the virtual proxy's timeouts
	// responseHeaders are the additional_response_headers, canonical
	// names, ready to copy into every response.
	responseHeaders http.Header
	// userPattern is the parsed dynamic_user_directory (header_dynamic).
	userPattern config.UserPattern
	// logins are the login methods, in the order they are asked.
	logins loginPipeline
	// hostAllowList is the parsed websocket_origin_allow_list
	// (addressAllowed).
	hostAllowList []allowedHost
}

// newRoutes builds the routes of cfg. Back ends that old (the routes
// being replaced, or nil) knew keep their health, so a reload neither
// revives a dead node nor buries a live one.
func newRoutes(cfg *config.Config, p *Proxy, old *routes) (*routes, error) {
	rt := &routes{cfg: cfg, byPrefix: map[string]*virtualProxy{}, hosts: map[string]bool{},
		ports: map[string]int{"https": p.opts.HTTPSPort, "http": p.opts.HTTPPort}}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, p.opts.Hosts...) {
		rt.hosts[hostOnly(h)] = true
	}
	rt.publicHost = "localhost"
	if len(p.opts.Hosts) > 0 {
		rt.publicHost = p.opts.Hosts[0]
	}
	if u, err := url.Parse(cfg.Frontend.PublicURL); err == nil && u.Host != "" {
		rt.publicHost = u.Host
		rt.hosts[hostOnly(u.Host)] = true
		rt.public, _ = parseAddress(u.Scheme, u.Host) // its port too, which may be none of ours
	}
	for i := range cfg.VirtualProxies {
		c := &cfg.VirtualProxies[i]
		if len(c.BackendURLs) == 0 {
			return nil, fmt.Errorf("virtual proxy %q has no back end", c.Prefix)
		}
		vp := &virtualProxy{cfg: c, cookieName: c.SessionCookieName, cookieNameHTTP: c.SessionCookieName + "-HTTP", pool: newPool(c),
			hostAllowList: parseAllowList(c.Proxying.HostAllowList)}
		rt.sessionCookies = append(rt.sessionCookies, vp.cookieName, vp.cookieNameHTTP)
		if name := c.Auth.HeaderName; name != "" && (c.Auth.AuthenticationMethod == config.AuthHeaderStatic || c.Auth.AuthenticationMethod == config.AuthHeaderDynamic) {
			if rt.credentialHeaders == nil {
				rt.credentialHeaders = map[string]bool{}
			}
			rt.credentialHeaders[http.CanonicalHeaderKey(name)] = true
		}
		vp.upstream = p.upstreamFor(upstream.Options{Kind: upstream.Kind(cfg.Transport.Upstream), RawSockets: cfg.Transport.RawSockets == config.On,
			ConnectTimeout: c.Proxying.BackendConnectTimeout, ResponseTimeout: c.Proxying.BackendResponseTimeout})
		if old != nil {
			vp.pool.inherit(old.vpByPrefix(c.Prefix))
		}
		if c.Auth.AuthenticationMethod == config.AuthHeaderDynamic {
			vp.userPattern, _ = config.ParseUserPattern(c.Auth.DynamicUserDirectory) // validated with the config
		}
		c.Auth.SAML.DataDir = cfg.DataDir // where a SAML virtual proxy keeps the key it makes
		logins, err := newLoginPipeline(p, vp)
		if err != nil {
			return nil, err
		}
		vp.logins = logins
		for k, v := range c.Proxying.AdditionalResponseHeaders {
			if vp.responseHeaders == nil {
				vp.responseHeaders = http.Header{}
			}
			vp.responseHeaders.Set(k, v)
		}
		if c.Prefix == "" {
			rt.def = vp
		} else {
			rt.byPrefix[c.Prefix] = vp
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	rt.stopHealth = cancel
	for _, vp := range rt.all() {
		if hc := vp.cfg.Proxying.HealthCheck; hc.Path != "" {
			go checkHealth(ctx, vp.cfg.Prefix, vp.pool, hc, p.log)
		}
	}
	return rt, nil
}

// vpByPrefix returns the virtual proxy with the exact prefix, or nil.
func (rt *routes) vpByPrefix(prefix string) *virtualProxy {
	if prefix == "" {
		return rt.def
	}
	return rt.byPrefix[prefix]
}

// all returns every virtual proxy.
func (rt *routes) all() []*virtualProxy {
	vps := make([]*virtualProxy, 0, len(rt.byPrefix)+1)
	if rt.def != nil {
		vps = append(vps, rt.def)
	}
	for _, vp := range rt.byPrefix {
		vps = append(vps, vp)
	}
	return vps
}

// address is where a browser reaches a server: scheme, lower-case host
// and port (the scheme's default when none is written).
type address struct {
	scheme, host string
	port         int
}

// parseAddress reads a Host header value or a URL's host part as reached
// over scheme (http or https): a name or IPv4 address of letters,
// digits, '.', '-' and '_', or an IPv6 address in brackets, and at most
// a port. The port, when written, must be decimal digits within
// 1-65535: "+443" or "0443" is not a spelling of 443 a browser sends. A
// name check alone would take "localhost:1@evil.example" for localhost.
// It allocates only for a host with upper-case letters.
func parseAddress(scheme, hostport string) (address, bool) {
	def := defaultPort(scheme)
	if def == 0 || hostport == "" {
		return address{}, false
	}
	a := address{scheme: scheme, host: hostport, port: def}
	if i := strings.LastIndexByte(hostport, ':'); i > strings.LastIndexByte(hostport, ']') {
		a.host = hostport[:i]
		if p := hostport[i+1:]; p != "" { // "host:" is the default port (RFC 3986)
			n, ok := parsePort(p)
			if !ok {
				return address{}, false
			}
			a.port = n
		}
	}
	bracketed := strings.HasPrefix(a.host, "[")
	if bracketed {
		if len(a.host) < 3 || !strings.HasSuffix(a.host, "]") {
			return address{}, false
		}
		a.host = a.host[1 : len(a.host)-1]
	}
	upper := false
	for i := 0; i < len(a.host); i++ {
		switch c := a.host[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			upper = true
		case c == ':' && bracketed:
		default:
			return address{}, false
		}
	}
	if a.host == "" {
		return address{}, false
	}
	if upper {
		a.host = strings.ToLower(a.host)
	}
	return a, true
}

// parsePort reads a port as a browser writes it: 1-65535 in decimal, no
// sign, no leading zero.
func parsePort(p string) (int, bool) {
	if p == "" || len(p) > 5 || p[0] < '1' || p[0] > '9' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return 0, false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n, n <= 65535
}

func defaultPort(scheme string) int {
	switch scheme {
	case "https":
		return 443
	case "http":
		return 80
	}
	return 0
}

// allowedHost is an entry of websocket_origin_allow_list, read once per
// (re)load: a lower-case host and the port it names, 0 for none.
type allowedHost struct {
	host string
	port int
}

// parseAllowList reads websocket_origin_allow_list ("host" or
// "host:port" each). An entry that is no address (the configuration
// lets through what is not a URL part) matches nothing.
func parseAllowList(entries []string) []allowedHost {
	var list []allowedHost
	for _, entry := range entries {
		a, ok := parseAddress("https", entry)
		if !ok {
			continue
		}
		e := allowedHost{host: a.host}
		if i := strings.LastIndexByte(entry, ':'); i > strings.LastIndexByte(entry, ']') && i < len(entry)-1 {
			e.port = a.port
		}
		list = append(list, e)
	}
	return list
}

// addressAllowed reports whether a browser on scheme://hostport reaches
// this proxy for the virtual proxy vp: a Host header, the host of a
// reloadUri or targetUri, or a websocket Origin. The host must be a name
// of this proxy (Options.Hosts, localhost, frontend.public_url's) or an
// entry of vp's host allow list without a port, on the scheme's default
// port or the port of the front end's own listener for that scheme; or
// frontend.public_url's scheme, host and port; or an allow-list entry
// with a port, exactly.
// Default ports are allowed because a load balancer in front listens
// there, and only an administrator can bind them; any other port of an
// allowed name may be anyone's server (localhost:31337), which must not
// receive a ticket or open a websocket with the user's cookie.
// It allocates only for a host with upper-case letters.
func (rt *routes) addressAllowed(scheme, hostport string, vp *virtualProxy) bool {
	a, ok := parseAddress(scheme, hostport)
	if !ok {
		return false
	}
	if a == rt.public {
		return true
	}
	ownPort := a.port == defaultPort(scheme) || a.port == rt.ports[scheme]
	if ownPort && rt.hosts[a.host] {
		return true
	}
	for _, e := range vp.hostAllowList {
		if e.host == a.host && (e.port == a.port || e.port == 0 && ownPort) {
			return true
		}
	}
	return false
}

// forwardedHost is the Host a back end is told the browser used
// (X-Forwarded-Host, the personal API's logoutUri) for a request over
// scheme: the request's own Host when it is an address of this proxy
// for vp (addressAllowed; an empty port left off), else publicHost, so
// that a client cannot make a back end build links to a host of its
// choosing. It allocates only for a Host with upper-case letters.
func (rt *routes) forwardedHost(scheme, host string, vp *virtualProxy) string {
	if !rt.addressAllowed(scheme, host, vp) {
		return rt.publicHost
	}
	return strings.TrimSuffix(host, ":")
}

// addressHint says which addresses of this proxy are allowed on scheme,
// for the detail of a refusal.
func (rt *routes) addressHint(scheme string) string {
	ports := strconv.Itoa(defaultPort(scheme))
	if p := rt.ports[scheme]; p != 0 && p != defaultPort(scheme) {
		ports += " or " + strconv.Itoa(p)
	}
	return "one of this proxy's names (its server certificate's, localhost) on port " + ports +
		", an entry of the virtual proxy's websocket_origin_allow_list (host: those ports; host:port: that port), or frontend.public_url"
}

// cookie is the name of the session cookie for a request that came in
// over scheme.
func (vp *virtualProxy) cookie(scheme string) string {
	if scheme == "http" {
		return vp.cookieNameHTTP
	}
	return vp.cookieName
}

// sessionCookie is the virtual proxy's session cookie as the browser gets
// it: a browser-session cookie (no Expires), HttpOnly, with the configured
// Domain, SameSite and Secure (by default: Secure over HTTPS).
func (vp *virtualProxy) sessionCookie(scheme, value string) *http.Cookie {
	c := &http.Cookie{
		Name:     vp.cookie(scheme),
		Value:    value,
		Path:     "/",
		Domain:   vp.cfg.SessionCookieDomain,
		HttpOnly: true,
		Secure:   scheme == "https",
	}
	switch vp.cfg.Proxying.SessionCookieSecure {
	case "always":
		c.Secure = true
	case "never":
		c.Secure = false
	}
	switch vp.cfg.Proxying.SessionCookieSameSite {
	case "none":
		c.SameSite = http.SameSiteNoneMode
	case "lax":
		c.SameSite = http.SameSiteLaxMode
	case "strict":
		c.SameSite = http.SameSiteStrictMode
	}
	return c
}

// setCookie sets the virtual proxy's session cookie on the response.
func (vp *virtualProxy) setCookie(rq *request, id string) {
	http.SetCookie(rq.w, vp.sessionCookie(rq.scheme, id))
}

// clearCookie tells the browser to forget the session cookie.
func (vp *virtualProxy) clearCookie(rq *request) {
	c := vp.sessionCookie(rq.scheme, "")
	c.MaxAge = -1
	http.SetCookie(rq.w, c)
}

// addResponseHeaders adds the virtual proxy's additional_response_headers
// to a response. A back end's own value of such a header is replaced.
func (vp *virtualProxy) addResponseHeaders(w http.ResponseWriter) {
	if len(vp.responseHeaders) == 0 {
		return
	}
	h := w.Header()
	for k, v := range vp.responseHeaders {
		h[k] = v
	}
}

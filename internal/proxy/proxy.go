// Package proxy is openqps's front end: it picks the virtual proxy by the
// first path segment, recognises the browser by its session cookie or a
// login ticket, sends strangers to the login module, and forwards
// everything else to a back end with the identity attached.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/metrics"
	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/upstream"
)

// Options are the parts of a Proxy that are not configuration.
type Options struct {
	// APIPort is the port the trusted API listens on, used to build
	// proxyRestUri when api.public_url is empty.
	APIPort int
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Local serves paths outside every virtual proxy, before routing
	// (the demo login module under /demo-login/). May be nil.
	Local map[string]http.Handler
	// Hosts are the names browsers may use to reach the front end (the
	// server certificate's names). A login redirect is built from the
	// request's Host header only when that host is one of these, one of a
	// virtual proxy's host allow list, or frontend.public_url's host;
	// otherwise an attacker's Host header would send the login module's
	// ticket request and the user's browser elsewhere.
	Hosts []string
	// HTTPSPort and HTTPPort are the ports the front end's HTTPS and
	// plain-HTTP listeners are bound to (0: no such listener). With the
	// scheme's default port, they are the ports a Host, reloadUri,
	// targetUri or websocket Origin naming this proxy may carry (see
	// routes.addressAllowed): another port of the same name is another
	// server, which must never get a ticket or open a websocket.
	HTTPSPort, HTTPPort int
	// ActivityInterval is how often websocket traffic is recorded as
	// session activity; 0 is 10 seconds.
	ActivityInterval time.Duration
	// Metrics, when set, counts the back ends' answers and latency.
	Metrics *metrics.Registry
	// StallTimeout is how long a client may take to accept any part of a
	// response larger than a copy buffer (see copyBody); 0 is
	// DefaultStallTimeout.
	StallTimeout time.Duration
	// Console, when set, serves /<prefix>/openqps/ of the virtual proxies
	// the admin section names, after authentication (console.go).
	Console http.Handler
}

// DefaultStallTimeout is Options.StallTimeout's default, nginx's
// send_timeout.
const DefaultStallTimeout = 60 * time.Second

func (p *Proxy) stallTimeout() time.Duration {
	if p.opts.StallTimeout > 0 {
		return p.opts.StallTimeout
	}
	return DefaultStallTimeout
}

// Proxy is the front-end handler. It is safe for concurrent use;
// SetConfig may be called while it serves (a reload).
type Proxy struct {
	store  session.Store
	log    *slog.Logger
	opts   Options
	routes atomic.Pointer[routes]

	mu        sync.Mutex // serialises SetConfig and Close; guards upstreams
	upstreams map[upstream.Options]*upstream.Transport

	tunnels   tunnelSet          // open websockets
	stopWatch context.CancelFunc // ends watchSessions and recordActivity

	// credentials points header and JWT credentials at their sessions,
	// for clients without a cookie jar (credentialSession).
	credentials credentialIndex
	// anonymousEnded holds the anonymous sessions logged out here.
	anonymousEnded endedAnonymous
	// oidc holds the providers of OIDC virtual proxies (oidc.go).
	oidc oidcProviders
	// formsLogins counts the windows forms login attempts per client.
	formsLogins formsLoginLimiter
}

// New returns a front end for cfg that keeps sessions in store.
func New(cfg *config.Config, store session.Store, log *slog.Logger, opts Options) (*Proxy, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ActivityInterval <= 0 {
		opts.ActivityInterval = 10 * time.Second
	}
	p := &Proxy{store: store, log: log, opts: opts}
	if err := p.SetConfig(cfg); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.stopWatch = cancel
	go p.watchSessions(store.Watch(ctx))
	go p.recordActivity(ctx, opts.ActivityInterval)
	return p, nil
}

// SetConfig makes cfg apply to requests that start after it returns.
func (p *Proxy) SetConfig(cfg *config.Config) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	rt, err := newRoutes(cfg, p, p.routes.Load())
	if err != nil {
		return err
	}
	p.oidc.configure(p, cfg)
	if old := p.routes.Swap(rt); old != nil {
		old.stopHealth()
		removed := func(prefix string) bool { return rt.vpByPrefix(prefix) == nil }
		if n := p.tunnels.endWhere(removed, endRemoved); n > 0 {
			p.log.Info("websockets of removed virtual proxies closed", "event", "websocket.vp_removed", "websockets", n)
		}
	}
	return nil
}

// CloseWebsockets sends every open websocket QPS's OnSessionClosed
// notice, closes it, refuses new ones, and waits until all are closed or
// ctx ends. Sessions are not touched. Part of a graceful shutdown:
// http.Server.Shutdown does not know about hijacked connections.
func (p *Proxy) CloseWebsockets(ctx context.Context) error {
	return p.tunnels.endAll(ctx, endShutdown)
}

// Close stops the health checks and closes idle back-end connections.
// Requests still in flight finish.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopWatch != nil {
		p.stopWatch()
	}
	p.oidc.close()
	if rt := p.routes.Load(); rt != nil {
		rt.stopHealth()
	}
	for _, u := range p.upstreams {
		u.CloseIdleConnections()
	}
}

// upstreamFor returns the upstream transport with the given options,
// shared by every virtual proxy that has them and kept across reloads, so
// a reload does not drop the pooled connections. p.mu is held.
func (p *Proxy) upstreamFor(o upstream.Options) *upstream.Transport {
	if u := p.upstreams[o]; u != nil {
		return u
	}
	if p.upstreams == nil {
		p.upstreams = map[upstream.Options]*upstream.Transport{}
	}
	u := upstream.New(o)
	p.upstreams[o] = u
	return u
}

// request is one front-end request on its way through the handlers.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	routes *routes
	vp     *virtualProxy
	path   string // clean path without the virtual proxy prefix
	scheme string // scheme the browser used
	// session is who sent the request, once authenticate identified
	// them (see authenticated).
	session session.Session
	// anonymous: session is an anonymous one, carried by its cookie and
	// not in the store (anonymous.go).
	anonymous bool
	// credential is what the virtual proxy's login method took from the
	// request before any method was asked (credentialTaker), and
	// credentialFound whether there was one.
	credential      string
	credentialFound bool
	// node is the back end the request is being forwarded to, counted
	// in its load until the request (or its websocket) ends.
	node *node
}

// ServeHTTP handles one front-end request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rq := &request{w: w, r: r, routes: p.routes.Load(), scheme: "http"}
	if r.TLS != nil {
		rq.scheme = "https"
	}
	if p.rejectShape(rq) {
		return
	}
	if err := checkRequestLine(r.Method, r.RequestURI); err != nil {
		p.reject(rq, http.StatusBadRequest, "invalid request line", err.Error())
		return
	}
	clean, err := cleanPath(r.URL.Path, r.URL.EscapedPath())
	if err != nil {
		p.reject(rq, http.StatusBadRequest, "invalid path", err.Error())
		return
	}
	first, rest := splitPrefix(clean)
	if h := p.opts.Local[first]; h != nil {
		h.ServeHTTP(w, r)
		return
	}
	if vp := rq.routes.byPrefix[strings.ToLower(first)]; vp != nil && first != "" {
		rq.vp, rq.path = vp, rest
	} else if rq.routes.def != nil {
		rq.vp, rq.path = rq.routes.def, clean
	} else {
		p.reject(rq, http.StatusNotFound, "unknown virtual proxy", fmt.Sprintf("no virtual proxy has the prefix %q and there is no default virtual proxy", first))
		return
	}
	rq.vp.addResponseHeaders(w)

	// Before authentication: a refused cross-origin websocket must not
	// spend the ticket in its URL nor get a session cookie.
	if isWebsocket(r) && !p.websocketOriginAllowed(rq) {
		return
	}
	if s, ok := rq.vp.logins.method.(*samlLogin); ok && rq.path == samlMetadataPath {
		p.serveSAMLMetadata(rq, s)
		return
	}
	if rq.vp.cfg.Auth.AuthenticationMethod == config.AuthWindows && isFormsLoginPath(rq.path) {
		p.formsLogin(rq) // a page of its own (windows_form.go)
		return
	}
	v, err := p.authenticate(rq)
	if err != nil {
		p.storeFailed(rq, err)
		return
	}
	switch v.kind {
	case answered:
		p.answer(rq, v)
		return
	case refused:
		if v.challenge != "" {
			w.Header().Set("WWW-Authenticate", v.challenge)
		}
		p.rejectRetry(rq, v.status, v.error, v.reason, v.retry)
		return
	case identified:
		rq.session, rq.anonymous = v.session, v.anonymous
	}
	if p.serveConsole(rq, v) {
		return
	}
	if strings.HasPrefix(rq.path, "/qps/") || rq.path == "/qps" {
		p.personal(rq)
		return
	}
	if !rq.authenticated() {
		p.challenge(rq, v)
		return
	}
	p.forward(rq)
}

// authenticated reports whether authenticate identified who sent the
// request: every session has an id.
func (rq *request) authenticated() bool { return rq.session.ID != "" }

// challenge answers a request that has no session (v is noVerdict, or a
// failedLogin): a browser navigation goes to the login module; anything
// else gets 401, or the status of its failed login.
func (p *Proxy) challenge(rq *request, v verdict) {
	vp := rq.vp
	if !rq.routes.addressAllowed(rq.scheme, rq.r.Host, vp) {
		p.reject(rq, http.StatusBadRequest, "unknown host", fmt.Sprintf("Host %q is not an address of this proxy: use %s", rq.r.Host, rq.routes.addressHint(rq.scheme)))
		return
	}
	navigation := (rq.r.Method == http.MethodGet || rq.r.Method == http.MethodHead) && !isUpgrade(rq.r)
	switch {
	case vp.cfg.AuthenticationModuleRedirectURI != "" && navigation:
		// Sent to the login module below, also after a refused ticket:
		// the module issues a fresh one.
	case v.kind == failedLogin:
		p.reject(rq, v.status, v.error, v.reason)
		return
	case vp.cfg.AuthenticationModuleRedirectURI == "":
		p.reject(rq, http.StatusUnauthorized, "not authenticated", credentialsHint(vp))
		return
	default:
		p.reject(rq, http.StatusUnauthorized, "not authenticated", "no valid session: open the page in a browser to log in, or send the session cookie "+vp.cookie(rq.scheme))
		return
	}
	uri, err := p.loginTarget(rq)
	if err != nil {
		p.reject(rq, http.StatusBadRequest, "reloadUri not allowed", err.Error())
		return
	}
	loc, err := p.loginURL(rq, uri)
	if errors.Is(err, session.ErrTargetTooLong) {
		p.reject(rq, http.StatusRequestURITooLong, "URL too long to log in with",
			fmt.Sprintf("the login redirect carries the URL to return to, at most %d bytes; this one has %d: shorten it (or its reloadUri)", session.MaxTargetURI, len(uri)))
		return
	}
	if err != nil {
		p.storeFailed(rq, err)
		return
	}
	rq.w.Header().Set("Location", loc)
	rq.w.Header().Set("Cache-Control", "no-store")
	rq.w.WriteHeader(http.StatusFound)
	p.log.Debug("sent to login module", "vp", vp.cfg.Prefix)
}

// originalURL is the exact URL the browser asked for.
func (p *Proxy) originalURL(rq *request) string {
	if pub := rq.routes.cfg.Frontend.PublicURL; pub != "" {
		return strings.TrimSuffix(pub, "/") + rq.r.RequestURI
	}
	return rq.scheme + "://" + rq.r.Host + rq.r.RequestURI
}

// proxyRestURI is the trusted API base of the request's virtual proxy,
// with an explicit port and a trailing slash, as login modules join
// "ticket" onto it.
func (p *Proxy) proxyRestURI(rq *request) string {
	base := rq.routes.cfg.API.PublicURL
	if base == "" {
		host := rq.r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		base = "https://" + net.JoinHostPort(host, strconv.Itoa(p.opts.APIPort))
	}
	base = strings.TrimSuffix(base, "/") + "/qps/"
	if prefix := rq.vp.cfg.Prefix; prefix != "" {
		base += prefix + "/"
	}
	return base
}

func (p *Proxy) storeFailed(rq *request, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if errors.Is(err, session.ErrFull) {
		p.reject(rq, http.StatusTooManyRequests, "session store full", "openqps holds as many sessions as it may; try again later")
		return
	}
	p.log.Error("session store failed", "event", "store.error", "vp", rq.vp.cfg.Prefix, "err", err)
	p.reject(rq, http.StatusServiceUnavailable, "session store unavailable", "the session store cannot be reached; retry shortly")
}

// hostOnly strips the port from a Host header value, lower-cased.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		hostport = h
	}
	return strings.ToLower(strings.Trim(hostport, "[]"))
}

func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" && hasToken(r.Header["Connection"], "upgrade")
}

package proxy

import (
	"context"
	"strings"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// ConsoleRequest is what the front end tells Options.Console about a
// request under /<prefix>/openqps/ of a virtual proxy that serves the
// admin console: who sent it, as that virtual proxy's own login method
// authenticated them. The console decides whether they are an admin.
type ConsoleRequest struct {
	Prefix  string          // the virtual proxy
	Path    string          // below /<prefix>/openqps: "" or /sessions, ...
	Base    string          // the console's own path: /<prefix>/openqps
	Session session.Session // the browser's session
	// Anonymous: the session is an anonymous one (never an admin).
	Anonymous bool
}

type consoleKey struct{}

// ConsoleRequestFrom returns what the front end put in the context of a
// console request.
func ConsoleRequestFrom(ctx context.Context) (*ConsoleRequest, bool) {
	cr, ok := ctx.Value(consoleKey{}).(*ConsoleRequest)
	return cr, ok
}

// serveConsole hands a request for the console of its virtual proxy to
// Options.Console, after authentication and instead of any back end: a
// browser without a session goes to the login module like any other.
// It reports whether the request was the console's.
func (p *Proxy) serveConsole(rq *request, v verdict) bool {
	if p.opts.Console == nil {
		return false
	}
	sub, ok := consolePath(rq.path)
	if !ok || !rq.routes.cfg.Admin.Serves(rq.vp.cfg.Prefix) {
		return false
	}
	if !rq.authenticated() {
		p.challenge(rq, v)
		return true
	}
	base := "/" + config.ConsolePath
	if rq.vp.cfg.Prefix != "" {
		base = "/" + rq.vp.cfg.Prefix + base
	}
	cr := &ConsoleRequest{Prefix: rq.vp.cfg.Prefix, Path: sub, Base: base, Session: rq.session, Anonymous: rq.anonymous}
	p.opts.Console.ServeHTTP(rq.w, rq.r.WithContext(context.WithValue(rq.r.Context(), consoleKey{}, cr)))
	return true
}

// consolePath returns the part of a clean path below the console's
// segment, which matches in any case (as prefixes do), so that no
// spelling of it reaches a back end.
func consolePath(p string) (string, bool) {
	const seg = "/" + config.ConsolePath
	if len(p) < len(seg) || !strings.EqualFold(p[:len(seg)], seg) {
		return "", false
	}
	rest := p[len(seg):]
	return rest, rest == "" || rest[0] == '/'
}

// Websockets returns how many websockets of a session are open on this
// node, for the console.
func (p *Proxy) Websockets(prefix, id string) int {
	p.tunnels.mu.Lock()
	defer p.tunnels.mu.Unlock()
	return len(p.tunnels.bySession[tunnelKey{prefix, id}])
}

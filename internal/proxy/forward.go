package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/openqps/openqps/internal/session"
)

// copyBuffers recycles the 32 KB buffers response bodies are copied
// through; without it every proxied response allocates one. It holds
// array pointers, so putting one back allocates nothing either.
var copyBuffers = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

const copyBufferSize = 32 << 10

// forward sends an authenticated request to a back end of its virtual
// proxy, chosen by its load-balancing policy among the healthy ones. A
// node that cannot be reached is taken out, and the request goes to the
// next one when nothing of it was sent yet or it has no body.
func (p *Proxy) forward(rq *request) {
	if isWebsocket(rq.r) && !p.websocketAllowed(rq) {
		return
	}
	var tried nodeSet
	for {
		n, i := rq.vp.pool.pick(rq, tried, p.opts.Now())
		if n == nil {
			p.noBackend(rq, tried != 0)
			return
		}
		err := p.forwardTo(rq, n)
		if p.clientBodyFailed(rq, err) {
			return
		}
		if err == nil || rq.r.Context().Err() != nil {
			return // done, or the client went away
		}
		if refused := (*answerRefused)(nil); errors.As(err, &refused) { // one log line: reject's
			p.reject(rq, http.StatusBadGateway, "back end answer refused", "the back end's answer was refused: "+refused.detail)
			return
		}
		p.log.Error("back end failed", "event", "backend.error", "vp", rq.vp.cfg.Prefix, "backend", n.url.Host, "err", err)
		if !unreachable(err) {
			p.reject(rq, http.StatusBadGateway, "back end failed", "the back end did not answer properly; retry shortly")
			return
		}
		rq.vp.pool.failed(n, p.opts.Now())
		p.log.Warn("back end taken out", "event", "backend.down", "vp", rq.vp.cfg.Prefix, "backend", n.url.Host, "for", rq.vp.pool.outFor())
		if !dialFailed(err) && rq.r.ContentLength != 0 {
			p.reject(rq, http.StatusBadGateway, "back end unavailable", "the back end failed while answering; retry shortly")
			return
		}
		tried |= 1 << uint(i)
	}
}

// clientBodyFailed answers a request whose body could not be read from
// the client: 408 when it stalled past timeouts.request_body, 400 when
// its chunked encoding is malformed (or the client went away, and nobody
// reads the answer). The back end is not to blame.
func (p *Proxy) clientBodyFailed(rq *request, err error) bool {
	switch {
	case errors.Is(err, errClientTooSlow):
		p.reject(rq, http.StatusRequestTimeout, "request body too slow", "the request body did not arrive within the body timeout (timeouts.request_body)")
	case errors.Is(err, errClientBody):
		p.reject(rq, http.StatusBadRequest, "invalid request body", "the request body could not be read: its chunked encoding is malformed or the connection broke")
	default:
		return false
	}
	return true
}

// forwardTo forwards the request to one node, counting it in the node's
// load while it runs. A websocket tunnel takes the count over (rq.node)
// and keeps it until the websocket closes.
func (p *Proxy) forwardTo(rq *request, n *node) error {
	n.inflight.Add(1)
	rq.node = n
	err := p.forwardHTTP(rq, n)
	if rq.node != nil {
		rq.node.inflight.Add(-1)
		rq.node = nil
	}
	return err
}

// noBackend answers a request no node can take, right away, never after
// a wait: 502 when the nodes it tried could not be reached, 503 when every
// node was already known to be down.
func (p *Proxy) noBackend(rq *request, triedSome bool) {
	rq.w.Header().Set("Retry-After", "5")
	if triedSome {
		p.reject(rq, http.StatusBadGateway, "back end unavailable",
			fmt.Sprintf("no back end of virtual proxy %q could be reached; retry shortly", rq.vp.cfg.Prefix))
		return
	}
	p.reject(rq, http.StatusServiceUnavailable, "no back end available",
		fmt.Sprintf("every back end of virtual proxy %q is down; retry shortly", rq.vp.cfg.Prefix))
}

func singleJoin(base, p string) string {
	if base == "" || base == "/" {
		return p
	}
	return strings.TrimSuffix(base, "/") + p
}

// headerEscape URL-encodes a value for X-Qlik-User and X-Qlik-Security as
// QPS does (UTF-8, percent-encoded), so that "; " or "=" inside a value
// cannot forge another field.
func headerEscape(v string) string {
	return strings.ReplaceAll(url.QueryEscape(v), "+", "%20")
}

// userHeader is the X-Qlik-User value: UserDirectory=<d>; UserId=<u>.
func userHeader(s session.Session) string {
	return "UserDirectory=" + headerEscape(s.UserDirectory) + "; UserId=" + headerEscape(s.UserID)
}

// securityHeader is the X-Qlik-Security value carrying the session's
// attributes: SecureRequest=true; Context=AppAccess; Group=Sales; ...
// openqps's own fields come first and are the only ones of their names:
// an attribute that would read as one of them (session.ReservedAttribute)
// is renamed with reservedAttributePrefix. The session API refuses such
// attributes; this covers those that arrive another way (a JWT claim
// mapped to that name, a session stored by an older openqps).
func securityHeader(s session.Session) string {
	const head = "SecureRequest=true; Context=AppAccess;"
	n := len(head)
	for _, a := range s.Attributes {
		n += len(a.Key) + len(a.Value) + 3
	}
	var b strings.Builder
	b.Grow(n) // exact unless a value needs escaping or renaming
	b.WriteString(head)
	for _, a := range s.Attributes {
		b.WriteByte(' ')
		if session.ReservedAttribute(a.Key) {
			b.WriteString(reservedAttributePrefix)
		}
		b.WriteString(headerEscape(a.Key))
		b.WriteByte('=')
		b.WriteString(headerEscape(a.Value))
		b.WriteByte(';')
	}
	return b.String()
}

// reservedAttributePrefix goes in front of an attribute named like one of
// openqps's own X-Qlik-Security fields: Attribute-Context=ManagementAccess
// keeps the value for whoever wants it, and no back end takes it for the
// Context.
const reservedAttributePrefix = "Attribute-"

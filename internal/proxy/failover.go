package proxy

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/openqps/openqps/internal/upstream"
)

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
		if refused := (*upstream.AnswerRefused)(nil); errors.As(err, &refused) { // one log line: reject's
			p.reject(rq, http.StatusBadGateway, "back end answer refused", "the back end's answer was refused: "+refused.Detail)
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

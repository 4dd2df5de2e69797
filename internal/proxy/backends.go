package proxy

import "github.com/openqps/openqps/internal/metrics"

// Backends reports every back end of every virtual proxy for /metrics:
// whether it takes requests now and how many it is serving.
func (p *Proxy) Backends() []metrics.Backend {
	rt := p.routes.Load()
	now := p.opts.Now().UnixNano()
	var out []metrics.Backend
	add := func(vp *virtualProxy) {
		for _, n := range vp.pool.nodes {
			out = append(out, metrics.Backend{VP: vp.cfg.Prefix, URL: n.url.String(), Up: n.healthy(now), InFlight: n.inflight.Load()})
		}
	}
	if rt.def != nil {
		add(rt.def)
	}
	for _, vp := range rt.byPrefix {
		add(vp)
	}
	return out
}

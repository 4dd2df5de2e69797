package proxy

import (
	"net/http"

	"github.com/openqps/openqps/internal/httperror"
)

// reject answers a request that openqps refuses, and logs it once. A
// browser (Accept: text/html) gets a small HTML page, everything else
// JSON {"error","detail"} (httperror); neither carries internal addresses
// or stack traces.
//
// Every refusal of the front end goes through here; TestFrontendRefusals
// lists them all, and fails when one is added without a row.
func (p *Proxy) reject(rq *request, status int, msg, detail string) {
	p.rejectRetry(rq, status, msg, detail, "")
}

// rejectRetry is reject with a URL of this proxy where a browser may try
// again (httperror.WriteRetry).
func (p *Proxy) rejectRetry(rq *request, status int, msg, detail, retry string) {
	prefix := ""
	if rq.vp != nil {
		prefix = rq.vp.cfg.Prefix
	}
	p.log.Warn("request rejected", "event", "frontend.rejected", "status", status, "vp", prefix,
		"method", rq.r.Method, "path", rq.r.URL.Path, "error", msg, "detail", detail, "remote", rq.r.RemoteAddr)
	httperror.WriteRetry(rq.w, rq.r, status, msg, detail, retry)
}

// rejectShape answers, with Connection: close, a request of a shape no
// reverse proxy may pass on, and reports whether it did so. It reads only
// the request line and headers, so it runs first, before the request is
// routed to a virtual proxy or to a local handler (the demo login
// module).
func (p *Proxy) rejectShape(rq *request) bool {
	msg, detail := refusedShape(rq.r)
	if msg == "" {
		return false
	}
	rq.w.Header().Set("Connection", "close")
	p.reject(rq, http.StatusBadRequest, msg, detail)
	return true
}

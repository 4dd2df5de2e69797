package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// hopHeaders are the hop-by-hop headers of RFC 9110 §7.6.1: they describe
// one connection and are never forwarded.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// errBackend wraps a failure to reach a back end, as opposed to a client
// that went away.
var errBackend = errors.New("back end failed")

// forwardHTTP sends an authenticated request to backend n and copies
// the answer to the client. It does what httputil.ReverseProxy does for
// such requests, in one pass over the headers and without the request
// copies and context plumbing ReverseProxy needs for its hooks: this is
// the request path every user measures. A bodyless GET or HEAD, nearly
// every request, has its head written straight to the back-end
// connection (writeHead); anything else goes through an outgoing
// *http.Request.
//
// Before anything was written to the client it returns an error wrapping
// errBackend; the caller answers it.
func (p *Proxy) forwardHTTP(rq *request, n *node) error {
	in, backend := rq.r, n.url
	h := rq.w.Header()
	o := outbound{ctx: in.Context(), key: n.key, scheme: backend.Scheme, host: backend.Host, method: in.Method, into: h, routes: rq.routes}
	var body *clientBody
	query := upstreamQuery(in.URL.RawQuery)
	if target, ok := headTarget(rq, backend, query); ok {
		o.rq, o.target = rq, target
	} else {
		out := in.WithContext(in.Context()) // a shallow copy; its header and URL are replaced below
		out.RequestURI = ""
		out.Host = backend.Host
		out.URL = &url.URL{Scheme: backend.Scheme, Host: backend.Host, Path: singleJoin(backend.Path, rq.path), RawQuery: query}
		out.Close = false
		// Request trailers are dropped, not filtered: every rule for
		// client headers (identity, forwarding, cookies, credentials)
		// would have to hold for a second set of fields that arrives
		// after the body, and that some back ends merge into the
		// headers. Qlik's services read no request trailers. Without
		// them, Request.Write announces none either.
		out.Trailer = nil
		if in.ContentLength == 0 {
			out.Body = nil // no body: the upstream client then retries a dead idle connection
		} else {
			body = &clientBody{ReadCloser: in.Body}
			out.Body = body
		}
		out.Header = outboundHeader(in, rq)
		if isWebsocket(in) {
			// outboundHeader dropped these hop-by-hop headers; a websocket
			// upgrade is the one hop openqps passes on.
			out.Header["Connection"] = []string{"Upgrade"}
			out.Header["Upgrade"] = []string{"websocket"}
		}
		o.req, o.hasBody = out, out.Body != nil
	}

	start := time.Now()
	resp, err := rq.vp.upstream.send(&o)
	if m := p.opts.Metrics; m != nil && err == nil {
		m.Upstream(rq.vp.cfg.Prefix).Observe(resp.StatusCode, time.Since(start))
	}
	if err != nil {
		if body != nil && body.err != nil {
			return body.err // the client's fault, not the back end's
		}
		return errors.Join(errBackend, err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return p.tunnelWebsocket(rq, resp)
	}
	defer resp.Body.Close()

	if resp.Header != nil { // else readPlainHead put the fields into h
		removeHopHeaders(resp.Header)
		for k, vv := range resp.Header {
			addBackendHeader(h, k, vv, false)
		}
	}
	rq.vp.addResponseHeaders(rq.w)
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		h["Trailer"] = []string{strings.Join(names, ", ")}
	}
	rq.w.WriteHeader(resp.StatusCode)

	streaming := resp.ContentLength == -1 || strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
	// A body that may not fit in the socket's buffers must be read by
	// the client as it comes: each write of it is bounded (see copyBody).
	var stall time.Duration
	if resp.ContentLength < 0 || resp.ContentLength > copyBufferSize {
		stall = p.stallTimeout()
	}
	if err := copyBody(rq.w, resp.Body, streaming, stall); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.log.Warn("client stopped reading the response", "event", "frontend.stalled", "vp", rq.vp.cfg.Prefix,
				"path", rq.path, "remote", rq.r.RemoteAddr, "stalled_for", stall.String())
		}
		// The status line is out: all that is left is to cut the
		// response short, so the client sees it is incomplete.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	return nil
}

// outboundHeader is the header the back end sees (see eachOutboundHeader),
// as a map for an outgoing *http.Request. Header values are shared with
// the incoming request, not copied: nothing downstream modifies them.
func outboundHeader(in *http.Request, rq *request) http.Header {
	out := make(http.Header, len(in.Header)+6)
	// The values openqps sets share one backing array: one allocation
	// instead of one per header.
	set := make([]string, 0, 5)
	eachOutboundHeader(in, rq, func(k string, vv []string, v string) {
		if vv == nil {
			set = append(set, v)
			vv = set[len(set)-1:]
		}
		out[k] = vv
	})
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = emptyValue // keep Go from adding its own
	}
	return out
}

// eachOutboundHeader calls emit once for every header the back end gets:
// the client's headers without hop-by-hop ones (and those the client's
// Connection header names), without any X-Qlik-* or X-Forwarded-* (which
// only openqps may set), without the header a header-auth virtual proxy
// reads its users from, without an underscore spelling of any of these
// or of a framing header, and without any virtual proxy's session
// cookie; then the identity and forwarding headers, X-Forwarded-Host a
// name of this proxy. emit gets the client's values as vv, or a single
// value openqps sets as v (vv nil).
func eachOutboundHeader(in *http.Request, rq *request, emit func(k string, vv []string, v string)) {
	conn := in.Header["Connection"]
	for k, vv := range in.Header {
		switch {
		case hopByHop(k, conn), spoofable(k), rq.routes.credentialHeader(k), underscoreAlias(k, conn, rq.routes):
			continue
		case k == "Cookie":
			if kept := withoutSessionCookies(vv, rq.routes.sessionCookies); len(kept) > 0 {
				emit(k, kept, "")
			}
			continue
		}
		emit(k, vv, "")
	}
	if te := in.Header["Te"]; len(te) > 0 && hasToken(te, "trailers") {
		emit("Te", teTrailers, "")
	}
	s := rq.session
	emit("X-Qlik-User", nil, userHeader(s))
	emit("X-Qlik-Security", nil, securityHeader(s))
	emit("X-Qlik-Virtual-Proxy-Prefix", nil, s.Prefix)
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		emit("X-Forwarded-For", nil, ip)
	}
	emit("X-Forwarded-Host", nil, rq.routes.forwardedHost(in.Host, rq.vp))
	if rq.scheme == "https" {
		emit("X-Forwarded-Proto", forwardedHTTPS, "")
	} else {
		emit("X-Forwarded-Proto", forwardedHTTP, "")
	}
}

// credentialHeader reports whether k (canonical) is a header that a
// header-auth virtual proxy reads its users from.
func (rt *routes) credentialHeader(k string) bool {
	return len(rt.credentialHeaders) > 0 && rt.credentialHeaders[k]
}

// underscoreAlias reports whether k spells with underscores a header
// that openqps never forwards: a framing or hop-by-hop header, one the
// Connection header names, or a header-auth virtual proxy's credential.
// CGI-style servers (and IIS, PHP, many WSGI setups) read "_" and "-"
// alike, so Transfer_Encoding would frame the body for them, and
// X_Remote_User log a user in. (X-Qlik-* and X-Forwarded-* are spoofable
// in any spelling.) Names without an underscore cost one byte scan.
func underscoreAlias(k string, conn []string, rt *routes) bool {
	if strings.IndexByte(k, '_') < 0 {
		return false
	}
	d := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
	return hopByHop(d, conn) || d == "Content-Length" || rt.credentialHeader(d)
}

// hasToken reports whether the comma-separated header values hold token,
// case-insensitively (RFC 9110 §5.6.1 lists). It allocates nothing.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// headTarget returns the request target (path and query) for writeHead
// when rq can take the fast path: a GET or HEAD without a body, no
// upgrade, to a back end with a plain host, with nothing in the target
// that Request.Write would refuse or rewrite. query is the request's
// query as upstreamQuery escaped it.
func headTarget(rq *request, backend *url.URL, query string) (target string, ok bool) {
	in := rq.r
	if in.Method != http.MethodGet && in.Method != http.MethodHead || in.ContentLength != 0 || isUpgrade(in) || !plainHost(backend.Host) {
		return "", false
	}
	u := url.URL{Path: singleJoin(backend.Path, rq.path), RawQuery: query}
	target = u.RequestURI()
	if hasCTL(target) {
		return "", false
	}
	return target, true
}

// writeHead writes the head of a bodyless request for the back end
// straight from the client's request: what outboundHeader and
// writeRequest together would send, without building the header map in
// between. TestWriteHeadMatchesOutboundHeader holds the two together.
func writeHead(w *bufio.Writer, rq *request, host, target string) {
	w.WriteString(rq.r.Method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	eachOutboundHeader(rq.r, rq, func(k string, vv []string, v string) {
		if vv == nil {
			writeField(w, k, v)
			return
		}
		if k == "User-Agent" && len(vv) > 0 {
			vv = vv[:1] // as Request.Write: the first one only
		}
		for _, v := range vv {
			writeField(w, k, v)
		}
	})
	w.WriteString("\r\n")
}

// writeField writes one header line as Request.Write would: framing
// headers (which describe the client's request, not this one) and
// invalid names are left out, and so is an empty User-Agent.
func writeField(w *bufio.Writer, k, v string) {
	switch k {
	case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
		return
	}
	if !validHeaderName(k) {
		return
	}
	v = headerValue(v)
	if k == "User-Agent" && v == "" {
		return
	}
	w.WriteString(k)
	w.WriteString(": ")
	w.WriteString(v)
	w.WriteString("\r\n")
}

// errClientBody marks a failure to read the client's request body (a
// client that went away or trickled its body past the body timeout), as
// opposed to a back end that failed.
var errClientBody = errors.New("reading the request body failed")

// errClientTooSlow is errClientBody after the body timeout.
var errClientTooSlow = fmt.Errorf("%w: too slow", errClientBody)

// clientBody records why reading a client's request body failed, so
// forwardHTTP can tell such failures from back-end ones (net/http's
// request writer does not wrap body errors).
type clientBody struct {
	io.ReadCloser
	err error // errClientBody or errClientTooSlow joined with the cause
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			b.err = errors.Join(errClientTooSlow, err)
		} else {
			b.err = errors.Join(errClientBody, err)
		}
	}
	return n, err
}

// Constant header values, shared by every request (never modified).
var (
	teTrailers     = []string{"trailers"}
	emptyValue     = []string{""}
	forwardedHTTP  = []string{"http"}
	forwardedHTTPS = []string{"https"}
)

func removeHopHeaders(h http.Header) {
	conn := h["Connection"]
	for k := range h {
		if hopByHop(k, conn) {
			delete(h, k)
		}
	}
}

// hopByHop reports whether the header k describes one connection (RFC
// 9110 §7.6.1): one of hopHeaders, or named by the Connection header's
// values conn.
func hopByHop(k string, conn []string) bool {
	return hopHeaders[k] || len(conn) > 0 && hasToken(conn, k)
}

// spoofable reports whether a client-sent header names identity or
// forwarding facts that only openqps may state: X-Qlik-*, X-Forwarded-*,
// Forwarded and X-Real-IP. Underscores count as dashes, because some
// back ends (CGI-style servers, IIS modules) read X_Qlik_User as
// X-Qlik-User.
func spoofable(name string) bool {
	if name == "" || name[0]|0x20 != 'x' && name[0]|0x20 != 'f' {
		return false // the common case, cheaply
	}
	if strings.IndexByte(name, '_') >= 0 {
		name = strings.ReplaceAll(name, "_", "-")
	}
	return hasPrefixFold(name, "X-Qlik-") || hasPrefixFold(name, "X-Forwarded-") ||
		strings.EqualFold(name, "Forwarded") || strings.EqualFold(name, "X-Real-Ip")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// copyBody copies a response body to the client through a pooled buffer,
// flushing after every read when the body streams (no length, or server
// sent events), so long polls and event streams are not held back.
//
// With stall > 0, each write must finish within stall of its start, as
// nginx's send_timeout bounds the time between two writes: a client that
// accepts nothing for that long (a slow reader, or one gone without a
// close) is cut off instead of holding a goroutine and a back-end
// connection for ever. What the last write left in net/http's buffer is
// flushed under the same bound; net/http lifts the deadline once the
// response is done.
func copyBody(w http.ResponseWriter, body io.Reader, streaming bool, stall time.Duration) error {
	pooled := copyBuffers.Get().(*[copyBufferSize]byte)
	defer copyBuffers.Put(pooled)
	buf := pooled[:]
	var rc *http.ResponseController
	if streaming || stall > 0 {
		rc = http.NewResponseController(w)
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if stall > 0 {
				rc.SetWriteDeadline(time.Now().Add(stall))
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if streaming {
				rc.Flush()
			}
		}
		if rerr == io.EOF {
			if stall > 0 { // a stream may have been idle past the last write's deadline
				rc.SetWriteDeadline(time.Now().Add(stall))
				return rc.Flush()
			}
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/openqps/openqps/internal/upstream"
)

// errBackend wraps a failure to reach a back end, as opposed to a client
// that went away.
var errBackend = errors.New("back end failed")

// forwardHTTP sends an authenticated request to backend n through the
// virtual proxy's upstream transport and copies the answer to the client.
// It does what httputil.ReverseProxy does for such requests, in one pass
// over the headers and without the request copies and context plumbing
// ReverseProxy needs for its hooks: this is the request path every user
// measures. A bodyless GET or HEAD, nearly every request, gives the
// transport its fields as a callback (the request is its own
// upstream.Fields), which writes them straight to the back-end connection;
// anything else gives it a header.
//
// Before anything was written to the client it returns an error wrapping
// errBackend; the caller answers it.
func (p *Proxy) forwardHTTP(rq *request, n *node) error {
	in, backend := rq.r, n.url
	h := rq.w.Header()
	query := upstreamQuery(in.URL.RawQuery)
	o := upstream.Request{Method: in.Method, Scheme: backend.Scheme, Host: backend.Host, Pool: n.key, Into: h, Drop: rq.routes}
	var body *clientBody
	if target, ok := headTarget(rq, backend, query); ok {
		o.Target, o.Fields = target, rq
	} else {
		u := url.URL{Path: singleJoin(backend.Path, rq.path), RawQuery: query}
		o.Target = u.RequestURI()
		// Request trailers are dropped, not filtered: every rule for
		// client headers (identity, forwarding, cookies, credentials)
		// would have to hold for a second set of fields that arrives
		// after the body, and that some back ends merge into the
		// headers. Qlik's services read no request trailers.
		if in.ContentLength != 0 { // else no body: the transport then retries a dead idle connection
			body = &clientBody{ReadCloser: in.Body}
			o.Body, o.ContentLength = body, in.ContentLength
		}
		o.Header = outboundHeader(in, rq)
		if isWebsocket(in) {
			// outboundHeader dropped these hop-by-hop headers; a websocket
			// upgrade is the one hop openqps passes on.
			o.Header["Connection"] = []string{"Upgrade"}
			o.Header["Upgrade"] = []string{"websocket"}
		}
	}

	start := time.Now()
	resp, err := rq.vp.upstream.RoundTrip(in.Context(), &o)
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

	// The transport put the back end's fields into h (o.Into).
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

// headTarget returns the request target (path and query) for the fast
// path when rq can take it: a GET or HEAD without a body, no upgrade, to
// a back end with a plain host, with nothing in the target that
// Request.Write would refuse or rewrite. query is the request's query as
// upstreamQuery escaped it.
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

// hasCTL reports whether s holds an ASCII control character.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// plainHost reports whether h is an ASCII host[:port] that needs none of
// the conversions (IDNA, IPv6 zones) Request.Write applies.
func plainHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0) {
			return false
		}
	}
	return true
}

func singleJoin(base, p string) string {
	if base == "" || base == "/" {
		return p
	}
	return strings.TrimSuffix(base, "/") + p
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

// copyBuffers recycles the 32 KB buffers response bodies are copied
// through; without it every proxied response allocates one. It holds
// array pointers, so putting one back allocates nothing either.
var copyBuffers = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

const copyBufferSize = 32 << 10

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

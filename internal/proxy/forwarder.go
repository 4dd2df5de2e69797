package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
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

// forwardHTTP sends an authenticated, non-upgrade request to backend and
// copies the answer to the client. It does what httputil.ReverseProxy
// does for such requests, in one pass over the headers and without the
// request copies and context plumbing ReverseProxy needs for its hooks:
// this is the request path every user measures.
//
// Before anything was written to the client it returns an error wrapping
// errBackend; the caller answers it.
func (p *Proxy) forwardHTTP(rq *request, backend *url.URL) error {
	in := rq.r
	out := in.WithContext(in.Context()) // a shallow copy; its header and URL are replaced below
	out.RequestURI = ""
	out.Host = backend.Host
	out.URL = &url.URL{Scheme: backend.Scheme, Host: backend.Host, Path: singleJoin(backend.Path, rq.path), RawQuery: in.URL.RawQuery}
	out.Close = false
	var body *clientBody
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

	start := time.Now()
	resp, err := rq.vp.upstream.RoundTrip(out)
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

	removeHopHeaders(resp.Header)
	h := rq.w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
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

	streaming := resp.ContentLength == -1 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	if err := copyBody(rq.w, resp.Body, streaming); err != nil {
		// The status line is out: all that is left is to cut the
		// response short, so the client sees it is incomplete.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	return nil
}

// outboundHeader is the header the back end sees: the client's headers
// without hop-by-hop ones, without any X-Qlik-* or X-Forwarded-* (which
// only openqps may set), without the proxy's session cookie; then the
// identity and forwarding headers. Header values are shared with the
// incoming request, not copied: nothing downstream modifies them.
func outboundHeader(in *http.Request, rq *request) http.Header {
	var connTokens []string
	for _, v := range in.Header["Connection"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				connTokens = append(connTokens, textproto.CanonicalMIMEHeaderKey(t))
			}
		}
	}
	out := make(http.Header, len(in.Header)+6)
	for k, vv := range in.Header {
		switch {
		case hopHeaders[k], spoofable(k):
			continue
		case k == "Cookie":
			if kept := withoutCookie(vv, rq.vp.cookie(rq.scheme)); len(kept) > 0 {
				out[k] = kept
			}
			continue
		}
		out[k] = vv
	}
	for _, t := range connTokens {
		delete(out, t)
	}
	if te := in.Header["Te"]; len(te) > 0 && headerHasToken(in.Header, "Te", "trailers") {
		out["Te"] = teTrailers
	}
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = emptyValue // keep Go from adding its own
	}
	// The values openqps sets share one backing array: one allocation
	// instead of one per header.
	s := rq.session
	set := make([]string, 0, 5)
	add := func(k, v string) {
		set = append(set, v)
		out[k] = set[len(set)-1:]
	}
	add("X-Qlik-User", userHeader(s))
	add("X-Qlik-Security", securityHeader(s))
	add("X-Qlik-Virtual-Proxy-Prefix", s.Prefix)
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		add("X-Forwarded-For", ip)
	}
	add("X-Forwarded-Host", in.Host)
	out["X-Forwarded-Proto"] = forwardedHTTP
	if rq.scheme == "https" {
		out["X-Forwarded-Proto"] = forwardedHTTPS
	}
	return out
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
	for _, v := range h["Connection"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(t))
			}
		}
	}
	for k := range hopHeaders {
		delete(h, k)
	}
}

// spoofable reports whether a client-sent header names identity or
// forwarding facts that only openqps may state: X-Qlik-*, X-Forwarded-*,
// Forwarded and X-Real-IP. Underscores count as dashes, because some
// back ends (CGI-style servers, IIS modules) read X_Qlik_User as
// X-Qlik-User.
func spoofable(name string) bool {
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
func copyBody(w http.ResponseWriter, body io.Reader, streaming bool) error {
	pooled := copyBuffers.Get().(*[32 << 10]byte)
	defer copyBuffers.Put(pooled)
	buf := pooled[:]
	var rc *http.ResponseController
	if streaming {
		rc = http.NewResponseController(w)
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if rc != nil {
				rc.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

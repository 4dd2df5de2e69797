package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
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
	if in.ContentLength == 0 {
		out.Body = nil // no body: the upstream client then retries a dead idle connection
	}
	out.Header = outboundHeader(in, rq)
	if isWebsocket(in) {
		// outboundHeader dropped these hop-by-hop headers; a websocket
		// upgrade is the one hop openqps passes on.
		out.Header["Connection"] = []string{"Upgrade"}
		out.Header["Upgrade"] = []string{"websocket"}
	}

	resp, err := rq.vp.upstream.RoundTrip(out)
	if err != nil {
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
		case hopHeaders[k], hasPrefixFold(k, "X-Qlik-"), hasPrefixFold(k, "X-Forwarded-"), k == "Forwarded":
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
		out["Te"] = []string{"trailers"}
	}
	if _, ok := out["User-Agent"]; !ok {
		out["User-Agent"] = []string{""} // keep Go from adding its own
	}
	s := rq.session
	out["X-Qlik-User"] = []string{userHeader(s)}
	out["X-Qlik-Security"] = []string{securityHeader(s)}
	out["X-Qlik-Virtual-Proxy-Prefix"] = []string{s.Prefix}
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		out["X-Forwarded-For"] = []string{ip}
	}
	out["X-Forwarded-Host"] = []string{in.Host}
	out["X-Forwarded-Proto"] = []string{rq.scheme}
	return out
}

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

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// copyBody copies a response body to the client through a pooled buffer,
// flushing after every read when the body streams (no length, or server
// sent events), so long polls and event streams are not held back.
func copyBody(w http.ResponseWriter, body io.Reader, streaming bool) error {
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
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

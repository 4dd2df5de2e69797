package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"

	"github.com/openqps/openqps/internal/rawsock"
)

// This file is the NetHTTP kind: the same requests through
// net/http.Transport, refused and answered as the OpenQPS kind refuses
// and answers them.

// netHTTP is the net/http.Transport of t: HTTP/1.1 only, no proxy from
// the environment, no compression, the same pool and head bounds.
func (t *Transport) netHTTP() *http.Transport {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		sock, err := t.dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := sock
		if t.opts.RawSockets {
			c = rawsock.Wrap(c)
		}
		return &guardedConn{Conn: c, sock: sock}, nil
	}
	std := &http.Transport{
		DialContext:            dial,
		TLSHandshakeTimeout:    t.opts.ConnectTimeout,
		DisableCompression:     true,
		MaxIdleConnsPerHost:    maxIdlePerHost,
		IdleConnTimeout:        idleTimeout,
		ResponseHeaderTimeout:  t.opts.ResponseTimeout,
		MaxResponseHeaderBytes: MaxResponseHeadBytes,
		// A non-nil empty map keeps HTTP/2 off, as TLSClientConfig
		// alone would not.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	std.TLSClientConfig = t.tlsConfig("")
	std.TLSClientConfig.ServerName = t.tlsServerName()
	return std
}

// tlsServerName is the server name Options.TLS sets, "" for the back
// end's host (which net/http then uses).
func (t *Transport) tlsServerName() string {
	if t.tls != nil {
		return t.tls.ServerName
	}
	return ""
}

// stdExchange is the state of one request through net/http: the
// connection it went out on (for a 101's deadlines) and the interim
// answers read before the final one.
type stdExchange struct {
	conn    net.Conn
	guard   *guardedConn // beneath conn
	interim int
	// headBytes is the size of the interim heads so far, as their
	// parsed fields tell it: net/http bounds each head by
	// MaxResponseHeaderBytes once an interim answer was reported, where
	// the bound is for all heads together.
	headBytes int
}

func (x *stdExchange) gotConn(info httptrace.GotConnInfo) {
	x.conn = info.Conn
	c := info.Conn
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	x.guard, _ = c.(*guardedConn)
}

func (x *stdExchange) got1xx(code int, h textproto.MIMEHeader) error {
	if x.interim++; x.interim > MaxInterimResponses {
		return errTooManyInterim
	}
	x.headBytes += len("HTTP/1.1 100 \r\n") + len(http.StatusText(code)) + fieldBytes(http.Header(h)) + len("\r\n")
	if x.headBytes > MaxResponseHeadBytes {
		return errHeadTooLarge
	}
	return nil
}

// fieldBytes is the size of h's field lines, as they would be written.
func fieldBytes(h http.Header) int {
	n := 0
	for k, vv := range h {
		for _, v := range vv {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}

// spokeRetries is how often a request without a body is sent again after
// the connection it was given turned out to have spoken while idle:
// nothing of it was written, and each try takes another connection, but
// the pool may hold several that went bad together (a back end that
// closed them all), so one retry is not always enough.
const spokeRetries = 3

func (t *Transport) roundTripStd(ctx context.Context, r *Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		resp, err := t.roundTripStdOnce(ctx, r)
		if err != errSpokeWhileIdle || r.Body != nil || attempt >= spokeRetries {
			return resp, err
		}
	}
}

func (t *Transport) roundTripStdOnce(ctx context.Context, r *Request) (*http.Response, error) {
	x := &stdExchange{}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:        x.gotConn,
		Got1xxResponse: x.got1xx,
	})
	req, err := r.httpRequest(ctx)
	if err != nil {
		return nil, err
	}
	req.Header = writable(req.Header)
	resp, err := t.std.RoundTrip(req)
	if err != nil {
		return nil, stdFailed(ctx, err)
	}
	if x.guard != nil && x.guard.spoke.Load() {
		// The connection spoke while idle: net/http may have read the
		// stray bytes as this answer, though the guard refused the
		// request.
		resp.Body.Close()
		return nil, errSpokeWhileIdle
	}
	if x.interim > 0 {
		final := len(resp.Proto) + len(" ") + len(resp.Status) + len("\r\n") + fieldBytes(resp.Header) + len("\r\n")
		if x.headBytes+final > MaxResponseHeadBytes {
			resp.Body.Close()
			return nil, errHeadTooLarge
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		dropFields(resp.Header, r.Drop)
		rw, ok := resp.Body.(io.ReadWriteCloser)
		if !ok || x.conn == nil {
			resp.Body.Close()
			return nil, errors.New("net/http returned a 101 answer without its connection")
		}
		resp.Body = &Upgraded{Reader: bufio.NewReader(rw), rw: rw, conn: x.conn}
		return resp, nil
	}
	finishHeader(resp, r)
	resp.Body = &stdBody{ReadCloser: resp.Body, trailer: &resp.Trailer, drop: r.Drop, guard: x.guard}
	return resp, nil
}

// writable is h as the OpenQPS kind writes it (see writeField): invalid
// names and framing fields left out, CR and LF in values made spaces.
// net/http.Transport would refuse the request instead.
func writable(h http.Header) http.Header {
	out := make(http.Header, len(h))
	for k, vv := range h {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !validHeaderName(k) {
			continue
		}
		values := make([]string, len(vv))
		for i, v := range vv {
			values[i] = headerValue(v)
		}
		out[k] = values
	}
	return out
}

// stdFailed words net/http's errors as the OpenQPS kind's.
func stdFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var refused *AnswerRefused
	switch {
	case errors.As(err, &refused):
		return refused
	case errors.Is(err, errSpokeWhileIdle):
		return errSpokeWhileIdle
	// net/http's head bound has no error value of its own.
	case strings.Contains(err.Error(), "server response headers exceeded"):
		return errHeadTooLarge
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return ErrClosed
	}
	return err
}

// stdBody filters the trailer of a net/http body once it is read.
type stdBody struct {
	io.ReadCloser
	trailer *http.Header
	drop    Filter
	guard   *guardedConn // nil when unknown
	eof     bool
}

func (b *stdBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		dropFields(*b.trailer, b.drop)
		if b.guard != nil {
			b.guard.idle.Store(true)
		}
	}
	return n, err
}

// guardedConn is a back-end connection of the NetHTTP kind. It refuses to
// carry a request once it received bytes while idle, between an answer
// read to its end and the next request: they answer no request, and would
// be read as the answer to the next one, another user's (response queue
// poisoning). net/http.Transport closes such connections too, but only
// once its reader goroutine ran, and the next request may take the
// connection before that. The refused request fails before anything of it
// was written, which net/http retries on a new connection when it can
// (a request without a body); else the caller gets the error, never the
// stray bytes.
type guardedConn struct {
	net.Conn
	// sock is the TCP connection, looked into by rawsock.Quiet as it
	// is, not as a rawsock.Conn: net/http's reader goroutine may be
	// waiting in a Read of it, which holds a rawsock.Conn's read lock.
	sock  net.Conn
	idle  atomic.Bool // an answer was read to its end, no request since
	spoke atomic.Bool // bytes (or the end) arrived while idle
}

// errSpokeWhileIdle is the write error of a guardedConn that spoke.
var errSpokeWhileIdle = errors.New("the back end sent bytes on an idle connection")

func (c *guardedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.idle.Load() {
		c.spoke.Store(true)
	}
	return n, err
}

// Write refuses the first write of a request once bytes arrived while
// the connection was idle: read by net/http's reader, or still in the
// socket, unread.
func (c *guardedConn) Write(p []byte) (int, error) {
	if c.idle.Load() {
		if quiet, known := rawsock.Quiet(c.sock); known && !quiet {
			c.spoke.Store(true)
		}
	}
	if c.spoke.Load() {
		return 0, errSpokeWhileIdle
	}
	c.idle.Store(false)
	return c.Conn.Write(p)
}

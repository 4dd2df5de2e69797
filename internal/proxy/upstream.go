package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/openqps/openqps/internal/rawsock"
)

// upstream is the RoundTripper openqps forwards through: HTTP/1.1 with
// keep-alive to the back ends, the request written and the response read
// on the calling goroutine. net/http.Transport hands each request to a
// connection's own reader and writer goroutines; on the request path that
// handoff costs more CPU than everything openqps itself does, so the
// proxy uses this leaner client. What it does not need it does not do:
// no HTTP/2, no proxies from the environment, no compression.
//
// It is safe for concurrent use.
type upstream struct {
	dialer          net.Dialer
	tlsConfig       *tls.Config // for https back ends
	maxIdlePerHost  int
	idleTimeout     time.Duration
	responseTimeout time.Duration // 0: none
	mu              sync.Mutex
	idle            map[string][]*upstreamConn // by scheme://host
}

func newUpstream() *upstream {
	return &upstream{
		dialer:         net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
		maxIdlePerHost: 256,
		idleTimeout:    90 * time.Second,
		idle:           map[string][]*upstreamConn{},
	}
}

// upstreamConn is one keep-alive connection to a back end.
type upstreamConn struct {
	net.Conn
	key string
	// sock is the TCP connection beneath Conn (Conn itself for http
	// back ends), tls Conn when it is TLS: see quiet.
	sock     net.Conn
	tls      *tls.Conn
	in       headLimit // what br reads from
	br       *bufio.Reader
	bw       *bufio.Writer // writes through out
	out      requestWriter
	idleFrom time.Time
	// recent is set when the connection is new, or was idle for less
	// than askWithin before this exchange: see exchange.
	recent bool
	// abort cuts short what the connection waits for, when the client
	// leaves; bound once, so an exchange allocates no closure for it.
	abort func()
	peek  [1]byte // for quiet's TLS read
	// routes are the outbound's of the exchange in progress, for the
	// trailer (see upstreamBody); kept here so that the body, allocated
	// on every request, stays small.
	routes *routes
}

// askWithin is how long a connection may have been idle for its next
// request to go out through Ask. Back ends close idle connections after
// seconds (Apache httpd's KeepAliveTimeout: 5 s by default), and a server
// that then lingers, its sending side shut and still reading, would leave
// Ask waiting for an answer that never comes. Under load, when saving a
// system call matters, connections are idle for microseconds.
const askWithin = 100 * time.Millisecond

func newUpstreamConn(conn, sock net.Conn, key string) *upstreamConn {
	c := &upstreamConn{Conn: conn, key: key, sock: sock, in: headLimit{conn: conn, room: -1}, out: requestWriter{conn: conn}, recent: true}
	c.tls, _ = conn.(*tls.Conn)
	c.br = bufio.NewReaderSize(&c.in, 4096)
	c.out.asker, _ = conn.(asker)
	c.bw = bufio.NewWriterSize(&c.out, 4096)
	c.abort = func() { c.SetDeadline(time.Unix(1, 0)) }
	return c
}

// requestWriter is what an upstreamConn's write buffer flushes to. When a
// whole request sits in the buffer and the connection can Ask (see
// rawsock.Conn.Ask), the flush that sends it also waits for the answer,
// which saves a read system call that would find nothing. Every other
// write is the connection's own Write.
type requestWriter struct {
	conn   net.Conn
	asker  asker // conn, when it can Ask; else nil
	writes int   // since the request began
	ask    bool  // the next write sends a whole request
}

// asker is a connection that can write a request and wait for its answer
// in one read (rawsock.Conn).
type asker interface {
	Ask(p []byte) (int, error)
}

func (w *requestWriter) Write(p []byte) (int, error) {
	w.writes++
	if !w.ask || w.asker == nil {
		return w.conn.Write(p)
	}
	w.ask = false
	n, err := w.asker.Ask(p)
	if err == nil && n < len(p) {
		var m int
		m, err = w.conn.Write(p[n:])
		n += m
	}
	return n, err
}

var errUpstreamClosed = errors.New("back end closed the connection")

// maxResponseHeadBytes bounds what a back end's answer may send before
// its body: the final head and the interim (1xx) heads before it,
// together. It is the bound the front end puts on a client's request
// head (server.go's MaxHeaderBytes): a back end's head is no more
// trusted than a client's, and QPS's back ends send a few hundred bytes.
// Without it, net/http's response reader reads a head of any size.
const maxResponseHeadBytes = 16 << 10

// maxInterimResponses bounds the interim (1xx) responses read before the
// final one. An exchange has at most a 100 Continue and a 103 Early Hints
// or two; ten leaves room for servers that send 102 Processing while they
// work, and stops a back end that would keep openqps reading interim
// heads for ever (the byte bound above stops it too, but later, and
// without saying why).
const maxInterimResponses = 10

// answerRefused is a back end's answer that openqps stops reading
// because it overruns a bound; the connection is closed, the client gets
// a 502 that says why (detail), and the request is not retried.
type answerRefused struct{ detail string }

func (e *answerRefused) Error() string { return "back end answer refused: " + e.detail }

var (
	errHeadTooLarge   = &answerRefused{fmt.Sprintf("its response head is larger than %d bytes", maxResponseHeadBytes)}
	errTooManyInterim = &answerRefused{fmt.Sprintf("it sent more than %d interim (1xx) responses", maxInterimResponses)}
)

// headLimit is what an upstreamConn's read buffer fills from: the
// connection, with at most room bytes left to read while a response head
// is read (room < 0: no bound, while a body is read). Reads are cut to
// room, so a head within the bound is read whole even when body bytes
// follow it.
type headLimit struct {
	conn net.Conn
	room int64
}

func (l *headLimit) Read(p []byte) (int, error) {
	if l.room < 0 {
		return l.conn.Read(p)
	}
	if l.room == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.room {
		p = p[:l.room]
	}
	n, err := l.conn.Read(p)
	l.room -= int64(n)
	return n, err
}

// outbound is one request on its way to a back end. Either req is set
// and written as Request.Write would write it, or the head of the
// client's bodyless request rq is written straight from it to target (the
// fast path every proxied GET takes, see writeHead).
type outbound struct {
	ctx     context.Context
	key     string // scheme://host: which pool the connection comes from
	scheme  string
	host    string
	method  string
	hasBody bool
	close   bool
	req     *http.Request
	rq      *request
	target  string
	// into, when set, takes the headers of a plain response directly
	// (see readPlainHead); the response's Header is then nil.
	into http.Header
	// routes, when set, name the session cookies no back end may set
	// (see dropSessionCookies).
	routes *routes
}

func (o *outbound) write(w *bufio.Writer) error {
	if o.req == nil {
		writeHead(w, o.rq, o.host, o.target)
		return nil
	}
	return writeRequest(w, o.req)
}

// RoundTrip sends req on an idle connection when there is one, else on a
// new one. See send.
func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	return u.send(&outbound{
		ctx: req.Context(), key: req.URL.Scheme + "://" + req.URL.Host, scheme: req.URL.Scheme, host: req.URL.Host,
		method: req.Method, hasBody: req.Body != nil && req.Body != http.NoBody, close: req.Close, req: req,
	})
}

// send sends o on an idle connection when there is one, else on a new
// one. A request that fails on a reused connection before anything of
// the response arrived is retried once on a new connection, when it has
// no body (the back end may have closed an idle connection just after
// get found it open).
func (u *upstream) send(o *outbound) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		c, reused := u.get(o.key)
		if c == nil {
			var err error
			if c, err = u.dial(o.ctx, o.scheme, o.host, o.key); err != nil {
				return nil, err
			}
		}
		resp, err := u.exchange(c, o)
		if err == nil {
			return resp, nil
		}
		c.Close()
		var refused *answerRefused
		retryable := reused && attempt == 0 && !o.hasBody && o.ctx.Err() == nil && !errors.As(err, &refused)
		if !retryable {
			return nil, err
		}
	}
}

// Requests for http.ReadResponse, which needs one to know whether a
// response has a body (not after HEAD); only their Method is read.
var (
	getRequest  = &http.Request{Method: http.MethodGet}
	headRequest = &http.Request{Method: http.MethodHead}
)

// exchange writes o and reads the response head. The body is read by
// the caller through an upstreamBody that returns the connection to the
// pool once the body has been read to its end.
func (u *upstream) exchange(c *upstreamConn, o *outbound) (*http.Response, error) {
	ctx := o.ctx
	stop := context.AfterFunc(ctx, c.abort)
	if u.responseTimeout > 0 {
		c.SetDeadline(time.Now().Add(u.responseTimeout))
	}
	c.out.writes = 0
	c.in.room, c.routes = maxResponseHeadBytes, o.routes
	if err := o.write(c.bw); err != nil {
		stop()
		return nil, fmt.Errorf("write request: %w", err)
	}
	// The flush may wait for the answer (Ask) when it sends the whole
	// request, and nothing unread can be pending: the connection's last
	// answer was read to its end (see put), get found that nothing
	// arrived since, and the back end cannot have closed its side after
	// that, as it might after a longer idle time. (A close that arrived
	// unseen is no harm when it is a full close: the request then draws
	// a reset, which ends the wait. A back end that only shuts down its
	// sending side, and reads on, would leave Ask waiting.)
	c.out.ask = c.out.writes == 0 && c.recent
	err := c.bw.Flush()
	c.out.ask = false
	if err != nil {
		stop()
		return nil, fmt.Errorf("write request: %w", err)
	}
	if _, err := c.br.Peek(1); err != nil { // wait for the answer
		stop()
		return nil, readFailed(ctx, err)
	}
	if o.into != nil {
		if h, ok := readPlainHead(c.br, o.into, o.routes); ok {
			c.in.room = -1
			if u.responseTimeout > 0 {
				c.SetDeadline(time.Time{})
			}
			body := &upstreamBody{c: c, u: u, stop: stop, reusable: !h.close && !o.close, remain: h.length}
			if o.method == http.MethodHead || h.status == http.StatusNoContent || h.status == http.StatusNotModified {
				body.remain = 0
			}
			return &http.Response{StatusCode: h.status, ContentLength: h.length, Close: h.close, Body: body}, nil
		}
	}
	req := o.req
	if req == nil {
		req = getRequest
		if o.method == http.MethodHead {
			req = headRequest
		}
	}
	var resp *http.Response
	for interim := 0; ; {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			if c.in.room == 0 {
				// The bound cut the head short; the parser may have
				// taken what it got for a malformed line instead.
				err = errHeadTooLarge
			}
			return nil, readFailed(ctx, err)
		}
		// Skip 1xx interim responses (100 Continue, 103 Early Hints);
		// 101 Switching Protocols is final.
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		resp.Body.Close()
		if interim++; interim > maxInterimResponses {
			stop()
			return nil, errTooManyInterim
		}
	}
	c.in.room = -1
	dropSessionCookies(resp.Header, o.routes)
	if u.responseTimeout > 0 {
		c.SetDeadline(time.Time{}) // the body may stream for as long as it needs
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection now belongs to the caller (a websocket tunnel),
		// which writes to it directly: the write buffer would only sit
		// there for the websocket's life.
		stop()
		c.bw = nil
		resp.Body = &upgradedConn{upstreamConn: c}
		return resp, nil
	}
	reusable := !resp.Close && !o.close && (resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0 || o.method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified)
	resp.Body = &upstreamBody{ReadCloser: resp.Body, c: c, u: u, stop: stop, reusable: reusable, trailer: &resp.Trailer}
	return resp, nil
}

// readFailed is the error for a response that could not be read.
func readFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var refused *answerRefused
	switch {
	case errors.As(err, &refused):
		return refused // as it is: net/http's response reader may have wrapped it
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errUpstreamClosed
	}
	return err
}

// quiet reports whether nothing can be read from an idle connection:
// nothing the back end sent after its last answer waits in the read
// buffer, in TLS's buffer or in the socket, and the back end has not
// closed it. What arrived on an idle connection answers no request, and
// would be read as the answer to the next one, another user's (response
// queue poisoning: a body sent after HEAD, 204 or 304, more than a
// Content-Length, a second response); a closed one would fail the next
// request. net/http.Transport and nginx close such connections too.
//
// On the socket it is one system call that does not wait (see
// rawsock.Quiet); TLS is asked with a deadline in the past, which returns
// what TLS holds already and reads nothing.
func (c *upstreamConn) quiet() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.tls != nil {
		c.tls.SetReadDeadline(time.Unix(1, 0))
		n, err := c.tls.Read(c.peek[:])
		c.tls.SetReadDeadline(time.Time{})
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return false // a record, an alert, or a closed connection
		}
	}
	if quiet, known := rawsock.Quiet(c.sock); known {
		return quiet
	}
	// A platform where the socket cannot be looked into without a wait:
	// a read that waits a millisecond.
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.br.Peek(1)
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// upstreamBody hands the connection back to the pool when the body was
// read to its end and closes it otherwise. It reads either through
// net/http's body reader (ReadCloser) or, for a response readPlainHead
// parsed, the remain bytes of a fixed-length body straight from the
// connection's buffer (ReadCloser nil).
type upstreamBody struct {
	io.ReadCloser
	remain   int64
	c        *upstreamConn
	u        *upstream
	stop     func() bool
	reusable bool
	eof      bool
	done     bool
	// trailer is the response's Trailer, filled in by net/http's body
	// reader at the end of the body.
	trailer *http.Header
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.ReadCloser == nil {
		return b.readFixed(p)
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		if b.trailer != nil {
			dropSessionCookies(*b.trailer, b.c.routes)
		}
	}
	return n, err
}

func (b *upstreamBody) readFixed(p []byte) (int, error) {
	if b.remain <= 0 {
		b.eof = true
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	switch {
	case b.remain == 0:
		b.eof = true
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF // the back end closed mid-body
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	var err error
	if b.ReadCloser != nil {
		err = b.ReadCloser.Close()
	}
	cancelled := !b.stop()
	if b.eof && b.reusable && !cancelled && err == nil {
		b.u.put(b.c)
	} else {
		b.c.Close()
	}
	return err
}

// upgradedConn is the body of a 101 response: the raw connection, with
// what the reader already buffered read first.
type upgradedConn struct{ *upstreamConn }

func (c *upgradedConn) Read(p []byte) (int, error)  { return c.br.Read(p) }
func (c *upgradedConn) Write(p []byte) (int, error) { return c.Conn.Write(p) }

func (u *upstream) dial(ctx context.Context, scheme, host, key string) (*upstreamConn, error) {
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		addr = net.JoinHostPort(host, map[string]string{"https": "443"}[scheme])
		if scheme != "https" {
			addr = net.JoinHostPort(host, "80")
		}
	}
	conn, err := u.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn = rawsock.Wrap(conn) // the back-end half of every proxied request
	sock := conn
	if scheme == "https" {
		cfg := u.tlsConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = strings.Cut(host, ":")
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	return newUpstreamConn(conn, sock, key), nil
}

// get returns the most recently used idle connection to key (the warmest
// one) that is still quiet, closing those idle for too long and those
// that received anything while idle.
func (u *upstream) get(key string) (*upstreamConn, bool) {
	for {
		c := u.pop(key)
		if c == nil {
			return nil, false
		}
		if c.quiet() { // outside the lock: it is a system call
			return c, true
		}
		c.Close()
	}
}

// pop takes the most recently used idle connection to key off the pool,
// dropping those idle for too long.
func (u *upstream) pop(key string) *upstreamConn {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.idle[key]
	for len(list) > 0 {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if idle := now.Sub(c.idleFrom); idle < u.idleTimeout {
			u.idle[key] = list
			c.recent = idle < askWithin
			return c
		}
		c.Close()
	}
	u.idle[key] = list
	return nil
}

func (u *upstream) put(c *upstreamConn) {
	if c.br.Buffered() > 0 { // the back end sent more than the response
		c.Close()
		return
	}
	c.idleFrom = time.Now()
	u.mu.Lock()
	list := u.idle[c.key]
	if len(list) >= u.maxIdlePerHost {
		u.mu.Unlock()
		c.Close()
		return
	}
	u.idle[c.key] = append(list, c)
	u.mu.Unlock()
}

// CloseIdleConnections closes every idle connection.
func (u *upstream) CloseIdleConnections() {
	u.mu.Lock()
	idle := u.idle
	u.idle = map[string][]*upstreamConn{}
	u.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.Close()
		}
	}
}

// writeRequest writes req to w as net/http's Request.Write would. GET and
// HEAD requests without a body, nearly every proxied request, are written
// here directly: Request.Write's general machinery (a transfer writer, a
// sorted copy of the header) costs more than the writing itself. Anything
// else, and anything unusual, goes through Request.Write.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) ||
		(req.Body != nil && req.Body != http.NoBody) || req.Trailer != nil || req.Close || !plainHost(req.Host) {
		return req.Write(w)
	}
	// The request URI as RequestURI builds it, without joining the path
	// and the query into a new string.
	path, query := req.URL.EscapedPath(), req.URL.RawQuery
	if req.URL.Opaque != "" || hasCTL(path) || hasCTL(query) {
		return req.Write(w) // which refuses control characters with its own error
	}
	if path == "" {
		path = "/"
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(path)
	if query != "" || req.URL.ForceQuery {
		w.WriteByte('?')
		w.WriteString(query)
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(req.Host)
	w.WriteString("\r\n")
	userAgent := "Go-http-client/1.1"
	if vv, ok := req.Header["User-Agent"]; ok {
		userAgent = ""
		if len(vv) > 0 {
			userAgent = headerValue(vv[0])
		}
	}
	if userAgent != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(userAgent)
		w.WriteString("\r\n")
	}
	for k, vv := range req.Header {
		if k == "User-Agent" {
			continue // written above
		}
		for _, v := range vv {
			writeField(w, k, v)
		}
	}
	_, err := w.WriteString("\r\n")
	return err
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

// validHeaderName reports whether k is an RFC 9110 token.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tokenByte[k[i]] {
			return false
		}
	}
	return true
}

// tokenByte marks the bytes of an RFC 9110 token.
var tokenByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()

// headerValue is v as net/http writes it: each CR and LF becomes a space,
// and leading and trailing spaces and tabs are dropped.
func headerValue(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			v = newlineToSpace.Replace(v)
			break
		}
	}
	return trimOWS(v)
}

// trimOWS drops leading and trailing spaces and tabs.
func trimOWS(v string) string {
	for v != "" && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for v != "" && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

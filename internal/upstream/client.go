package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// This file is the OpenQPS kind: the exchange on the calling goroutine.

// conn is one keep-alive connection to a back end.
type conn struct {
	net.Conn
	key string
	// sock is the TCP connection beneath Conn (Conn itself for http
	// back ends): see quiet.
	sock     net.Conn
	tls      *tls.Conn // Conn, when it is TLS
	in       headLimit // what br reads from
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time
	// abort cuts short what the connection waits for, when the caller's
	// context ends; bound once, so an exchange allocates no closure.
	abort func()
	// emit is writeField on bw, bound once for Fields.EachField.
	emit func(name string, vv []string, v string)
	peek [1]byte // for quiet's TLS read
	// drop is the Filter of the exchange in progress, for the trailer
	// (see body); kept here so that the body, allocated on every
	// request, stays small.
	drop Filter
}

func newConn(c, sock net.Conn, key string) *conn {
	k := &conn{Conn: c, key: key, sock: sock, in: headLimit{conn: c, room: -1}}
	k.tls, _ = c.(*tls.Conn)
	k.br = bufio.NewReaderSize(&k.in, 4096)
	k.bw = bufio.NewWriterSize(c, 4096)
	k.abort = func() { k.SetDeadline(time.Unix(1, 0)) }
	k.emit = k.writeFields
	return k
}

// headLimit is what a conn's read buffer fills from: the connection, with
// at most room bytes left to read while a response head is read (room <
// 0: no bound, while a body is read). Reads are cut to room, so a head
// within the bound is read whole even when body bytes follow it.
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

// send sends r on an idle connection when there is one, else on a new
// one, retrying once as RoundTrip says.
func (t *Transport) send(ctx context.Context, r *Request) (*http.Response, error) {
	key := r.Pool
	if key == "" {
		key = r.Scheme + "://" + r.Host
	}
	for attempt := 0; ; attempt++ {
		c, reused := t.get(key)
		if c == nil {
			var err error
			if c, err = t.dial(ctx, r.Scheme, r.Host, key); err != nil {
				return nil, err
			}
		}
		resp, err := t.exchange(ctx, c, r)
		if err == nil {
			return resp, nil
		}
		c.Close()
		var refused *AnswerRefused
		retryable := reused && attempt == 0 && r.Body == nil && ctx.Err() == nil && !errors.As(err, &refused)
		if !retryable {
			return nil, err
		}
	}
}

// write writes r's head, and its body when it has one: straight from
// r.Fields for a bodyless request without a Header, else through
// Request.Write.
func (c *conn) write(r *Request) error {
	if r.Header == nil && r.Body == nil {
		c.bw.WriteString(r.Method)
		c.bw.WriteByte(' ')
		c.bw.WriteString(r.Target)
		c.bw.WriteString(" HTTP/1.1\r\nHost: ")
		c.bw.WriteString(r.Host)
		c.bw.WriteString("\r\n")
		if r.Fields != nil {
			r.Fields.EachField(c.emit)
		}
		_, err := c.bw.WriteString("\r\n")
		return err
	}
	req, err := r.httpRequest(context.Background())
	if err != nil {
		return err
	}
	return req.Write(c.bw)
}

// httpRequest is r as a *http.Request for Request.Write or
// http.Transport, with a header built from r.Fields when r has none.
func (r *Request) httpRequest(ctx context.Context) (*http.Request, error) {
	if strings.HasPrefix(r.Target, "//") || !strings.HasPrefix(r.Target, "/") && r.Target != "*" {
		return nil, fmt.Errorf("request target %q is not in origin form", r.Target)
	}
	h := r.Header
	if h == nil {
		h = http.Header{}
		if r.Fields != nil {
			r.Fields.EachField(func(k string, vv []string, v string) {
				if vv == nil {
					vv = []string{v}
				}
				h[k] = vv
			})
		}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = emptyValue // keep Go from adding its own
	}
	req := &http.Request{
		Method: r.Method, Host: r.Host, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		// Opaque: the target as it is, already escaped.
		URL: &url.URL{Scheme: r.Scheme, Host: r.Host, Opaque: r.Target},
	}
	if r.Body != nil {
		req.Body, req.ContentLength = r.Body, r.ContentLength
		if req.ContentLength == 0 {
			req.ContentLength = -1 // a body of unknown length: chunked
		}
	}
	return req.WithContext(ctx), nil
}

var emptyValue = []string{""}

// writeFields writes one field's values as Request.Write would (see
// writeField); of several User-Agent values, the first only.
func (c *conn) writeFields(k string, vv []string, v string) {
	if vv == nil {
		writeField(c.bw, k, v)
		return
	}
	if k == "User-Agent" && len(vv) > 0 {
		vv = vv[:1]
	}
	for _, v := range vv {
		writeField(c.bw, k, v)
	}
}

// writeField writes one header line as Request.Write would: framing
// fields (which describe the client's request, not this one) and invalid
// names are left out, and so is an empty User-Agent.
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

// Requests for http.ReadResponse, which needs one to know whether a
// response has a body (not after HEAD); only their Method is read.
var (
	getRequest  = &http.Request{Method: http.MethodGet}
	headRequest = &http.Request{Method: http.MethodHead}
)

// exchange writes r and reads the response head. The body is read by the
// caller through a body that returns the connection to the pool once it
// has been read to its end.
func (t *Transport) exchange(ctx context.Context, c *conn, r *Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, c.abort)
	if t.opts.ResponseTimeout > 0 {
		c.SetDeadline(time.Now().Add(t.opts.ResponseTimeout))
	}
	c.in.room, c.drop = MaxResponseHeadBytes, r.Drop
	if err := c.write(r); err != nil {
		stop()
		return nil, fmt.Errorf("write request: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, fmt.Errorf("write request: %w", err)
	}
	if _, err := c.br.Peek(1); err != nil { // wait for the answer
		stop()
		return nil, readFailed(ctx, err)
	}
	if r.Into != nil {
		if h, ok := readPlainHead(c.br, r.Into, r.Drop); ok {
			c.in.room = -1
			if t.opts.ResponseTimeout > 0 {
				c.SetDeadline(time.Time{})
			}
			b := &body{c: c, t: t, stop: stop, reusable: !h.close, remain: h.length}
			if r.Method == http.MethodHead || h.status == http.StatusNoContent || h.status == http.StatusNotModified {
				b.remain = 0
			}
			return &http.Response{StatusCode: h.status, ContentLength: h.length, Close: h.close, Body: b}, nil
		}
	}
	req := getRequest
	if r.Method == http.MethodHead {
		req = headRequest
	}
	var resp *http.Response
	var err error
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
		if interim++; interim > MaxInterimResponses {
			stop()
			return nil, errTooManyInterim
		}
	}
	c.in.room = -1
	if t.opts.ResponseTimeout > 0 {
		c.SetDeadline(time.Time{}) // the body may stream for as long as it needs
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection now belongs to the caller (a websocket tunnel),
		// which writes to it directly.
		stop()
		dropFields(resp.Header, r.Drop)
		resp.Body = &Upgraded{Reader: c.br, rw: c.Conn, conn: c.Conn}
		return resp, nil
	}
	finishHeader(resp, r)
	reusable := !resp.Close && (resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0 || r.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified)
	resp.Body = &body{ReadCloser: resp.Body, c: c, t: t, stop: stop, reusable: reusable, trailer: &resp.Trailer}
	return resp, nil
}

// finishHeader takes from resp's header the hop-by-hop fields and those
// r.Drop drops, and moves the rest into r.Into when it is set.
func finishHeader(resp *http.Response, r *Request) {
	RemoveHopByHop(resp.Header)
	dropFields(resp.Header, r.Drop)
	if r.Into != nil {
		for k, vv := range resp.Header {
			addField(r.Into, k, vv, false)
		}
		resp.Header = nil
	}
}

// readFailed is the error for a response that could not be read.
func readFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var refused *AnswerRefused
	switch {
	case errors.As(err, &refused):
		return refused // as it is: net/http's response reader may have wrapped it
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return ErrClosed
	}
	return err
}

// body hands the connection back to the pool when the body was read to
// its end and closes it otherwise. It reads either through net/http's
// body reader (ReadCloser) or, for a response readPlainHead parsed, the
// remain bytes of a fixed-length body straight from the connection's
// buffer (ReadCloser nil).
type body struct {
	io.ReadCloser
	remain   int64
	c        *conn
	t        *Transport
	stop     func() bool
	reusable bool
	eof      bool
	done     bool
	// trailer is the response's Trailer, filled in by net/http's body
	// reader at the end of the body.
	trailer *http.Header
}

func (b *body) Read(p []byte) (int, error) {
	if b.ReadCloser == nil {
		return b.readFixed(p)
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		if b.trailer != nil {
			dropFields(*b.trailer, b.c.drop)
		}
	}
	return n, err
}

func (b *body) readFixed(p []byte) (int, error) {
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

func (b *body) Close() error {
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
		b.t.put(b.c)
	} else {
		b.c.Close()
	}
	return err
}

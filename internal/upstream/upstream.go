// Package upstream is openqps's transport to its back ends: it sends a
// request whose head the front end has already decided on (method, target,
// host, fields) and returns the back end's status, fields and body. It
// owns the pooled keep-alive connections, dialing (plain TCP, or TLS with
// a per-transport *tls.Config: root CAs, client certificate, server name),
// the exchange, reading the response head within its bounds, body framing,
// and handing over the connection of a 101 (websocket) answer.
//
// It knows nothing of the front end: which client headers a back end may
// see, which response fields a browser may get beyond the hop-by-hop ones
// are the caller's decisions, passed in as Request.Header or
// Request.Fields and Request.Drop.
//
// Two implementations sit behind one Transport, chosen by Options.Kind:
// openqps's own HTTP/1.1 client (the default), which writes the request
// and reads the answer on the calling goroutine, and net/http.Transport,
// so that any change to the first can be compared with, and rolled back
// to, the most-reviewed Go client. Both refuse the same answers.
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
	"sync"
	"time"
)

// Kind names an implementation of Transport.
type Kind string

// The implementations; Options.Kind "" is OpenQPS.
const (
	// OpenQPS is openqps's own client: HTTP/1.1 with keep-alive, the
	// request written and the response read on the calling goroutine.
	// net/http.Transport hands each request to a connection's reader and
	// writer goroutines; on the request path that handoff costs more CPU
	// than everything the front end does. What the proxy does not need
	// it does not do: no HTTP/2, no proxies from the environment, no
	// compression.
	OpenQPS Kind = "openqps"
	// NetHTTP is net/http.Transport, set up to behave as OpenQPS does.
	NetHTTP Kind = "net/http"
)

// Options configure a Transport.
type Options struct {
	Kind Kind
	// ConnectTimeout bounds dialing and the TLS handshake; 0 is 10 s.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds writing a request and reading its response
	// head; 0 waits as long as the request's context does.
	ResponseTimeout time.Duration
	// TLS configures connections to https back ends: root CAs, a client
	// certificate, the server name (else the back end's host). Nil is
	// the system's roots and no client certificate. It is cloned, not
	// kept.
	TLS *tls.Config
	// RawSockets makes the reads and writes of back-end connections raw
	// system calls (internal/rawsock).
	RawSockets bool
}

// maxIdlePerHost and idleTimeout bound the pool of each back end.
const (
	maxIdlePerHost = 256
	idleTimeout    = 90 * time.Second
)

// MaxResponseHeadBytes bounds what a back end's answer may send before its
// body: the final head and the interim (1xx) heads before it, together. It
// is the bound the front end puts on a client's request head: a back end's
// head is no more trusted than a client's, and QPS's back ends send a few
// hundred bytes. Without it, net/http's response reader reads a head of
// any size.
const MaxResponseHeadBytes = 16 << 10

// MaxInterimResponses bounds the interim (1xx) responses read before the
// final one. An exchange has at most a 100 Continue and a 103 Early Hints
// or two; ten leaves room for servers that send 102 Processing while they
// work, and stops a back end that would keep openqps reading interim heads
// for ever (the byte bound stops it too, but later, and without saying
// why).
const MaxInterimResponses = 10

// AnswerRefused is a back end's answer that the transport stops reading
// because it overruns a bound: the connection is closed, and the request
// is not retried. Detail says which bound, for the client's 502.
type AnswerRefused struct{ Detail string }

func (e *AnswerRefused) Error() string { return "back end answer refused: " + e.Detail }

var (
	errHeadTooLarge   = &AnswerRefused{fmt.Sprintf("its response head is larger than %d bytes", MaxResponseHeadBytes)}
	errTooManyInterim = &AnswerRefused{fmt.Sprintf("it sent more than %d interim (1xx) responses", MaxInterimResponses)}
)

// ErrClosed is the error for a back end that closed the connection
// before its answer was complete.
var ErrClosed = errors.New("back end closed the connection")

// Request is one request for a back end, its head already filtered.
type Request struct {
	Method string
	// Scheme ("http" or "https") and Host (host[:port], also the Host
	// field) name the back end.
	Scheme, Host string
	// Pool, when set, is the key of the connection pool, Scheme://Host
	// precomputed (which saves joining them on every request).
	Pool string
	// Target is the request target in origin form ("/path?query"),
	// escaped as it goes on the request line.
	Target string
	// Header holds the request's fields. When it is nil, Fields writes
	// them instead, and a bodyless request's head is written straight
	// from Fields without building a header (the fast path every
	// proxied GET takes).
	Header http.Header
	Fields Fields
	// Body is the request body, nil for none; ContentLength is its
	// length, -1 when unknown (sent chunked). The transport closes it.
	Body          io.ReadCloser
	ContentLength int64
	// Into, when set, takes the fields of a final response other than
	// 101: the back end's value of a field replaces what Into holds
	// under its name, except that Set-Cookie values add up (Into may hold
	// fields of the caller's own, a cookie just set). The response's
	// Header is then nil. The fields of a 101 answer stay in its Header,
	// hop-by-hop ones included, for the caller to check the upgrade.
	Into http.Header
	// Drop, when set, is asked about every response field (and
	// trailer) that is not hop-by-hop; those it reports are left out.
	Drop Filter
}

// Fields writes a request's fields: emit is called once for each field
// name, with the values vv, or a single value v when vv is nil. Names are
// canonical. Framing fields (Host, Content-Length, Transfer-Encoding,
// Trailer) and invalid names are left out, CR and LF in values become
// spaces, and an empty User-Agent is not sent, as Request.Write does.
type Fields interface {
	EachField(emit func(name string, vv []string, v string))
}

// Filter decides which response fields the caller drops.
type Filter interface {
	DropField(name, value string) bool
}

// Transport sends requests to back ends. It is safe for concurrent use.
type Transport struct {
	opts   Options
	dialer net.Dialer
	tls    *tls.Config // cloned from Options.TLS
	std    *http.Transport
	mu     sync.Mutex
	idle   map[string][]*conn // by Scheme://Host
}

// New returns a Transport with the options o.
func New(o Options) *Transport {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	t := &Transport{opts: o, dialer: net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}, idle: map[string][]*conn{}}
	if o.TLS != nil {
		t.tls = o.TLS.Clone()
	}
	if o.Kind == NetHTTP {
		t.std = t.netHTTP()
	}
	return t
}

// Kind is the implementation t uses.
func (t *Transport) Kind() Kind {
	if t.std != nil {
		return NetHTTP
	}
	return OpenQPS
}

// RoundTrip sends r and returns the back end's answer once its head is
// read; the caller reads and closes the body. When the answer is a 101,
// the body is an *Upgraded: the connection, now the caller's. A request
// without a body that fails on a reused connection before any of its
// answer arrived is retried once on a new connection.
//
// Errors: *AnswerRefused for an answer over a bound (never retried),
// ErrClosed for a back end that hung up, ctx's error when ctx ended,
// else the network's error (a *net.OpError with Op "dial" when nothing
// was sent).
func (t *Transport) RoundTrip(ctx context.Context, r *Request) (*http.Response, error) {
	if t.std != nil {
		return t.roundTripStd(ctx, r)
	}
	return t.send(ctx, r)
}

// CloseIdleConnections closes every idle connection.
func (t *Transport) CloseIdleConnections() {
	if t.std != nil {
		t.std.CloseIdleConnections()
		return
	}
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*conn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.Close()
		}
	}
}

// Upgraded is the body of a 101 answer: the connection to the back end,
// which the caller now reads, writes and closes. Reads return what the
// transport had buffered first.
type Upgraded struct {
	*bufio.Reader
	rw   io.ReadWriteCloser
	conn net.Conn // for deadlines
}

// Write writes to the back end.
func (u *Upgraded) Write(p []byte) (int, error) { return u.rw.Write(p) }

// Close closes the connection.
func (u *Upgraded) Close() error { return u.rw.Close() }

// SetReadDeadline sets the read deadline of the connection; a deadline in
// the past wakes a read in progress.
func (u *Upgraded) SetReadDeadline(t time.Time) error { return u.conn.SetReadDeadline(t) }

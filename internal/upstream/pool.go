package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strings"
	"time"

	"github.com/openqps/openqps/internal/rawsock"
)

// dial opens a connection to host for scheme, with TLS for https.
func (t *Transport) dial(ctx context.Context, scheme, host, key string) (*conn, error) {
	c, err := t.dialer.DialContext(ctx, "tcp", address(scheme, host))
	if err != nil {
		return nil, err
	}
	if t.opts.RawSockets {
		c = rawsock.Wrap(c)
	}
	sock := c
	if scheme == "https" {
		tc := tls.Client(c, t.tlsConfig(host))
		hctx, cancel := context.WithTimeout(ctx, t.opts.ConnectTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	return newConn(c, sock, key), nil
}

// address is host with the scheme's default port when it names none.
func address(scheme, host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return net.JoinHostPort(strings.Trim(host, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}

// tlsConfig is the configuration of a TLS connection to host: Options.TLS,
// with the host's name as the server name unless it sets one, and HTTP/1.1
// only.
func (t *Transport) tlsConfig(host string) *tls.Config {
	cfg := &tls.Config{}
	if t.tls != nil {
		cfg = t.tls.Clone()
	}
	if cfg.ServerName == "" {
		name := host
		if h, _, err := net.SplitHostPort(host); err == nil {
			name = h
		}
		cfg.ServerName = strings.Trim(name, "[]")
	}
	cfg.NextProtos = []string{"http/1.1"}
	return cfg
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
func (c *conn) quiet() bool {
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

// get returns the most recently used idle connection to key (the warmest
// one) that is still quiet, closing those idle for too long and those
// that received anything while idle.
func (t *Transport) get(key string) (*conn, bool) {
	for {
		c := t.pop(key)
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
func (t *Transport) pop(key string) *conn {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[key]
	for len(list) > 0 {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if now.Sub(c.idleFrom) < idleTimeout {
			t.idle[key] = list
			return c
		}
		c.Close()
	}
	t.idle[key] = list
	return nil
}

func (t *Transport) put(c *conn) {
	if c.br.Buffered() > 0 { // the back end sent more than the response
		c.Close()
		return
	}
	c.idleFrom = time.Now()
	t.mu.Lock()
	list := t.idle[c.key]
	if len(list) >= maxIdlePerHost {
		t.mu.Unlock()
		c.Close()
		return
	}
	t.idle[c.key] = append(list, c)
	t.mu.Unlock()
}

//go:build unix

package rawsock

import (
	"net"
	"syscall"
)

// Quiet reports whether nothing can be read from c right now: no byte
// has arrived that was not read yet, and the peer has not closed or reset
// the connection. It neither waits nor consumes anything: one peek at the
// socket that does not block. known is false when c is not a socket it
// can look into (a TLS connection: pass the TCP connection beneath it;
// the bytes TLS itself buffered are not seen).
//
// An idle keep-alive connection that is not quiet has received something
// no request asked for; the proxy closes such connections rather than
// reuse them.
func Quiet(c net.Conn) (quiet, known bool) {
	if rc, ok := c.(quieter); ok { // a Conn (Linux)
		return rc.quiet(), true
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false, false
	}
	var p peek
	if raw.Control(p.attempt) != nil {
		return false, true // closed
	}
	return p.quiet, true
}

// quieter is a Conn, which answers Quiet without allocating.
type quieter interface{ quiet() bool }

// peek is the state of one Quiet, kept outside a closure so that a Conn
// can bind its attempt once.
type peek struct {
	buf   [1]byte
	quiet bool
}

// attempt peeks at the socket without waiting: EAGAIN means nothing is
// there; a byte, the end (0 bytes) or an error (a reset) mean it is not
// quiet.
func (p *peek) attempt(fd uintptr) {
	for {
		_, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EINTR {
			continue
		}
		p.quiet = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return
	}
}

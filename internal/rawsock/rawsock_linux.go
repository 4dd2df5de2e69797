package rawsock

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write are raw system calls. Its
// other methods (deadlines, Close, CloseWrite, ReadFrom, WriteTo) are the
// TCPConn's own.
type Conn struct {
	*net.TCPConn
	raw         syscall.RawConn
	read, write call
	peek        peek
	peekFn      func(fd uintptr) // peek.attempt, bound once
}

// call is the state of the Read or Write in progress, kept here rather
// than captured by a closure so that a call allocates nothing: fn, its
// attempt method, is bound once, in Wrap.
type call struct {
	mu    sync.Mutex // one Read (one Write) at a time, as net.Conn's
	trap  uintptr    // SYS_READ or SYS_WRITE
	buf   []byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

// Wrap returns c as a Conn when it is a *net.TCPConn, and c itself
// otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rc := &Conn{TCPConn: tc, raw: raw}
	rc.read.trap, rc.read.fn = syscall.SYS_READ, rc.read.attempt
	rc.write.trap, rc.write.fn = syscall.SYS_WRITE, rc.write.attempt
	rc.peekFn = rc.peek.attempt
	return rc
}

// Read reads as net.Conn's Read does: it waits in the network poller
// while nothing is there, and returns io.EOF once the peer has closed.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.do(&c.read, p, "read")
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// Write writes all of p, waiting in the network poller while the socket
// buffer is full, as net.Conn's Write does.
func (c *Conn) Write(p []byte) (int, error) {
	return c.do(&c.write, p, "write")
}

// do runs the call k (c.read or c.write) on p through the RawConn and
// returns how many bytes it moved and its error, worded as net's.
func (c *Conn) do(k *call, p []byte, op string) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.buf, k.n, k.errno = p, 0, 0
	var err error
	if k.trap == syscall.SYS_WRITE {
		err = c.raw.Write(k.fn)
	} else {
		err = c.raw.Read(k.fn)
	}
	n, errno := k.n, k.errno
	k.buf = nil
	switch {
	case err != nil:
		return n, c.opError(op, err)
	case errno != 0:
		return n, c.opError(op, os.NewSyscallError(op, errno))
	}
	return n, nil
}

// quiet is Quiet for a Conn, allocating nothing. It holds the read lock,
// as a Read would: the peek buffer is the Conn's own.
func (c *Conn) quiet() bool {
	c.read.mu.Lock()
	defer c.read.mu.Unlock()
	c.peek.quiet = false
	if c.raw.Control(c.peekFn) != nil {
		return false // closed
	}
	return c.peek.quiet
}

// attempt moves bytes between buf and the socket: a read once, a write
// until all of buf is out. It returns false, to wait in the poller and be
// called again, when the socket is empty (full).
func (k *call) attempt(fd uintptr) bool {
	for {
		rest := k.buf[k.n:]
		n, _, e := syscall.RawSyscall(k.trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(rest))), uintptr(len(rest)))
		switch e {
		case 0:
			k.n += int(n)
			if k.trap == syscall.SYS_READ || k.n == len(k.buf) {
				return true
			}
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			k.errno = e
			return true
		}
	}
}

// opError words err as net.TCPConn's Read and Write do (the raw calls
// name their operation "raw-read" and "raw-write").
func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		// The RawConn's own error, made for this call and named for
		// its addresses already: only the operation differs. A
		// deadline (net/http aborts its background read with one after
		// every request) costs no second error.
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

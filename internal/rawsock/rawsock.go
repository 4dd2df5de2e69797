// Package rawsock makes the reads and writes of openqps's TCP connections
// plain non-blocking system calls that Go's scheduler is not told about.
//
// Go wraps every socket read and write in entersyscall/exitsyscall, as if
// it might block. Its monitor thread (sysmon) takes the processor away
// from a goroutine that has been in a system call for more than about
// 20 µs and wakes another thread to run the rest; when the call returns,
// the goroutine must win a processor back. Sockets are non-blocking, so
// the call never waits, but on loopback a write does deliver the segment
// and wake the reader before it returns, and on a virtual machine that
// often takes longer than the monitor waits: the front end then switches
// threads for a good share of its requests. Made raw, it switches far
// less, and spends less CPU a request (bench/README.md has the figures).
//
// What a raw call gives up is the scheduler's knowledge that the
// goroutine sits in the kernel. For a non-blocking socket that is a
// bounded copy, and everything that waits (the socket full or empty, a
// deadline) still goes through Go's network poller, so deadlines, Close
// and concurrent readers and writers behave as with a net.TCPConn.
//
// Quiet tells, without waiting or consuming anything, whether an idle
// connection has received bytes or a close: the proxy checks each pooled
// back-end connection with it before reusing it. It works on every Unix
// (one non-blocking peek), and with raw calls off.
//
// Only Linux gets raw calls; elsewhere Wrap and Listener change nothing.
// Whether to use them at all is the caller's choice: openqps's
// configuration has transport.raw_sockets (on by default), to compare, or
// should a kernel or a Go release misbehave with them.
package rawsock

import "net"

// Listener wraps the connections of a TCP listener with Wrap.
type Listener struct{ net.Listener }

// Accept waits for the next connection and returns it wrapped.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

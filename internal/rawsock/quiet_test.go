//go:build linux

package rawsock

import (
	"io"
	"net"
	"syscall"
	"testing"
)

// TestQuietSeesBytesAndTheEnd: a connection is quiet until the peer
// sends a byte or closes, and Quiet consumes neither.
func TestQuietSeesBytesAndTheEnd(t *testing.T) {
	for _, wrapped := range []bool{true, false} {
		client, server := pair(t)
		if !wrapped {
			if rc, ok := client.(*Conn); ok {
				client = rc.TCPConn // Quiet's general path
			}
		}
		if quiet, known := Quiet(client); !quiet || !known {
			t.Fatalf("wrapped=%v: a fresh connection: Quiet = %v, %v; want quiet", wrapped, quiet, known)
		}
		server.Write([]byte("x"))
		waitReadable(t, client)
		if quiet, _ := Quiet(client); quiet {
			t.Fatalf("wrapped=%v: quiet with a byte to read", wrapped)
		}
		buf := make([]byte, 2)
		if n, err := client.Read(buf); n != 1 || err != nil || buf[0] != 'x' {
			t.Fatalf("wrapped=%v: Read after Quiet = %d %q, %v; want the byte Quiet saw", wrapped, n, buf[:n], err)
		}
		if quiet, _ := Quiet(client); !quiet {
			t.Fatalf("wrapped=%v: not quiet once the byte was read", wrapped)
		}
		server.Close()
		waitReadable(t, client)
		if quiet, _ := Quiet(client); quiet {
			t.Fatalf("wrapped=%v: quiet after the peer closed", wrapped)
		}
		if n, err := client.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("wrapped=%v: Read after the peer closed = %d, %v; want io.EOF", wrapped, n, err)
		}
		client.Close()
		if quiet, known := Quiet(client); quiet || !known {
			t.Fatalf("wrapped=%v: a closed connection: Quiet = %v, %v; want not quiet", wrapped, quiet, known)
		}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, known := Quiet(a); known {
		t.Error("Quiet claims to know about a connection that is not a socket")
	}
}

func TestQuietAllocatesNothing(t *testing.T) {
	client, _ := pair(t)
	if _, ok := client.(quieter); !ok {
		t.Skipf("%T: raw calls are off", client)
	}
	if allocs := testing.AllocsPerRun(100, func() { Quiet(client) }); allocs != 0 {
		t.Errorf("Quiet allocates %.1f objects, want 0", allocs)
	}
}

// waitReadable waits until a read on c would not block, without reading:
// select(2) on its socket.
func waitReadable(t *testing.T, c net.Conn) {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	raw.Control(func(fd uintptr) {
		var set syscall.FdSet
		set.Bits[fd/64] |= 1 << (fd % 64)
		tv := syscall.Timeval{Sec: 5}
		n, err = syscall.Select(int(fd)+1, &set, nil, nil, &tv)
	})
	if err != nil || n != 1 {
		t.Fatalf("select: %d, %v; want the socket readable within 5 s", n, err)
	}
}

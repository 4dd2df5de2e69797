package rawsock

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection, both wrapped.
func pair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := Listener{ln}.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client, server = Wrap(c), <-accepted
	if server == nil {
		t.FailNow()
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestWrapMakesTCPConnsRaw(t *testing.T) {
	client, server := pair(t)
	for _, c := range []net.Conn{client, server} {
		raw := fmt.Sprintf("%T", c) == "*rawsock.Conn" // Conn exists on Linux only
		if raw != (runtime.GOOS == "linux") {
			t.Errorf("%T: raw = %v on %s", c, raw, runtime.GOOS)
		}
	}
	a, b := net.Pipe() // not TCP: left alone
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Error("Wrap changed a connection that is not TCP")
	}
}

// TestBulkTransferWaitsForASlowReader writes far more than the socket
// buffers hold to a reader that takes its time, so writes must wait in
// the poller (EAGAIN) and resume; every byte arrives, in order.
func TestBulkTransferWaitsForASlowReader(t *testing.T) {
	client, server := pair(t)
	want := make([]byte, 16<<20)
	rand.Read(want)
	written := make(chan error, 1)
	go func() {
		n, err := client.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		client.(interface{ CloseWrite() error }).CloseWrite()
		written <- err
	}()
	var got bytes.Buffer
	buf := make([]byte, 1000) // small reads: many of them find the socket empty
	for {
		n, err := server.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes: %v", got.Len(), err)
		}
	}
	if err := <-written; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("received %d bytes that differ from the %d sent", got.Len(), len(want))
	}
}

func TestReadDeadlineIsATimeout(t *testing.T) {
	_, server := pair(t)
	server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := server.Read(make([]byte, 10))
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %d, %v; want 0 and a timeout", n, err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Errorf("error %v is not worded as a read error", err)
	}
	server.SetReadDeadline(time.Time{})
}

func TestWriteDeadlineCutsAStalledWrite(t *testing.T) {
	client, _ := pair(t)        // the server never reads
	big := make([]byte, 64<<20) // before the deadline is set: zeroing it takes a while under -race
	client.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := client.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a peer that never reads = %d, %v; want a deadline error", n, err)
	}
	if n == 0 || n == 64<<20 {
		t.Errorf("wrote %d bytes before the deadline; want some, not all", n)
	}
}

func TestCloseEndsABlockedRead(t *testing.T) {
	_, server := pair(t)
	closeEnds(t, server, "Read", func() error {
		_, err := server.Read(make([]byte, 10))
		return err
	})
}

// closeEnds checks that closing c ends call, which blocks on c.
func closeEnds(t *testing.T, c net.Conn, what string, call func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	// Wait until the call has had the chance to park in the poller; the
	// outcome is the same if Close comes first.
	runtime.Gosched()
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("%s on a closed conn = %v, want net.ErrClosed", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Close did not end a blocked %s", what)
	}
}

func TestPeerCloseAndResetAreReported(t *testing.T) {
	client, server := pair(t)
	client.Write([]byte("bye"))
	client.Close()
	buf := make([]byte, 10)
	n, err := server.Read(buf)
	if n != 3 || err != nil || string(buf[:3]) != "bye" {
		t.Fatalf("first Read = %d %q, %v", n, buf[:n], err)
	}
	if n, err := server.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want io.EOF", n, err)
	}

	// A reset peer: the write fails with ECONNRESET or EPIPE, as a syscall error.
	client2, server2 := pair(t)
	client2.(interface{ SetLinger(int) error }).SetLinger(0)
	client2.Close()
	var err2 error
	for i := 0; i < 100 && err2 == nil; i++ {
		_, err2 = server2.Write([]byte("are you there?"))
		if err2 == nil {
			server2.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			server2.Read(buf) // lets the RST arrive
		}
	}
	if !errors.Is(err2, syscall.ECONNRESET) && !errors.Is(err2, syscall.EPIPE) {
		t.Fatalf("writing to a reset peer = %v, want ECONNRESET or EPIPE", err2)
	}
}

func TestReadAndWriteAllocateNothing(t *testing.T) {
	client, server := pair(t)
	msg := []byte("ping")
	buf := make([]byte, 16)
	allocs := testing.AllocsPerRun(100, func() {
		client.Write(msg)
		io.ReadFull(server, buf[:len(msg)])
	})
	if allocs != 0 {
		t.Errorf("a Write and a Read allocate %.1f objects, want 0", allocs)
	}
}

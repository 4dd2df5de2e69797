package rawsock

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// asker is the Conn's Ask.
type asker interface {
	net.Conn
	Ask(p []byte) (int, error)
}

func askingPair(t *testing.T) (client asker, server net.Conn) {
	t.Helper()
	c, server := pair(t)
	client, ok := c.(asker)
	if !ok {
		t.Skipf("%T has no Ask: raw calls are off (OPENQPS_RAWSOCK=off)", c)
	}
	return client, server
}

// readable reports whether a read on c would find bytes (or the end)
// right now, without waiting and without consuming them.
func readable(t *testing.T, c net.Conn) bool {
	t.Helper()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var rerr error
	raw.Control(func(fd uintptr) {
		_, _, rerr = syscall.Recvfrom(int(fd), make([]byte, 1), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	if rerr == syscall.EAGAIN {
		return false
	}
	if rerr != nil {
		t.Fatalf("peek: %v", rerr)
	}
	return true // bytes, or the end (n == 0)
}

// TestAskWaitsForTheAnswer: Ask returns only once the answer can be read,
// and the Read that follows gets it.
func TestAskWaitsForTheAnswer(t *testing.T) {
	client, server := askingPair(t)
	gotRequest, answer := make(chan string, 1), make(chan struct{})
	go func() {
		buf := make([]byte, 64)
		n, _ := server.Read(buf)
		gotRequest <- string(buf[:n])
		<-answer
		server.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n"))
	}()
	asked := make(chan error, 1)
	go func() {
		n, err := client.Ask([]byte("GET / HTTP/1.1\r\n\r\n"))
		if err == nil && n != 18 {
			err = fmt.Errorf("Ask wrote %d of 18 bytes", n)
		}
		asked <- err
	}()
	if got := <-gotRequest; got != "GET / HTTP/1.1\r\n\r\n" {
		t.Fatalf("the peer got %q", got)
	}
	select {
	case err := <-asked:
		t.Fatalf("Ask returned (%v) before the peer answered", err)
	default:
	}
	close(answer)
	if err := <-asked; err != nil {
		t.Fatal(err)
	}
	if !readable(t, client) {
		t.Fatal("Ask returned, yet the answer cannot be read")
	}
	buf := make([]byte, 64)
	n, err := client.Read(buf)
	if err != nil || string(buf[:n]) != "HTTP/1.1 204 No Content\r\n\r\n" {
		t.Fatalf("Read after Ask = %q, %v", buf[:n], err)
	}
}

// TestAskEndsWhenThePeerCloses: a peer that closes instead of answering
// wakes Ask, and the Read that follows reports the end.
func TestAskEndsWhenThePeerCloses(t *testing.T) {
	client, server := askingPair(t)
	go func() {
		server.Read(make([]byte, 64))
		server.Close()
	}()
	if _, err := client.Ask([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatalf("Ask: %v", err)
	}
	if n, err := client.Read(make([]byte, 64)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want io.EOF", n, err)
	}
}

// TestAskHonoursDeadlinesAndClose: Ask waits as a Read does, so a read
// deadline and Close end its wait.
func TestAskHonoursDeadlinesAndClose(t *testing.T) {
	client, server := askingPair(t)
	go io.Copy(io.Discard, server) // reads, never answers
	client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := client.Ask([]byte("GET / HTTP/1.1\r\n\r\n"))
	var oe *net.OpError
	if n != 18 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("Ask past the read deadline = %d, %v; want 18 and a read timeout", n, err)
	}
	client.SetReadDeadline(time.Time{})

	closeEnds(t, client, "Ask", func() error {
		_, err := client.Ask([]byte("GET / HTTP/1.1\r\n\r\n"))
		return err
	})
}

// TestAskLeavesWhatTheSocketCannotTake: when the socket buffer takes only
// part of the request, Ask returns at once with the count, and Write
// sends the rest.
func TestAskLeavesWhatTheSocketCannotTake(t *testing.T) {
	client, server := askingPair(t)
	want := make([]byte, 32<<20) // more than loopback socket buffers hold
	rand.Read(want)
	n, err := client.Ask(want)
	if err != nil || n == 0 || n >= len(want) {
		t.Fatalf("Ask of %d bytes to a peer not reading = %d, %v; want part and no error", len(want), n, err)
	}
	received := make(chan []byte, 1)
	go func() {
		got, _ := io.ReadAll(io.LimitReader(server, int64(len(want))))
		received <- got
	}()
	if _, err := client.Write(want[n:]); err != nil {
		t.Fatal(err)
	}
	if got := <-received; !bytes.Equal(got, want) {
		t.Fatalf("the peer received %d bytes that differ from the %d sent", len(got), len(want))
	}
}

func TestAskAllocatesNothing(t *testing.T) {
	client, server := askingPair(t)
	req, answer := []byte("ping"), []byte("pong")
	buf := make([]byte, 16)
	go func() {
		b := make([]byte, 4)
		for {
			if _, err := io.ReadFull(server, b); err != nil {
				return
			}
			server.Write(answer)
		}
	}()
	allocs := testing.AllocsPerRun(100, func() {
		client.Ask(req)
		io.ReadFull(client, buf[:len(answer)])
	})
	if allocs != 0 {
		t.Errorf("an Ask and a Read allocate %.1f objects, want 0", allocs)
	}
}

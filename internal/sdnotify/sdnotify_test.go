package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// listen opens a unixgram socket as systemd does for a notify service and
// points NOTIFY_SOCKET at it.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Skipf("unixgram sockets are not available here: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(buf[:n])
}

func TestNotifySendsEachStateAsOneDatagram(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@openqps-sdnotify-test-" + time.Now().Format("150405.000000000")} {
		t.Run(name[:1], func(t *testing.T) {
			conn := listen(t, name)
			for _, state := range []string{Ready, Reloading, Ready, Stopping} {
				sent, err := Notify(state)
				if err != nil || !sent {
					t.Fatalf("Notify(%q) = %v, %v", state, sent, err)
				}
				if got := receive(t, conn); got != state {
					t.Fatalf("received %q, want %q", got, state)
				}
			}
		})
	}
}

func TestNotifyWithoutSocketDoesNothing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Fatalf("Notify without NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
}

func TestNotifyToMissingSocketFails(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if sent, err := Notify(Ready); sent || err == nil {
		t.Fatalf("Notify to a missing socket = %v, %v; want an error", sent, err)
	}
}

// Package sdnotify tells systemd how a Type=notify service is doing: one
// datagram per state change ("READY=1", "RELOADING=1", "STOPPING=1") to
// the unix socket systemd names in $NOTIFY_SOCKET — the whole protocol of
// sd_notify(3), in a few lines of the standard library.
package sdnotify

import (
	"net"
	"os"
)

// The states openqps reports.
const (
	Ready     = "READY=1"
	Reloading = "RELOADING=1"
	Stopping  = "STOPPING=1"
)

// Notify sends state to the socket in $NOTIFY_SOCKET. It reports false,
// nil when the variable is unset: the process was not started by systemd
// as a notify service, and there is no one to tell. Safe for concurrent
// use.
func Notify(state string) (sent bool, err error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	// An address starting with "@" is in Linux's abstract namespace; the
	// net package maps "@" to the leading NUL byte itself.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

//go:build !unix

package rawsock

import "net"

// Quiet cannot look into sockets on this platform: known is always
// false. See quiet_unix.go.
func Quiet(c net.Conn) (quiet, known bool) { return false, false }

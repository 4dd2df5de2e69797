package proxy

import (
	"fmt"
	"net/http"
	"strings"
)

// refusedShape returns why a front-end request is refused outright, or
// "".
func refusedShape(r *http.Request) (msg, detail string) {
	if !strings.HasPrefix(r.RequestURI, "/") {
		// Absolute-form ("GET http://other/ HTTP/1.1") is for forward
		// proxies; accepting it would let the client pick the Host the
		// back end sees. "*" and authority-form (CONNECT) are no
		// resources of a back end either.
		return "invalid request target", "send the path only (GET /hub/ HTTP/1.1); openqps is not a forward proxy"
	}
	if isUpgrade(r) && !strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket") {
		// Only websockets are tunnelled; an h2c or other upgrade
		// would open a tunnel to the back end that bypasses every
		// later check (h2c smuggling).
		return "upgrade not allowed", fmt.Sprintf("only websocket upgrades are proxied, not %q", r.Header.Get("Upgrade"))
	}
	return "", ""
}

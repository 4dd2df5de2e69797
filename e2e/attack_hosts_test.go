package e2e

import (
	"net/http"
	"strconv"
	"testing"
)

// TestAttackForwardedHostIsAnAddressOfThisProxy: the Host a back end is
// told (X-Forwarded-Host) is the browser's own only when it is an
// address of this proxy on the request's scheme — the same check that
// guards login redirects, reloadUri and websocket Origins — and never
// another port of one of its names (which may be anyone's server) or a
// port no browser writes. Over HTTP/1.1 and HTTP/2.
func TestAttackForwardedHostIsAnAddressOfThisProxy(t *testing.T) {
	o := start(t, nil)
	id := randomHex(16)
	o.addSession(t, "", "DOMAIN", "User1", id)
	own := portOf(o.FrontendAddr)
	for i, c := range []struct {
		host    string
		ownHost bool // an address of this proxy: passed on as it is
	}{
		{"localhost:" + own, true},
		{"LOCALHOST:" + own, true},
		{"127.0.0.1:" + own, true},
		{"localhost:31337", false},
		{"127.0.0.1:31337", false},
		{"[::1]:31337", false},
		{"localhost:0" + own, false},
		{"localhost:99999", false},
		{"localhost:99999999999999999999", false},
	} {
		for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
			t.Run(proto+" "+c.host, func(t *testing.T) {
				path := "/hub/?hostrow=" + strconv.Itoa(i) + proto[5:]
				status := 0
				if proto == "HTTP/2" {
					status = h2Send(t, o.FrontendAddr, o.frontTLS(), h2Request{Path: path, Authority: c.host,
						Header: [][2]string{{"cookie", "X-Qlik-Session=" + id}}}).Status
				} else if answers := attackSend(t, o.FrontendAddr, o.frontTLS(),
					"GET "+path+" HTTP/1.1\r\nHost: "+c.host+"\r\nCookie: X-Qlik-Session="+id+"\r\nConnection: close\r\n\r\n"); len(answers) > 0 {
					status = answers[0].resp.StatusCode
				}
				if status != http.StatusOK {
					t.Fatalf("status %d, want 200 (a session is served whatever its Host)", status)
				}
				var got *http.Request
				for _, r := range o.Backend.requests() {
					if r.RequestURI == path {
						got = r
					}
				}
				if got == nil {
					t.Fatal("the back end did not get the request")
				}
				fh := got.Header.Get("X-Forwarded-Host")
				if c.ownHost && fh != c.host || !c.ownHost && fh == c.host {
					t.Errorf("Host %s: the back end is told X-Forwarded-Host %q (an address of this proxy: %v)", c.host, fh, c.ownHost)
				}
				if fh == "" {
					t.Error("no X-Forwarded-Host")
				}
			})
		}
	}
}

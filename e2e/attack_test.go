package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/session"
)

// The attack table: each row is one attack, sent byte for byte over real
// TLS to the running front end (or trusted API), so nothing in a Go client
// tidies it up first. Every row carries a marker, a string no legitimate
// request contains; the attack fails when the answer is the refusal the
// row expects AND the recording back end never saw the marker in any
// request line or header. Rows that are legitimately forwarded (a valid
// session plus a spoofed header) are "served": the back end sees the
// request, never the marker.

// attackRow is one attack on the front end. In raw, {host} is the front
// end's address, {mark} the row's marker, {cookie} a live session cookie
// of the default virtual proxy, {svcookie} one of "sessionvp" and {vars}
// anything setup returned.
type attackRow struct {
	name string
	// setup runs before the attack and returns more substitutions.
	setup func(t *testing.T, o *openqps) map[string]string
	raw   string
	// want lists the acceptable statuses of the first answer; 0 stands
	// for "the connection was closed without an answer".
	want []int
	// check, when set, looks at the first answer too.
	check func(t *testing.T, resp *http.Response, body string)
	// markInBody says the marker travels in a request body the back end
	// may get: only what it parsed as request lines, headers and
	// trailers is checked for it, not every byte it received.
	markInBody bool
}

func TestAttackTableFrontend(t *testing.T) {
	o := start(t, nil)
	defID, svID := randomHex(16), randomHex(16)
	o.addSession(t, "", "DOMAIN", "User1", defID)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", svID)
	runAttackRows(t, o, map[string]string{
		"{cookie}":   "X-Qlik-Session=" + defID,
		"{svcookie}": "X-Qlik-Session-sessionvp=" + svID,
	}, attackFrontendRows())
}

// runAttackRows sends each row to o's front end over HTTP/1.1 and checks
// its answer and what reached the back end. vars are substitutions
// besides {host} and {mark}.
func runAttackRows(t *testing.T, o *openqps, vars map[string]string, rows []attackRow) {
	t.Helper()
	for i, row := range rows {
		mark := fmt.Sprintf("zqatk%03d%s", i, randomHex(3))
		t.Run(row.name, func(t *testing.T) {
			raw := row.raw
			for k, v := range attackVars(t, o, row.setup, mark, vars) {
				raw = strings.ReplaceAll(raw, k, v)
			}
			answers := attackSend(t, o.FrontendAddr, o.frontTLS(), raw)
			got := 0
			if len(answers) > 0 {
				got = answers[0].resp.StatusCode
			}
			if !containsInt(row.want, got) {
				body := ""
				if len(answers) > 0 {
					body = answers[0].body
				}
				t.Errorf("status %d, want one of %v; body %.300q", got, row.want, body)
			}
			if row.check != nil && len(answers) > 0 {
				row.check(t, answers[0].resp, answers[0].body)
			}
			for _, a := range answers {
				if strings.Contains(a.body, "goroutine ") || strings.Contains(a.body, o.Backend.URL) {
					t.Errorf("an answer leaks internals: %.300q", a.body)
				}
			}
			attackNeverReachedBackend(t, o, mark, row.markInBody)
		})
	}
}

// attackVars are the substitutions of one row: {host}, {mark}, vars, and
// what the row's setup returns.
func attackVars(t *testing.T, o *openqps, setup func(*testing.T, *openqps) map[string]string, mark string, vars map[string]string) map[string]string {
	all := map[string]string{"{host}": o.FrontendAddr, "{mark}": mark}
	for k, v := range vars {
		all[k] = v
	}
	if setup != nil {
		for k, v := range setup(t, o) {
			all[k] = v
		}
	}
	return all
}

// attackNeverReachedBackend fails when the back end saw mark: anywhere in
// the bytes it received, or, for a row whose marker legitimately travels
// in a request body (markInBody), in a request line, header or trailer
// of what it parsed.
func attackNeverReachedBackend(t *testing.T, o *openqps, mark string, markInBody bool) {
	t.Helper()
	if !markInBody {
		raw := o.Backend.received()
		if i := bytes.Index(bytes.ToLower(raw), []byte(strings.ToLower(mark))); i >= 0 {
			from := max(0, bytes.LastIndex(raw[:i], []byte("\r\n\r\n")))
			t.Errorf("the back end received the attack:\n%.600q", raw[from:])
		}
	}
	for _, r := range o.Backend.requests() {
		seen := r.Method + " " + r.RequestURI + " " + r.Host
		for k, vv := range r.Header {
			seen += "\n" + k + ": " + strings.Join(vv, ", ")
		}
		for k, vv := range r.Trailer {
			seen += "\n" + k + ": " + strings.Join(vv, ", ")
		}
		if strings.Contains(strings.ToLower(seen), strings.ToLower(mark)) {
			t.Errorf("the back end saw the attack:\n%s", seen)
		}
	}
}

// attackFrontendRows is the table. Rows that end their connection with a
// pipelined request make the server answer everything before it first, so
// the back-end check runs after the server is done with the attack.
func attackFrontendRows() []attackRow {
	const (
		closing = "Connection: close\r\n\r\n"
		bad     = http.StatusBadRequest
	)
	redirect := []int{http.StatusFound}
	refused := []int{http.StatusBadRequest}
	served := []int{http.StatusOK}
	// reframed: net/http drops Content-Length next to Transfer-Encoding
	// (RFC 9112 §6.3) and openqps re-frames every body it forwards, so
	// the hidden request arrives as the next request of the same
	// client, without a session: it is sent to log in.
	reframed := []int{http.StatusOK, http.StatusBadRequest}
	forbidden := []int{http.StatusForbidden}
	getWith := func(path string, headers ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: {host}\r\n" + strings.Join(headers, "") + closing
	}
	putWith := func(path string) string {
		return "PUT " + path + " HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1\r\n" + closing + "x"
	}
	// smuggle is a request hidden behind a first one that the back end
	// could take for a second request if it framed the body differently.
	const hidden = "GET /hub/{mark} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
	// inBody is a request carried as a body; its length once {mark}
	// (14 characters) is filled in is inBodyLen.
	const inBody = "GET /hub/{mark} HTTP/1.1\r\nHost: localhost\r\n\r\n"
	inBodyLen := len(inBody) - len("{mark}") + len("zqatk000abcdef")
	rows := []attackRow{
		// Spoofed identity from a browser with no session: nothing reaches the back end.
		{name: "X-Qlik-User without session", raw: getWith("/hub/{mark}", "X-Qlik-User: UserDirectory=DOMAIN; UserId=User1\r\n"), want: redirect},
		{name: "X-Qlik-User without session on sessionvp", raw: getWith("/sessionvp/hub/{mark}", "X-Qlik-User: UserDirectory=DOMAIN; UserId=User1\r\n"), want: redirect},
		{name: "X-Qlik-Security without session", raw: getWith("/hub/{mark}", "X-Qlik-Security: Context=ManagementAccess\r\n"), want: redirect},
		{name: "X-Qlik-Virtual-Proxy-Prefix without session", raw: getWith("/hub/{mark}", "X-Qlik-Virtual-Proxy-Prefix: sessionvp\r\n"), want: redirect},
		{name: "X-Qlik-User on a POST without session", raw: "POST /hub/{mark} HTTP/1.1\r\nHost: {host}\r\nX-Qlik-User: UserDirectory=DOMAIN; UserId=User1\r\nContent-Length: 2\r\n" + closing + "{}", want: []int{http.StatusUnauthorized}},
		{name: "X-Qlik-User on an upgrade without session", raw: getWith("/app/{mark}", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Qlik-User: UserDirectory=DOMAIN; UserId=User1\r\n"), want: []int{http.StatusUnauthorized}},
		{name: "X-Forwarded-For without session", raw: getWith("/hub/{mark}", "X-Forwarded-For: 127.0.0.1\r\n"), want: redirect},

		// Spoofed identity next to a valid session: the request is served,
		// the spoofed values never arrive.
		{name: "X-Qlik-User with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Qlik-User: UserDirectory={mark}; UserId=sa_repository\r\n"), want: served},
		{name: "x-qlik-user lower case", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "x-qlik-user: UserDirectory={mark}; UserId=sa\r\n"), want: served},
		{name: "X-QLIK-USER upper case", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-QLIK-USER: UserDirectory={mark}; UserId=sa\r\n"), want: served},
		{name: "X_Qlik_User with underscores", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X_Qlik_User: UserDirectory={mark}; UserId=sa\r\n"), want: served},
		{name: "X-Qlik-User twice", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Qlik-User: UserDirectory={mark}; UserId=a\r\n", "X-Qlik-User: UserDirectory={mark}; UserId=b\r\n"), want: served},
		{name: "X-Qlik-Security with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Qlik-Security: Context=ManagementAccess; Group={mark}\r\n"), want: served},
		{name: "X-Qlik-Virtual-Proxy-Prefix with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Qlik-Virtual-Proxy-Prefix: {mark}\r\n"), want: served},
		{name: "X-Qlik-ProxySession with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Qlik-ProxySession: {mark}\r\n"), want: served},
		{name: "X-Forwarded-For with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Forwarded-For: {mark}\r\n"), want: served},
		{name: "X-Forwarded-Host with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Forwarded-Host: {mark}.example\r\n"), want: served},
		{name: "X-Forwarded-Proto with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Forwarded-Proto: {mark}\r\n"), want: served},
		{name: "X-Forwarded-Prefix with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Forwarded-Prefix: /{mark}\r\n"), want: served},
		{name: "X-Forwarded-Server with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Forwarded-Server: {mark}\r\n"), want: served},
		{name: "X_Forwarded_For with underscores", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X_Forwarded_For: {mark}\r\n"), want: served},
		{name: "Forwarded with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "Forwarded: for={mark};proto=http\r\n"), want: served},
		{name: "X-Real-IP with session", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "X-Real-IP: {mark}\r\n"), want: served},
		{name: "Connection names the identity header", raw: getWith("/hub/", "Cookie: {cookie}\r\n", "Connection: X-Qlik-User\r\n", "X-Qlik-User: UserDirectory={mark}; UserId=sa\r\n"), want: served},
		{name: "X-Qlik-User in a request trailer", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nTrailer: X-Qlik-User\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\nX-Qlik-User: UserDirectory={mark}; UserId=sa\r\n\r\n", want: served},

		// Path tricks: never leave the virtual proxy, never reach a path
		// the back end resolves differently.
		{name: "dot-dot out of the virtual proxy", raw: getWith("/sessionvp/../{mark}/", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "encoded dot-dot", raw: getWith("/sessionvp/%2e%2e/{mark}/", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "upper-case encoded dot-dot", raw: getWith("/sessionvp/%2E%2E/{mark}/", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "half-encoded dot-dot", raw: getWith("/sessionvp/.%2e/{mark}/", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "other half-encoded dot-dot", raw: getWith("/sessionvp/%2e./{mark}/", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "single dot segment", raw: getWith("/sessionvp/./{mark}/", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "dot-dot and encoded slash", raw: getWith("/sessionvp/hub/..%2f{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "encoded slash", raw: getWith("/sessionvp%2f{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "upper-case encoded slash", raw: getWith("/sessionvp/hub%2F{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "double slashes around dot-dot", raw: getWith("//sessionvp//..//{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "backslash dot-dot", raw: getWith("/sessionvp/..\\{mark}", "Cookie: {svcookie}\r\n"), want: []int{bad, 0}},
		{name: "encoded backslash", raw: getWith("/sessionvp/..%5c{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "semicolon parameter", raw: getWith("/sessionvp;x=1/{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "semicolon dot-dot (Tomcat)", raw: getWith("/sessionvp/..;/{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "overlong UTF-8 dots", raw: getWith("/sessionvp/%c0%ae%c0%ae/{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "three-byte overlong dot", raw: getWith("/sessionvp/%e0%80%ae%e0%80%ae/{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "overlong UTF-8 slash", raw: getWith("/sessionvp/hub%c0%af{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "double-encoded dot-dot", raw: getWith("/sessionvp/%252e%252e/{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "double-encoded slash", raw: getWith("/sessionvp/hub%252f{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "double-encoded percent", raw: getWith("/sessionvp/hub/%25252e{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "NUL byte", raw: getWith("/sessionvp/hub%00{mark}", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "CRLF header injection in the path", raw: getWith("/sessionvp/{mark}%0d%0aX-Qlik-User:%20x", "Cookie: {svcookie}\r\n"), want: refused},
		{name: "ZeroQlik resources to qrs", raw: getWith("/resources/qmc/fonts/../../../qrs/{mark}", "Cookie: {cookie}\r\n"), want: refused},
		{name: "ZeroQlik encoded", raw: getWith("/resources/qmc/fonts/%2e%2e/%2e%2e/%2e%2e/qrs/{mark}", "Cookie: {cookie}\r\n"), want: refused},
		{name: "ZeroQlik with encoded slashes", raw: getWith("/resources/..%2f..%2fqrs%2f{mark}", "Cookie: {cookie}\r\n"), want: refused},
		{name: "absolute-form request target", raw: getWith("http://evil.example/hub/{mark}", "Cookie: {cookie}\r\n"), want: refused},
		{name: "absolute-form https target", raw: getWith("https://{host}/hub/{mark}", "Cookie: {cookie}\r\n"), want: refused},
		{name: "asterisk target", raw: "GET * HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nX-Note: {mark}\r\n" + closing, want: refused},
		{name: "CONNECT tunnel", raw: "CONNECT {mark}.example:443 HTTP/1.1\r\nHost: {mark}.example:443\r\nCookie: {cookie}\r\n" + closing, want: []int{bad, http.StatusMethodNotAllowed}},
		{name: "TRACE reflects nothing", raw: "TRACE /hub/{mark} HTTP/1.1\r\nHost: {host}\r\n" + closing, want: []int{http.StatusUnauthorized, http.StatusMethodNotAllowed}},
		{name: "foreign Host gets no login redirect", raw: "GET /hub/{mark} HTTP/1.1\r\nHost: {mark}.evil.example\r\n" + closing, want: refused},
		{name: "two Host headers", raw: "GET /hub/{mark} HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\nCookie: {cookie}\r\n" + closing, want: refused},
		{name: "HTTP/0.9 request", raw: "GET /hub/{mark}\r\n\r\n", want: []int{bad, 0, http.StatusHTTPVersionNotSupported}},
		{name: "HTTP/2 preface over HTTP/1.1 TLS", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET /hub/{mark} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n" + closing, want: []int{bad, 0}},

		// Request smuggling and tunnelling: the front end and the back end
		// must never disagree on where a request ends.
		{name: "Content-Length and Transfer-Encoding together", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, want: reframed},
		{name: "Transfer-Encoding and Content-Length together", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n" + hidden, want: reframed},
		{name: "two different Content-Lengths", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n" + hidden, want: refused},
		{name: "Content-Length list", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Length: 0, 44\r\n\r\n" + hidden, want: refused},
		{name: "signed Content-Length", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Length: +4\r\n\r\nabcd" + hidden, want: refused},
		{name: "Transfer-Encoding xchunked", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + hidden, want: []int{bad, http.StatusNotImplemented}},
		{name: "Transfer-Encoding chunked, identity", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + hidden, want: []int{bad, http.StatusNotImplemented}},
		{name: "two Transfer-Encoding headers", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + hidden, want: []int{bad, http.StatusNotImplemented}},
		{name: "space before colon in Transfer-Encoding", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + hidden, want: refused},
		{name: "Transfer-Encoding on HTTP/1.0", raw: "POST /hub/ HTTP/1.0\r\nHost: {host}\r\nCookie: {cookie}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + hidden, want: reframed},
		{name: "bad chunk size", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n" + hidden, want: []int{bad, 0, http.StatusBadGateway}},
		{name: "request hidden in a body", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nContent-Length: " + fmt.Sprint(len(hidden)-3+len("zqatk000abcdef")) + "\r\nConnection: close\r\n\r\n" + hidden, want: served, markInBody: true},
		{name: "request hidden in a chunked body", raw: "POST /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + fmt.Sprintf("%x", inBodyLen) + "\r\n" + inBody + "\r\n0\r\n\r\n", want: served, markInBody: true},
		{name: "h2c upgrade smuggling", raw: getWith("/hub/{mark}", "Cookie: {cookie}\r\n", "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n"), want: refused},
		{name: "upgrade to a made-up protocol", raw: getWith("/hub/{mark}", "Cookie: {cookie}\r\n", "Upgrade: tls/1.3\r\nConnection: Upgrade\r\n"), want: refused},
		{name: "websocket upgrade the back end refuses opens no tunnel", raw: "GET /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" + "GET /hub/{mark} HTTP/1.1\r\nHost: {host}\r\n" + closing, want: served},
		{name: "pipelined request without cookie after one with", raw: "GET /hub/ HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n" + "GET /hub/{mark} HTTP/1.1\r\nHost: {host}\r\n" + closing, want: served},
		{name: "NUL in a header value", raw: getWith("/hub/{mark}", "Cookie: {cookie}\r\n", "X-Note: a\x00b\r\n"), want: refused},
		{name: "bare CR in a header value", raw: getWith("/hub/{mark}", "Cookie: {cookie}\r\n", "X-Note: a\rX-Qlik-User: b\r\n"), want: refused},
		{name: "headers larger than the limit", raw: getWith("/hub/{mark}", "Cookie: {cookie}\r\n", "X-Big: "+strings.Repeat("a", 20<<10)+"\r\n"), want: []int{http.StatusRequestHeaderFieldsTooLarge}},

		// Cross-site websocket hijacking: a page elsewhere opens a
		// websocket with the user's cookie.
		{name: "spoofed identity on a websocket upgrade", raw: getWith("/app/", "Cookie: {cookie}\r\n", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "X-Qlik-User: UserDirectory={mark}\r\nX_Qlik_Security: Group={mark}\r\nX-Forwarded-For: {mark}\r\nForwarded: for={mark}\r\n"), want: served},
		{name: "websocket from a foreign origin", raw: getWith("/app/{mark}", "Cookie: {cookie}\r\n", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Origin: https://evil.example\r\n"), want: forbidden},
		{name: "websocket from a look-alike origin", raw: getWith("/app/{mark}", "Cookie: {cookie}\r\n", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Origin: https://localhost.evil.example\r\n"), want: forbidden},
		{name: "websocket from an origin with userinfo", raw: getWith("/app/{mark}", "Cookie: {cookie}\r\n", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Origin: https://localhost@evil.example\r\n"), want: forbidden},
		{name: "websocket from the null origin", raw: getWith("/app/{mark}", "Cookie: {cookie}\r\n", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Origin: null\r\n"), want: forbidden},
		{name: "websocket from another scheme", raw: getWith("/app/{mark}", "Cookie: {cookie}\r\n", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Origin: http://evil.example:443\r\n"), want: forbidden},

		// Cookies.
		{name: "cookie of another virtual proxy", raw: getWith("/hub/{mark}", "Cookie: X-Qlik-Session={svid}\r\n"), setup: attackSessionVar("sessionvp", "{svid}"), want: redirect},
		{name: "cookie name of one VP, session of another", raw: getWith("/sessionvp/hub/{mark}", "Cookie: X-Qlik-Session-sessionvp={defid}\r\n"), setup: attackSessionVar("", "{defid}"), want: redirect},
		{name: "deleted session", raw: getWith("/hub/{mark}", "Cookie: X-Qlik-Session={gone}\r\n"), setup: attackDeletedSession, want: redirect},
		{name: "session ended by user logout", raw: getWith("/hub/{mark}", "Cookie: X-Qlik-Session={gone}\r\n"), setup: attackLoggedOutUser, want: redirect},
		{name: "expired session", raw: getWith("/sessionvp/hub/{mark}", "Cookie: X-Qlik-Session-sessionvp={old}\r\n"), setup: attackExpiredSession, want: redirect},
		{name: "10 KB cookie", raw: getWith("/hub/{mark}", "Cookie: X-Qlik-Session="+strings.Repeat("A", 10<<10)+"\r\n"), want: redirect},
		{name: "many cookies", raw: getWith("/hub/{mark}", "Cookie: "+attackManyCookies(300)+"\r\n"), want: redirect},
		{name: "quoted cookie value", raw: getWith("/hub/{mark}", "Cookie: X-Qlik-Session=\"\"\r\n"), want: redirect},
		{name: "cookie name with different case", raw: getWith("/hub/{mark}", "Cookie: x-qlik-session={defid}\r\n"), setup: attackSessionVar("", "{defid}"), want: redirect},
		{name: "session id prefix only", raw: getWith("/hub/{mark}", "Cookie: X-Qlik-Session={short}\r\n"), setup: attackSessionPrefix, want: redirect},
		{name: "session id with wildcard", raw: getWith("/hub/{mark}", "Cookie: X-Qlik-Session=*\r\n"), want: redirect},
		{name: "logout of someone else's session needs their cookie", raw: "DELETE /qps/user HTTP/1.1\r\nHost: {host}\r\nCookie: X-Qlik-Session=" + strings.Repeat("0", 32) + "\r\nX-Note: {mark}\r\n" + closing, want: []int{http.StatusNoContent}},

		// Tickets. A refused ticket on a navigation sends the browser to
		// log in again (without the ticket); elsewhere it is an error.
		{name: "replayed ticket", raw: getWith("/hub/{mark}?qlikTicket={ticket}"), setup: attackUsedTicket, want: redirect, check: attackToLogin},
		{name: "replayed ticket on a PUT", raw: putWith("/hub/{mark}?qlikTicket={ticket}"), setup: attackUsedTicket, want: []int{http.StatusUnauthorized}},
		{name: "expired ticket", raw: getWith("/hub/{mark}?qlikTicket={ticket}"), setup: attackExpiredTicket, want: redirect, check: attackToLogin},
		{name: "expired ticket on a PUT", raw: putWith("/hub/{mark}?qlikTicket={ticket}"), setup: attackExpiredTicket, want: []int{http.StatusUnauthorized}},
		{name: "ticket of another virtual proxy", raw: getWith("/hub/{mark}?qlikTicket={ticket}"), setup: attackTicketOf("sessionvp"), want: redirect, check: attackToLogin},
		{name: "ticket of another virtual proxy on a PUT", raw: putWith("/hub/{mark}?qlikTicket={ticket}"), setup: attackTicketOf("sessionvp"), want: []int{http.StatusForbidden}},
		{name: "guessed ticket, wrong length", raw: putWith("/hub/{mark}?qlikTicket=AAAA"), want: []int{http.StatusUnauthorized}},
		{name: "guessed ticket, wrong alphabet", raw: putWith("/hub/{mark}?qlikTicket=%00%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f"), want: []int{http.StatusUnauthorized, bad}},
		{name: "guessed ticket on a navigation", raw: getWith("/hub/{mark}?qlikTicket=" + strings.Repeat("A", 43)), want: redirect, check: attackToLogin},
		{name: "malformed ticket encoding", raw: putWith("/hub/{mark}?qlikTicket=%zz"), want: []int{bad}},
		{name: "empty ticket", raw: putWith("/hub/{mark}?qlikTicket="), want: []int{bad}},
		{name: "ticket in a POST without session", raw: "POST /hub/{mark}?QlikTicket=" + strings.Repeat("x", 43) + " HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n" + closing, want: []int{http.StatusUnauthorized}},
		{name: "ticket redirect stays on this host", raw: getWith("//evil.example/{mark}?qlikTicket={ticket}"), setup: attackTicketOf(""), want: []int{http.StatusFound},
			check: func(t *testing.T, resp *http.Response, _ string) {
				if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "//") || !strings.HasPrefix(loc, "/") {
					t.Errorf("Location %q leaves this host", loc)
				}
			}},

		// Open redirects.
		{name: "reloadUri to another host", raw: getWith("/hub/{mark}?reloadUri=https%3A%2F%2Fevil.example%2F"), want: refused},
		{name: "reloadUri protocol-relative", raw: getWith("/hub/{mark}?reloadUri=%2F%2Fevil.example%2F"), want: refused},
		{name: "reloadUri javascript", raw: getWith("/hub/{mark}?reloadUri=javascript%3Aalert(1)"), want: refused},
		{name: "reloadUri downgraded to plain http", raw: getWith("/hub/{mark}?reloadUri=http%3A%2F%2Flocalhost%2Fhub%2F"), want: refused},
		{name: "reloadUri on this host is allowed", raw: getWith("/hub/{mark}?reloadUri=https%3A%2F%2Flocalhost%2Fhub%2F"), want: redirect, check: attackToLogin},
		{name: "reloadUri with userinfo", raw: getWith("/hub/{mark}?reloadUri=https%3A%2F%2Flocalhost%40evil.example%2F"), want: refused},
		{name: "personal API targetUri to another host", raw: getWith("/qps/user?targetUri=https%3A%2F%2Fevil.example%2F{mark}"), want: served,
			check: func(t *testing.T, _ *http.Response, body string) {
				if strings.Contains(body, "evil.example") || strings.Contains(body, "loginUri") {
					t.Errorf("body offers a login for a foreign target: %s", body)
				}
			}},
		{name: "login redirect keeps the Host it trusts", raw: "GET /hub/{mark} HTTP/1.1\r\nHost: localhost.evil.example\r\n" + closing, want: refused},
	}
	return rows
}

// attackToLogin checks that a redirect goes to the login module and
// carries no ticket.
func attackToLogin(t *testing.T, resp *http.Response, _ string) {
	t.Helper()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, loginModuleURI+"?") || strings.Contains(strings.ToLower(loc), "qlikticket") {
		t.Errorf("Location %q, want the login module without the ticket", loc)
	}
}

func attackSessionVar(prefix, name string) func(*testing.T, *openqps) map[string]string {
	return func(t *testing.T, o *openqps) map[string]string {
		id := randomHex(16)
		o.addSession(t, prefix, "DOMAIN", "Victim", id)
		return map[string]string{name: id}
	}
}

func attackDeletedSession(t *testing.T, o *openqps) map[string]string {
	id := randomHex(16)
	o.addSession(t, "", "DOMAIN", "Victim", id)
	if _, err := o.API.DeleteSession(context.Background(), "", id); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"{gone}": id}
}

func attackLoggedOutUser(t *testing.T, o *openqps) map[string]string {
	id := randomHex(16)
	o.addSession(t, "", "DOMAIN", "Leaver", id)
	if _, err := o.API.LogoutUser(context.Background(), "", "DOMAIN", "Leaver"); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"{gone}": id}
}

// attackExpiredSession puts a session with a one-minute inactivity
// timeout straight into the store and lets it expire; the table's own
// sessions (30 minutes) outlive the two-minute jump.
func attackExpiredSession(t *testing.T, o *openqps) map[string]string {
	id := randomHex(16)
	now := o.Clock.Now()
	err := o.Store.Add(context.Background(), session.Session{Prefix: "sessionvp", ID: id, UserDirectory: "DOMAIN", UserID: "Sleeper",
		Created: now, LastUsed: now, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	o.Clock.Advance(2 * time.Minute)
	return map[string]string{"{old}": id}
}

func attackSessionPrefix(t *testing.T, o *openqps) map[string]string {
	id := randomHex(16)
	o.addSession(t, "", "DOMAIN", "Victim", id)
	return map[string]string{"{short}": id[:8]}
}

func attackManyCookies(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("X-Qlik-Session=%032x", i)
	}
	return strings.Join(parts, "; ")
}

func attackUsedTicket(t *testing.T, o *openqps) map[string]string {
	tk := o.ticketFor(t, "", "Victim")
	resp, _ := get(t, o.browser(t), o.frontURL("/hub/?qlikTicket="+tk))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("first redemption: %d", resp.StatusCode)
	}
	return map[string]string{"{ticket}": tk}
}

func attackExpiredTicket(t *testing.T, o *openqps) map[string]string {
	tk := o.ticketFor(t, "", "Victim")
	o.Clock.Advance(2 * time.Minute)
	return map[string]string{"{ticket}": tk}
}

func attackTicketOf(prefix string) func(*testing.T, *openqps) map[string]string {
	return func(t *testing.T, o *openqps) map[string]string {
		return map[string]string{"{ticket}": o.ticketFor(t, prefix, "Victim")}
	}
}

// frontTLS is a TLS configuration that trusts openqps's CA, speaking
// HTTP/1.1 only (the smuggling rows are HTTP/1.1 framing attacks).
func (o *openqps) frontTLS() *tls.Config {
	return &tls.Config{RootCAs: o.Certs.CAPool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
}

type attackAnswer struct {
	resp *http.Response
	body string
}

// attackSend writes raw to a fresh TLS connection and reads every answer
// until the server closes the connection (each row's last request says
// Connection: close, or the server closes after a refusal).
func attackSend(t *testing.T, addr string, cfg *tls.Config, raw string) []attackAnswer {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	var answers []attackAnswer
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatalf("the server neither answered nor closed the connection")
			}
			return answers
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers = append(answers, attackAnswer{resp, string(body)})
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return answers
		}
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// attackAPIRow is one attack on the trusted API.
type attackAPIRow struct {
	name   string
	method string
	path   string
	header []string // name, value pairs
	body   string
	// chunked sends the body without a Content-Length.
	chunked bool
	certs   func(t *testing.T, o *openqps) []tls.Certificate // nil: openqps's client certificate
	want    int                                              // 0: the TLS handshake must fail
	// after, when set, checks the store afterwards.
	after func(t *testing.T, o *openqps)
}

const attackXrf = "?xrfkey=abcdefghijklmnop"

func TestAttackTableAPI(t *testing.T) {
	o := start(t, nil)
	victim := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "Victim", victim)
	victimStillThere := func(t *testing.T, o *openqps) {
		t.Helper()
		s, err := o.API.GetSession(context.Background(), "sessionvp", victim)
		if err != nil || s == nil || s.UserId != "Victim" {
			t.Errorf("the victim's session changed: %+v, %v", s, err)
		}
	}
	noSessionsFor := func(user string) func(*testing.T, *openqps) {
		return func(t *testing.T, o *openqps) {
			t.Helper()
			for _, prefix := range []string{"", "sessionvp"} {
				list, err := o.API.UserSessions(context.Background(), prefix, "DOMAIN", user)
				if err != nil || len(list) != 0 {
					t.Errorf("sessions of %s in %q: %v, %v", user, prefix, list, err)
				}
			}
		}
	}
	xrf := []string{"X-Qlik-Xrfkey", "abcdefghijklmnop", "Content-Type", "application/json"}
	body := func(user, id string) string {
		return `{"UserDirectory":"DOMAIN","UserId":"` + user + `","SessionId":"` + id + `"}`
	}
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	rows := []attackAPIRow{
		{name: "no client certificate", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body("Mallory", randomHex(16)),
			certs: func(*testing.T, *openqps) []tls.Certificate { return nil }, after: noSessionsFor("Mallory")},
		{name: "certificate of another CA", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body("Mallory", randomHex(16)),
			certs: attackForeignCert, after: noSessionsFor("Mallory")},
		{name: "expired client certificate", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body("Mallory", randomHex(16)),
			certs: attackExpiredCert, after: noSessionsFor("Mallory")},
		{name: "server certificate as client certificate", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body("Mallory", randomHex(16)),
			certs: func(_ *testing.T, o *openqps) []tls.Certificate { return []tls.Certificate{o.Certs.Server} }, after: noSessionsFor("Mallory")},
		{name: "Xrfkey missing", method: "POST", path: "/qps/sessionvp/session", header: []string{"Content-Type", "application/json"}, body: body("Mallory", randomHex(16)), want: 403, after: noSessionsFor("Mallory")},
		{name: "Xrfkey only in the query", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: []string{"Content-Type", "application/json"}, body: body("Mallory", randomHex(16)), want: 403, after: noSessionsFor("Mallory")},
		{name: "Xrfkey only in the header", method: "POST", path: "/qps/sessionvp/session", header: xrf, body: body("Mallory", randomHex(16)), want: 403, after: noSessionsFor("Mallory")},
		{name: "Xrfkey mismatched", method: "POST", path: "/qps/sessionvp/session?xrfkey=ABCDEFGHIJKLMNOP", header: xrf, body: body("Mallory", randomHex(16)), want: 403, after: noSessionsFor("Mallory")},
		{name: "Xrfkey twice in the query", method: "POST", path: "/qps/sessionvp/session" + attackXrf + "&Xrfkey=0000000000000000", header: xrf, body: body("Mallory", randomHex(16)), want: 403, after: noSessionsFor("Mallory")},
		{name: "Xrfkey too short", method: "POST", path: "/qps/sessionvp/session?xrfkey=abc", header: []string{"X-Qlik-Xrfkey", "abc", "Content-Type", "application/json"}, body: body("Mallory", randomHex(16)), want: 403, after: noSessionsFor("Mallory")},
		{name: "Xrfkey with symbols", method: "POST", path: "/qps/sessionvp/session?xrfkey=abcdefgh%26jklmnop", header: []string{"X-Qlik-Xrfkey", "abcdefgh&jklmnop", "Content-Type", "application/json"}, body: body("Mallory", randomHex(16)), want: 403, after: noSessionsFor("Mallory")},
		{name: "body over 64 KB", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: `{"UserDirectory":"DOMAIN","UserId":"Mallory","SessionId":"` + randomHex(16) + `","Attributes":[{"a":"` + strings.Repeat("x", 70<<10) + `"}]}`, want: 413, after: noSessionsFor("Mallory")},
		{name: "chunked body over 64 KB", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, chunked: true, body: `{"UserDirectory":"DOMAIN","UserId":"Mallory","SessionId":"` + randomHex(16) + `","Attributes":[{"a":"` + strings.Repeat("x", 70<<10) + `"}]}`, want: 413, after: noSessionsFor("Mallory")},
		{name: "deeply nested JSON", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: deep, want: 400},
		{name: "nested JSON under the limit", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: strings.Repeat("[", 20000) + strings.Repeat("]", 20000), want: 400},
		{name: "nested attributes", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: `{"UserDirectory":"DOMAIN","UserId":"Mallory","SessionId":"` + randomHex(16) + `","Attributes":[{"a":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}]}`, want: 400, after: noSessionsFor("Mallory")},
		{name: "malformed JSON", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: `{"UserDirectory":"DOMAIN",`, want: 400},
		{name: "two JSON objects", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body("Mallory", randomHex(16)) + body("Mallory", randomHex(16)), want: 400, after: noSessionsFor("Mallory")},
		{name: "JSON null", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: `null`, want: 400},
		{name: "UserId as an object", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: `{"UserDirectory":"DOMAIN","UserId":{"$ne":1},"SessionId":"` + randomHex(16) + `"}`, want: 400},
		{name: "wrong content type", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: []string{"X-Qlik-Xrfkey", "abcdefghijklmnop", "Content-Type", "application/x-www-form-urlencoded"}, body: body("Mallory", randomHex(16)), want: 415, after: noSessionsFor("Mallory")},
		{name: "form post (CSRF shape)", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: []string{"X-Qlik-Xrfkey", "abcdefghijklmnop", "Content-Type", "text/plain"}, body: body("Mallory", randomHex(16)), want: 415, after: noSessionsFor("Mallory")},
		{name: "session id too short", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body("Mallory", "abc"), want: 400, after: noSessionsFor("Mallory")},
		{name: "session id with cookie syntax", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body("Mallory", randomHex(16)+"; Path=/"), want: 400, after: noSessionsFor("Mallory")},
		{name: "session id too long", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body("Mallory", strings.Repeat("a", 300)), want: 400, after: noSessionsFor("Mallory")},
		{name: "duplicate of another user's live session", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body("Mallory", victim), want: 409, after: victimStillThere},
		{name: "duplicate with another key case", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: `{"userdirectory":"DOMAIN","userid":"Mallory","sessionid":"` + victim + `"}`, want: 409, after: victimStillThere},
		{name: "UserId with a newline", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: body(`Mallory\r\nX-Qlik-User: x`, randomHex(16)), want: 400, after: noSessionsFor("Mallory")},
		{name: "UserDirectory with a backslash", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: `{"UserDirectory":"DOMAIN\\Admin","UserId":"Mallory","SessionId":"` + randomHex(16) + `"}`, want: 400, after: noSessionsFor("Mallory")},
		{name: "attribute with a control character", method: "POST", path: "/qps/sessionvp/session" + attackXrf, header: xrf, body: `{"UserDirectory":"DOMAIN","UserId":"Mallory","SessionId":"` + randomHex(16) + `","Attributes":[{"Group":"a\u0000b"}]}`, want: 400, after: noSessionsFor("Mallory")},
		{name: "delete a session through another virtual proxy", method: "DELETE", path: "/qps/session/" + victim + attackXrf, header: xrf, want: 404, after: victimStillThere},
		{name: "read a session through another virtual proxy", method: "GET", path: "/qps/session/" + victim + attackXrf, header: xrf, want: 200, after: victimStillThere},
		{name: "dot-dot in the API path", method: "DELETE", path: "/qps/x/../sessionvp/session/" + victim + attackXrf, header: xrf, want: 404, after: victimStillThere},
		{name: "encoded dot-dot in the API path", method: "DELETE", path: "/qps/%2e%2e/sessionvp/session/" + victim + attackXrf, header: xrf, want: 404, after: victimStillThere},
		{name: "encoded slash in a session id", method: "DELETE", path: "/qps/sessionvp/session/" + victim + "%2f.." + attackXrf, header: xrf, want: 404, after: victimStillThere},
		{name: "unknown virtual proxy", method: "POST", path: "/qps/nosuchvp/session" + attackXrf, header: xrf, body: body("Mallory", randomHex(16)), want: 404, after: noSessionsFor("Mallory")},
		{name: "ticket for an unknown virtual proxy", method: "POST", path: "/qps/nosuchvp/ticket" + attackXrf, header: xrf, body: `{"UserDirectory":"DOMAIN","UserId":"Mallory"}`, want: 404},
		{name: "ticket with a TargetId never issued", method: "POST", path: "/qps/sessionvp/ticket" + attackXrf, header: xrf, body: `{"UserDirectory":"DOMAIN","UserId":"Mallory","TargetId":"` + randomHex(16) + `"}`, want: 400},
		{name: "PUT overwrites nothing", method: "PUT", path: "/qps/sessionvp/session/" + victim + attackXrf, header: xrf, body: body("Mallory", victim), want: 405, after: victimStillThere},
		{name: "TRACE", method: "TRACE", path: "/qps/alive" + attackXrf, header: xrf, want: 405},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			certs := []tls.Certificate{o.Certs.Client}
			if row.certs != nil {
				certs = row.certs(t, o)
			}
			var rd io.Reader
			if row.body != "" {
				rd = strings.NewReader(row.body)
				if row.chunked {
					rd = io.MultiReader(rd) // hides the length: sent chunked
				}
			}
			req, err := http.NewRequest(row.method, o.apiURL(row.path), rd)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(row.header); i += 2 {
				req.Header.Set(row.header[i], row.header[i+1])
			}
			client := o.apiClient(certs...)
			defer client.CloseIdleConnections()
			resp, err := client.Do(req)
			switch {
			case row.want == 0 && err == nil:
				resp.Body.Close()
				t.Errorf("answered %d, want the TLS handshake refused", resp.StatusCode)
			case row.want != 0 && err != nil:
				t.Errorf("%v, want %d", err, row.want)
			case row.want != 0:
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != row.want {
					t.Errorf("status %d, want %d; body %.300s", resp.StatusCode, row.want, b)
				}
				if resp.StatusCode >= 400 && !strings.Contains(resp.Header.Get("Content-Type"), "application/json") {
					t.Errorf("rejection is %q, want JSON", resp.Header.Get("Content-Type"))
				}
			}
			if row.after != nil {
				row.after(t, o)
			}
		})
	}
	if n := len(o.Backend.requests()); n != 0 {
		t.Errorf("API attacks reached the back end %d times", n)
	}
}

func attackForeignCert(t *testing.T, _ *openqps) []tls.Certificate {
	foreign, _, err := pki.Ensure(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return []tls.Certificate{foreign.Client}
}

func attackExpiredCert(t *testing.T, o *openqps) []tls.Certificate {
	c, err := o.Certs.IssueClient("expired", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return []tls.Certificate{c}
}

// TestAttackSlowClientsAreCutOff: a client that trickles its headers or
// its body, or never finishes the TLS handshake, is disconnected after
// the configured timeouts, while other clients are served meanwhile.
func TestAttackSlowClientsAreCutOff(t *testing.T) {
	o := start(t, func(c *config.Config) {
		c.Timeouts.ReadHeader = 300 * time.Millisecond
		c.Timeouts.RequestBody = 300 * time.Millisecond
	})
	id := randomHex(16)
	o.addSession(t, "", "DOMAIN", "User1", id)
	slow := []struct {
		name string
		dial func() (net.Conn, error)
		send string
		want string // the answer, when the server gives one before closing
	}{
		{"no TLS handshake", func() (net.Conn, error) { return net.Dial("tcp", o.FrontendAddr) }, "", ""},
		{"headers never finished", func() (net.Conn, error) { return tls.Dial("tcp", o.FrontendAddr, o.frontTLS()) },
			"GET /hub/ HTTP/1.1\r\nHost: localhost\r\nCookie: X-Qlik-Session=" + id + "\r\nX-Slow: ", ""},
		{"API headers never finished", func() (net.Conn, error) {
			return tls.Dial("tcp", o.APIAddr, &tls.Config{RootCAs: o.Certs.CAPool, ServerName: "localhost", Certificates: []tls.Certificate{o.Certs.Client}})
		}, "POST /qps/session" + attackXrf + " HTTP/1.1\r\nHost: localhost\r\n", ""},
		{"API body never finished", func() (net.Conn, error) {
			return tls.Dial("tcp", o.APIAddr, &tls.Config{RootCAs: o.Certs.CAPool, ServerName: "localhost", Certificates: []tls.Certificate{o.Certs.Client}})
		}, "POST /qps/session" + attackXrf + " HTTP/1.1\r\nHost: localhost\r\nX-Qlik-Xrfkey: abcdefghijklmnop\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"UserDirectory\":", "HTTP/1.1 408"},
		{"front-end body never finished", func() (net.Conn, error) { return tls.Dial("tcp", o.FrontendAddr, o.frontTLS()) },
			"POST /hub/slowbody HTTP/1.1\r\nHost: localhost\r\nCookie: X-Qlik-Session=" + id + "\r\nContent-Length: 1000\r\n\r\nabc", "HTTP/1.1 408"},
	}
	for _, s := range slow {
		t.Run(s.name, func(t *testing.T) {
			conn, err := s.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, s.send); err != nil {
				t.Fatal(err)
			}
			// Meanwhile another browser is served.
			b := o.browser(t)
			o.setCookie(t, b, "X-Qlik-Session", id)
			if resp, body := get(t, b, o.frontURL("/hub/")); resp.StatusCode != http.StatusOK {
				t.Fatalf("a normal client while a slow one waits: %d %s", resp.StatusCode, body)
			}
			// The slow client is disconnected (perhaps after an error
			// answer) well before this deadline.
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			answer, err := io.ReadAll(conn)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("still connected after 10 s (answer so far %q)", answer)
			}
			if len(answer) > 0 && !bytes.HasPrefix(answer, []byte(s.want)) || s.want != "" && len(answer) == 0 {
				t.Errorf("answer %.200q, want %q", answer, s.want)
			}
		})
	}
	list, err := o.API.ListSessions(context.Background(), "")
	if err != nil || len(list) != 1 {
		t.Errorf("sessions after the slow API calls: %v, %v", list, err)
	}
	// Bodies stream: the back end has seen the head of the trickled
	// POST, and the front end answered 408 when the body stalled.
}

// TestAttackOverHTTP2: the same spoofing and path attacks over HTTP/2,
// where header names arrive in lower case and the path is a pseudo-header.
func TestAttackOverHTTP2(t *testing.T) {
	o := start(t, nil)
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		name, path string
		header     []string
		want       int
	}{
		{"spoofed identity", "/sessionvp/hub/", []string{"x-qlik-user", "UserDirectory={mark}; UserId=sa", "x_qlik_security", "Group={mark}", "x-forwarded-for", "{mark}"}, 200},
		{"encoded dot-dot", "/sessionvp/%2e%2e/{mark}", nil, 400},
		{"double-encoded dot-dot", "/sessionvp/%252e%252e/{mark}", nil, 400},
		{"encoded slash", "/sessionvp/hub%2f{mark}", nil, 400},
		{"semicolon", "/sessionvp/..;/{mark}", nil, 400},
		{"connection-specific headers", "/sessionvp/hub/", []string{"upgrade", "h2c-{mark}", "x-forwarded-host", "{mark}.example"}, 200},
	}
	for i, c := range cases {
		mark := fmt.Sprintf("zqh2%03d%s", i, randomHex(3))
		req, err := http.NewRequest(http.MethodGet, o.frontURL("/"), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = "" // keep the path exactly as written
		req.URL.RawPath = strings.ReplaceAll(c.path, "{mark}", mark)
		req.URL.Path, _ = url.PathUnescape(req.URL.RawPath)
		req.Header.Set("Cookie", "X-Qlik-Session-sessionvp="+id)
		for j := 0; j+1 < len(c.header); j += 2 {
			req.Header[c.header[j]] = []string{strings.ReplaceAll(c.header[j+1], "{mark}", mark)}
		}
		resp, err := client.Do(req)
		if err != nil {
			if c.want == 400 {
				continue // the client or server refused the frame itself
			}
			t.Fatalf("%s: %v", c.name, err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s: spoke %s, want HTTP/2", c.name, resp.Proto)
		}
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
		attackNeverReachedBackend(t, o, mark, false)
	}
}

// TestAttackErrorPagesLeakNothing: browsers get small HTML error pages,
// API clients JSON; neither names a back end's address or a stack.
func TestAttackErrorPagesLeakNothing(t *testing.T) {
	dead := listenLoopback(t)
	deadAddr := dead.Addr().String()
	dead.Close() // nothing listens here any more: the back end is down
	o := start(t, func(c *config.Config) {
		u, _ := url.Parse("http://" + deadAddr)
		c.VirtualProxies[1].Backends, c.VirtualProxies[1].BackendURLs = []string{u.String()}, []*url.URL{u}
	})
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	for _, c := range []struct {
		path, accept, wantType string
		want                   int
	}{
		{"/sessionvp/hub/", "text/html,application/xhtml+xml", "text/html", 0},
		{"/sessionvp/hub/", "application/json", "application/json", 0},
		{"/sessionvp/%2e%2e/qrs", "text/html", "text/html", http.StatusBadRequest},
		{"/sessionvp/qps/nothing", "text/html", "text/html", http.StatusNotFound},
	} {
		b := o.browser(t)
		o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
		resp, body := get(t, b, o.frontURL(c.path), "Accept", c.accept)
		status := resp.StatusCode
		if c.want == 0 && (status == http.StatusBadGateway || status == http.StatusServiceUnavailable) {
			status = 0 // the back end is down: 502 the first time, 503 once it is marked down
		}
		if status != c.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), c.wantType) {
			t.Errorf("%s (%s): %d %s, want %d %s", c.path, c.accept, resp.StatusCode, resp.Header.Get("Content-Type"), c.want, c.wantType)
		}
		if len(body) > 2048 || strings.Contains(body, deadAddr) || strings.Contains(body, "goroutine") || strings.Contains(body, "dial tcp") {
			t.Errorf("%s: the error page says too much: %q", c.path, body)
		}
	}
}

// TestBodyTimeoutSparesSlowAnswers: the body timeout bounds reading the
// request body only; a back end may take longer than it to answer a POST
// whose body arrived in time.
func TestBodyTimeoutSparesSlowAnswers(t *testing.T) {
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-time.After(900 * time.Millisecond) // a slow back end, three body timeouts long
		io.WriteString(w, "slow answer")
	})}
	ln := listenLoopback(t)
	go slow.Serve(ln)
	t.Cleanup(func() { slow.Close() })
	o := start(t, func(c *config.Config) {
		c.Timeouts.RequestBody = 300 * time.Millisecond
		u, _ := url.Parse("http://" + ln.Addr().String())
		c.VirtualProxies[0].Backends, c.VirtualProxies[0].BackendURLs = []string{u.String()}, []*url.URL{u}
	})
	id := randomHex(16)
	o.addSession(t, "", "DOMAIN", "User1", id)
	b := o.browser(t)
	b.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	o.setCookie(t, b, "X-Qlik-Session", id)
	req, _ := http.NewRequest(http.MethodPost, o.frontURL("/hub/upload"), io.MultiReader(strings.NewReader(`{"data":1}`))) // chunked: read to its end
	resp, body := do(t, b, req)
	if resp.StatusCode != http.StatusOK || body != "slow answer" {
		t.Errorf("POST to a slow back end: %d %q", resp.StatusCode, body)
	}
}

// TestAttackManyCookiesCostFewLookups: a header of hundreds of session
// cookies costs a handful of store lookups, not hundreds.
func TestAttackManyCookiesCostFewLookups(t *testing.T) {
	counting := &attackCountingStore{}
	o, _ := opsStart(t, func(s session.Store) session.Store { counting.Store = s; return counting })
	req, _ := http.NewRequest(http.MethodGet, o.frontURL("/hub/"), nil)
	req.Header.Set("Cookie", attackManyCookies(300))
	before := counting.gets.Load()
	resp, _ := do(t, o.browser(t), req)
	if resp.StatusCode != http.StatusFound {
		t.Errorf("status %d, want 302 to log in", resp.StatusCode)
	}
	if n := counting.gets.Load() - before; n > 4 {
		t.Errorf("300 cookies cost %d store lookups", n)
	}
}

type attackCountingStore struct {
	session.Store
	gets atomic.Int64
}

func (s *attackCountingStore) Get(ctx context.Context, prefix, id string) (session.Session, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, prefix, id)
}

package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/openqps/openqps/internal/session"
)

// FuzzCleanPath feeds arbitrary request targets, parsed as net/http
// parses them: a path that passes starts with one slash and holds no dot
// segment, backslash, semicolon, control character, percent escape or
// invalid UTF-8, and cleaning it again changes nothing.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/vp/hub/", "//vp//hub", "/vp/%2e%2e/qrs", "/vp/%252e%252e/", "/resources/a/../../qrs", "/vp;x/",
		"/vp/%c0%ae", "/vp/a%2fb", "/vp/%5c", "/vp/100%25", "/%00", "/vp/..", "/vp/.%2e/", "*", "http://evil/x", "/\u00e9t\u00e9/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		clean, err := cleanPath(u.Path, u.EscapedPath())
		if err != nil {
			return
		}
		if !strings.HasPrefix(clean, "/") || strings.Contains(clean, "//") || strings.ContainsAny(clean, "\\;\x00\r\n") ||
			!utf8.ValidString(clean) || hasDotSegment(clean) || hasPercentEscape(clean) {
			t.Fatalf("%q cleaned to %q", target, clean)
		}
		again, err := cleanPath(clean, (&url.URL{Path: clean}).EscapedPath())
		if err != nil || again != clean {
			t.Fatalf("%q: cleaning %q again gave %q, %v", target, clean, again, err)
		}
		first, rest := splitPrefix(clean)
		if strings.Contains(first, "/") || !strings.HasPrefix(rest, "/") {
			t.Fatalf("splitPrefix(%q) = %q, %q", clean, first, rest)
		}
	})
}

// FuzzCookies: the session cookie's values are never empty, and a Cookie
// header stripped of the session cookie no longer carries it.
func FuzzCookies(f *testing.F) {
	for _, s := range []string{"X-Qlik-Session=abc", "a=1; X-Qlik-Session=\"q\"; b=2", "X-Qlik-Session=; X-Qlik-Session=x",
		";;;", "X-Qlik-Session", " X-Qlik-Session = v ", "x-qlik-session=lower"} {
		f.Add(s)
	}
	const name = "X-Qlik-Session"
	f.Fuzz(func(t *testing.T, header string) {
		cookieValues([]string{header}, name, func(v string) bool {
			if v == "" {
				t.Fatalf("%q: empty session id", header)
			}
			return false
		})
		names := []string{name, name + "-HTTP"}
		for _, kept := range withoutSessionCookies([]string{header}, names) {
			cookieValues([]string{kept}, name, func(v string) bool {
				t.Fatalf("%q stripped to %q still carries %q", header, kept, v)
				return true
			})
			for _, pair := range strings.Split(kept, ";") {
				if isSessionCookie(pair, names) {
					t.Fatalf("%q stripped to %q still carries %q", header, kept, pair)
				}
			}
		}
	})
}

// FuzzQueryTicket: the ticket is found in any spelling, and the query
// left over never carries it.
func FuzzQueryTicket(f *testing.F) {
	for _, s := range []string{"qlikTicket=abc", "a=1&QlikTicket=x&b=2", "QLIKTICKET=1&qlikticket=2", "qlikTicket", "&&", "x=qlikTicket"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		_, rest, found := queryParamFold(query, "qlikticket")
		if !found && rest != query {
			t.Fatalf("%q: not found, yet changed to %q", query, rest)
		}
		for _, kv := range strings.Split(rest, "&") {
			k, _, _ := strings.Cut(kv, "=")
			if strings.EqualFold(k, "qlikticket") {
				t.Fatalf("%q: the rest %q still holds a ticket", query, rest)
			}
		}
	})
}

// FuzzIdentityHeaders: whatever a login module puts in a user or an
// attribute, X-Qlik-User and X-Qlik-Security carry no line break and no
// field the session does not have.
func FuzzIdentityHeaders(f *testing.F) {
	f.Add("DOMAIN", "User1", "Group", "Sales")
	f.Add("D", "x; UserDirectory=ROOT", "a=b; Group", "c\r\nX-Qlik-User: y")
	f.Add("\u00e9", "%41", ";", "=")
	f.Fuzz(func(t *testing.T, dir, user, key, value string) {
		s := session.Session{UserDirectory: dir, UserID: user, Attributes: []session.Attribute{{Key: key, Value: value}}}
		u, sec := userHeader(s), securityHeader(s)
		for _, h := range []string{u, sec} {
			if strings.ContainsAny(h, "\r\n\x00") {
				t.Fatalf("header %q", h)
			}
		}
		fields := strings.Split(u, "; ")
		if len(fields) != 2 || !strings.HasPrefix(fields[0], "UserDirectory=") || !strings.HasPrefix(fields[1], "UserId=") {
			t.Fatalf("X-Qlik-User %q has other fields", u)
		}
		got, err := url.PathUnescape(strings.TrimPrefix(fields[1], "UserId="))
		if err != nil || got != user {
			t.Fatalf("UserId %q decodes to %q, %v; want %q", fields[1], got, err, user)
		}
		if n := strings.Count(sec, ";"); n != 3 {
			t.Fatalf("X-Qlik-Security %q has %d fields, want 3", sec, n)
		}
	})
}

// FuzzReloadURI: a reloadUri that is accepted as the login target points
// at this proxy (its own host, a certificate name or the allow list), over
// https as the request came.
func FuzzReloadURI(f *testing.F) {
	for _, s := range []string{"/hub/", "https://localhost/hub", "https://evil.example/", "//evil.example/", "javascript:alert(1)",
		"https://localhost@evil.example/", "https://allowed.example:8443/x", "/\\evil.example", "https://LOCALHOST./", "http://[::1]/"} {
		f.Add(url.QueryEscape(s))
	}
	p := newTestProxy(f, `
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
virtual_proxies:
  - prefix: ""
    backends: ["http://127.0.0.1:1"]
    websocket_origin_allow_list: ["allowed.example"]
`, Options{Hosts: []string{"proxy.example"}})
	allowed := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "proxy.example": true, "allowed.example": true}
	f.Fuzz(func(t *testing.T, reload string) {
		r := httptest.NewRequest(http.MethodGet, "https://localhost/hub/", nil)
		r.URL.RawQuery = "reloadUri=" + reload
		rt := p.routes.Load()
		rq := &request{r: r, routes: rt, vp: rt.def, scheme: "https"}
		target, err := p.loginTarget(rq)
		if err != nil {
			return
		}
		u, perr := url.Parse(target)
		if perr != nil || u.Scheme != "https" || u.User != nil || !allowed[hostOnly(u.Host)] || strings.ContainsAny(target, "\\\r\n") {
			t.Fatalf("reloadUri %q accepted as %q", reload, target)
		}
	})
}

// FuzzWebsocketFrames feeds arbitrary bytes to the websocket frame copier:
// it never panics, always ends, and what it passes on is exactly what it
// was given, byte for byte, up to where the input stopped making sense.
func FuzzWebsocketFrames(f *testing.F) {
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x01, 0x83, 1, 2, 3, 4, 'a', 'b', 'c', 0x89, 0x00, 0x80, 0x01, 'x'})
	f.Add([]byte{0x82, 126, 0x00, 0x03, 1, 2, 3})
	f.Add([]byte{0x82, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0x88, 0x02, 0x03, 0xe8})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		var active atomic.Bool
		fc := &frameCopier{}
		err := fc.copy(w, bufio.NewReader(bytes.NewReader(in)), &active)
		w.Flush()
		if err == nil {
			t.Fatal("copy ended without an error")
		}
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("copied %x from %x", out.Bytes(), in)
		}
	})
}

// FuzzWebsocketOrigin: an Origin that may open a websocket over https is
// an https origin of one of this proxy's names or of the allow list, on
// the default port or the front end's own (8443 here): never another
// port, another scheme, or anything with more than scheme, host and port.
func FuzzWebsocketOrigin(f *testing.F) {
	for _, s := range []string{"https://proxy.example", "https://proxy.example:443", "http://proxy.example", "https://allowed.example:8443",
		"null", "https://proxy.example.evil", "https://proxy.example@evil", "https://PROXY.example", "file://", "https://[::1]:443",
		"https://localhost:31337", "https://proxy.example:+443", "https://proxy.example:0443", "https://proxy.example/", "https://proxy.example:"} {
		f.Add(s)
	}
	p := newTestProxy(f, `
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
virtual_proxies:
  - prefix: ""
    backends: ["http://127.0.0.1:1"]
    websocket_origin_allow_list: ["allowed.example"]
`, Options{Hosts: []string{"proxy.example"}, HTTPSPort: 8443})
	names := map[string]bool{"proxy.example": true, "allowed.example": true, "localhost": true, "127.0.0.1": true, "::1": true}
	f.Fuzz(func(t *testing.T, origin string) {
		r := httptest.NewRequest(http.MethodGet, "https://proxy.example/app/", nil)
		rt := p.routes.Load()
		rq := &request{r: r, routes: rt, vp: rt.def, scheme: "https"}
		if !rt.originAllowed(origin, rq) {
			return
		}
		u, err := url.Parse(origin)
		if err != nil || u.Scheme != "https" || u.Path != "" || u.User != nil || u.RawQuery != "" {
			t.Fatalf("origin %q allowed", origin)
		}
		port := u.Port()
		if !names[strings.ToLower(u.Hostname())] || (port != "" && port != "443" && port != "8443") {
			t.Fatalf("origin %q allowed", origin)
		}
	})
}

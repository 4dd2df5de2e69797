package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/openqps/openqps/internal/upstream"
)

// testRoutes are routes with a default virtual proxy and "sessionvp",
// for the session cookie names.
var testRoutes = &routes{sessionCookies: sessionCookieNames{"X-Qlik-Session", "X-Qlik-Session-HTTP", "X-Qlik-Session-sessionvp", "X-Qlik-Session-sessionvp-HTTP"}}

// proxyHeader is a client response header as the proxy may have filled it
// before forwarding: a session cookie just set, an additional header.
func proxyHeader() http.Header {
	return http.Header{"Set-Cookie": {"X-Qlik-Session=abc; Path=/; HttpOnly"}, "X-Frame-Options": {"DENY"}}
}

// TestBackendSessionCookiesAreDropped: a back end's Set-Cookie for any
// virtual proxy's session cookie, in whatever spelling a browser would
// give back under that name, is dropped on both response paths of both
// transports; its other cookies and the proxy's own session cookie stay.
func TestBackendSessionCookiesAreDropped(t *testing.T) {
	t.Parallel()
	dropped := []string{
		"X-Qlik-Session=x", "X-Qlik-Session-HTTP=x", "X-Qlik-Session-sessionvp=x; Path=/", "X-Qlik-Session-sessionvp-HTTP=x",
		"x-qlik-session=x", "X-QLIK-SESSION-sessionvp-http=x", " X-Qlik-Session =x", "X-Qlik-Session\t=x; Secure",
		"=X-Qlik-Session=x", " = X-Qlik-Session-sessionvp=x", "X-Qlik-Session", "=X-Qlik-Session-HTTP",
	}
	kept := []string{
		"app=1", "X-Qlik-Session-other=1", "X-Qlik-Session-sessionvpx=1", "X-Qlik-Session-HTTPS=1", "X-Qlik-Sessions=1",
		"a=X-Qlik-Session=1", "=a=X-Qlik-Session", "X-Qlik-Session-sessionvp-HTTP-HTTP=1",
	}
	for _, v := range dropped {
		if name := setCookieName(v); !testRoutes.isSessionCookieName(name) {
			t.Errorf("Set-Cookie: %s: name %q is taken for no session cookie", v, name)
		}
	}
	for _, v := range kept {
		if name := setCookieName(v); testRoutes.isSessionCookieName(name) {
			t.Errorf("Set-Cookie: %s: name %q is taken for a session cookie", v, name)
		}
	}
	head := "HTTP/1.1 200 OK\r\n"
	for _, v := range append(append([]string{}, dropped...), kept...) {
		head += "Set-Cookie: " + v + "\r\n"
	}
	want := append(proxyHeader()["Set-Cookie"], kept...)
	// A head with a length takes the transport's plain path, a chunked
	// one http.ReadResponse (or, through net/http, both take net/http's).
	answers := map[string]string{"plain": head + "Content-Length: 0\r\n\r\n", "general": head + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"}
	for _, kind := range transportKinds {
		u := upstream.New(upstream.Options{Kind: kind})
		t.Cleanup(u.CloseIdleConnections)
		for path, raw := range answers {
			addr := rawAnswer(t, raw)
			h := proxyHeader()
			resp, err := u.RoundTrip(t.Context(), &upstream.Request{Method: "GET", Scheme: "http", Host: addr, Target: "/", Into: h, Drop: testRoutes})
			if err != nil {
				t.Fatalf("%s, %s path: %v", kind, path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := h["Set-Cookie"]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s, %s path: Set-Cookie %q, want %q", kind, path, got, want)
			}
		}
	}
}

// transportKinds are the upstream transports the forwarding tests run
// through.
var transportKinds = []upstream.Kind{upstream.OpenQPS, upstream.NetHTTP}

// rawAnswer is the address of a back end that answers every request with
// raw, byte for byte.
func rawAnswer(t *testing.T, raw string) string {
	t.Helper()
	url := rawBackend(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, raw)
		}
	})
	return strings.TrimPrefix(url, "http://")
}

// rawBackend serves each connection with fn.
func rawBackend(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fn(c)
		}
	}()
	return "http://" + ln.Addr().String()
}

// FuzzSetCookieName: a cookie that a browser sends back (RFC 6265bis
// §5.6 parses Set-Cookie, §5.8.3 serialises the Cookie header) as one
// openqps reads as the session cookie N (cookieValues) is one
// setCookieName names N, so DropField drops it, whatever token
// N is.
func FuzzSetCookieName(f *testing.F) {
	for _, s := range []string{"a=1", "=X-Qlik-Session=1", " X-Qlik-Session =1; Path=/", "X-Qlik-Session", "==a=b", "\t=\t a = b;c=d", "\u00a0X-Qlik-Session=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if strings.ContainsAny(v, "\r\n\x00") {
			return // not in a header value
		}
		// The browser: the pair before ';', split at its first '=' (no
		// '=': a nameless cookie), both sides trimmed of spaces and tabs.
		pair, _, _ := strings.Cut(v, ";")
		name, value, found := strings.Cut(pair, "=")
		if !found {
			name, value = "", pair
		}
		name, value = strings.Trim(name, " \t"), strings.Trim(value, " \t")
		if name == "" && value == "" {
			return // ignored
		}
		sent := value
		if name != "" {
			sent = name + "=" + value
		}
		// openqps reading the Cookie header the browser sends.
		var readBack string
		cookieHeaderNames(sent, func(k string) { readBack = k })
		if !isToken(readBack) {
			return // session_cookie_name is a token (config checks it)
		}
		rt := &routes{sessionCookies: sessionCookieNames{readBack, readBack + "-HTTP"}}
		if got := setCookieName(v); !rt.isSessionCookieName(got) {
			t.Fatalf("Set-Cookie: %q comes back as %q, the cookie %q; setCookieName says %q", v, sent, readBack, got)
		}
	})
}

// cookieHeaderNames calls fn with the name under which cookieValues
// finds each cookie of a Cookie header h.
func cookieHeaderNames(h string, fn func(string)) {
	for _, part := range strings.Split(h, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		found := false
		cookieValues([]string{h}, k, func(string) bool { found = true; return true })
		if found && v != "" {
			fn(k)
		}
	}
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
	})
}

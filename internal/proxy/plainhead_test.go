package proxy

import (
	"bufio"
	"io"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	"github.com/openqps/openqps/internal/config"
)

// generalHead is what the general path makes of a response: http.ReadResponse,
// exchange's dropSessionCookies, then the copy forwardHTTP makes into the
// client's header h.
func generalHead(raw, method string, h http.Header) (*http.Response, string, error) {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	dropSessionCookies(resp.Header, testRoutes)
	if resp.Close {
		// ReadResponse drops a Connection header that says close, and with
		// it the names of the other hop-by-hop fields it lists, which RFC
		// 9110 §7.6.1 says a proxy removes (readPlainHead does).
		tp := textproto.NewReader(bufio.NewReader(strings.NewReader(raw)))
		tp.ReadLine() // the status line
		if mh, _ := tp.ReadMIMEHeader(); mh != nil {
			resp.Header["Connection"] = mh["Connection"]
		}
	}
	removeHopHeaders(resp.Header)
	for k, vv := range resp.Header {
		addBackendHeader(h, k, vv, false)
	}
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// testRoutes are routes with a default virtual proxy and "sessionvp",
// for the session cookie names.
var testRoutes = &routes{cfg: &config.Config{VirtualProxies: []config.VirtualProxy{
	{SessionCookieName: "X-Qlik-Session"}, {Prefix: "sessionvp", SessionCookieName: "X-Qlik-Session-sessionvp"},
}}}

// proxyHeader is a client response header as the proxy may have filled it
// before forwarding: a session cookie just set, an additional header.
func proxyHeader() http.Header {
	return http.Header{"Set-Cookie": {"X-Qlik-Session=abc; Path=/; HttpOnly"}, "X-Frame-Options": {"DENY"}}
}

func TestReadPlainHeadMatchesReadResponse(t *testing.T) {
	t.Parallel()
	plain := map[string]string{
		"go server":         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Fri, 27 Nov 2026 05:00:00 GMT\r\n\r\nhello",
		"no reason":         "HTTP/1.1 204\r\nContent-Length: 0\r\n\r\n",
		"lower-case names":  "HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nx-powered-by: Express\r\netag: W/\"3\"\r\n\r\nno!",
		"repeated fields":   "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nVary: Accept\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
		"proxy header kept": "HTTP/1.1 200 OK\r\nX-Frame-Options: SAMEORIGIN\r\nContent-Length: 2\r\n\r\nok",
		"hop by hop":        "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nProxy-Authenticate: x\r\nContent-Length: 2\r\n\r\nok",
		"connection close":  "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 4\r\n\r\noops",
		"spaces and tabs":   "HTTP/1.1 200 OK\r\nContent-Length:\t 2 \r\nX-Odd:   a \t b  \r\nX-Empty:\r\n\r\nok",
		"utf-8 value":       "HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename=\"b\xc3\xbccher.txt\"\r\nContent-Length: 0\r\n\r\n",
		"redirect":          "HTTP/1.1 302 Found\r\nLocation: /hub/\r\nContent-Length: 0\r\n\r\n",
		"not modified":      "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\nContent-Length: 0\r\n\r\n",
		"session cookies":   "HTTP/1.1 200 OK\r\nSet-Cookie: X-Qlik-Session=evil\r\nSet-Cookie: app=1\r\nset-cookie: =X-Qlik-Session-sessionvp-HTTP=evil\r\nContent-Length: 0\r\n\r\n",
	}
	for name, raw := range plain {
		t.Run(name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(raw))
			br.Peek(1)
			fast := proxyHeader()
			head, ok := readPlainHead(br, fast, testRoutes)
			if !ok {
				t.Fatal("readPlainHead left a plain response to http.ReadResponse")
			}
			body, _ := io.ReadAll(io.LimitReader(br, head.length))
			general := proxyHeader()
			resp, wantBody, err := generalHead(raw, http.MethodGet, general)
			if err != nil {
				t.Fatal(err)
			}
			if head.status != resp.StatusCode || head.length != resp.ContentLength || head.close != resp.Close || string(body) != wantBody {
				t.Errorf("status %d length %d close %v body %q; ReadResponse: %d %d %v %q",
					head.status, head.length, head.close, body, resp.StatusCode, resp.ContentLength, resp.Close, wantBody)
			}
			if !reflect.DeepEqual(fast, general) {
				t.Errorf("header\n%v\nReadResponse and the copy give\n%v", fast, general)
			}
		})
	}

	// Everything else is left for http.ReadResponse, unread.
	other := map[string]string{
		"chunked":            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"no length":          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n",
		"two lengths":        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
		"conflicting length": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
		"signed length":      "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
		"http/1.0":           "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"interim":            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"switching":          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"folded line":        "HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\nContent-Length: 0\r\n\r\n",
		"space before colon": "HTTP/1.1 200 OK\r\nX-Bad : a\r\nContent-Length: 0\r\n\r\n",
		"bare LF":            "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
		"control character":  "HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 0\r\n\r\n",
		"trailer":            "HTTP/1.1 200 OK\r\nTrailer: X-T\r\nContent-Length: 0\r\n\r\n",
		"not whole":          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
		"bad status":         "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
		"status 600":         "HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n",
		"too many fields":    "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: 1\r\n", maxPlainFields) + "Content-Length: 0\r\n\r\n",
	}
	for name, raw := range other {
		t.Run(name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(raw))
			br.Peek(1)
			h := proxyHeader()
			if _, ok := readPlainHead(br, h, testRoutes); ok {
				t.Fatal("readPlainHead took a response it must leave to http.ReadResponse")
			}
			if br.Buffered() != len(raw) || !reflect.DeepEqual(h, proxyHeader()) {
				t.Fatalf("readPlainHead consumed %d bytes or changed the header: %v", len(raw)-br.Buffered(), h)
			}
		})
	}
}

// FuzzPlainHead: whatever a back end sends, a head readPlainHead accepts
// is one http.ReadResponse reads the same way (status, length, close,
// the client's header), so the fast path never forwards what the general
// path would refuse or read differently.
func FuzzPlainHead(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\n\r\nok")
	f.Add("HTTP/1.1 204 No Content\r\nConnection: close, X-A\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nX-B:\t\r\nset-cookie: b=2\r\nSet-Cookie: c=3\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Frame-Options: x\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: X-Qlik-Session=1\r\nSet-Cookie: a=1\r\nSet-Cookie: = x-qlik-session-sessionvp-http=2\r\n\r\n")
	f.Fuzz(func(t *testing.T, raw string) {
		br := bufio.NewReader(strings.NewReader(raw))
		if _, err := br.Peek(1); err != nil {
			return
		}
		buffered := br.Buffered()
		fast := proxyHeader()
		head, ok := readPlainHead(br, fast, testRoutes)
		if !ok {
			if br.Buffered() != buffered || !reflect.DeepEqual(fast, proxyHeader()) {
				t.Fatalf("left to ReadResponse but consumed input or changed the header")
			}
			return
		}
		general := proxyHeader()
		resp, _, err := generalHead(raw, http.MethodGet, general)
		if err != nil && resp == nil {
			t.Fatalf("readPlainHead accepted a head http.ReadResponse refuses: %v\n%q", err, raw)
		}
		if head.status != resp.StatusCode || head.length != resp.ContentLength || head.close != resp.Close {
			t.Fatalf("status %d length %d close %v; ReadResponse: %d %d %v\n%q",
				head.status, head.length, head.close, resp.StatusCode, resp.ContentLength, resp.Close, raw)
		}
		if !reflect.DeepEqual(fast, general) {
			t.Fatalf("header\n%v\nReadResponse and the copy give\n%v\n%q", fast, general, raw)
		}
	})
}

// TestBackendSessionCookiesAreDropped: a back end's Set-Cookie for any
// virtual proxy's session cookie, in whatever spelling a browser would
// give back under that name, is dropped on both response paths; its other
// cookies and the proxy's own session cookie stay.
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
		if name := setCookieName(v); !testRoutes.isSessionCookie(name) {
			t.Errorf("Set-Cookie: %s: name %q is taken for no session cookie", v, name)
		}
	}
	for _, v := range kept {
		if name := setCookieName(v); testRoutes.isSessionCookie(name) {
			t.Errorf("Set-Cookie: %s: name %q is taken for a session cookie", v, name)
		}
	}
	raw := "HTTP/1.1 200 OK\r\n"
	for _, v := range append(append([]string{}, dropped...), kept...) {
		raw += "Set-Cookie: " + v + "\r\n"
	}
	raw += "Content-Length: 0\r\n\r\n"
	want := append(proxyHeader()["Set-Cookie"], kept...)
	br := bufio.NewReader(strings.NewReader(raw))
	br.Peek(1)
	fast := proxyHeader()
	if _, ok := readPlainHead(br, fast, testRoutes); !ok {
		t.Fatal("readPlainHead left the response to http.ReadResponse")
	}
	general := proxyHeader()
	if _, _, err := generalHead(raw, http.MethodGet, general); err != nil {
		t.Fatal(err)
	}
	for path, h := range map[string]http.Header{"fast": fast, "general": general} {
		if got := h["Set-Cookie"]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s path: Set-Cookie %q, want %q", path, got, want)
		}
	}
}

// FuzzSetCookieName: a cookie that a browser sends back (RFC 6265bis
// §5.6 parses Set-Cookie, §5.8.3 serialises the Cookie header) as one
// openqps reads as the session cookie N (cookieValues) is one
// setCookieName names N, so dropSessionCookies drops it, whatever token
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
		if !validHeaderName(readBack) {
			return // session_cookie_name is a token (config checks it)
		}
		rt := &routes{cfg: &config.Config{VirtualProxies: []config.VirtualProxy{{SessionCookieName: readBack}}}}
		if got := setCookieName(v); !rt.isSessionCookie(got) {
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

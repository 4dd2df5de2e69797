package upstream

import (
	"bufio"
	"io"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
)

// sessionCookies is a Filter as the front end's: it drops a Set-Cookie
// that names a session cookie (here: one that mentions X-Qlik-Session,
// any case).
type sessionCookies struct{}

func (sessionCookies) DropField(k, v string) bool {
	return k == "Set-Cookie" && strings.Contains(strings.ToLower(v), "x-qlik-session")
}

var testFilter Filter = sessionCookies{}

// generalHead is what the general path makes of a response: http.ReadResponse,
// then the
// filter, the hop-by-hop fields removed and the copy into the caller's
// header h (finishHeader).
func generalHead(raw, method string, h http.Header) (*http.Response, string, error) {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	dropFields(resp.Header, testFilter)
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
	RemoveHopByHop(resp.Header)
	for k, vv := range resp.Header {
		addField(h, k, vv, false)
	}
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

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
			head, ok := readPlainHead(br, fast, testFilter)
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
			if _, ok := readPlainHead(br, h, testFilter); ok {
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
		head, ok := readPlainHead(br, fast, testFilter)
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

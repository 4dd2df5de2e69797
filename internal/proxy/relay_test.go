package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/upstream"
)

// frontEnd serves a Proxy for one virtual proxy "vp" in front of h, with
// one session whose cookie it returns.
func frontEnd(t *testing.T, h http.Handler) (url, cookie string) {
	t.Helper()
	backend := httptest.NewServer(h)
	t.Cleanup(backend.Close)
	return frontEndTo(t, backend.URL)
}

func frontEndTo(t *testing.T, backendURL string) (url, cookie string) {
	t.Helper()
	return frontEndWith(t, backendURL, Options{APIPort: 4243})
}

func frontEndWith(t *testing.T, backendURL string, opts Options) (url, cookie string) {
	t.Helper()
	cfg, err := config.Parse([]byte(testTransport() + "store: {type: memory}\nvirtual_proxies:\n  - prefix: vp\n    backends: [\"" + backendURL + "\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	store := session.NewMemory()
	t.Cleanup(func() { store.Close() })
	id := session.NewID()
	if err := store.Add(context.Background(), session.Session{Prefix: "vp", ID: id, UserDirectory: "D", UserID: "u", Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)), opts)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return front.URL, "X-Qlik-Session-vp-HTTP=" + id // plain HTTP: QPS's -HTTP cookie
}

// testTransport is the transport section of the front-end tests'
// configurations: the defaults, or the upstream transport and raw sockets
// OPENQPS_TEST_UPSTREAM and OPENQPS_TEST_RAW_SOCKETS name. scripts/test.sh
// runs the forwarding tests a second time with net/http and raw sockets
// off.
func testTransport() string {
	return "transport: {upstream: " + envOr("OPENQPS_TEST_UPSTREAM", config.UpstreamOpenQPS) +
		", raw_sockets: " + envOr("OPENQPS_TEST_RAW_SOCKETS", config.On) + "}\n"
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

// TestForwardingGoesThroughTheConfiguredTransport: the switch reaches the
// virtual proxies' transports, so the forwarding tests run through the
// transport they say.
func TestForwardingGoesThroughTheConfiguredTransport(t *testing.T) {
	for _, kind := range transportKinds {
		cfg, err := config.Parse([]byte("transport: {upstream: " + string(kind) + "}\nvirtual_proxies:\n  - prefix: vp\n    backends: [\"http://127.0.0.1:1\"]\n"))
		if err != nil {
			t.Fatal(err)
		}
		store := session.NewMemory()
		t.Cleanup(func() { store.Close() })
		p, err := New(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		if got := p.routes.Load().vpByPrefix("vp").upstream.Kind(); got != kind {
			t.Errorf("transport.upstream %s: the virtual proxy forwards through %s", kind, got)
		}
	}
}

func TestForwardDropsHopByHopHeadersBothWays(t *testing.T) {
	var seen http.Header
	url, cookie := frontEnd(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "1")
		w.Header().Set("X-Kept", "yes")
		if r.URL.Path == "/chunked" { // no length: the general response path
			w.Write([]byte("part"))
			w.(http.Flusher).Flush()
		}
	}))
	for _, path := range []string{"/vp/x", "/vp/chunked"} {
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Header.Set("Cookie", cookie+"; theme=dark")
		req.Header.Set("Connection", "X-Client-Hop")
		req.Header.Set("X-Client-Hop", "1")
		req.Header.Set("Forwarded", "for=10.0.0.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if seen.Get("X-Client-Hop") != "" || seen.Get("Forwarded") != "" {
			t.Errorf("%s: hop-by-hop or forwarding headers reached the back end: %v", path, seen)
		}
		if seen.Get("Cookie") != "theme=dark" {
			t.Errorf("%s: Cookie %q", path, seen.Get("Cookie"))
		}
		if resp.Header.Get("X-Secret-Hop") != "" || resp.Header.Get("X-Kept") != "yes" {
			t.Errorf("%s: response headers %v", path, resp.Header)
		}
	}
}

func TestForwardStreamsEventsAsTheyCome(t *testing.T) {
	next := make(chan struct{})
	url, cookie := frontEnd(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next // the second event waits until the client saw the first
		io.WriteString(w, "data: two\n\n")
	}))
	req, _ := http.NewRequest("GET", url+"/vp/events", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, _ := br.ReadString('\n'); line != "data: one\n" {
		t.Fatalf("first event %q", line)
	}
	close(next)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: two") {
		t.Errorf("second event %q", rest)
	}
}

func TestForwardPassesBodiesAndTrailers(t *testing.T) {
	url, cookie := frontEnd(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "echo:"+string(b))
		w.Header().Set("X-Checksum", "abc")
	}))
	req, _ := http.NewRequest("POST", url+"/vp/upload", strings.NewReader(strings.Repeat("x", 100000)))
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) != 100005 || resp.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("body %d bytes, trailer %v", len(body), resp.Trailer)
	}
}

func TestForwardToDeadBackendIs502(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // its port now refuses connections
	url, cookie := frontEndTo(t, dead.URL)
	req, _ := http.NewRequest("GET", url+"/vp/x", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "back end unavailable") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

func TestSpoofableHeaders(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Qlik-User": true, "x-qlik-security": true, "X_Qlik_User": true, "X-Qlik_Virtual-Proxy-Prefix": true,
		"X-Forwarded-For": true, "X_Forwarded_Host": true, "Forwarded": true, "X-Real-Ip": true,
		"X-Qlik": false, "Accept": false, "X-Qlikuser": false, "X-Requested-With": false,
	} {
		if got := spoofable(name); got != want {
			t.Errorf("spoofable(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestWriteHeadMatchesOutboundHeader holds the fast path (writeHead, the
// client's headers filtered straight onto the wire) to the general one
// (outboundHeader's map written by Request.Write): a back end reading
// either gets the same request, whatever the client sent.
func TestWriteHeadMatchesOutboundHeader(t *testing.T) {
	vp := &virtualProxy{cfg: &config.VirtualProxy{Prefix: "vp"}, cookieName: "X-Qlik-Session-vp", cookieNameHTTP: "X-Qlik-Session-vp-HTTP"}
	rt := &routes{hosts: map[string]bool{"front.example": true}, publicHost: "public.example",
		sessionCookies:    []string{"X-Qlik-Session-vp", "X-Qlik-Session-vp-HTTP", "X-Qlik-Session", "X-Qlik-Session-HTTP"},
		credentialHeaders: map[string]bool{"X-Remote-User": true}}
	sess := session.Session{Prefix: "vp", ID: "s1", UserDirectory: "D", UserID: "u; UserId=admin",
		Attributes: []session.Attribute{{Key: "Group", Value: "Sales"}}}
	cases := map[string]func(r *http.Request){
		"plain":               func(r *http.Request) {},
		"head":                func(r *http.Request) { r.Method = http.MethodHead },
		"no user agent":       func(r *http.Request) { delete(r.Header, "User-Agent") },
		"empty user agent":    func(r *http.Request) { r.Header["User-Agent"] = []string{""} },
		"user agent repeats":  func(r *http.Request) { r.Header["User-Agent"] = []string{"first", "second"} },
		"spoofed identity":    func(r *http.Request) { r.Header["X-Qlik-User"] = []string{"UserDirectory=X; UserId=admin"} },
		"spoofed underscores": func(r *http.Request) { r.Header["X_qlik_user"] = []string{"admin"} },
		"spoofed forwarding": func(r *http.Request) {
			r.Header["X-Forwarded-For"] = []string{"10.0.0.1"}
			r.Header["Forwarded"] = []string{"for=x"}
		},
		"session cookie only": func(r *http.Request) { r.Header["Cookie"] = []string{"X-Qlik-Session-vp-HTTP=s1"} },
		"other cookies kept":  func(r *http.Request) { r.Header["Cookie"] = []string{"a=1; X-Qlik-Session-vp-HTTP=s1;b=2", "c=3"} },
		"https cookie name":   func(r *http.Request) { r.Header["Cookie"] = []string{"X-Qlik-Session-vp=s1; a=1"} },
		"other VPs' cookies":  func(r *http.Request) { r.Header["Cookie"] = []string{"X-Qlik-Session=s2; a=1; x-qlik-session-http=s3"} },
		"credential header":   func(r *http.Request) { r.Header["X-Remote-User"] = []string{"admin"} },
		"underscore aliases": func(r *http.Request) {
			r.Header["Transfer_encoding"] = []string{"chunked"}
			r.Header["Content_length"] = []string{"5"}
			r.Header["X_remote_user"] = []string{"admin"}
			r.Header["Proxy_authorization"] = []string{"x"}
			r.Header["Accept_language"] = []string{"en"} // kept
		},
		"foreign host":   func(r *http.Request) { r.Host = "evil.example" },
		"host with port": func(r *http.Request) { r.Host = "front.example:8443" },
		"odd query":      func(r *http.Request) { r.URL.RawQuery = `q="x"<y>#z&%zz` },
		"connection names": func(r *http.Request) {
			r.Header["Connection"] = []string{"keep-alive, x-hop , Cookie"}
			r.Header["X-Hop"] = []string{"1"}
		},
		"connection identity": func(r *http.Request) { r.Header["Connection"] = []string{"X-Qlik-User,X-Forwarded-Proto"} },
		"hop by hop": func(r *http.Request) {
			r.Header["Keep-Alive"] = []string{"300"}
			r.Header["Proxy-Authorization"] = []string{"x"}
		},
		"te trailers":           func(r *http.Request) { r.Header["Te"] = []string{"gzip, Trailers"} },
		"te other":              func(r *http.Request) { r.Header["Te"] = []string{"gzip"} },
		"framing headers":       func(r *http.Request) { r.Header["Content-Length"] = []string{"0"}; r.Header["Host"] = []string{"evil"} },
		"line breaks in values": func(r *http.Request) { r.Header["Accept"] = []string{" a\r\nInjected: 1\rb\n "} },
		"invalid name":          func(r *http.Request) { r.Header["Bad Name"] = []string{"x"} },
		"repeated values":       func(r *http.Request) { r.Header["Accept"] = []string{"a", "b", "c"} },
		"no remote address":     func(r *http.Request) { r.RemoteAddr = "" },
		"https":                 func(r *http.Request) { r.TLS = &tls.ConnectionState{} },
	}
	capture := newHeadCapture(t)
	openqpsTransport, netHTTPTransport := upstream.New(upstream.Options{}), upstream.New(upstream.Options{Kind: upstream.NetHTTP})
	t.Cleanup(openqpsTransport.CloseIdleConnections)
	t.Cleanup(netHTTPTransport.CloseIdleConnections)
	backend := &url.URL{Scheme: "http", Host: capture.addr, Path: "/base/"}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			in := httptest.NewRequest(http.MethodGet, "http://front.example/vp/hub/a%20b?x=1&y=%2F", nil)
			in.Header = http.Header{"User-Agent": {"bench"}, "Accept": {"*/*"}, "Cookie": {"theme=dark; X-Qlik-Session-vp-HTTP=s1"}}
			change(in)
			rq := &request{r: in, routes: rt, vp: vp, path: "/hub/a b", scheme: "http", session: sess}
			if in.TLS != nil {
				rq.scheme = "https"
			}
			target, ok := headTarget(rq, backend, upstreamQuery(in.URL.RawQuery))
			if !ok {
				t.Fatal("headTarget refused a plain GET")
			}
			// The fast path (Fields, no header), the general one (the
			// header outboundHeader builds, through Request.Write), and
			// Fields through net/http, as the back end receives them.
			fastReq := upstream.Request{Method: in.Method, Scheme: "http", Host: backend.Host, Target: target, Fields: rq}
			fast := bytes.NewBuffer(capture.sent(t, openqpsTransport, &fastReq))
			u := url.URL{Path: singleJoin(backend.Path, rq.path), RawQuery: upstreamQuery(in.URL.RawQuery)}
			generalReq := upstream.Request{Method: in.Method, Scheme: "http", Host: backend.Host, Target: u.RequestURI(), Header: outboundHeader(in, rq)}
			general := bytes.NewBuffer(capture.sent(t, openqpsTransport, &generalReq))
			if std := capture.sent(t, netHTTPTransport, &fastReq); !bytes.Equal(std, general.Bytes()) {
				// net/http writes the fields in sorted order, as
				// Request.Write does: the same bytes.
				t.Errorf("Fields through net/http sent\n%s\nthe general path sends\n%s", std, general)
			}

			fr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(fast.Bytes())))
			if err != nil {
				t.Fatalf("writeHead wrote what a server cannot read: %v\n%s", err, fast.String())
			}
			gr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(general.Bytes())))
			if err != nil {
				t.Fatalf("Request.Write wrote what a server cannot read: %v\n%s", err, general.String())
			}
			if fr.Method != gr.Method || fr.RequestURI != gr.RequestURI || fr.Host != gr.Host ||
				fr.ContentLength != gr.ContentLength || !reflect.DeepEqual(sortedValues(fr.Header), sortedValues(gr.Header)) {
				t.Errorf("writeHead sent\n%s\nthe general path sends\n%s", fast.String(), general.String())
			}
			if fr.Header.Get("X-Qlik-User") != userHeader(sess) || strings.Contains(strings.ToLower(fast.String()), "x-qlik-session") {
				t.Errorf("identity wrong or a session cookie passed on in\n%s", fast.String())
			}
			for _, name := range []string{"X-Remote-User", "Transfer_encoding", "Content_length", "X_remote_user", "Proxy_authorization"} {
				if _, ok := fr.Header[name]; ok {
					t.Errorf("%s passed on in\n%s", name, fast.String())
				}
			}
			if h := fr.Header.Get("X-Forwarded-Host"); h != "front.example" && h != "front.example:8443" && h != "public.example" || in.Host == "evil.example" && h != "public.example" {
				t.Errorf("X-Forwarded-Host %q for Host %q", h, in.Host)
			}
			line, _, _ := strings.Cut(fast.String(), "\r\n")
			_, target, _ = strings.Cut(strings.TrimSuffix(line, " HTTP/1.1"), " ")
			if strings.ContainsAny(target, "\"<>#{} ") {
				t.Errorf("request line %q", line)
			}
		})
	}
}

// headCapture is a back end that records the head of each request it
// gets, byte for byte, and answers it with an empty 200.
type headCapture struct {
	addr  string
	heads chan []byte
}

func newHeadCapture(t *testing.T) *headCapture {
	c := &headCapture{heads: make(chan []byte, 1)}
	c.addr = strings.TrimPrefix(rawBackend(t, func(conn net.Conn) {
		defer conn.Close()
		var head bytes.Buffer
		br := bufio.NewReader(io.TeeReader(conn, &head))
		for {
			head.Reset() // the client waits for each answer: nothing of the next request is buffered
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			c.heads <- bytes.Clone(head.Bytes())
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	}), "http://")
	return c
}

// sent is the head u sends for r.
func (c *headCapture) sent(t *testing.T, u *upstream.Transport, r *upstream.Request) []byte {
	t.Helper()
	resp, err := u.RoundTrip(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return <-c.heads
}

// sortedValues is h with each header's values in order, as the order of
// repeated headers differs between two map iterations.
func sortedValues(h http.Header) http.Header {
	out := http.Header{}
	for k, vv := range h {
		vv = slices.Clone(vv)
		slices.Sort(vv)
		out[k] = vv
	}
	return out
}

// TestBackendCookiesJoinTheSessionCookie: when openqps starts a session on
// a forwarded request (here an anonymous one) and the back end sets
// cookies of its own, the browser gets all of them, whether the back
// end's answer takes the fast path (a length) or the general one
// (chunked).
func TestBackendCookiesJoinTheSessionCookie(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "app=1; Path=/")
		w.Header().Add("Set-Cookie", "lang=en; Path=/")
		if r.URL.Path == "/chunked" {
			w.Write([]byte("part "))
			w.(http.Flusher).Flush()
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	cfg, err := config.Parse([]byte("store: {type: memory}\nvirtual_proxies:\n  - prefix: vp\n    anonymous_access: always\n    backends: [\"" + backend.URL + "\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	store := session.NewMemory()
	t.Cleanup(func() { store.Close() })
	p, err := New(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{APIPort: 4243})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	for _, path := range []string{"/vp/plain", "/vp/chunked"} {
		resp, err := http.Get(front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		names := map[string]bool{}
		for _, c := range resp.Cookies() {
			names[c.Name] = true
		}
		if resp.StatusCode != http.StatusOK || !names["X-Qlik-Session-vp-HTTP"] || !names["app"] || !names["lang"] {
			t.Errorf("%s: %d, cookies %v; want the session cookie, app and lang", path, resp.StatusCode, resp.Header["Set-Cookie"])
		}
	}
}

// TestStalledClientIsCutOff: a client that stops reading a large
// response is cut off after the stall timeout, and the back-end
// connection with it, instead of holding both for ever.
func TestStalledClientIsCutOff(t *testing.T) {
	backendDone := make(chan error, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil { // fails once openqps drops the connection
				backendDone <- err
				return
			}
		}
	}))
	defer backend.Close()
	front, cookie := frontEndWith(t, backend.URL, Options{APIPort: 4243, StallTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /vp/big HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n\r\n", cookie)
	if _, err := c.Read(make([]byte, 100)); err != nil { // the answer began; then the client reads no more
		t.Fatal(err)
	}
	select {
	case <-backendDone:
	case <-time.After(10 * time.Second):
		t.Fatal("openqps still holds the response 10 s after the client stopped reading; want it cut off after 100 ms")
	}
}

// TestRefusedAnswerIsA502AndOneLogLine: a back end that overruns a head
// bound costs the user a 502 whose body names the bound, and the log one
// line; the connection is closed.
func TestRefusedAnswerIsA502AndOneLogLine(t *testing.T) {
	for _, kind := range transportKinds {
		t.Run(string(kind), func(t *testing.T) { refusedAnswerIsA502AndOneLogLine(t, kind) })
	}
}

func refusedAnswerIsA502AndOneLogLine(t *testing.T, kind upstream.Kind) {
	hungUp := make(chan struct{})
	url := rawBackend(t, func(conn net.Conn) {
		defer close(hungUp)
		defer conn.Close()
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", upstream.MaxResponseHeadBytes)+"\r\nContent-Length: 2\r\n\r\nok")
		io.Copy(io.Discard, conn) // until openqps closes the connection
	})
	cfg, err := config.Parse([]byte("transport: {upstream: " + string(kind) + "}\nstore: {type: memory}\nvirtual_proxies:\n  - prefix: vp\n    backends: [\"" + url + "\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	store := session.NewMemory()
	t.Cleanup(func() { store.Close() })
	id := session.NewID()
	store.Add(t.Context(), session.Session{Prefix: "vp", ID: id, UserDirectory: "D", UserID: "u", Timeout: time.Hour})
	var logged bytes.Buffer
	p, err := New(cfg, store, slog.New(slog.NewTextHandler(&logged, nil)), Options{APIPort: 4243})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	req := httptest.NewRequest("GET", "http://proxy.example/vp/hub/", nil)
	req.RequestURI = "/vp/hub/" // origin form, as a client sends it: an absolute target is refused
	req.Header.Set("Cookie", "X-Qlik-Session-vp-HTTP="+id)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, req)
	var body struct{ Error, Detail string }
	json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != http.StatusBadGateway || !strings.Contains(body.Detail, fmt.Sprint(upstream.MaxResponseHeadBytes)) {
		t.Errorf("got %d %q, want 502 naming the bound", w.Code, w.Body)
	}
	if lines := strings.Split(strings.TrimSpace(logged.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "back end answer refused") {
		t.Errorf("log:\n%s\nwant one line about the refused answer", logged.String())
	}
	select {
	case <-hungUp:
	case <-time.After(10 * time.Second):
		t.Error("the connection to the back end stayed open")
	}
}

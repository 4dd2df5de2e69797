package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

func get(t *testing.T, u *upstream, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := u.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestUpstreamReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, "got "+string(b))
			return
		}
		if r.URL.Path == "/chunked" {
			w.Write([]byte("part1 "))
			w.(http.Flusher).Flush()
			w.Write([]byte("part2"))
			return
		}
		io.WriteString(w, "hello "+r.URL.Path)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	u := newUpstream()
	defer u.CloseIdleConnections()

	for i := 0; i < 5; i++ {
		if _, body := get(t, u, "GET", srv.URL+"/a", nil); body != "hello /a" {
			t.Fatalf("body %q", body)
		}
	}
	if _, body := get(t, u, "GET", srv.URL+"/chunked", nil); body != "part1 part2" {
		t.Fatalf("chunked body %q", body)
	}
	if _, body := get(t, u, "POST", srv.URL+"/p", strings.NewReader("payload")); body != "got payload" {
		t.Fatalf("post body %q", body)
	}
	if resp, body := get(t, u, "HEAD", srv.URL+"/a", nil); resp.StatusCode != 200 || body != "" {
		t.Fatalf("HEAD %d %q", resp.StatusCode, body)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for sequential requests, want 1 kept alive", n)
	}
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

func TestUpstreamRetriesWhenIdleConnectionWasClosed(t *testing.T) {
	var n atomic.Int32
	url := rawBackend(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		n.Add(1)
		// Answer once, keep-alive promised, then close: the next request
		// on this connection finds it dead.
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	u := newUpstream()
	defer u.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		if _, body := get(t, u, "GET", url+"/", nil); body != "ok" {
			t.Fatalf("GET %d: %q", i, body)
		}
		if _, body := get(t, u, "POST", url+"/", strings.NewReader("x")); body != "ok" {
			t.Fatalf("POST %d: %q", i, body)
		}
	}
	if n.Load() != 6 {
		t.Errorf("back end answered %d requests, want 6", n.Load())
	}
}

func TestUpstreamCloseDelimitedBodyIsNotReused(t *testing.T) {
	var conns atomic.Int32
	url := rawBackend(t, func(c net.Conn) {
		conns.Add(1)
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil close")
	})
	u := newUpstream()
	defer u.CloseIdleConnections()
	for i := 0; i < 2; i++ {
		if _, body := get(t, u, "GET", url+"/", nil); body != "until close" {
			t.Fatalf("body %q", body)
		}
	}
	if conns.Load() != 2 {
		t.Errorf("%d connections, want 2 (no reuse after a close-delimited body)", conns.Load())
	}
}

func TestUpstreamUpgradeHandsOverTheConnection(t *testing.T) {
	url := rawBackend(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nearly")
		line, _ := br.ReadString('\n')
		io.WriteString(c, "echo:"+line)
	})
	u := newUpstream()
	req, _ := http.NewRequest("GET", url+"/ws", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	resp, err := u.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, body %T", resp.StatusCode, resp.Body)
	}
	defer rw.Close()
	io.WriteString(rw, "hi\n")
	got, _ := io.ReadAll(rw)
	if string(got) != "earlyecho:hi\n" {
		t.Errorf("tunnel read %q", got)
	}
}

func TestUpstreamCancelledRequestFreesTheCaller(t *testing.T) {
	never := make(chan struct{})
	defer close(never)
	url := rawBackend(t, func(c net.Conn) {
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		<-never // reads the request, never answers
	})
	u := newUpstream()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/", nil)
	done := make(chan error, 1)
	go func() {
		_, err := u.RoundTrip(req)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled request succeeded")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("RoundTrip did not return after its context was cancelled")
	}
}

// TestWriteRequestMatchesRequestWrite holds the hand-written request head
// to what net/http's Request.Write sends, read back by a server.
func TestWriteRequestMatchesRequestWrite(t *testing.T) {
	t.Parallel()
	cases := map[string]func(r *http.Request){
		"plain get":          func(r *http.Request) {},
		"head":               func(r *http.Request) { r.Method = http.MethodHead },
		"no user agent":      func(r *http.Request) { delete(r.Header, "User-Agent") },
		"empty user agent":   func(r *http.Request) { r.Header["User-Agent"] = []string{""} },
		"line breaks":        func(r *http.Request) { r.Header["X-Qlik-User"] = []string{" a\r\nInjected: 1\rb\n "} },
		"invalid name":       func(r *http.Request) { r.Header["Bad Name"] = []string{"x"}; r.Header["Ok"] = []string{"y"} },
		"repeated values":    func(r *http.Request) { r.Header["Accept"] = []string{"a", "b", "c"} },
		"framing headers":    func(r *http.Request) { r.Header["Content-Length"] = []string{"5"}; r.Header["Host"] = []string{"evil"} },
		"escaped path":       func(r *http.Request) { r.URL.Path = "/a b/ü%/c"; r.URL.RawQuery = "q=1&r=%20" },
		"post falls back":    func(r *http.Request) { r.Method = http.MethodPost },
		"idn host":           func(r *http.Request) { r.Host = "bücher.example:8080" },
		"control in path":    func(r *http.Request) { r.URL.Path = "/a\x01b" },
		"control in query":   func(r *http.Request) { r.URL.RawQuery = "a=\x7f" },
		"empty path":         func(r *http.Request) { r.URL.Path = "" },
		"empty query":        func(r *http.Request) { r.URL.RawQuery = ""; r.URL.ForceQuery = true },
		"no query":           func(r *http.Request) { r.URL.RawQuery = "" },
		"opaque":             func(r *http.Request) { r.URL.Opaque = "/raw%2Fpath" },
		"raw path":           func(r *http.Request) { r.URL.Path = "/a/b c"; r.URL.RawPath = "/a%2Fb%20c" },
		"close":              func(r *http.Request) { r.Close = true },
		"body falls back":    func(r *http.Request) { r.Body = io.NopCloser(strings.NewReader("hello")); r.ContentLength = 5 },
		"user agent repeats": func(r *http.Request) { r.Header["User-Agent"] = []string{"first", "second"} },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			build := func() *http.Request {
				r := &http.Request{
					Method: http.MethodGet, Host: "backend.example:8080", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
					URL: &url.URL{Scheme: "http", Host: "backend.example:8080", Path: "/hub/page", RawQuery: "x=1"},
					Header: http.Header{
						"User-Agent": {"bench"}, "Accept": {"*/*"}, "X-Qlik-User": {"UserDirectory=D; UserId=u"},
						"Cookie": {"a=1; b=2"},
					},
				}
				change(r)
				return r
			}
			var want, got bytes.Buffer
			wantErr := build().Write(&want)
			bw := bufio.NewWriter(&got)
			gotErr := writeRequest(bw, build())
			bw.Flush()
			if (gotErr != nil) != (wantErr != nil) {
				t.Fatalf("writeRequest error %v, Request.Write error %v", gotErr, wantErr)
			}
			if wantErr != nil {
				return
			}
			wr, err := http.ReadRequest(bufio.NewReader(&want))
			if err != nil {
				t.Fatalf("Request.Write wrote what a server cannot read: %v\n%s", err, want.String())
			}
			gr, err := http.ReadRequest(bufio.NewReader(&got))
			if err != nil {
				t.Fatalf("writeRequest wrote what a server cannot read: %v\n%s", err, got.String())
			}
			if gr.Method != wr.Method || gr.RequestURI != wr.RequestURI || gr.Host != wr.Host ||
				gr.ContentLength != wr.ContentLength || !reflect.DeepEqual(gr.Header, wr.Header) {
				t.Errorf("writeRequest sent\n%s\nRequest.Write sends\n%s", got.String(), want.String())
			}
		})
	}
}

// askCounter is a connection that can Ask (as rawsock.Conn does) and
// counts how the upstream client writes to it.
type askCounter struct {
	net.Conn
	asks, writes int
}

func (c *askCounter) Ask(p []byte) (int, error) {
	c.asks++
	return c.Conn.Write(p) // the answer is waited for by the Read that follows
}

func (c *askCounter) Write(p []byte) (int, error) {
	c.writes++
	return c.Conn.Write(p)
}

// TestUpstreamAsksOnlyWithTheWholeRequest: a request that leaves in one
// write goes out through Ask; one whose first bytes left earlier (a body
// larger than the write buffer) does not, since an early answer to it
// could already be waiting, unseen by Ask.
func TestUpstreamAsksOnlyWithTheWholeRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %d", r.Method, n)
	}))
	defer srv.Close()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn := &askCounter{Conn: nc}
	key := "http://" + srv.Listener.Addr().String()
	c := newUpstreamConn(conn, nc, key)
	u := newUpstream()
	defer u.CloseIdleConnections()
	u.put(c)

	for _, tc := range []struct {
		method     string
		body       int
		wantAsks   int
		wantWrites int
	}{
		{"GET", 0, 1, 0},
		{"POST", 100, 1, 0},
		{"POST", 64 << 10, 0, 17}, // 16 full buffers and the rest
	} {
		conn.asks, conn.writes = 0, 0
		var body io.Reader
		if tc.body > 0 {
			body = bytes.NewReader(make([]byte, tc.body))
		}
		resp, got := get(t, u, tc.method, key+"/", body)
		if want := fmt.Sprintf("%s %d", tc.method, tc.body); resp.StatusCode != 200 || got != want {
			t.Fatalf("%s: %d %q, want %q", tc.method, resp.StatusCode, got, want)
		}
		if conn.asks != tc.wantAsks || conn.writes < tc.wantWrites || (tc.wantWrites == 0 && conn.writes != 0) {
			t.Errorf("%s with a %d-byte body: %d asks and %d writes; want %d asks and %d writes",
				tc.method, tc.body, conn.asks, conn.writes, tc.wantAsks, tc.wantWrites)
		}
	}
}

// TestUpstreamDoesNotAskALingeringBackEnd: a back end that, its idle
// timeout past, shuts down its sending side and reads on (Apache httpd's
// lingering close) must not leave the next request waiting. A connection
// idle for longer than askWithin is read the plain way, which sees the
// close at once, and the request is retried on a new connection.
func TestUpstreamDoesNotAskALingeringBackEnd(t *testing.T) {
	var answered atomic.Int32
	lingering := make(chan struct{}, 1)
	url := rawBackend(t, func(c net.Conn) {
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		answered.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.(*net.TCPConn).CloseWrite() // on loopback the FIN has arrived when this returns
		lingering <- struct{}{}
		io.Copy(io.Discard, c) // reads on, answers nothing, until the client closes
	})
	u := newUpstream()
	defer u.CloseIdleConnections()
	if _, body := get(t, u, "GET", url+"/", nil); body != "ok" {
		t.Fatalf("first GET: %q", body)
	}
	<-lingering
	u.mu.Lock()
	for _, c := range u.idle[url] {
		c.idleFrom = c.idleFrom.Add(-2 * askWithin) // as if it had been idle that long
	}
	u.mu.Unlock()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/", nil)
	resp, err := u.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET on a connection the back end half-closed while idle: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" || answered.Load() != 2 {
		t.Fatalf("second GET: %q, %d answers; want ok from a new connection", b, answered.Load())
	}
}

// TestUpstreamClosesAConnectionThatSpokeWhileIdle: bytes a back end sends
// on an idle pooled connection, after the answer was read to its end and
// the connection pooled, answer no request: the next request goes out on
// a new connection and gets its own answer, over plain HTTP and TLS. So
// does the request after a back end closed the connection while it was
// idle, even when it has a body and cannot be retried.
func TestUpstreamClosesAConnectionThatSpokeWhileIdle(t *testing.T) {
	tlsServer := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate and a client that trusts it
	defer tlsServer.Close()
	const poisoned = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned"
	for _, c := range []struct {
		name, late string
		tls        bool
		// together sends late in the TCP segment of the answer, as a
		// TLS record of its own: TLS reads it with the answer's record
		// and holds it, where neither the read buffer nor the socket
		// shows it.
		together bool
	}{
		{"late bytes", poisoned, false, false},
		{"late bytes over TLS", poisoned, true, false},
		{"a record after the answer's, in its segment", poisoned, true, true},
		{"close", "", false, false},
		{"close over TLS", "", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var conns atomic.Int32
			release, spoke := make(chan struct{}), make(chan struct{})
			url := rawBackend(t, func(conn net.Conn) {
				defer conn.Close()
				held := &heldConn{Conn: conn}
				if c.tls {
					conn = tls.Server(held, tlsServer.TLS)
				}
				n := conns.Add(1)
				br := bufio.NewReader(conn)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if c.together && n == 1 && i == 0 {
						held.hold = true
						fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nconn %d", n)
						io.WriteString(conn, c.late)
						held.flush()
						close(spoke)
						continue
					}
					fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nconn %d", n)
					if n == 1 && i == 0 {
						<-release // the answer was read and the connection pooled
						if c.late == "" {
							conn.Close() // on loopback the FIN has arrived when this returns
						} else {
							io.WriteString(conn, c.late)
						}
						close(spoke)
						if c.late == "" {
							return
						}
					}
				}
			})
			u := newUpstream()
			if c.tls {
				url = strings.Replace(url, "http:", "https:", 1)
				u.tlsConfig = tlsServer.Client().Transport.(*http.Transport).TLSClientConfig
			}
			defer u.CloseIdleConnections()
			if _, body := get(t, u, "GET", url+"/", nil); body != "conn 1" {
				t.Fatalf("first GET: %q", body)
			}
			close(release)
			<-spoke
			for _, method := range []string{"POST", "GET"} { // a POST first: it cannot be retried
				var body io.Reader
				if method == "POST" {
					body = strings.NewReader("payload")
				}
				if _, got := get(t, u, method, url+"/", body); got != "conn 2" {
					t.Errorf("%s after the back end spoke on the idle connection: %q, want the answer of a new connection", method, got)
				}
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
}

// heldConn holds what is written to it while hold is set, until flush
// sends it in one write.
type heldConn struct {
	net.Conn
	hold bool
	held []byte
}

func (c *heldConn) Write(p []byte) (int, error) {
	if c.hold {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *heldConn) flush() {
	c.hold = false
	c.Conn.Write(c.held)
	c.held = nil
}

// TestUpstreamBoundsTheResponseHead: a response head of up to
// maxResponseHeadBytes is read, interim heads included, and through up
// to maxInterimResponses interim responses; one byte or one interim
// response more is refused (answerRefused), and the request is not
// retried.
func TestUpstreamBoundsTheResponseHead(t *testing.T) {
	// head is a response whose head is n bytes long, after interim
	// interim responses (counted in n).
	head := func(n, interim int) string {
		var s strings.Builder
		for i := 0; i < interim; i++ {
			s.WriteString("HTTP/1.1 103 Early Hints\r\n\r\n")
		}
		s.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Fill: ")
		s.WriteString(strings.Repeat("a", n-s.Len()-len("\r\n\r\n")))
		s.WriteString("\r\n\r\n")
		if s.Len() != n {
			t.Fatalf("head of %d bytes, want %d", s.Len(), n)
		}
		return s.String() + "ok"
	}
	for _, c := range []struct {
		name, answer string
		refused      error
	}{
		{"head at the bound", head(maxResponseHeadBytes, 0), nil},
		{"head a byte over", head(maxResponseHeadBytes+1, 0), errHeadTooLarge},
		{"interim heads at the bound", head(maxResponseHeadBytes, 3), nil},
		{"interim heads a byte over", head(maxResponseHeadBytes+1, 3), errHeadTooLarge},
		{"interim responses at the bound", head(1000, maxInterimResponses), nil},
		{"an interim response too many", head(1000, maxInterimResponses+1), errTooManyInterim},
	} {
		t.Run(c.name, func(t *testing.T) {
			var requests atomic.Int32
			url := rawBackend(t, func(conn net.Conn) {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for i := 0; ; i++ {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					requests.Add(1)
					if i == 0 {
						io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
						continue
					}
					io.WriteString(conn, c.answer)
				}
			})
			u := newUpstream()
			defer u.CloseIdleConnections()
			for _, plain := range []bool{false, true} {
				get(t, u, "GET", url+"/", nil) // a connection in the pool: a failure on it could be retried
				o := &outbound{ctx: t.Context(), key: url, scheme: "http", host: strings.TrimPrefix(url, "http://"), method: "GET",
					req: httptest.NewRequest("GET", url+"/", nil)}
				o.req.RequestURI = ""
				if plain {
					o.into = http.Header{}
				}
				before := requests.Load()
				resp, err := u.send(o)
				if c.refused == nil {
					if err != nil {
						t.Fatalf("plain=%v: %v", plain, err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if string(b) != "ok" {
						t.Fatalf("plain=%v: body %q", plain, b)
					}
					continue
				}
				if err != c.refused {
					t.Errorf("plain=%v: error %v, want %v", plain, err, c.refused)
				}
				if n := requests.Load() - before; n != 1 {
					t.Errorf("plain=%v: the back end got %d requests, want 1: a refused answer is not retried", plain, n)
				}
			}
		})
	}
}

// BenchmarkIdleCheck is what get pays per request to find a pooled
// connection quiet, against the read with a 1 ms deadline it replaces
// (which waits out the millisecond when nothing is there).
func BenchmarkIdleCheck(b *testing.B) {
	tlsServer := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsServer.Close()
	for _, c := range []struct {
		name  string
		tls   bool
		probe func(c *upstreamConn) bool
	}{
		{"quiet", false, (*upstreamConn).quiet},
		{"quiet over TLS", true, (*upstreamConn).quiet},
		{"read with a 1 ms deadline", false, func(c *upstreamConn) bool {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			_, err := c.br.Peek(1)
			c.SetReadDeadline(time.Time{})
			return errors.Is(err, os.ErrDeadlineExceeded)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			u := newUpstream()
			defer u.CloseIdleConnections()
			url := tlsServer.URL
			if !c.tls {
				plain := httptest.NewServer(http.NotFoundHandler())
				defer plain.Close()
				url = plain.URL
			} else {
				u.tlsConfig = tlsServer.Client().Transport.(*http.Transport).TLSClientConfig
			}
			resp, err := u.RoundTrip(httptest.NewRequest("GET", url+"/", nil).WithContext(b.Context()))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			conn := u.pop(url)
			if conn == nil {
				b.Fatalf("no pooled connection: %v", err)
			}
			defer conn.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if !c.probe(conn) {
					b.Fatal("an idle connection is not quiet")
				}
			}
		})
	}
}

// TestRefusedAnswerIsA502AndOneLogLine: a back end that overruns a head
// bound costs the user a 502 whose body names the bound, and the log one
// line; the connection is closed.
func TestRefusedAnswerIsA502AndOneLogLine(t *testing.T) {
	hungUp := make(chan struct{})
	url := rawBackend(t, func(conn net.Conn) {
		defer close(hungUp)
		defer conn.Close()
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", maxResponseHeadBytes)+"\r\nContent-Length: 2\r\n\r\nok")
		io.Copy(io.Discard, conn) // until openqps closes the connection
	})
	cfg, err := config.Parse([]byte("store: {type: memory}\nvirtual_proxies:\n  - prefix: vp\n    backends: [\"" + url + "\"]\n"))
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
	req.RequestURI = "/vp/hub/" // origin form, as a client sends it; the absolute form is refused
	req.Header.Set("Cookie", "X-Qlik-Session-vp-HTTP="+id)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, req)
	var body struct{ Error, Detail string }
	json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != http.StatusBadGateway || !strings.Contains(body.Detail, fmt.Sprint(maxResponseHeadBytes)) {
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

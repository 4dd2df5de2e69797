package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// request is a Request for method and the absolute URL rawURL, with
// body (nil: none) and the fields of a Go client.
func request(t testing.TB, method, rawURL string, body io.Reader) *Request {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	r := &Request{Method: method, Scheme: req.URL.Scheme, Host: req.URL.Host, Target: req.URL.RequestURI(), Header: http.Header{"User-Agent": {"test"}}}
	if body != nil {
		r.Body, r.ContentLength = req.Body, req.ContentLength
	}
	return r
}

// kinds are the transports every test runs through.
var kinds = []Kind{OpenQPS, NetHTTP}

// forEachKind runs fn as a subtest for each transport.
func forEachKind(t *testing.T, fn func(t *testing.T, kind Kind)) {
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) { fn(t, kind) })
	}
}

func get(t *testing.T, u *Transport, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := u.RoundTrip(t.Context(), request(t, method, url, body))
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
	forEachKind(t, func(t *testing.T, kind Kind) {
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
		u := New(Options{Kind: kind})
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
	})
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
	forEachKind(t, func(t *testing.T, kind Kind) {
		var n atomic.Int32
		// closed tells the test that the back end has closed a connection
		// it answered: only then is the close there to be seen, and a
		// request sent before it would race the back end's reset.
		closed := make(chan struct{}, 16)
		url := rawBackend(t, func(c net.Conn) {
			defer func() { c.Close(); closed <- struct{}{} }()
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
		u := New(Options{Kind: kind})
		defer u.CloseIdleConnections()
		for i := 0; i < 3; i++ {
			if _, body := get(t, u, "GET", url+"/", nil); body != "ok" {
				t.Fatalf("GET %d: %q", i, body)
			}
			waitClosedConn(t, closed)
			if kind == NetHTTP {
				// net/http finds a closed idle connection only once its
				// reader goroutine ran, and retries no request with a
				// body: a POST right after the close may fail (the back end
				// closed or reset the connection), though never with
				// another request's answer.
				resp, err := u.RoundTrip(t.Context(), request(t, "POST", url+"/", strings.NewReader("x")))
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if string(body) != "ok" {
						t.Fatalf("POST %d: %q", i, body)
					}
				} else {
					t.Logf("POST %d: %v", i, err) // a closed or reset connection
				}
				continue
			}
			if _, body := get(t, u, "POST", url+"/", strings.NewReader("x")); body != "ok" {
				t.Fatalf("POST %d: %q", i, body)
			}
			waitClosedConn(t, closed)
		}
		if kind == OpenQPS && n.Load() != 6 {
			t.Errorf("back end answered %d requests, want 6", n.Load())
		}
	})
}

func TestUpstreamCloseDelimitedBodyIsNotReused(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		var conns atomic.Int32
		url := rawBackend(t, func(c net.Conn) {
			conns.Add(1)
			defer c.Close()
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil close")
		})
		u := New(Options{Kind: kind})
		defer u.CloseIdleConnections()
		for i := 0; i < 2; i++ {
			if _, body := get(t, u, "GET", url+"/", nil); body != "until close" {
				t.Fatalf("body %q", body)
			}
		}
		if conns.Load() != 2 {
			t.Errorf("%d connections, want 2 (no reuse after a close-delimited body)", conns.Load())
		}
	})
}

func TestUpstreamUpgradeHandsOverTheConnection(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
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
		u := New(Options{Kind: kind})
		req := request(t, "GET", url+"/ws", nil)
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Connection", "Upgrade")
		resp, err := u.RoundTrip(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		rw, ok := resp.Body.(*Upgraded)
		if !ok || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d, body %T", resp.StatusCode, resp.Body)
		}
		defer rw.Close()
		io.WriteString(rw, "hi\n")
		got, _ := io.ReadAll(rw)
		if string(got) != "earlyecho:hi\n" {
			t.Errorf("tunnel read %q", got)
		}
	})
}

func TestUpstreamCancelledRequestFreesTheCaller(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
		never := make(chan struct{})
		defer close(never)
		url := rawBackend(t, func(c net.Conn) {
			defer c.Close()
			http.ReadRequest(bufio.NewReader(c))
			<-never // reads the request, never answers
		})
		u := New(Options{Kind: kind})
		ctx, cancel := context.WithCancel(context.Background())
		req := request(t, "GET", url+"/", nil)
		done := make(chan error, 1)
		go func() {
			_, err := u.RoundTrip(ctx, req)
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
	})
}

// TestUpstreamDoesNotWaitOnALingeringBackEnd: a back end that, its idle
// timeout past, shuts down its sending side and reads on (Apache httpd's
// lingering close) must not leave the next request waiting: the close is
// seen, and the request goes out on a new connection.
func TestUpstreamDoesNotWaitOnALingeringBackEnd(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
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
		u := New(Options{Kind: kind})
		defer u.CloseIdleConnections()
		if _, body := get(t, u, "GET", url+"/", nil); body != "ok" {
			t.Fatalf("first GET: %q", body)
		}
		<-lingering

		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		resp, err := u.RoundTrip(ctx, request(t, "GET", url+"/", nil))
		if err != nil {
			t.Fatalf("GET on a connection the back end half-closed while idle: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" || answered.Load() != 2 {
			t.Fatalf("second GET: %q, %d answers; want ok from a new connection", b, answered.Load())
		}
	})
}

// TestUpstreamClosesAConnectionThatSpokeWhileIdle: bytes a back end sends
// on an idle pooled connection, after the answer was read to its end and
// the connection pooled, answer no request: the next request goes out on
// a new connection and gets its own answer, over plain HTTP and TLS. So
// does the request after a back end closed the connection while it was
// idle, even when it has a body and cannot be retried.
func TestUpstreamClosesAConnectionThatSpokeWhileIdle(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
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
				if kind == NetHTTP && c.together {
					// TLS holds the stray record where only net/http's
					// reader goroutine can look, and the next request
					// may take the connection before it does.
					t.Skip("known limit of the net/http transport: a stray TLS record in the answer's segment is seen only once net/http's reader ran")
				}
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
				o := Options{Kind: kind}
				if c.tls {
					url = strings.Replace(url, "http:", "https:", 1)
					o.TLS = tlsServer.Client().Transport.(*http.Transport).TLSClientConfig
				}
				u := New(o)
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
					if kind == NetHTTP && method == "POST" {
						// net/http cannot move a request with a body to
						// another connection once it took this one: the
						// guard (guardedConn) fails it instead, as it
						// may fail one after a close (see
						// TestUpstreamRetriesWhenIdleConnectionWasClosed).
						resp, err := u.RoundTrip(t.Context(), request(t, method, url+"/", body))
						if err == nil {
							got, _ := io.ReadAll(resp.Body)
							resp.Body.Close()
							if string(got) != "conn 2" {
								t.Errorf("POST after the back end spoke on the idle connection: %q, want the answer of a new connection", got)
							}
						} else {
							t.Logf("POST after the back end spoke on the idle connection: %v", err)
						}
						continue
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
	})
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
// MaxResponseHeadBytes is read, interim heads included, and through up
// to MaxInterimResponses interim responses; one byte or one interim
// response more is refused (answerRefused), and the request is not
// retried.
func TestUpstreamBoundsTheResponseHead(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind Kind) {
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
			{"head at the bound", head(MaxResponseHeadBytes, 0), nil},
			{"head a byte over", head(MaxResponseHeadBytes+1, 0), errHeadTooLarge},
			{"interim heads at the bound", head(MaxResponseHeadBytes, 3), nil},
			{"interim heads a byte over", head(MaxResponseHeadBytes+1, 3), errHeadTooLarge},
			{"interim responses at the bound", head(1000, MaxInterimResponses), nil},
			{"an interim response too many", head(1000, MaxInterimResponses+1), errTooManyInterim},
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
				u := New(Options{Kind: kind})
				defer u.CloseIdleConnections()
				for _, plain := range []bool{false, true} {
					get(t, u, "GET", url+"/", nil) // a connection in the pool: a failure on it could be retried
					o := request(t, "GET", url+"/", nil)
					if plain {
						o.Into = http.Header{}
					}
					before := requests.Load()
					resp, err := u.RoundTrip(t.Context(), o)
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
	})
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
		probe func(c *conn) bool
	}{
		{"quiet", false, (*conn).quiet},
		{"quiet over TLS", true, (*conn).quiet},
		{"read with a 1 ms deadline", false, func(c *conn) bool {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			_, err := c.br.Peek(1)
			c.SetReadDeadline(time.Time{})
			return errors.Is(err, os.ErrDeadlineExceeded)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			o := Options{}
			url := tlsServer.URL
			if !c.tls {
				plain := httptest.NewServer(http.NotFoundHandler())
				defer plain.Close()
				url = plain.URL
			} else {
				o.TLS = tlsServer.Client().Transport.(*http.Transport).TLSClientConfig
			}
			u := New(o)
			defer u.CloseIdleConnections()
			resp, err := u.RoundTrip(b.Context(), request(b, "GET", url+"/", nil))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			pooled := u.pop(url)
			if pooled == nil {
				b.Fatalf("no pooled connection: %v", err)
			}
			defer pooled.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if !c.probe(pooled) {
					b.Fatal("an idle connection is not quiet")
				}
			}
		})
	}
}

// waitClosedConn waits until the back end has closed a connection.
func waitClosedConn(t *testing.T, closed <-chan struct{}) {
	t.Helper()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the back end did not close its connection within 10s")
	}
}

package e2e

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
)

// Attacks from the back end's side: a broken or malicious back end (or a
// user who gets one to send bytes of their choosing) must not be able to
// hand its bytes to another user's request through a pooled connection,
// set the session cookies of any virtual proxy, or make openqps read a
// response head without bound.

// scriptedBackend is a back end on a raw TCP socket. A request whose path
// starts with /hub/attack is answered with exactly the bytes of the
// current script; every other request gets an honest answer that names
// its request line ("answer for GET /hub/victim-…"), so a victim can tell
// its own answer from anything else.
type scriptedBackend struct {
	URL    string
	mu     sync.Mutex
	script *backendScript
}

// backendScript is what the back end answers to the next attack request.
type backendScript struct {
	answer string
	// later, when set, is written on the same connection 50 ms after
	// answer, before the back end reads the next request: what a server
	// that writes a body after its head, or a second response, sends.
	later string
	// wrote is closed once later was written.
	wrote chan struct{}
	// hungUp is closed when openqps closed the connection the script
	// was answered on.
	hungUp chan struct{}
}

func newScriptedBackend(t *testing.T) *scriptedBackend {
	t.Helper()
	ln := listenLoopback(t)
	b := &scriptedBackend{URL: "http://" + ln.Addr().String()}
	var conns sync.WaitGroup
	t.Cleanup(conns.Wait) // after the listener is closed (cleanups run last first)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				b.serve(c)
			}()
		}
	}()
	return b
}

// play makes s the answer to the next attack request; answer may hold
// {mark}, replaced by mark.
func (b *scriptedBackend) play(s *backendScript, mark string) *backendScript {
	s.answer = strings.ReplaceAll(s.answer, "{mark}", mark)
	s.later = strings.ReplaceAll(s.later, "{mark}", mark)
	s.wrote, s.hungUp = make(chan struct{}), make(chan struct{})
	b.mu.Lock()
	b.script = s
	b.mu.Unlock()
	return s
}

func (b *scriptedBackend) serve(c net.Conn) {
	defer c.Close()
	// Bounds a connection openqps keeps in its pool after the test.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	var played *backendScript // the script answered on this connection
	defer func() {
		if played != nil {
			close(played.hungUp)
		}
	}()
	for {
		method, target, err := readRequestHead(br)
		if err != nil {
			return
		}
		if !strings.HasPrefix(target, "/hub/attack") {
			body := "answer for " + method + " " + target
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			continue
		}
		b.mu.Lock()
		s := b.script
		b.script = nil
		b.mu.Unlock()
		if s == nil {
			io.WriteString(c, "HTTP/1.1 500 No Script\r\nContent-Length: 0\r\n\r\n")
			continue
		}
		played = s // an earlier script's row is over: nobody waits for its hang-up
		io.WriteString(c, s.answer)
		if s.later != "" {
			<-time.After(50 * time.Millisecond) // the attack's timing: well after the answer
			io.WriteString(c, s.later)
			close(s.wrote)
		}
	}
}

// readRequestHead reads one bodyless request head (openqps sends the
// attack and victim requests as GET or HEAD) and returns its method and
// target.
func readRequestHead(br *bufio.Reader) (method, target string, err error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", "", err
	}
	fields := strings.Fields(line)
	if len(fields) != 3 {
		return "", "", fmt.Errorf("request line %q", line)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		if l == "\r\n" {
			return fields[0], fields[1], nil
		}
	}
}

// upstreamAttackStart runs openqps with both test virtual proxies in front
// of a scripted back end, and a session of User1 (the attacker) and User2
// (the victim) on the default virtual proxy.
func upstreamAttackStart(t *testing.T) (o *openqps, b *scriptedBackend, attacker, victim string) {
	t.Helper()
	b = newScriptedBackend(t)
	u, _ := url.Parse(b.URL)
	o = start(t, func(c *config.Config) {
		for i := range c.VirtualProxies {
			c.VirtualProxies[i].Backends, c.VirtualProxies[i].BackendURLs = []string{b.URL}, []*url.URL{u}
		}
	})
	attacker, victim = randomHex(16), randomHex(16)
	o.addSession(t, "", "DOMAIN", "User1", attacker)
	o.addSession(t, "", "DOMAIN", "User2", victim)
	return o, b, attacker, victim
}

// frontClient is an HTTPS client on a connection of its own, speaking
// HTTP/2 when h2, else HTTP/1.1.
func (o *openqps) frontClient(t *testing.T, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool}, ForceAttemptHTTP2: h2}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// frontRequest sends one request with the session cookie id on a fresh
// connection and returns the answer with its body read.
func (o *openqps) frontRequest(t *testing.T, h2 bool, method, path, id string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, o.frontURL(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", "X-Qlik-Session="+id)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, body := do(t, o.frontClient(t, h2), req)
	if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
		t.Fatalf("the front end spoke %s, want HTTP/%d", resp.Proto, want)
	}
	return resp, body
}

// poison is a whole response, as a back end's next answer would be,
// carrying the row's marker in a header and in its body.
const poison = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Poison: {mark}\r\nContent-Length: 26\r\n\r\npoisoned by {mark}"

// TestAttackBackendPoisonsTheNextAnswer: bytes a back end sends after a
// complete response (a body after HEAD, 204 or 304, more than its
// Content-Length, anything after a chunked body's end) are never read as
// the answer to the next request on that connection: the next user, on
// a connection of their own, gets their own answer. Each shape is sent
// with the response in one write, and 50 ms after it, when openqps has
// pooled the connection already.
func TestAttackBackendPoisonsTheNextAnswer(t *testing.T) {
	o, b, attacker, victim := upstreamAttackStart(t)
	filled := strings.ReplaceAll(poison, "{mark}", "zqup00h1abcdef") // as long as every row's marker
	if _, body, _ := strings.Cut(filled, "\r\n\r\n"); len(body) != 26 {
		t.Fatalf("poison's Content-Length is 26, its body %d bytes", len(body))
	}
	poisonLen := fmt.Sprint(len(filled))
	shapes := []struct {
		name, method string
		head         string // the complete response the poison follows
		header       []string
	}{
		{"HEAD answered with a body", http.MethodHead, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + poisonLen + "\r\n\r\n", nil},
		{"Content-Length shorter than the body", http.MethodGet, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", nil},
		{"204 with a body", http.MethodGet, "HTTP/1.1 204 No Content\r\n\r\n", nil},
		{"204 with a length and a body", http.MethodGet, "HTTP/1.1 204 No Content\r\nContent-Length: " + poisonLen + "\r\n\r\n", nil},
		{"304 with a body", http.MethodGet, "HTTP/1.1 304 Not Modified\r\nEtag: \"v1\"\r\nContent-Length: " + poisonLen + "\r\n\r\n", []string{"If-None-Match", `"v1"`}},
		{"chunked body followed by more", http.MethodGet, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", nil},
	}
	i := 0
	for _, h2 := range []bool{false, true} {
		for _, later := range []bool{false, true} {
			for _, sh := range shapes {
				i++
				name := fmt.Sprintf("%s/%s/h2=%v", sh.name, map[bool]string{false: "in one write", true: "50 ms later"}[later], h2)
				mark := fmt.Sprintf("zqup%02dh%d%s", i, map[bool]int{false: 1, true: 2}[h2], randomHex(3))
				t.Run(name, func(t *testing.T) {
					s := &backendScript{answer: sh.head + poison}
					if later {
						s = &backendScript{answer: sh.head, later: poison}
					}
					s = b.play(s, mark)
					o.frontRequest(t, h2, sh.method, "/hub/attack", attacker, sh.header...)
					if later {
						select {
						case <-s.wrote:
						case <-time.After(10 * time.Second):
							t.Fatal("the back end did not get to send its late bytes")
						}
					}
					path := "/hub/victim-" + mark[:6]
					resp, body := o.frontRequest(t, h2, http.MethodGet, path, victim)
					if resp.StatusCode != http.StatusOK || body != "answer for GET "+path {
						t.Errorf("the victim got %d %.200q, want 200 and its own answer", resp.StatusCode, body)
					}
					for k, vv := range resp.Header {
						if strings.Contains(strings.Join(vv, " "), mark) {
							t.Errorf("the victim's answer carries the attacker's %s: %q", k, vv)
						}
					}
				})
			}
		}
	}
}

// TestAttackBackendSetsSessionCookies: a back end cannot set (fix) the
// session cookie of any virtual proxy, its own or another's, over HTTPS or
// plain HTTP, whatever the spelling; its other cookies pass. Both ways a
// response head is read (a Content-Length head on the fast path, a
// chunked one through net/http) are tried.
func TestAttackBackendSetsSessionCookies(t *testing.T) {
	o, b, attacker, _ := upstreamAttackStart(t)
	fixations := []string{
		"X-Qlik-Session={mark}; Path=/",
		"X-Qlik-Session-HTTP={mark}; Path=/",
		"X-Qlik-Session-sessionvp={mark}; Path=/; HttpOnly",
		"X-Qlik-Session-sessionvp-HTTP={mark}",
		"x-qlik-session-sessionvp={mark}",
		"X-Qlik-Session-sessionvp ={mark}",
		"=X-Qlik-Session-sessionvp={mark}; Path=/", // a nameless cookie: browsers send it as X-Qlik-Session-sessionvp={mark}
		"  =  X-Qlik-Session={mark}",
	}
	bodies := []struct{ name, framing, body string }{
		{"content-length", "Content-Length: 2\r\n", "ok"},
		{"chunked", "Transfer-Encoding: chunked\r\n", "2\r\nok\r\n0\r\n\r\n"},
	}
	i := 0
	for _, h2 := range []bool{false, true} {
		for _, bd := range bodies {
			for _, fix := range fixations {
				i++
				mark := fmt.Sprintf("zqck%02d%s", i, randomHex(3))
				t.Run(fmt.Sprintf("%s/%s/h2=%v", fix, bd.name, h2), func(t *testing.T) {
					b.play(&backendScript{answer: "HTTP/1.1 200 OK\r\nSet-Cookie: app=kept-{mark}\r\nSet-Cookie: " + fix + "\r\n" + bd.framing + "\r\n" + bd.body}, mark)
					resp, body := o.frontRequest(t, h2, http.MethodGet, "/hub/attack", attacker)
					if resp.StatusCode != http.StatusOK || body != "ok" {
						t.Fatalf("got %d %q, want 200 \"ok\"", resp.StatusCode, body)
					}
					got := resp.Header.Values("Set-Cookie")
					if len(got) != 1 || got[0] != "app=kept-"+mark {
						t.Errorf("Set-Cookie %q, want the back end's app cookie alone", got)
					}
				})
			}
		}
	}
}

// TestBackendCannotReplaceAFreshSessionCookie: when openqps sets a session
// cookie on the answer it forwards (a header-authenticated user's first
// request), that cookie goes out, and the back end's attempt to set the
// same name does not.
func TestBackendCannotReplaceAFreshSessionCookie(t *testing.T) {
	b := newScriptedBackend(t)
	u, _ := url.Parse(b.URL)
	o := start(t, func(c *config.Config) {
		vp := &c.VirtualProxies[1]
		vp.Prefix, vp.SessionCookieName, vp.AuthenticationModuleRedirectURI = "auth", "X-Qlik-Session-auth", ""
		vp.Auth = config.Auth{AuthenticationMethod: config.AuthHeaderStatic, HeaderName: "X-Remote-User", StaticUserDirectory: "ACME", AnonymousAccess: config.AnonymousNone}
		vp.Backends, vp.BackendURLs = []string{b.URL}, []*url.URL{u}
	})
	for _, h2 := range []bool{false, true} {
		mark := "zqfresh" + randomHex(4)
		b.play(&backendScript{answer: "HTTP/1.1 200 OK\r\nSet-Cookie: X-Qlik-Session-auth={mark}; Path=/\r\nContent-Length: 2\r\n\r\nok"}, mark)
		req, _ := http.NewRequest(http.MethodGet, o.frontURL("/auth/hub/attack"), nil)
		req.Header.Set("X-Remote-User", "alice")
		resp, body := do(t, o.frontClient(t, h2), req)
		if resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("h2=%v: got %d %q, want 200 \"ok\"", h2, resp.StatusCode, body)
		}
		var ours []*http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "X-Qlik-Session-auth" {
				ours = append(ours, c)
			}
		}
		if len(ours) != 1 || ours[0].Value == mark || ours[0].Value == "" {
			t.Errorf("h2=%v: session cookies %v, want openqps's own alone (Set-Cookie %q)", h2, ours, resp.Header.Values("Set-Cookie"))
		}
	}
}

// TestAttackBackendHeadBounds: a back end's response head is read up to
// 16 KB (the bound on clients' request heads) and through at most 10
// interim (1xx) responses. Beyond either, the user gets a 502 that says
// why, and openqps closes the connection; answers within the bounds are
// served.
func TestAttackBackendHeadBounds(t *testing.T) {
	o, b, attacker, victim := upstreamAttackStart(t)
	fields := func(n, size int) string {
		var s strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&s, "X-Filler-%d: %s\r\n", i, strings.Repeat("a", size))
		}
		return s.String()
	}
	const ok = "Content-Length: 2\r\n\r\nok"
	rows := []struct {
		name, answer string
		refused      bool
	}{
		{"2 MB field", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 2<<20) + "\r\n" + ok, true},
		{"17 fields of 1 KB", "HTTP/1.1 200 OK\r\n" + fields(17, 1024) + ok, true},
		{"a 20 KB chunked head", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + fields(20, 1024) + "\r\n2\r\nok\r\n0\r\n\r\n", true},
		{"20,000 interim responses", strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 20000) + "HTTP/1.1 200 OK\r\n" + ok, true},
		{"11 interim responses", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", 11) + "HTTP/1.1 200 OK\r\n" + ok, true},
		{"interim heads of 16 KB together", strings.Repeat("HTTP/1.1 103 Early Hints\r\n"+fields(1, 4000)+"\r\n", 5) + "HTTP/1.1 200 OK\r\n" + ok, true},
		{"12 KB head", "HTTP/1.1 200 OK\r\n" + fields(12, 1000) + ok, false},
		{"10 interim responses", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", 10) + "HTTP/1.1 200 OK\r\n" + ok, false},
		{"100 Continue and 103", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n" + ok, false},
	}
	for i, row := range rows {
		for _, h2 := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/h2=%v", row.name, h2), func(t *testing.T) {
				s := b.play(&backendScript{answer: row.answer}, fmt.Sprint(i))
				resp, body := o.frontRequest(t, h2, http.MethodGet, "/hub/attack", attacker)
				if !row.refused {
					if resp.StatusCode != http.StatusOK || body != "ok" {
						t.Errorf("got %d %.200q, want 200 \"ok\"", resp.StatusCode, body)
					}
					return
				}
				var r struct{ Error, Detail string }
				if resp.StatusCode != http.StatusBadGateway || json.Unmarshal([]byte(body), &r) != nil || r.Error == "" || r.Detail == "" {
					t.Errorf("got %d %.300q, want 502 with a JSON error and detail", resp.StatusCode, body)
				}
				select {
				case <-s.hungUp:
				case <-time.After(10 * time.Second):
					t.Error("openqps kept the connection of the back end that overran a bound")
				}
				path := fmt.Sprintf("/hub/victim-%d", i)
				if resp, body := o.frontRequest(t, h2, http.MethodGet, path, victim); resp.StatusCode != http.StatusOK || body != "answer for GET "+path {
					t.Errorf("the next user got %d %.200q, want their own answer", resp.StatusCode, body)
				}
			})
		}
	}
}

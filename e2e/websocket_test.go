package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/server"
	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/redis/redistest"
	"github.com/openqps/openqps/internal/session/storetest"
)

// A minimal RFC 6455 implementation for the tests: the standard library
// has none, and the tests must see the exact frames openqps sends.

const pxWSGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func pxWSAccept(key string) string {
	sum := sha1.Sum([]byte(key + pxWSGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

type pxFrame struct {
	fin     bool
	opcode  byte
	payload []byte
}

func pxReadFrame(r *bufio.Reader) (pxFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return pxFrame{}, err
	}
	f := pxFrame{fin: h[0]&0x80 != 0, opcode: h[0] & 0x0f}
	size := uint64(h[1] & 0x7f)
	switch size {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		size = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		size = binary.BigEndian.Uint64(b[:])
	}
	var mask [4]byte
	masked := h[1]&0x80 != 0
	if masked {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return f, err
		}
	}
	f.payload = make([]byte, size)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	if masked {
		for i := range f.payload {
			f.payload[i] ^= mask[i%4]
		}
	}
	return f, nil
}

// pxWriteFrame writes a frame, masked when it goes from a client.
func pxWriteFrame(w io.Writer, fin bool, opcode byte, payload []byte, masked bool) error {
	b := []byte{opcode}
	if fin {
		b[0] |= 0x80
	}
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n < 1<<16:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if masked {
		var key [4]byte
		rand.Read(key[:])
		b = append(b, key[:]...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	_, err := w.Write(append(b, p...))
	return err
}

// pxEchoServer is a websocket back end: it completes the handshake and
// echoes every data frame, prefixed with "echo:" and the user it was
// told about. It records the upgrade requests it got.
type pxEchoServer struct {
	URL      string
	requests chan *http.Request
}

func pxNewEchoServer(t *testing.T) *pxEchoServer {
	t.Helper()
	e := &pxEchoServer{requests: make(chan *http.Request, 16)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			io.WriteString(w, "plain")
			return
		}
		e.requests <- r.Clone(context.Background())
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			pxWSAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
		rw.Flush()
		user := r.Header.Get("X-Qlik-User")
		for {
			f, err := pxReadFrame(rw.Reader)
			if err != nil {
				return
			}
			switch f.opcode {
			case 0x8:
				pxWriteFrame(conn, true, 0x8, f.payload, false)
				return
			case 0x9:
				pxWriteFrame(conn, true, 0xA, f.payload, false)
			case 0x1, 0x2:
				pxWriteFrame(conn, true, f.opcode, []byte("echo:"+user+":"+string(f.payload)), false)
			}
		}
	})}
	ln := listenLoopback(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.URL = "http://" + ln.Addr().String()
	return e
}

// pxWS is a websocket client connection through openqps.
type pxWS struct {
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// pxDialWS opens a websocket on the front end: path with query, extra
// header lines as name/value pairs. It returns the handshake response;
// ws is nil unless the answer was 101.
func pxDialWS(t *testing.T, o *openqps, path string, header ...string) (*pxWS, *http.Response, string) {
	t.Helper()
	conn, err := tls.Dial("tcp", o.FrontendAddr, &tls.Config{RootCAs: o.Certs.CAPool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	key := base64.StdEncoding.EncodeToString([]byte(randomHex(8)))
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: " + o.FrontendAddr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n")
	b.WriteString("Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n")
	for i := 0; i+1 < len(header); i += 2 {
		b.WriteString(header[i] + ": " + header[i+1] + "\r\n")
	}
	b.WriteString("\r\n")
	io.WriteString(conn, b.String())
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		return nil, resp, string(body)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != pxWSAccept(key) {
		t.Errorf("Sec-WebSocket-Accept %q, want %q", got, pxWSAccept(key))
	}
	return &pxWS{conn: conn, br: br, resp: resp}, resp, ""
}

func (ws *pxWS) send(t *testing.T, text string) {
	t.Helper()
	if err := pxWriteFrame(ws.conn, true, 0x1, []byte(text), true); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func (ws *pxWS) read(t *testing.T) pxFrame {
	t.Helper()
	f, err := pxReadFrame(ws.br)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// expectNotice reads QPS's JSON-RPC notice and the close frame after it,
// then the end of the connection, all within a second and a half.
func (ws *pxWS) expectNotice(t *testing.T, method string) {
	t.Helper()
	ws.conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	f := ws.read(t)
	var msg struct {
		JSONRPC string
		Method  string
		Params  struct{ Severity, Message, Timestamp string }
	}
	if f.opcode != 0x1 || json.Unmarshal(f.payload, &msg) != nil {
		t.Fatalf("want a JSON-RPC text frame, got opcode %d %q", f.opcode, f.payload)
	}
	if msg.JSONRPC != "2.0" || msg.Method != method || msg.Params.Severity != "fatal" || msg.Params.Message == "" || msg.Params.Timestamp == "" {
		t.Errorf("notice %s, want method %s, severity fatal, a message and a timestamp", f.payload, method)
	}
	if f := ws.read(t); f.opcode != 0x8 {
		t.Errorf("after the notice: opcode %d, want close", f.opcode)
	}
	if _, err := ws.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("connection still open after the close frame: %v", err)
	}
}

func pxWebsocketVP(e *pxEchoServer) func(*config.Config) {
	return func(cfg *config.Config) {
		vp, _ := cfg.VirtualProxy("sessionvp")
		u, _ := url.Parse(e.URL)
		vp.Backends, vp.BackendURLs = []string{e.URL}, []*url.URL{u}
	}
}

func TestWebsocketEchoWithCookie(t *testing.T) {
	echo := pxNewEchoServer(t)
	o := start(t, pxWebsocketVP(echo))
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	ws, resp, body := pxDialWS(t, o, "/sessionvp/app/engineData?reloadUri=x", "Cookie", "X-Qlik-Session-sessionvp="+id+"; theme=dark")
	if ws == nil {
		t.Fatalf("upgrade: %d %s", resp.StatusCode, body)
	}
	seen := <-echo.requests
	if seen.URL.RequestURI() != "/app/engineData?reloadUri=x" || seen.Header.Get("Cookie") != "theme=dark" {
		t.Errorf("back end saw %s with Cookie %q", seen.URL.RequestURI(), seen.Header.Get("Cookie"))
	}
	for _, msg := range []string{"hello", strings.Repeat("x", 70000), "third"} {
		ws.send(t, msg)
		f := ws.read(t)
		if want := "echo:UserDirectory=DOMAIN; UserId=User1:" + msg; string(f.payload) != want {
			t.Fatalf("echo of %d bytes: got %d bytes", len(msg), len(f.payload))
		}
	}
}

func TestWebsocketWithTicket(t *testing.T) {
	echo := pxNewEchoServer(t)
	o := start(t, pxWebsocketVP(echo))
	ticket := pxTicket(t, o, "sessionvp")
	ws, resp, body := pxDialWS(t, o, "/sessionvp/app/engineData?qlikTicket="+ticket)
	if ws == nil {
		t.Fatalf("upgrade with ticket: %d %s", resp.StatusCode, body)
	}
	pxCookie(t, resp, "X-Qlik-Session-sessionvp")
	ws.send(t, "hi")
	if f := ws.read(t); string(f.payload) != "echo:UserDirectory=DOMAIN; UserId=User1:hi" {
		t.Errorf("echo %q", f.payload)
	}
}

func TestWebsocketWithoutSessionIs401(t *testing.T) {
	echo := pxNewEchoServer(t)
	o := start(t, pxWebsocketVP(echo))
	ws, resp, _ := pxDialWS(t, o, "/sessionvp/app/engineData", "Cookie", "X-Qlik-Session-sessionvp=unknown0123456789")
	if ws != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("upgrade without a session: %d, want 401", resp.StatusCode)
	}
}

// TestWebsocketFromAnotherOriginIs403 is cross-site websocket hijacking:
// the browser sends the cookie, but the Origin is not this proxy's.
func TestWebsocketFromAnotherOriginIs403(t *testing.T) {
	echo := pxNewEchoServer(t)
	o := start(t, func(cfg *config.Config) {
		pxWebsocketVP(echo)(cfg)
		vp, _ := cfg.VirtualProxy("sessionvp")
		vp.Proxying.HostAllowList = []string{"mashup.example.test"}
	})
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	cookie := "X-Qlik-Session-sessionvp=" + id
	own := portOf(o.FrontendAddr)
	for _, origin := range []string{"https://evil.example.test", "null", "https://127.0.0.1.evil.test", "http://" + o.FrontendAddr,
		"https://mashup.example.test:31337", "https://localhost:31337", "http://mashup.example.test"} {
		ws, resp, body := pxDialWS(t, o, "/sessionvp/app/x", "Cookie", cookie, "Origin", origin)
		if ws != nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "websocket_origin_allow_list") {
			t.Errorf("Origin %s: %d %s, want 403", origin, resp.StatusCode, body)
		}
	}
	for _, origin := range []string{"https://" + o.FrontendAddr, "https://mashup.example.test", "https://MASHUP.example.test:" + own, ""} {
		h := []string{"Cookie", cookie}
		if origin != "" {
			h = append(h, "Origin", origin)
		}
		if ws, resp, body := pxDialWS(t, o, "/sessionvp/app/x", h...); ws == nil {
			t.Errorf("Origin %q: %d %s, want 101", origin, resp.StatusCode, body)
		}
	}
	if n := len(echo.requests); n != 4 {
		t.Errorf("the back end got %d upgrades, want only the 4 allowed", n)
	}
}

func TestWebsocketCSRFTokenRequiredWhenEnabled(t *testing.T) {
	echo := pxNewEchoServer(t)
	o := start(t, func(cfg *config.Config) {
		pxWebsocketVP(echo)(cfg)
		vp, _ := cfg.VirtualProxy("sessionvp")
		vp.Proxying.CSRFToken = true
	})
	id, other := randomHex(16), randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	o.addSession(t, "sessionvp", "DOMAIN", "User2", other)
	cookie := "X-Qlik-Session-sessionvp=" + id

	resp, body := get(t, o.browser(t), o.frontURL("/sessionvp/qps/csrftoken"), "Cookie", cookie)
	token := resp.Header.Get("qlik-csrf-token")
	if resp.StatusCode != http.StatusNoContent || len(token) < 16 {
		t.Fatalf("csrftoken: %d %q token %q", resp.StatusCode, body, token)
	}
	resp, _ = get(t, o.browser(t), o.frontURL("/sessionvp/qps/csrftoken"), "Cookie", "X-Qlik-Session-sessionvp="+other)
	otherToken := resp.Header.Get("qlik-csrf-token")
	if otherToken == token || otherToken == "" {
		t.Fatalf("two sessions share the token %q", token)
	}
	if resp, _ := get(t, o.browser(t), o.frontURL("/sessionvp/qps/csrftoken")); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("csrftoken without a session: %d, want 401", resp.StatusCode)
	}

	refused := []struct {
		name, path string
		header     []string
	}{
		{"no token", "/sessionvp/app/x", nil},
		{"another session's token", "/sessionvp/app/x?qlik-csrf-token=" + otherToken, nil},
		{"wrong token", "/sessionvp/app/x?qlik-csrf-token=0000", nil},
		{"token in a header only", "/sessionvp/app/x", []string{"qlik-csrf-token", token}},
	}
	for _, c := range refused {
		ws, resp, body := pxDialWS(t, o, c.path, append([]string{"Cookie", cookie}, c.header...)...)
		if ws != nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "qlik-csrf-token") {
			t.Errorf("%s: %d %s, want 403", c.name, resp.StatusCode, body)
		}
	}
	if len(echo.requests) != 0 {
		t.Fatal("a refused upgrade reached the back end")
	}
	for _, path := range []string{"/sessionvp/app/x?a=1&qlik-csrf-token=" + token, "/sessionvp/app/x&qlik-csrf-token=" + token} {
		ws, resp, body := pxDialWS(t, o, path, "Cookie", cookie)
		if ws == nil {
			t.Fatalf("%s: %d %s, want 101", path, resp.StatusCode, body)
		}
		if seen := <-echo.requests; strings.Contains(seen.URL.RequestURI(), "csrf") {
			t.Errorf("the token reached the back end: %s", seen.URL.RequestURI())
		}
	}
}

// TestWebsocketClosesWhenSessionIsDeletedOnAnotherNode: two openqps nodes
// share one store; the session is deleted through the trusted API of the
// other node; the websocket gets OnSessionLoggedOut and closes.
func TestWebsocketClosesWhenSessionIsDeletedOnAnotherNode(t *testing.T) {
	echo := pxNewEchoServer(t)
	store := session.NewMemory()
	t.Cleanup(func() { store.Close() })
	a := pxStartOn(t, store, pxWebsocketVP(echo))
	b := pxStartOn(t, store, pxWebsocketVP(echo))
	id, bystander := randomHex(16), randomHex(16)
	a.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	a.addSession(t, "sessionvp", "DOMAIN", "User2", bystander)
	ws, resp, body := pxDialWS(t, a, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+id)
	if ws == nil {
		t.Fatalf("upgrade: %d %s", resp.StatusCode, body)
	}
	other, _, _ := pxDialWS(t, a, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+bystander)
	ws.send(t, "before")
	ws.read(t)

	if _, err := b.API.DeleteSession(t.Context(), "sessionvp", id); err != nil {
		t.Fatal(err)
	}
	ws.expectNotice(t, "OnSessionLoggedOut")

	other.send(t, "still here")
	if f := other.read(t); !strings.HasSuffix(string(f.payload), "still here") {
		t.Errorf("another session's websocket was disturbed: %q", f.payload)
	}
}

func TestWebsocketClosesOnUserLogoutAndPersonalLogout(t *testing.T) {
	echo := pxNewEchoServer(t)
	o := start(t, pxWebsocketVP(echo))
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	ws, _, _ := pxDialWS(t, o, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+id)
	if _, err := o.API.LogoutUser(t.Context(), "sessionvp", "DOMAIN", "User1"); err != nil {
		t.Fatal(err)
	}
	ws.expectNotice(t, "OnSessionLoggedOut")

	id = randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	ws, _, _ = pxDialWS(t, o, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+id)
	req, _ := http.NewRequest(http.MethodDelete, o.frontURL("/sessionvp/qps/user"), nil)
	req.Header.Set("Cookie", "X-Qlik-Session-sessionvp="+id)
	if resp, _ := do(t, o.browser(t), req); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	ws.expectNotice(t, "OnSessionLoggedOut")
}

// TestWebsocketClosesOnInactivity: the session times out while its
// websocket is idle; the websocket gets OnSessionTimedOut, whether the
// store's sweep reports the expiry first or openqps's own look at the
// sessions of idle websockets finds it (here the sweep runs every hour).
func TestWebsocketClosesOnInactivity(t *testing.T) {
	for name, sweep := range map[string]time.Duration{"store sweep": 20 * time.Millisecond, "before the sweep": time.Hour} {
		t.Run(name, func(t *testing.T) {
			echo := pxNewEchoServer(t)
			clock := storetest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
			store := session.NewMemory(session.WithClock(clock.Now), session.WithSweepInterval(sweep))
			t.Cleanup(func() { store.Close() })
			activity := time.Hour
			if sweep == time.Hour {
				activity = 20 * time.Millisecond
			}
			o := pxStartOn(t, store, pxWebsocketVP(echo), pxClock(clock), func(o *server.Options) { o.ActivityInterval = activity })
			id := randomHex(16)
			o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
			ws, resp, body := pxDialWS(t, o, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+id)
			if ws == nil {
				t.Fatalf("upgrade: %d %s", resp.StatusCode, body)
			}
			clock.Advance(31 * time.Minute)
			ws.expectNotice(t, "OnSessionTimedOut")
		})
	}
}

// TestWebsocketTrafficKeepsTheSessionAlive: messages on the websocket
// count as activity, so the session outlives its timeout while in use.
func TestWebsocketTrafficKeepsTheSessionAlive(t *testing.T) {
	echo := pxNewEchoServer(t)
	clock := storetest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	store := session.NewMemory(session.WithClock(clock.Now))
	t.Cleanup(func() { store.Close() })
	o := pxStartOn(t, store, pxWebsocketVP(echo), pxClock(clock))
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	ws, _, _ := pxDialWS(t, o, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+id)
	for step := 0; step < 3; step++ {
		clock.Advance(20 * time.Minute) // 60 minutes in all, timeout 30
		ws.send(t, "tick")
		ws.read(t)
		want := clock.Now()
		pxUntil(t, "websocket activity is recorded", func() bool {
			s, err := store.Get(t.Context(), "sessionvp", id)
			return err == nil && !s.LastUsed.Before(want)
		})
	}
}

// pxStartOn runs an openqps on a given store (to share it between nodes,
// or to control its clock); the options change the configuration or the
// server options.
func pxStartOn(t *testing.T, store session.Store, edits ...any) *openqps {
	t.Helper()
	be := newBackend(t)
	cfg, err := config.Parse([]byte(`
data_dir: ` + t.TempDir() + `
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
virtual_proxies:
  - prefix: sessionvp
    session_inactivity_timeout: 30m
    authentication_module_redirect_uri: ` + loginModuleURI + `
    backends: ["` + be.URL + `"]
`))
	if err != nil {
		t.Fatal(err)
	}
	opts := server.Options{Config: cfg, Log: testLogger(t), Store: store, ActivityInterval: 20 * time.Millisecond}
	for _, e := range edits {
		switch e := e.(type) {
		case func(*config.Config):
			e(cfg)
		case func(*server.Options):
			e(&opts)
		}
	}
	srv, err := server.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	o := &openqps{Server: srv, Backend: be, LoginURI: loginModuleURI,
		API: qpsapi.NewClient("https://"+srv.APIAddr, srv.Certs.ClientTLS())}
	t.Cleanup(o.API.CloseIdleConnections)
	return o
}

func pxClock(c *storetest.Clock) func(*server.Options) {
	return func(o *server.Options) { o.Now = c.Now }
}

// TestWebsocketClosesWhenDeletedOnAnotherRedisNode: the multi-node setup
// for real: two openqps share a Redis store; a session deleted through
// one node's API closes its websocket on the other within a second.
func TestWebsocketClosesWhenDeletedOnAnotherRedisNode(t *testing.T) {
	srv := redistest.Start(t)
	echo := pxNewEchoServer(t)
	both := func(c *config.Config) { storesRedisAt(srv.Addr)(c); pxWebsocketVP(echo)(c) }
	a, b := start(t, both), start(t, both)
	id := randomHex(16)
	a.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	ws, resp, body := pxDialWS(t, a, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+id)
	if ws == nil {
		t.Fatalf("upgrade: %d %s", resp.StatusCode, body)
	}
	ws.send(t, "hello")
	ws.read(t)
	if _, err := b.API.LogoutUser(t.Context(), "sessionvp", "DOMAIN", "User1"); err != nil {
		t.Fatal(err)
	}
	ws.expectNotice(t, "OnSessionLoggedOut")
}

// TestReloadClosesOnlyTheWebsocketsOfRemovedVirtualProxies: a reload that
// removes a virtual proxy ends its websockets with OnSessionClosed; those
// of the virtual proxies that stay live on.
func TestReloadClosesOnlyTheWebsocketsOfRemovedVirtualProxies(t *testing.T) {
	echo := pxNewEchoServer(t)
	o := start(t, func(cfg *config.Config) {
		pxWebsocketVP(echo)(cfg)
		u, _ := url.Parse(echo.URL)
		cfg.VirtualProxies[0].Backends, cfg.VirtualProxies[0].BackendURLs = []string{echo.URL}, []*url.URL{u}
	})
	kept, removed := randomHex(16), randomHex(16)
	o.addSession(t, "", "DOMAIN", "User1", kept)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", removed)
	wsKept, _, _ := pxDialWS(t, o, "/app/x", "Cookie", "X-Qlik-Session="+kept)
	wsRemoved, _, _ := pxDialWS(t, o, "/sessionvp/app/x", "Cookie", "X-Qlik-Session-sessionvp="+removed)
	if wsKept == nil || wsRemoved == nil {
		t.Fatal("upgrades refused")
	}

	next := *o.CurrentConfig()
	next.VirtualProxies = next.VirtualProxies[:1] // only the default virtual proxy
	if err := o.Reload(&next); err != nil {
		t.Fatal(err)
	}
	wsRemoved.expectNotice(t, "OnSessionClosed")
	wsKept.send(t, "still here")
	if f := wsKept.read(t); !strings.HasSuffix(string(f.payload), ":still here") {
		t.Errorf("websocket of a kept virtual proxy: %q", f.payload)
	}

	// A reload the front end cannot build, or that needs a restart, is
	// refused and changes nothing.
	bad := next
	bad.API.Listen = "127.0.0.1:1"
	if err := o.Reload(&bad); err == nil || !strings.Contains(err.Error(), "api.listen") {
		t.Errorf("reload with a changed api.listen: %v", err)
	}
	wsKept.send(t, "after refusal")
	if f := wsKept.read(t); !strings.HasSuffix(string(f.payload), ":after refusal") {
		t.Errorf("after a refused reload: %q", f.payload)
	}
}

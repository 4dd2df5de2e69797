// Package e2e runs openqps's real listeners on 127.0.0.1 with real TLS and
// certificates from internal/pki, in front of a real back end, and drives
// them as login modules and browsers do.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/server"
	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/storetest"
)

// backend is a real HTTP back end that records every request it receives
// and answers with a per-run random token, so a test can tell that its
// answer really came from here.
//
// It records each request only after reading its whole body, so the
// request's trailers are filled in too, and it keeps every byte its
// connections received (raw): a back end that parses request lines more
// leniently than Go would act on bytes Go refuses, so an attack row
// asserts on what arrived, not only on what Go made of it.
type backend struct {
	URL   string
	Token string
	mu    sync.Mutex
	seen  []*http.Request
	raw   []*bytes.Buffer // one per connection, in the order they were accepted
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{Token: randomHex(8)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // fills r.Trailer
		seen := r.Clone(context.Background())
		seen.Body = io.NopCloser(bytes.NewReader(body))
		b.mu.Lock()
		b.seen = append(b.seen, seen)
		b.mu.Unlock()
		w.Header().Set("X-Backend-Token", b.Token)
		io.WriteString(w, "backend "+b.Token+" user="+r.Header.Get("X-Qlik-User"))
	})}
	ln := listenLoopback(t)
	go srv.Serve(recordingListener{ln, b})
	t.Cleanup(func() { srv.Close() })
	b.URL = "http://" + ln.Addr().String()
	return b
}

// received is every byte the back end's connections have received so
// far, connection after connection.
func (b *backend) received() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	var all []byte
	for _, c := range b.raw {
		all = append(all, c.Bytes()...)
		all = append(all, '\n')
	}
	return all
}

// recordingListener hands out connections that copy what they read into
// the back end's raw record.
type recordingListener struct {
	net.Listener
	b *backend
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	buf := new(bytes.Buffer)
	l.b.mu.Lock()
	l.b.raw = append(l.b.raw, buf)
	l.b.mu.Unlock()
	return &recordingConn{Conn: c, b: l.b, buf: buf}, nil
}

type recordingConn struct {
	net.Conn
	b   *backend
	buf *bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.b.mu.Lock()
		c.buf.Write(p[:n])
		c.b.mu.Unlock()
	}
	return n, err
}

// requests returns what the back end has received so far.
func (b *backend) requests() []*http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*http.Request(nil), b.seen...)
}

func (b *backend) last(t *testing.T) *http.Request {
	t.Helper()
	rs := b.requests()
	if len(rs) == 0 {
		t.Fatal("the back end received no request")
	}
	return rs[len(rs)-1]
}

// openqps is one running openqps with its clients.
type openqps struct {
	*server.Server
	Backend  *backend
	Clock    *storetest.Clock // nil unless the store is memory
	API      *qpsapi.Client
	LoginURI string
	t        *testing.T // for the OpenAPI check of API answers (openapi_test.go)
}

const loginModuleURI = "https://login.example.test/login"

// start runs openqps with the default virtual proxy and "sessionvp" in
// front of a recording back end; edit may change the configuration.
func start(t *testing.T, edit func(*config.Config)) *openqps {
	t.Helper()
	be := newBackend(t)
	yaml := `
data_dir: ` + t.TempDir() + `
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
log: {level: debug}
virtual_proxies:
  - prefix: ""
    authentication_module_redirect_uri: ` + loginModuleURI + `
    backends: ["` + be.URL + `"]
  - prefix: sessionvp
    session_cookie_name: X-Qlik-Session-sessionvp
    session_inactivity_timeout: 30m
    authentication_module_redirect_uri: ` + loginModuleURI + `
    backends: ["` + be.URL + `"]
`
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	testTransport(cfg)
	if edit != nil {
		edit(cfg)
	}
	opts := server.Options{Config: cfg, Log: testLogger(t), AuditOut: testWriter{t}}
	var clock *storetest.Clock
	if cfg.Store.Type == "memory" {
		// The tests drive time: a memory store on a fake clock. Other
		// stores are opened by the server, on the real clock.
		clock = storetest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
		store := session.NewMemory(session.WithClock(clock.Now), session.WithMaxSessions(cfg.Store.MaxSessions))
		t.Cleanup(func() { store.Close() })
		opts.Store, opts.Now = store, clock.Now
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
	o := &openqps{
		Server: srv, Backend: be, Clock: clock, LoginURI: loginModuleURI, t: t,
		API: qpsapi.NewClientHTTP("https://"+srv.APIAddr, &http.Client{Timeout: 30 * time.Second, Transport: validatingTransport(t, srv.APIAddr,
			&http.Transport{TLSClientConfig: srv.Certs.ClientTLS(), MaxIdleConnsPerHost: 16, ForceAttemptHTTP2: true})}),
	}
	// Runs before the shutdown above: an idle HTTP/2 connection would
	// hold Shutdown for its one-second GOAWAY grace period.
	t.Cleanup(o.API.CloseIdleConnections)
	return o
}

// frontURL is the front end's URL for a path.
func (o *openqps) frontURL(path string) string { return "https://" + o.FrontendAddr + path }

// apiURL is the trusted API's URL for a path.
func (o *openqps) apiURL(path string) string { return "https://" + o.APIAddr + path }

// browser is an HTTPS client that trusts openqps's CA, keeps cookies and
// does not follow redirects (tests look at each one).
func (o *openqps) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

// apiClient is a raw HTTPS client for the trusted API with the given
// client certificates (none: no certificate).
func (o *openqps) apiClient(certs ...tls.Certificate) *http.Client {
	return &http.Client{
		Transport: validatingTransport(o.t, o.APIAddr, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool, Certificates: certs}}),
		Timeout:   10 * time.Second,
	}
}

// setCookie puts a cookie for the front end into a browser's jar.
func (o *openqps) setCookie(t *testing.T, c *http.Client, name, value string) {
	t.Helper()
	u, _ := url.Parse(o.frontURL("/"))
	c.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

func (o *openqps) addSession(t *testing.T, prefix, dir, user, id string, attrs ...session.Attribute) {
	t.Helper()
	_, err := o.API.AddSession(context.Background(), prefix, qpsapi.UserRequest{UserDirectory: dir, UserId: user, SessionId: id, Attributes: attrs})
	if err != nil {
		t.Fatalf("add session: %v", err)
	}
}

func get(t *testing.T, c *http.Client, u string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return do(t, c, req)
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testLogger sends openqps's log to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

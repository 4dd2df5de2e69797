package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/redis"
	"github.com/openqps/openqps/internal/session/redis/redistest"
	"github.com/openqps/openqps/internal/upstream"
)

// refusalLog is the log of a front end under test: it keeps each
// record's message and event, and is safe for the front end's goroutines.
type refusalLog struct {
	mu      sync.Mutex
	records []string // "message event"
}

func (l *refusalLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *refusalLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *refusalLog) WithGroup(string) slog.Handler            { return l }

func (l *refusalLog) Handle(_ context.Context, r slog.Record) error {
	event := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "event" {
			event = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Message+" "+event)
	return nil
}

// events returns how many records have event, and all records.
func (l *refusalLog) events(event string) (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if strings.HasSuffix(r, " "+event) {
			n++
		}
	}
	return n, slices.Clone(l.records)
}

func (l *refusalLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = nil
}

// refusalFrontEnd is a front end for the virtual proxies of vps (YAML
// list items, "%s" standing for the back end's URL) over store, logging
// into the returned buffer.
func refusalFrontEnd(t *testing.T, backendURL, vps string, store session.Store) (*Proxy, *refusalLog) {
	t.Helper()
	cfg, err := config.Parse([]byte("store: {type: memory}\nvirtual_proxies:\n" + strings.ReplaceAll(vps, "%s", backendURL)))
	if err != nil {
		t.Fatal(err)
	}
	if store == nil {
		m := session.NewMemory()
		t.Cleanup(func() { m.Close() })
		store = m
	}
	logs := &refusalLog{}
	p, err := New(cfg, store, slog.New(logs), Options{APIPort: 4243, Hosts: []string{"proxy.example"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, logs
}

// okBackend is a back end that answers every request 200.
func okBackend(t *testing.T) string {
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(b.Close)
	return b.URL
}

// rawAnswerBackend is a back end that answers every request with the
// bytes of answer, whatever they are.
func rawAnswerBackend(t *testing.T, answer string) string {
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, answer)
	}))
	t.Cleanup(b.Close)
	return b.URL
}

// closedPort is the URL of a back end that refuses connections.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func addSession(t *testing.T, store session.Store, prefix string) string {
	t.Helper()
	id := session.NewID()
	if err := store.Add(context.Background(), session.Session{Prefix: prefix, ID: id, UserDirectory: "D", UserID: "u", Timeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	return id
}

func clientRequest(method, target string, header ...string) *http.Request {
	r := httptest.NewRequest(method, "http://proxy.example"+target, nil)
	r.RequestURI = target
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func jwtKeyPEM(t *testing.T) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// refusalRow is one refusal of the front end: a front end and a request
// that it refuses with status and error.
type refusalRow struct {
	name   string
	status int
	error  string
	// send returns the front end and the request it must refuse; it
	// may send requests of its own first.
	send func(t *testing.T) (*Proxy, *refusalLog, *http.Request)
}

const plainVP = "  - prefix: vp\n    backends: [\"%s\"]\n"

// refusalRows are every refusal of the front end, one row at least each
// (TestEveryFrontendRefusalHasARow).
func refusalRows() []refusalRow {
	simple := func(vps, method, target string, header ...string) func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
		return func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			p, logs := refusalFrontEnd(t, okBackend(t), vps, nil)
			return p, logs, clientRequest(method, target, header...)
		}
	}
	// withSessionAt sends a request with a valid session cookie to a
	// front end whose back end is backend's.
	// rebuilt sends GET /vp/hub/, changed by change as no client library
	// would build it.
	rebuilt := func(vps string, change func(*http.Request)) func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
		return func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			p, logs, r := simple(vps, "GET", "/vp/hub/")(t)
			change(r)
			return p, logs, r
		}
	}
	withSessionAt := func(backend func(*testing.T) string, vps, method, target string, header ...string) func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
		return func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			store := session.NewMemory()
			t.Cleanup(func() { store.Close() })
			p, logs := refusalFrontEnd(t, backend(t), vps, store)
			r := clientRequest(method, target, header...)
			r.Header.Add("Cookie", "X-Qlik-Session-vp-HTTP="+addSession(t, store, "vp"))
			return p, logs, r
		}
	}
	withSession := func(vps, method, target string, header ...string) func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
		return withSessionAt(okBackend, vps, method, target, header...)
	}
	answering := func(answer string) func(*testing.T) string {
		return func(t *testing.T) string { return rawAnswerBackend(t, answer) }
	}
	withBody := func(readErr error) func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
		return func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			p, logs, r := withSession(plainVP, "POST", "/vp/hub/")(t)
			r.Body = io.NopCloser(io.MultiReader(strings.NewReader("part of a body"), iotest.ErrReader(readErr)))
			r.ContentLength = -1
			return p, logs, r
		}
	}
	loginVP := plainVP + "    authentication_module_redirect_uri: https://login.example/\n"
	websocket := []string{"Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
	return append([]refusalRow{
		{"absolute-form target", 400, "invalid request target", rebuilt(plainVP, func(r *http.Request) { r.RequestURI = "http://evil.example/vp/hub/" })},
		{"h2c upgrade", 400, "upgrade not allowed", simple(plainVP, "GET", "/vp/hub/", "Upgrade", "h2c", "Connection", "Upgrade, HTTP2-Settings")},
		{"control character in the target", 400, "invalid request line", rebuilt(plainVP, func(r *http.Request) { r.RequestURI = "/vp/hub/\x01" })},
		{"dot segment", 400, "invalid path", simple(plainVP, "GET", "/vp/../hub/")},
		{"unknown prefix, no default", 404, "unknown virtual proxy", simple(plainVP, "GET", "/other/hub/")},
		{"websocket from another origin", 403, "websocket origin not allowed", simple(plainVP, "GET", "/vp/app/", append(websocket, "Origin", "https://evil.example")...)},
		{"websocket without its CSRF token", 403, "websocket CSRF token missing or wrong", withSession(plainVP+"    csrf_token: true\n", "GET", "/vp/app/", websocket...)},
		{"POST to the CSRF token", 405, "method not allowed", simple(plainVP, "POST", "/vp/qps/csrftoken")},
		{"CSRF token without a session", 401, "not authenticated", simple(plainVP, "GET", "/vp/qps/csrftoken")},
		{"PUT to the personal API", 405, "method not allowed", simple(plainVP, "PUT", "/vp/qps/user")},
		{"unknown personal API path", 404, "unknown personal API path", simple(plainVP, "GET", "/vp/qps/other")},
		{"no session, no login module", 401, "not authenticated", simple(plainVP, "GET", "/vp/hub/")},
		{"no session, not a navigation", 401, "not authenticated", simple(loginVP, "POST", "/vp/hub/")},
		{"login redirect for a foreign Host", 400, "unknown host", rebuilt(loginVP, func(r *http.Request) { r.Host = "evil.example" })},
		{"reloadUri elsewhere", 400, "reloadUri not allowed", simple(loginVP, "GET", "/vp/hub/?reloadUri=https%3A%2F%2Fevil.example%2F")},
		{"URL too long to return to", 414, "URL too long to log in with", simple(loginVP, "GET", "/vp/hub/?x="+strings.Repeat("a", session.MaxTargetURI))},
		{"unknown ticket, not a navigation", 401, "ticket refused", simple(loginVP, "POST", "/vp/hub/?qlikTicket=0123456789abcdefgh")},
		{"user header twice", 400, "invalid user header", simple(plainVP+"    authentication_method: header_static\n    header_name: X-Remote-User\n    static_user_directory: ACME\n",
			"GET", "/vp/hub/", "X-Remote-User", "alice", "X-Remote-User", "bob")},
		{"bad bearer token", 401, "invalid token", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			p, logs := refusalFrontEnd(t, okBackend(t), plainVP+"    authentication_method: jwt\n    jwt: {public_key: "+jwtKeyPEM(t)+"}\n", nil)
			return p, logs, clientRequest("GET", "/vp/hub/", "Authorization", "Bearer not.a.token")
		}},
		{"garbage Negotiate token", 400, "invalid Negotiate token", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			return simple(windowsVP(t, false), "GET", "/vp/hub/", "Authorization", "Negotiate Z2FyYmFnZQ==")(t)
		}},
		{"Negotiate leading with NTLM", 401, "send a Kerberos token", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			return simple(windowsVP(t, false), "GET", "/vp/hub/", "Authorization", spnegoOffering(t, ntlmNegotiateMessage, oidNTLM, oidKRB5))(t)
		}},
		{"NTLM token", 403, "NTLM is not supported", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			return simple(windowsVP(t, false), "GET", "/vp/hub/", "Authorization", "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==")(t)
		}},
		{"forms login without a KDC", 404, "no forms login", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			return simple(windowsVP(t, false), "GET", "/vp/internal_forms_authentication/")(t)
		}},
		{"forms login body too large", 400, "invalid login form", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			p, logs, r := simple(windowsVP(t, true), "POST", "/vp/internal_forms_authentication/", "Content-Type", "application/x-www-form-urlencoded")(t)
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(bigForm)), int64(len(bigForm))
			return p, logs, r
		}},
		{"PUT to the forms login", 405, "method not allowed", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			return simple(windowsVP(t, true), "PUT", "/vp/internal_forms_authentication/")(t)
		}},
		{"no Negotiate token, not a navigation", 401, "not authenticated", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			return simple(windowsVP(t, true), "POST", "/vp/hub/")(t)
		}},
		{"store full", 429, "session store full", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			store := session.NewMemory(session.WithMaxSessions(1))
			t.Cleanup(func() { store.Close() })
			addSession(t, store, "vp")
			p, logs := refusalFrontEnd(t, okBackend(t), plainVP+"    authentication_method: header_static\n    header_name: X-Remote-User\n    static_user_directory: ACME\n", store)
			return p, logs, clientRequest("GET", "/vp/hub/", "X-Remote-User", "alice")
		}},
		{"store down", 503, "session store unavailable", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			srv := redistest.Start(t)
			store, err := redis.Open(redis.Options{Addresses: []string{srv.Addr}, KeyPrefix: "openqps-refusals:"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			p, logs := refusalFrontEnd(t, okBackend(t), plainVP, store)
			srv.Stop()
			return p, logs, clientRequest("GET", "/vp/hub/", "Cookie", "X-Qlik-Session-vp-HTTP=0123456789abcdef0123456789abcdef")
		}},
		// A client's body fails as the connection's reads do: a deadline
		// (timeouts.request_body) or a broken chunked encoding.
		{"request body past its deadline", 408, "request body too slow", withBody(os.ErrDeadlineExceeded)},
		{"request body broken", 400, "invalid request body", withBody(io.ErrUnexpectedEOF)},
		{"back end refuses connections", 502, "back end unavailable", withSessionAt(closedPort, plainVP, "GET", "/vp/hub/")},
		{"every back end down", 503, "no back end available", func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			store := session.NewMemory()
			t.Cleanup(func() { store.Close() })
			p, logs := refusalFrontEnd(t, closedPort(t), plainVP, store)
			cookie := "X-Qlik-Session-vp-HTTP=" + addSession(t, store, "vp")
			w := httptest.NewRecorder()
			p.ServeHTTP(w, clientRequest("GET", "/vp/hub/", "Cookie", cookie)) // takes the node out
			if w.Code != http.StatusBadGateway {
				t.Fatalf("first request: %d, want 502", w.Code)
			}
			logs.reset()
			return p, logs, clientRequest("GET", "/vp/hub/", "Cookie", cookie)
		}},
		{"back end answers garbage", 502, "back end failed", withSessionAt(answering("SMTP ready\r\n\r\n"), plainVP, "GET", "/vp/hub/")},
		{"back end answer head too large", 502, "back end answer refused", withSessionAt(
			answering("HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", upstream.MaxResponseHeadBytes)+"\r\nContent-Length: 0\r\n\r\n"), plainVP, "GET", "/vp/hub/")},
	}, append(oidcRefusalRows(), samlRefusalRows()...)...)
}

// TestFrontendRefusals sends each refusal's request through the front
// end and checks what every refusal must be: its status, the JSON body
// {"error","detail"} with a detail, not cached, and one log line — or,
// for a browser, the HTML page with the same status.
func TestFrontendRefusals(t *testing.T) {
	for _, row := range refusalRows() {
		for _, accept := range []string{"*/*", "text/html"} {
			t.Run(row.name+"/"+accept, func(t *testing.T) {
				p, logs, r := row.send(t)
				r.Header.Set("Accept", accept)
				w := httptest.NewRecorder()
				p.ServeHTTP(w, r)
				if w.Code != row.status {
					t.Fatalf("status %d, want %d; body %s", w.Code, row.status, w.Body)
				}
				if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", cc)
				}
				if accept == "text/html" {
					if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" || !strings.Contains(w.Body.String(), "<h1>"+strconv.Itoa(row.status)+" — ") {
						t.Errorf("browser got %q: %s", ct, w.Body)
					}
				} else {
					var body struct{ Error, Detail string }
					if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
						t.Errorf("Content-Type %q", ct)
					}
					if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != row.error || body.Detail == "" {
						t.Errorf("body %s (%v), want error %q with a detail", w.Body, err, row.error)
					}
					if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
						t.Errorf("Content-Length %q for %d bytes", cl, w.Body.Len())
					}
				}
				if n, all := logs.events("frontend.rejected"); n != 1 {
					t.Errorf("%d frontend.rejected log lines, want 1: %q", n, all)
				}
			})
		}
	}
}

// TestEveryFrontendRefusalHasARow reads the package's source: every
// refusal it can answer (the error of a p.reject call, of a login
// method's refusal or failed login) must be a row of refusalRows, so a
// refusal added without a test fails here.
func TestEveryFrontendRefusalHasARow(t *testing.T) {
	rows := map[string]bool{}
	for _, row := range refusalRows() {
		rows[row.error] = true
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		check := func(e ast.Expr) {
			lit, ok := e.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return // a refusal passed on (v.error)
			}
			msg, _ := strconv.Unquote(lit.Value)
			found++
			if !rows[msg] {
				t.Errorf("%s: refusal %q has no row in refusalRows", fset.Position(lit.Pos()), msg)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				switch fn := n.Fun.(type) {
				case *ast.SelectorExpr:
					if fn.Sel.Name == "reject" && len(n.Args) == 4 {
						check(n.Args[2])
					}
				case *ast.Ident:
					if fn.Name == "refusal" && len(n.Args) == 3 {
						check(n.Args[1])
					}
				}
			case *ast.CompositeLit:
				if id, ok := n.Type.(*ast.Ident); ok && id.Name == "verdict" {
					for _, el := range n.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "error" {
								check(kv.Value)
							}
						}
					}
				}
			}
			return true
		})
	}
	if found < len(rows) {
		t.Errorf("found %d refusals in the source, fewer than the %d rows: the search no longer sees them", found, len(rows))
	}
}

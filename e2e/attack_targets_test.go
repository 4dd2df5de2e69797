package e2e

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/redis/redistest"
)

// Attacks on what openqps does for strangers before they log in (login
// targets, the personal API), on the addresses it trusts (Host, reloadUri,
// targetUri, websocket Origin: scheme, host and port), on the order of its
// websocket checks, and on the CSRF token's key.

// attackAllowedName is in the default virtual proxy's allow list in these
// tests: its default ports and the front end's own are allowed, no other.
const attackAllowedName = "mashup.example.test"

func attackTargetsStart(t *testing.T, edit func(*config.Config)) *openqps {
	return start(t, func(c *config.Config) {
		vp, _ := c.VirtualProxy("")
		vp.Proxying.HostAllowList = []string{attackAllowedName}
		if edit != nil {
			edit(c)
		}
	})
}

func TestAttackTableTargets(t *testing.T) {
	o := attackTargetsStart(t, nil)
	defID := randomHex(16)
	o.addSession(t, "", "DOMAIN", "User1", defID)
	port := portOf(o.FrontendAddr)
	runAttackRows(t, o, map[string]string{
		"{cookie}": "X-Qlik-Session=" + defID,
		"{port}":   port,
	}, attackTargetRows())
}

func attackTargetRows() []attackRow {
	const closing = "Connection: close\r\n\r\n"
	getAs := func(host, path string, headers ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + strings.Join(headers, "") + closing
	}
	get := func(path string, headers ...string) string { return getAs("{host}", path, headers...) }
	const upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	refused := []int{http.StatusBadRequest}
	forbidden := []int{http.StatusForbidden}
	redirect := []int{http.StatusFound}
	served := []int{http.StatusOK}
	noLoginURI := func(t *testing.T, _ *http.Response, body string) {
		if strings.Contains(body, "loginUri") {
			t.Errorf("the personal API offers a login: %s", body)
		}
	}
	long := strings.Repeat("x", session.MaxTargetURI)
	return []attackRow{
		// Item 8: the Host a login redirect is built from must be an
		// address of this proxy, port included.
		{name: "Host on another port of localhost", raw: getAs("localhost:31337", "/hub/{mark}"), want: refused},
		{name: "Host on another port of 127.0.0.1", raw: getAs("127.0.0.1:31337", "/hub/{mark}"), want: refused},
		{name: "Host on another port of an allowed name", raw: getAs(attackAllowedName+":31337", "/hub/{mark}"), want: refused},
		{name: "Host with a signed port", raw: getAs("localhost:+{port}", "/hub/{mark}"), want: refused},
		{name: "Host with a zero-padded port", raw: getAs("localhost:0{port}", "/hub/{mark}"), want: refused},
		{name: "Host of an allowed name on the front end's port", raw: getAs(attackAllowedName+":{port}", "/hub/{mark}"), want: redirect, check: attackToLogin},
		{name: "reloadUri on another port of localhost", raw: get("/hub/{mark}?reloadUri=https%3A%2F%2Flocalhost%3A31337%2Fhub%2F"), want: refused},
		{name: "reloadUri on another port of the Host", raw: get("/hub/{mark}?reloadUri=https%3A%2F%2F127.0.0.1%3A31337%2Fhub%2F"), want: refused},
		{name: "reloadUri on another port of an allowed name", raw: get("/hub/{mark}?reloadUri=https%3A%2F%2F" + attackAllowedName + "%3A31337%2F"), want: refused},
		{name: "reloadUri with a port out of range", raw: get("/hub/{mark}?reloadUri=https%3A%2F%2Flocalhost%3A65979%2F"), want: refused},
		{name: "reloadUri on the front end's own port", raw: get("/hub/{mark}?reloadUri=https%3A%2F%2Flocalhost%3A{port}%2Fhub%2F"), want: redirect, check: attackToLogin},
		{name: "personal API targetUri on another port", raw: get("/qps/user?targetUri=https%3A%2F%2Flocalhost%3A31337%2F{mark}"), want: served, check: noLoginURI},
		{name: "personal API behind a Host on another port", raw: getAs("localhost:31337", "/qps/user?targetUri=%2Fhub%2F{mark}"), want: served, check: noLoginURI},

		// Item 1: the URL carried to the login module is bounded, and
		// refused before anything else is done for it.
		{name: "login redirect for a URL over the bound", raw: get("/hub/{mark}?q=" + long), want: []int{http.StatusRequestURITooLong}},
		{name: "reloadUri over the bound", raw: get("/hub/{mark}?reloadUri=%2Fhub%2F%3Fq%3D" + long), want: []int{http.StatusRequestURITooLong}},
		{name: "personal API targetUri over the bound", raw: get("/qps/user?targetUri=%2Fhub%2F%3F{mark}" + long), want: served, check: noLoginURI},

		// Item 13: a websocket's Origin is scheme, host and port of this
		// proxy or of the allow list, and https on the HTTPS listener.
		{name: "websocket from an allowed name over plain http", raw: get("/app/{mark}", "Cookie: {cookie}\r\n", upgrade, "Origin: http://"+attackAllowedName+"\r\n"), want: forbidden},
		{name: "websocket from an allowed name on another port", raw: get("/app/{mark}", "Cookie: {cookie}\r\n", upgrade, "Origin: https://"+attackAllowedName+":31337\r\n"), want: forbidden},
		{name: "websocket from localhost on another port", raw: get("/app/{mark}", "Cookie: {cookie}\r\n", upgrade, "Origin: https://localhost:31337\r\n"), want: forbidden},
		{name: "websocket whose Origin is its own foreign Host (DNS rebinding)", raw: getAs("rebind.evil.test", "/app/{mark}", "Cookie: {cookie}\r\n", upgrade, "Origin: https://rebind.evil.test\r\n"), want: forbidden},
		{name: "websocket whose Origin is its Host on another port", raw: getAs("localhost:31337", "/app/{mark}", "Cookie: {cookie}\r\n", upgrade, "Origin: https://localhost:31337\r\n"), want: forbidden},
		{name: "websocket with an empty Origin", raw: get("/app/{mark}", "Cookie: {cookie}\r\n", upgrade, "Origin: \r\n"), want: forbidden},
		{name: "websocket with two Origins", raw: get("/app/{mark}", "Cookie: {cookie}\r\n", upgrade, "Origin: https://{host}\r\nOrigin: https://evil.example\r\n"), want: forbidden},
		{name: "websocket with an Origin that has a path", raw: get("/app/{mark}", "Cookie: {cookie}\r\n", upgrade, "Origin: https://{host}/evil\r\n"), want: forbidden},
		{name: "websocket from this proxy's own origin", raw: get("/app/", "Cookie: {cookie}\r\n", upgrade, "Origin: https://{host}\r\n", "X-Note: ok\r\n"), want: served},

		// Item 17: a refused cross-origin websocket spends nothing.
		{name: "cross-origin websocket with a ticket", raw: get("/app/{mark}?qlikTicket={ticket}", upgrade, "Origin: https://evil.example\r\n"), setup: attackTicketOf(""), want: forbidden,
			check: func(t *testing.T, resp *http.Response, _ string) {
				if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
					t.Errorf("a refused websocket got a session cookie: %q", c)
				}
			}},
	}
}

// TestAttackCrossOriginWebsocketLeavesTheTicketUnspent: the ticket in the
// URL of a refused cross-origin upgrade still logs its user in once.
func TestAttackCrossOriginWebsocketLeavesTheTicketUnspent(t *testing.T) {
	o := attackTargetsStart(t, nil)
	tk := o.ticketFor(t, "", "Victim")
	raw := "GET /app/?qlikTicket=" + tk + " HTTP/1.1\r\nHost: " + o.FrontendAddr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n"
	if a := attackSend(t, o.FrontendAddr, o.frontTLS(), raw); len(a) == 0 || a[0].resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin upgrade with a ticket: %v, want 403", a)
	}
	resp, _ := get(t, o.browser(t), o.frontURL("/hub/?qlikTicket="+tk))
	if resp.StatusCode != http.StatusFound || len(resp.Cookies()) == 0 {
		t.Fatalf("the ticket after the refused upgrade: %d, cookies %v; want 302 with a session cookie", resp.StatusCode, resp.Cookies())
	}
}

// TestAttackAddressesOverHTTP2: the Host (:authority), reloadUri and
// targetUri rules hold over HTTP/2 too.
func TestAttackAddressesOverHTTP2(t *testing.T) {
	o := attackTargetsStart(t, nil)
	client := attackH2Client(t, o)
	port := portOf(o.FrontendAddr)
	for i, c := range []struct {
		name, authority, path string
		want                  int
		check                 func(t *testing.T, resp *http.Response, body string)
	}{
		{"authority on another port of localhost", "localhost:31337", "/hub/{mark}", 400, nil},
		{"authority on another port of an allowed name", attackAllowedName + ":31337", "/hub/{mark}", 400, nil},
		{"authority with a signed port", "localhost:+" + port, "/hub/{mark}", 400, nil},
		{"reloadUri on another port", o.FrontendAddr, "/hub/{mark}?reloadUri=https%3A%2F%2Flocalhost%3A31337%2F", 400, nil},
		{"URL over the bound", o.FrontendAddr, "/hub/{mark}?q=" + strings.Repeat("y", session.MaxTargetURI), 414, nil},
		{"personal API targetUri on another port", o.FrontendAddr, "/qps/user?targetUri=https%3A%2F%2Flocalhost%3A31337%2F{mark}", 200,
			func(t *testing.T, _ *http.Response, body string) {
				if strings.Contains(body, "loginUri") {
					t.Errorf("login offered: %s", body)
				}
			}},
		{"authority on the front end's port", "localhost:" + port, "/hub/{mark}", 302, func(t *testing.T, resp *http.Response, _ string) { attackToLogin(t, resp, "") }},
	} {
		mark := fmt.Sprintf("zqtg2%03d%s", i, randomHex(3))
		req, err := http.NewRequest(http.MethodGet, o.frontURL(strings.ReplaceAll(c.path, "{mark}", mark)), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = c.authority
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s: spoke %s, want HTTP/2", c.name, resp.Proto)
		}
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %.200s, want %d", c.name, resp.StatusCode, body, c.want)
		}
		if c.check != nil {
			c.check(t, resp, string(body))
		}
		attackNeverReachedBackend(t, o, mark, false)
	}
}

func attackH2Client(t *testing.T, o *openqps) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// attackFlood sends n cookie-less GETs of path (its {n} replaced by the
// request's number) from workers goroutines and counts the answers by
// status.
func attackFlood(t *testing.T, client *http.Client, o *openqps, n, workers int, path string) map[int]int {
	t.Helper()
	var (
		next   atomic.Int64
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				resp, err := client.Get(o.frontURL(strings.ReplaceAll(path, "{n}", strconv.FormatInt(i, 10))))
				if err != nil {
					t.Errorf("flood request %d: %v", i, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				counts[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return counts
}

// TestAttackLoginTargetFloodLocksNobodyOut is item 1: a stranger sends
// enough cookie-less GETs with long URLs (and personal-API targetUris) to
// fill what openqps used to keep for them, 64 MB; then a browser that
// never took part still gets the login page, on every virtual proxy.
func TestAttackLoginTargetFloodLocksNobodyOut(t *testing.T) {
	o := attackTargetsStart(t, nil)
	b := o.browser(t)
	b.Transport.(*http.Transport).MaxIdleConnsPerHost = 8
	// 15 KB fits the front end's 16 KB header limit; 4,500 of them are
	// 66 MB of URLs.
	pad := strings.Repeat("p", 15<<10)
	counts := attackFlood(t, b, o, 4500, 8, "/hub/{n}?q="+pad)
	t.Logf("flood of long URLs answered %v", counts)
	personal := attackFlood(t, attackH2Client(t, o), o, 300, 8, "/qps/user?targetUri=%2Fhub%2F{n}%3Fq%3D"+pad[:session.MaxTargetURI-64])
	t.Logf("flood of personal-API targetUris (HTTP/2) answered %v", personal)
	// Short URLs fill what room the long ones left.
	short := attackFlood(t, b, o, 500, 8, "/hub/{n}")
	t.Logf("flood of short URLs answered %v", short)
	for _, prefix := range []string{"", "sessionvp/"} {
		resp, body := get(t, o.browser(t), o.frontURL("/"+prefix+"hub/"))
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("a new browser on /%shub/ after the flood: %d %.200s, want 302 to the login module", prefix, resp.StatusCode, body)
		}
		attackToLogin(t, resp, "")
	}
	if counts[http.StatusTooManyRequests]+personal[http.StatusTooManyRequests]+short[http.StatusTooManyRequests] != 0 {
		t.Errorf("the flood itself was answered 429: %v %v %v; strangers must not fill anything", counts, personal, short)
	}
}

// TestAttackLoginTargetFloodStoresNothingInRedis: with Redis there was
// no bound at all; now a stranger's login redirects and personal-API
// login offers add no key, over HTTP/1.1 and HTTP/2.
func TestAttackLoginTargetFloodStoresNothingInRedis(t *testing.T) {
	srv := redistest.Start(t)
	o := attackTargetsStart(t, storesRedisAt(srv.Addr))
	dbsize := func() int {
		t.Helper()
		out, err := exec.Command("redis-cli", "-h", "127.0.0.1", "-p", portOf(srv.Addr), "dbsize").Output()
		if err != nil {
			t.Fatalf("redis-cli dbsize: %v", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatalf("redis-cli dbsize: %q", out)
		}
		return n
	}
	// One login redirect first: the targetId key is made once, on first use.
	if resp, _ := get(t, o.browser(t), o.frontURL("/hub/")); resp.StatusCode != http.StatusFound {
		t.Fatalf("first login redirect: %d", resp.StatusCode)
	}
	before := dbsize()
	uri := "/hub/{n}?q=" + strings.Repeat("r", 3<<10)
	h1 := attackFlood(t, o.browser(t), o, 300, 4, uri)
	h2 := attackFlood(t, attackH2Client(t, o), o, 300, 4, "/qps/user?targetUri="+url.QueryEscape(uri))
	if h1[http.StatusFound] != 300 || h2[http.StatusOK] != 300 {
		t.Fatalf("flood answers: HTTP/1.1 %v, HTTP/2 %v; want 300 login redirects and 300 personal-API answers", h1, h2)
	}
	if after := dbsize(); after != before {
		t.Fatalf("redis held %d keys before 600 strangers' requests and %d after; want no change", before, after)
	}
}

// TestAttackTargetIDsAreTheProxysOwn: a login module gets TargetUri only
// for a targetId this openqps issued, unaltered, for the same virtual
// proxy, within sessions.target_ttl.
func TestAttackTargetIDsAreTheProxysOwn(t *testing.T) {
	o := attackTargetsStart(t, nil)
	issued := func(path string) string {
		t.Helper()
		resp, _ := get(t, o.browser(t), o.frontURL(path))
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("GET %s: %d, no login redirect", path, resp.StatusCode)
		}
		return loc.Query().Get("targetId")
	}
	ticket := func(prefix, targetID string) (int, string) {
		t.Helper()
		body, _ := json.Marshal(qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: "Mallory", TargetId: targetID})
		req, _ := http.NewRequest(http.MethodPost, o.apiURL("/qps/"+prefix+"ticket"+attackXrf), strings.NewReader(string(body)))
		req.Header.Set("X-Qlik-Xrfkey", "abcdefghijklmnop")
		req.Header.Set("Content-Type", "application/json")
		c := o.apiClient(o.Certs.Client)
		defer c.CloseIdleConnections()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good := issued("/hub/a?b=c")
	if status, body := ticket("", good); status != http.StatusCreated || !strings.Contains(body, `"TargetUri":"https://`+o.FrontendAddr+`/hub/a?b=c"`) {
		t.Fatalf("ticket for an issued targetId: %d %s", status, body)
	}
	if status, _ := ticket("", good); status != http.StatusCreated {
		t.Fatalf("the same targetId again (a retried login): %d, want 201", status)
	}
	altered := []byte(good)
	if altered[len(altered)/2] != 'A' { // another base64url character
		altered[len(altered)/2] = 'A'
	} else {
		altered[len(altered)/2] = 'B'
	}
	forged, _ := session.SealTarget(make([]byte, session.SecretSize), session.Target{URI: "https://evil.example/", Expires: time.Now().Add(time.Hour)})
	sv := issued("/sessionvp/hub/")
	for name, id := range map[string]string{
		"a targetId with one character changed":     string(altered),
		"a targetId signed with another key":        forged,
		"a GUID":                                    "f0a91ad7-b7a6-44a6-a8a8-313744dc7863",
		"a targetId of another virtual proxy":       sv,
		"a targetId with a line break inside":       good[:8] + "\n" + good[8:],
		"a targetId longer than any openqps issues": strings.Repeat("A", 20<<10),
	} {
		if status, body := ticket("", id); status != http.StatusBadRequest || !strings.Contains(body, "unknown TargetId") || strings.Contains(body, "TargetUri") {
			t.Errorf("%s: %d %.300s, want 400 unknown TargetId", name, status, body)
		}
	}
	o.Clock.Advance(config.DefaultTargetTTL + time.Second)
	if status, body := ticket("", good); status != http.StatusBadRequest || !strings.Contains(body, "expired") {
		t.Errorf("a targetId past sessions.target_ttl: %d %.300s, want 400 saying it expired", status, body)
	}
}

// TestAttackCSRFTokenNeedsTheSecretKey is item 14: the qlik-csrf-token
// was an HMAC of the session id under a key in the source code, so
// whoever learnt a session id (a back end, a log) could compute it.
func TestAttackCSRFTokenNeedsTheSecretKey(t *testing.T) {
	echo := pxNewEchoServer(t)
	o := start(t, func(cfg *config.Config) {
		pxWebsocketVP(echo)(cfg)
		vp, _ := cfg.VirtualProxy("sessionvp")
		vp.Proxying.CSRFToken = true
	})
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	cookie := "X-Qlik-Session-sessionvp=" + id
	m := hmac.New(sha256.New, []byte("openqps qlik-csrf-token v1"))
	m.Write([]byte("sessionvp\x00" + id))
	computed := hex.EncodeToString(m.Sum(nil)[:16])
	for name, token := range map[string]string{
		"the token computed under the public key": computed,
		"the token of another session":            attackCSRFToken(t, o, "sessionvp", randomHex(16)),
	} {
		ws, resp, body := pxDialWS(t, o, "/sessionvp/app/x?qlik-csrf-token="+token, "Cookie", cookie)
		if ws != nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d %.200s, want 403", name, resp.StatusCode, body)
		}
	}
	if ws, resp, body := pxDialWS(t, o, "/sessionvp/app/x?qlik-csrf-token="+attackCSRFToken(t, o, "sessionvp", id), "Cookie", cookie); ws == nil {
		t.Errorf("the session's own token: %d %.200s, want 101", resp.StatusCode, body)
	}
}

// attackCSRFToken adds a session when id has none and reads its token.
func attackCSRFToken(t *testing.T, o *openqps, prefix, id string) string {
	t.Helper()
	if s, _ := o.API.GetSession(context.Background(), prefix, id); s == nil {
		o.addSession(t, prefix, "DOMAIN", "Other", id)
	}
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-"+prefix, id)
	resp, _ := get(t, b, o.frontURL("/"+prefix+"/qps/csrftoken"))
	token := resp.Header.Get("qlik-csrf-token")
	if resp.StatusCode != http.StatusNoContent || token == "" {
		t.Fatalf("GET csrftoken: %d %q", resp.StatusCode, token)
	}
	return token
}

// TestCSRFTokenAndTargetIDsAgreeAcrossRedisNodes: the keys are the
// store's, so a page that read its token through one node opens its
// websocket through another, and a login module may ask any node for
// the ticket of a targetId another node issued.
func TestCSRFTokenAndTargetIDsAgreeAcrossRedisNodes(t *testing.T) {
	srv := redistest.Start(t)
	a, b := attackTargetsStart(t, storesRedisAt(srv.Addr)), attackTargetsStart(t, storesRedisAt(srv.Addr))
	id := randomHex(16)
	a.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	if ta, tb := attackCSRFToken(t, a, "sessionvp", id), attackCSRFToken(t, b, "sessionvp", id); ta != tb {
		t.Fatalf("CSRF token of one session: %s on node A, %s on node B", ta, tb)
	}
	resp, _ := get(t, a.browser(t), a.frontURL("/sessionvp/hub/x?y=1"))
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("login redirect on node A: %d", resp.StatusCode)
	}
	tk, err := b.API.Ticket(context.Background(), "sessionvp", qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: "User2", TargetId: loc.Query().Get("targetId")})
	if err != nil || tk.TargetUri == nil || *tk.TargetUri != a.frontURL("/sessionvp/hub/x?y=1") {
		t.Fatalf("node B's ticket for node A's targetId: %+v, %v", tk, err)
	}
}

// TestAttackAddressesOnThePlainHTTPListener: over plain HTTP the ports
// that count are the plain-HTTP listener's (and 80): the HTTPS
// listener's port is another server for an http:// URL.
func TestAttackAddressesOnThePlainHTTPListener(t *testing.T) {
	o := attackTargetsStart(t, pxWithHTTPListener)
	id := randomHex(16)
	o.addSession(t, "", "DOMAIN", "User1", id)
	httpPort, httpsPort := portOf(o.HTTPAddr), portOf(o.FrontendAddr)
	send := func(raw string) int {
		t.Helper()
		conn, err := net.Dial("tcp", o.HTTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, raw)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, c := range []struct {
		name, host, path, headers string
		want                      int
	}{
		{"Host on the plain listener's port", "localhost:" + httpPort, "/hub/", "", http.StatusFound},
		{"Host on the HTTPS listener's port", "localhost:" + httpsPort, "/hub/", "", http.StatusBadRequest},
		{"Host on another port", "localhost:31337", "/hub/", "", http.StatusBadRequest},
		{"reloadUri over http on another port", "localhost:" + httpPort, "/hub/?reloadUri=http%3A%2F%2Flocalhost%3A31337%2F", "", http.StatusBadRequest},
		{"websocket from the plain listener's own origin", "localhost:" + httpPort, "/app/", "Cookie: X-Qlik-Session-HTTP=" + id + "\r\n" + upgrade + "Origin: http://localhost:" + httpPort + "\r\n", http.StatusOK},
		{"websocket from an https page of the proxy", "localhost:" + httpPort, "/app/", "Cookie: X-Qlik-Session-HTTP=" + id + "\r\n" + upgrade + "Origin: https://localhost:" + httpsPort + "\r\n", http.StatusOK},
		{"websocket from another port over http", "localhost:" + httpPort, "/app/", "Cookie: X-Qlik-Session-HTTP=" + id + "\r\n" + upgrade + "Origin: http://localhost:31337\r\n", http.StatusForbidden},
	} {
		raw := "GET " + c.path + " HTTP/1.1\r\nHost: " + c.host + "\r\n" + c.headers + "Connection: close\r\n\r\n"
		if got := send(raw); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

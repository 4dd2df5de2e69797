package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qpsapi"
)

// ticketFor asks the trusted API for a ticket of prefix for DOMAIN\user.
func (o *openqps) ticketFor(t *testing.T, prefix, user string) string {
	t.Helper()
	tk, err := o.API.Ticket(context.Background(), prefix, qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: user})
	if err != nil {
		t.Fatalf("ticket: %v", err)
	}
	return tk.Ticket
}

// ticketLoginTarget sends a browser to the login module for path and
// returns the targetId the proxy gave it.
func ticketLoginTarget(t *testing.T, o *openqps, b *http.Client, path string) string {
	t.Helper()
	resp, body := get(t, b, o.frontURL(path))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: %d %s, want 302 to the login module", path, resp.StatusCode, body)
	}
	loc, _ := resp.Location()
	if !strings.HasPrefix(loc.String(), loginModuleURI+"?") {
		t.Fatalf("GET %s: Location %s, want the login module", path, loc)
	}
	return loc.Query().Get("targetId")
}

func ticketDeref(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

func ticketSessionCookie(resp *http.Response, name string) string {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// TestTicketLoginRoundTrip is the external login-module flow as qlik-auth
// drives it: browser → login module → ticket with TargetId → back to the
// exact original URL with QlikTicket appended → redirect without the
// ticket → the back end sees the user, and the cookie works on its own.
func TestTicketLoginRoundTrip(t *testing.T) {
	o := start(t, nil)
	b := o.browser(t)
	const path = "/sessionvp/hub/my/work?sheet=1&x=%20y"
	targetID := ticketLoginTarget(t, o, b, path)
	tk, err := o.API.Ticket(context.Background(), "sessionvp", userReqTarget("DOMAIN", "User1", targetID))
	if err != nil {
		t.Fatal(err)
	}
	if tk.TargetUri == nil || *tk.TargetUri != o.frontURL(path) {
		t.Fatalf("TargetUri %s, want %s", ticketDeref(tk.TargetUri), o.frontURL(path))
	}
	if len(tk.Ticket) < 16 || strings.Trim(tk.Ticket, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		t.Errorf("ticket %q: want 16 or more URL-safe characters", tk.Ticket)
	}

	resp, body := get(t, b, *tk.TargetUri+"&QlikTicket="+tk.Ticket)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("redeem: %d %s, want 302", resp.StatusCode, body)
	}
	if loc := resp.Header.Get("Location"); loc != "/sessionvp/hub/my/work?sheet=1&x=%20y" {
		t.Errorf("redirect after redemption to %q, want the URL without the ticket", loc)
	}
	cookie := ticketSessionCookie(resp, "X-Qlik-Session-sessionvp")
	if len(cookie) != 32 {
		t.Fatalf("session cookie %q, want a 128-bit hex id", cookie)
	}
	if len(o.Backend.requests()) != 0 {
		t.Fatal("the redemption request reached the back end")
	}

	resp, body = get(t, b, o.frontURL(resp.Header.Get("Location")))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, o.Backend.Token) {
		t.Fatalf("after redemption: %d %s", resp.StatusCode, body)
	}
	got := o.Backend.last(t)
	if got.Header.Get("X-Qlik-User") != "UserDirectory=DOMAIN; UserId=User1" || got.URL.RawQuery != "sheet=1&x=%20y" {
		t.Errorf("back end saw user %q query %q", got.Header.Get("X-Qlik-User"), got.URL.RawQuery)
	}

	// The session is an ordinary one: listed by the user API, and the
	// cookie alone keeps working until the session is deleted.
	sessions, err := o.API.UserSessions(context.Background(), "sessionvp", "domain", "user1")
	if err != nil || len(sessions) != 1 || sessions[0].SessionId != cookie {
		t.Fatalf("user sessions %+v, %v; want the redeemed session %s", sessions, err, cookie)
	}
	fresh := o.browser(t)
	o.setCookie(t, fresh, "X-Qlik-Session-sessionvp", cookie)
	if resp, _ := get(t, fresh, o.frontURL("/sessionvp/hub/")); resp.StatusCode != http.StatusOK {
		t.Errorf("cookie alone: %d", resp.StatusCode)
	}
	if _, err := o.API.DeleteSession(context.Background(), "sessionvp", cookie); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, fresh, o.frontURL("/sessionvp/hub/")); resp.StatusCode != http.StatusFound {
		t.Errorf("cookie of a deleted session: %d, want 302 to login", resp.StatusCode)
	}
}

// TestTicketSpellingsAndPositions: QPS clients spell the parameter
// qlikTicket, QlikTicket and qlikticket, first or after other parameters.
func TestTicketSpellingsAndPositions(t *testing.T) {
	o := start(t, nil)
	for _, q := range []string{"?qlikTicket=%s", "?QlikTicket=%s", "?qlikticket=%s", "?sheet=x&QlikTicket=%s", "?QLIKTICKET=%s&a=1"} {
		b := o.browser(t)
		tk := o.ticketFor(t, "", "User1")
		resp, body := get(t, b, o.frontURL("/hub/"+strings.Replace(q, "%s", tk, 1)))
		if resp.StatusCode != http.StatusFound || ticketSessionCookie(resp, "X-Qlik-Session") == "" {
			t.Errorf("%s: %d %s, want 302 with the session cookie", q, resp.StatusCode, body)
			continue
		}
		if loc := resp.Header.Get("Location"); strings.Contains(strings.ToLower(loc), "qlikticket") || !strings.HasPrefix(loc, "/hub/") {
			t.Errorf("%s: redirected to %q", q, loc)
		}
	}
}

// TestTicketSingleUseUnderConcurrency: of many browsers racing with the
// same ticket exactly one gets a session; the others go to the login
// module, and none reaches the back end.
func TestTicketSingleUseUnderConcurrency(t *testing.T) {
	o := start(t, nil)
	tk := o.ticketFor(t, "sessionvp", "User1")
	const racers = 16
	var wg sync.WaitGroup
	results := make([]*http.Response, racers)
	start := make(chan struct{})
	for i := range racers {
		b := o.browser(t)
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodGet, o.frontURL("/sessionvp/hub/?qlikTicket="+tk), nil)
			resp, err := b.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			results[i] = resp
		})
	}
	close(start)
	wg.Wait()
	winners, losers := 0, 0
	for _, resp := range results {
		if resp == nil {
			continue
		}
		loc := resp.Header.Get("Location")
		switch {
		case ticketSessionCookie(resp, "X-Qlik-Session-sessionvp") != "" && loc == "/sessionvp/hub/":
			winners++
		case strings.HasPrefix(loc, loginModuleURI+"?"):
			losers++
		default:
			t.Errorf("unexpected answer %d Location %q", resp.StatusCode, loc)
		}
	}
	if winners != 1 || losers != racers-1 {
		t.Errorf("%d winners and %d sent to login, want 1 and %d", winners, losers, racers-1)
	}
	if n := len(o.Backend.requests()); n != 0 {
		t.Errorf("the back end got %d requests", n)
	}
	sessions, _ := o.API.UserSessions(context.Background(), "sessionvp", "DOMAIN", "User1")
	if len(sessions) != 1 {
		t.Errorf("%d sessions for the user, want 1", len(sessions))
	}
}

// TestTicketExpiresAfterTTL uses the injected clock: a ticket works until
// its minute is up, not after.
func TestTicketExpiresAfterTTL(t *testing.T) {
	o := start(t, nil)
	early := o.ticketFor(t, "", "User1")
	late := o.ticketFor(t, "", "User2")
	o.Clock.Advance(59 * time.Second)
	b := o.browser(t)
	if resp, _ := get(t, b, o.frontURL("/hub/?qlikTicket="+early)); ticketSessionCookie(resp, "X-Qlik-Session") == "" {
		t.Errorf("ticket after 59s: %d, want a session", resp.StatusCode)
	}
	o.Clock.Advance(2 * time.Second)
	resp, body := get(t, o.browser(t), o.frontURL("/hub/?qlikTicket="+late), "Accept", "application/json")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), loginModuleURI) {
		t.Errorf("navigation with a ticket after 61s: %d %s, want 302 to the login module", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodPost, o.frontURL("/hub/api?qlikTicket="+late), strings.NewReader("{}"))
	resp, body = do(t, o.browser(t), req)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Errorf("POST with an expired ticket: %d %s, want 401 naming the reason", resp.StatusCode, body)
	}
	if n := len(o.Backend.requests()); n != 0 {
		t.Errorf("the back end got %d requests", n)
	}
}

// TestTicketRefusals: replayed, unknown, malformed and other-VP tickets
// never reach the back end; a navigation goes to the login module with a
// target that no longer carries the refused ticket (else the new ticket
// would come second and the browser would loop), anything else gets a
// JSON reason.
func TestTicketRefusals(t *testing.T) {
	o := start(t, nil)
	used := o.ticketFor(t, "sessionvp", "User1")
	if resp, _ := get(t, o.browser(t), o.frontURL("/sessionvp/hub/?qlikTicket="+used)); resp.StatusCode != http.StatusFound {
		t.Fatalf("first use: %d", resp.StatusCode)
	}
	before := len(o.Backend.requests())
	cases := []struct {
		name, prefix, ticket string
		status               int
		reason               string
	}{
		{"replayed", "sessionvp", used, http.StatusUnauthorized, "already used"},
		{"unknown", "sessionvp", "AAAAAAAAAAAAAAAAAAAAAA", http.StatusUnauthorized, "unknown"},
		{"malformed", "sessionvp", "%zz", http.StatusBadRequest, "not URL-encoded"},
		{"other virtual proxy", "", o.ticketFor(t, "sessionvp", "User1"), http.StatusForbidden, `issued for virtual proxy \"sessionvp\"`},
	}
	for _, c := range cases {
		base := "/hub/sheet?a=1&"
		if c.prefix != "" {
			base = "/" + c.prefix + base
		}
		req, _ := http.NewRequest(http.MethodPut, o.frontURL(base+"qlikTicket="+c.ticket), strings.NewReader("x"))
		resp, body := do(t, o.browser(t), req)
		if resp.StatusCode != c.status || !strings.Contains(body, c.reason) || !strings.Contains(body, `"error":"ticket refused"`) {
			t.Errorf("%s, PUT: %d %s; want %d naming %q", c.name, resp.StatusCode, body, c.status, c.reason)
		}
	}
	// The other-VP ticket was taken by the refusal above: tickets are
	// single use even when presented at the wrong door.
	tk := o.ticketFor(t, "sessionvp", "User1")
	b := o.browser(t)
	targetID := ticketLoginTarget(t, o, b, "/hub/sheet?a=1&QlikTicket="+tk)
	info, err := o.API.Ticket(context.Background(), "", userReqTarget("DOMAIN", "User1", targetID))
	if err != nil {
		t.Fatal(err)
	}
	if want := o.frontURL("/hub/sheet?a=1"); info.TargetUri == nil || *info.TargetUri != want {
		t.Fatalf("TargetUri after a refused ticket %s, want %s", ticketDeref(info.TargetUri), want)
	}
	resp, _ := get(t, b, *info.TargetUri+"&QlikTicket="+info.Ticket)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/hub/sheet?a=1" {
		t.Fatalf("the fresh ticket: %d Location %q, want 302 to /hub/sheet?a=1", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, b, o.frontURL("/hub/sheet?a=1")); resp.StatusCode != http.StatusOK {
		t.Errorf("after login: %d", resp.StatusCode)
	}
	if got := len(o.Backend.requests()) - before; got != 1 {
		t.Errorf("the back end got %d requests, want only the last one", got)
	}
}

// TestTicketWithExistingCookie: a ticket is an explicit login and wins
// over the browser's current session (another user may have logged in);
// a stale ticket next to a valid cookie is dropped from the URL and never
// reaches the back end.
func TestTicketWithExistingCookie(t *testing.T) {
	o := start(t, nil)
	b := o.browser(t)
	id := randomHex(16)
	o.addSession(t, "", "DOMAIN", "User1", id)
	o.setCookie(t, b, "X-Qlik-Session", id)

	resp, _ := get(t, b, o.frontURL("/hub/?qlikTicket="+o.ticketFor(t, "", "User2")))
	if c := ticketSessionCookie(resp, "X-Qlik-Session"); resp.StatusCode != http.StatusFound || c == "" || c == id {
		t.Fatalf("ticket with a cookie: %d cookie %q, want 302 with a new session", resp.StatusCode, c)
	}
	if _, body := get(t, b, o.frontURL("/hub/")); !strings.Contains(body, "UserId=User2") {
		t.Errorf("after the ticket the back end saw %q, want User2", body)
	}

	resp, _ = get(t, b, o.frontURL("/hub/x?qlikTicket=AAAAAAAAAAAAAAAAAAAAAA&keep=1"))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/hub/x?keep=1" {
		t.Fatalf("stale ticket with a valid cookie: %d Location %q, want 302 to /hub/x?keep=1", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest(http.MethodPost, o.frontURL("/hub/x?qlikTicket=AAAAAAAAAAAAAAAAAAAAAA&keep=1"), strings.NewReader("x"))
	if resp, _ := do(t, b, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST with a stale ticket and a valid cookie: %d, want it served", resp.StatusCode)
	}
	if got := o.Backend.last(t); got.URL.RawQuery != "keep=1" || got.Header.Get("X-Qlik-User") != "UserDirectory=DOMAIN; UserId=User2" {
		t.Errorf("back end saw query %q user %q", got.URL.RawQuery, got.Header.Get("X-Qlik-User"))
	}
}

// TestTicketServedInPlaceForNonNavigations: a POST carrying a ticket is
// authenticated and forwarded at once, cookie set on that response.
func TestTicketServedInPlaceForNonNavigations(t *testing.T) {
	o := start(t, nil)
	req, _ := http.NewRequest(http.MethodPost, o.frontURL("/sessionvp/api/do?QlikTicket="+o.ticketFor(t, "sessionvp", "User3")+"&n=2"), strings.NewReader("payload"))
	resp, body := do(t, o.browser(t), req)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, o.Backend.Token) || ticketSessionCookie(resp, "X-Qlik-Session-sessionvp") == "" {
		t.Fatalf("POST with a ticket: %d %s", resp.StatusCode, body)
	}
	if got := o.Backend.last(t); got.URL.RawQuery != "n=2" || got.Header.Get("X-Qlik-User") != "UserDirectory=DOMAIN; UserId=User3" {
		t.Errorf("back end saw query %q user %q", got.URL.RawQuery, got.Header.Get("X-Qlik-User"))
	}
}

// ticketUpgradeBackend accepts any HTTP upgrade, records the user of the
// upgrade request and then echoes the bytes it receives, prefixed with a
// per-run token.
type ticketUpgradeBackend struct {
	URL, Token string
	users      chan string
}

func newTicketUpgradeBackend(t *testing.T) *ticketUpgradeBackend {
	b := &ticketUpgradeBackend{Token: randomHex(8), users: make(chan string, 8)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade only", http.StatusBadRequest)
			return
		}
		b.users <- r.Header.Get("X-Qlik-User") + " " + r.URL.RequestURI()
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + b.Token)
		rw.Flush()
		io.Copy(conn, rw)
	})}
	ln := listenLoopback(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b.URL = "http://" + ln.Addr().String()
	return b
}

// TestTicketOnWebsocketUpgrade is enigma.js's ticket example: the upgrade
// carries ?QlikTicket= and is authenticated in place and tunnelled, since
// a websocket client does not follow redirects.
func TestTicketOnWebsocketUpgrade(t *testing.T) {
	ws := newTicketUpgradeBackend(t)
	o := start(t, func(c *config.Config) {
		u, _ := url.Parse(ws.URL)
		c.VirtualProxies[1].Backends, c.VirtualProxies[1].BackendURLs = []string{ws.URL}, []*url.URL{u}
	})
	tk := o.ticketFor(t, "sessionvp", "User1")
	conn, err := tls.Dial("tcp", o.FrontendAddr, &tls.Config{RootCAs: o.Certs.CAPool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /sessionvp/app/engineData?QlikTicket="+tk+" HTTP/1.1\r\nHost: "+o.FrontendAddr+
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade with a ticket: %d %s, want 101", resp.StatusCode, body)
	}
	if ticketSessionCookie(resp, "X-Qlik-Session-sessionvp") == "" {
		t.Error("no session cookie on the 101 response")
	}
	if got := <-ws.users; got != "UserDirectory=DOMAIN; UserId=User1 /app/engineData" {
		t.Errorf("back end saw %q, want the user and no ticket", got)
	}
	io.WriteString(conn, "ping")
	echo := make([]byte, len(ws.Token)+4)
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != ws.Token+"ping" {
		t.Fatalf("through the tunnel: %q %v, want %q", echo, err, ws.Token+"ping")
	}
}

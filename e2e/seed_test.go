package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
)

const seedBody = `{"UserDirectory":"DOMAIN","UserId":"User1","SessionId":"aa051074-13a1-4f2a-842b-a64aa4d21001"}`

// TestSeedWorkflow is DESIGN.md's seed workflow, byte for byte: the login
// module posts the session, sets the cookie, and the browser reaches the
// back end as DOMAIN\User1.
func TestSeedWorkflow(t *testing.T) {
	o := start(t, nil)
	api := o.apiClient(o.Certs.Client)

	req, _ := http.NewRequest(http.MethodPost, o.apiURL("/qps/sessionvp/session?xrfkey=0123456789abcdef"), strings.NewReader(seedBody))
	req.Header.Set("X-Qlik-Xrfkey", "0123456789abcdef")
	req.Header.Set("Content-Type", "application/json")
	resp, body := do(t, api, req)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST session: %d %s", resp.StatusCode, body)
	}
	want := `{"UserDirectory":"DOMAIN","UserId":"User1","Attributes":[],"SessionId":"aa051074-13a1-4f2a-842b-a64aa4d21001"}`
	if body != want {
		t.Errorf("POST session body\n got %s\nwant %s", body, want)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.ContentLength != int64(len(want)) {
		t.Errorf("Content-Length %d, want %d", resp.ContentLength, len(want))
	}

	browser := o.browser(t)
	o.setCookie(t, browser, "X-Qlik-Session-sessionvp", "aa051074-13a1-4f2a-842b-a64aa4d21001")
	resp, body = get(t, browser, o.frontURL("/sessionvp/hub/"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, o.Backend.Token) {
		t.Fatalf("GET /sessionvp/hub/: %d %s", resp.StatusCode, body)
	}
	seen := o.Backend.last(t)
	if got := seen.Header.Get("X-Qlik-User"); got != "UserDirectory=DOMAIN; UserId=User1" {
		t.Errorf("X-Qlik-User %q", got)
	}
	if got := seen.URL.Path; got != "/hub/" {
		t.Errorf("back end saw path %q, want /hub/ (prefix removed)", got)
	}
	if got := seen.Header.Get("X-Qlik-Virtual-Proxy-Prefix"); got != "sessionvp" {
		t.Errorf("X-Qlik-Virtual-Proxy-Prefix %q", got)
	}
	if c := seen.Header.Get("Cookie"); strings.Contains(c, "X-Qlik-Session") {
		t.Errorf("the session cookie reached the back end: %q", c)
	}
	if seen.Header.Get("X-Forwarded-Proto") != "https" || seen.Header.Get("X-Forwarded-For") == "" {
		t.Errorf("X-Forwarded-*: %v", seen.Header)
	}
}

func TestSessionAttributesReachBackend(t *testing.T) {
	o := start(t, nil)
	id := randomHex(16)
	_, err := o.API.AddSession(context.Background(), "sessionvp", userReq("DOMAIN", "User2", id, "Group", "Sales", "Group", "R&D; x=y"))
	if err != nil {
		t.Fatal(err)
	}
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
	if resp, body := get(t, b, o.frontURL("/sessionvp/hub/")); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	got := o.Backend.last(t).Header.Get("X-Qlik-Security")
	want := "SecureRequest=true; Context=AppAccess; Group=Sales; Group=R%26D%3B%20x%3Dy;"
	if got != want {
		t.Errorf("X-Qlik-Security\n got %q\nwant %q", got, want)
	}
}

// TestUnauthenticatedBrowserGoesToLoginModule checks the redirect QPS
// login modules parse: proxyRestUri with explicit port and trailing
// slash, and a targetId that maps to the exact original URL.
func TestUnauthenticatedBrowserGoesToLoginModule(t *testing.T) {
	o := start(t, nil)
	b := o.browser(t)
	resp, _ := get(t, b, o.frontURL("/sessionvp/hub/my/work?sheet=1&x=%20y"))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302", resp.StatusCode)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc.String(), loginModuleURI+"?") {
		t.Fatalf("Location %s", loc)
	}
	wantRest := "https://127.0.0.1:" + portOf(o.APIAddr) + "/qps/sessionvp/"
	if got := loc.Query().Get("proxyRestUri"); got != wantRest {
		t.Errorf("proxyRestUri %q, want %q", got, wantRest)
	}
	targetID := loc.Query().Get("targetId")
	if targetID == "" || strings.Trim(targetID, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Fatalf("targetId %q: want a URL-safe token", targetID)
	}
	tk, err := o.API.Ticket(context.Background(), "sessionvp", userReqTarget("DOMAIN", "User1", targetID))
	if err != nil {
		t.Fatal(err)
	}
	if tk.TargetUri == nil || *tk.TargetUri != o.frontURL("/sessionvp/hub/my/work?sheet=1&x=%20y") {
		t.Errorf("TargetUri %v", tk.TargetUri)
	}
	if len(o.Backend.requests()) != 0 {
		t.Error("an unauthenticated request reached the back end")
	}

	// Not a navigation: 401 with a JSON reason, no redirect.
	req, _ := http.NewRequest(http.MethodPost, o.frontURL("/sessionvp/hub/"), strings.NewReader("x"))
	resp, body := do(t, b, req)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
		t.Errorf("POST without session: %d %s", resp.StatusCode, body)
	}
}

func TestCookieOfOtherVPIsRedirected(t *testing.T) {
	o := start(t, nil)
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	b := o.browser(t)
	// The session belongs to sessionvp; present it as the default
	// virtual proxy's cookie and under the right name on the default VP.
	o.setCookie(t, b, "X-Qlik-Session", id)
	if resp, _ := get(t, b, o.frontURL("/hub/")); resp.StatusCode != http.StatusFound {
		t.Errorf("default VP with sessionvp's session: %d, want 302 to login", resp.StatusCode)
	}
	b2 := o.browser(t)
	o.setCookie(t, b2, "X-Qlik-Session-sessionvp", id)
	if resp, _ := get(t, b2, o.frontURL("/hub/")); resp.StatusCode != http.StatusFound {
		t.Errorf("default VP with sessionvp's cookie: %d, want 302 to login", resp.StatusCode)
	}
	if n := len(o.Backend.requests()); n != 0 {
		t.Errorf("back end saw %d requests", n)
	}
}

func TestDeletedSessionIsRedirected(t *testing.T) {
	o := start(t, nil)
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
	if resp, _ := get(t, b, o.frontURL("/sessionvp/hub/")); resp.StatusCode != 200 {
		t.Fatalf("before delete: %d", resp.StatusCode)
	}
	if _, err := o.API.DeleteSession(context.Background(), "sessionvp", id); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, b, o.frontURL("/sessionvp/hub/")); resp.StatusCode != http.StatusFound {
		t.Errorf("after delete: %d, want 302", resp.StatusCode)
	}
}

func TestUserLogoutEndsAllSessions(t *testing.T) {
	o := start(t, nil)
	ids := []string{randomHex(16), randomHex(16)}
	for _, id := range ids {
		o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	}
	list, err := o.API.UserSessions(context.Background(), "sessionvp", "domain", "USER1")
	if err != nil || len(list) != 2 {
		t.Fatalf("user sessions (case-insensitive): %v %v", list, err)
	}
	out, err := o.API.LogoutUser(context.Background(), "sessionvp", "DOMAIN", "User1")
	if err != nil || len(out) != 2 {
		t.Fatalf("logout: %v %v", out, err)
	}
	for _, id := range ids {
		b := o.browser(t)
		o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
		if resp, _ := get(t, b, o.frontURL("/sessionvp/hub/")); resp.StatusCode != http.StatusFound {
			t.Errorf("session %s after logout: %d", id, resp.StatusCode)
		}
	}
}

func TestTimedOutSessionIsRedirected(t *testing.T) {
	o := start(t, nil)
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)

	// Use slides the 30-minute timeout: 20 + 20 minutes with a use between.
	o.Clock.Advance(20 * time.Minute)
	if resp, _ := get(t, b, o.frontURL("/sessionvp/hub/")); resp.StatusCode != 200 {
		t.Fatalf("after 20m: %d", resp.StatusCode)
	}
	o.Clock.Advance(20 * time.Minute)
	if resp, _ := get(t, b, o.frontURL("/sessionvp/hub/")); resp.StatusCode != 200 {
		t.Fatalf("after 20m more (sliding): %d", resp.StatusCode)
	}
	o.Clock.Advance(31 * time.Minute)
	if resp, _ := get(t, b, o.frontURL("/sessionvp/hub/")); resp.StatusCode != http.StatusFound {
		t.Errorf("after 31m idle: %d, want 302", resp.StatusCode)
	}
}

func TestSpoofedQlikHeadersNeverReachBackend(t *testing.T) {
	o := start(t, nil)
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
	resp, _ := get(t, b, o.frontURL("/sessionvp/hub/"),
		"X-Qlik-User", "UserDirectory=INTERNAL; UserId=sa_repository",
		"x-qlik-security", "Context=ManagementAccess",
		"X-Qlik-Virtual-Proxy-Prefix", "admin",
		"X-Qlik-ProxySession", "stolen",
		"X-Forwarded-For", "10.9.9.9")
	if resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
	seen := o.Backend.last(t)
	if got := seen.Header.Values("X-Qlik-User"); len(got) != 1 || got[0] != "UserDirectory=DOMAIN; UserId=User1" {
		t.Errorf("X-Qlik-User %q", got)
	}
	if got := seen.Header.Get("X-Qlik-Security"); strings.Contains(got, "ManagementAccess") {
		t.Errorf("X-Qlik-Security %q", got)
	}
	if got := seen.Header.Values("X-Qlik-Virtual-Proxy-Prefix"); len(got) != 1 || got[0] != "sessionvp" {
		t.Errorf("X-Qlik-Virtual-Proxy-Prefix %q", got)
	}
	if seen.Header.Get("X-Qlik-ProxySession") != "" {
		t.Error("X-Qlik-ProxySession forwarded")
	}
	if strings.Contains(seen.Header.Get("X-Forwarded-For"), "10.9.9.9") {
		t.Errorf("client X-Forwarded-For kept: %q", seen.Header.Get("X-Forwarded-For"))
	}

	// Without a session a spoofed identity does not authenticate at all.
	resp, _ = get(t, o.browser(t), o.frontURL("/sessionvp/hub/"), "X-Qlik-User", "UserDirectory=DOMAIN; UserId=User1")
	if resp.StatusCode != http.StatusFound {
		t.Errorf("spoofed X-Qlik-User without session: %d", resp.StatusCode)
	}
}

func TestPathTricksNeverLeaveTheVirtualProxy(t *testing.T) {
	o := start(t, nil)
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
	for _, path := range []string{
		"/sessionvp/../hub/",
		"/sessionvp/%2e%2e/hub/",
		"/sessionvp/%2E%2E/qrs/app",
		"/sessionvp/hub/..%2fqrs",
		"/sessionvp/resources/qmc/fonts/../../../qrs/about",
		"/sessionvp/hub/%5c..%5cqrs",
		"/sessionvp;x/hub/",
		"/sessionvp/hub/%c0%ae%c0%ae/qrs",
		"/sessionvp/./hub/",
	} {
		before := len(o.Backend.requests())
		resp, body := get(t, b, o.frontURL(path))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", path, resp.StatusCode, body)
		}
		if len(o.Backend.requests()) != before {
			t.Errorf("%s reached the back end", path)
		}
	}
	// Runs of slashes collapse and stay in the virtual proxy.
	resp, _ := get(t, b, o.frontURL("/sessionvp//hub//x"))
	if resp.StatusCode != 200 {
		t.Fatalf("//: %d", resp.StatusCode)
	}
	if got := o.Backend.last(t).URL.Path; got != "/hub/x" {
		t.Errorf("// forwarded as %q", got)
	}
}

func TestPersonalAPI(t *testing.T) {
	o := start(t, nil)
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	b := o.browser(t)
	resp, body := get(t, b, o.frontURL("/sessionvp/qps/user"))
	if resp.StatusCode != 200 || body != `{"session":"inactive"}` {
		t.Errorf("anonymous GET qps/user: %d %s", resp.StatusCode, body)
	}
	o.setCookie(t, b, "X-Qlik-Session-sessionvp", id)
	resp, body = get(t, b, o.frontURL("/sessionvp/qps/user"))
	if resp.StatusCode != 200 || !strings.Contains(body, `"userDirectory":"DOMAIN","userId":"User1"`) {
		t.Errorf("GET qps/user: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodDelete, o.frontURL("/sessionvp/qps/user"), nil)
	resp, _ = do(t, b, req)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE qps/user: %d", resp.StatusCode)
	}
	if s, err := o.API.GetSession(context.Background(), "sessionvp", id); err != nil || s != nil {
		t.Errorf("session after logout: %v %v", s, err)
	}
	if len(o.Backend.requests()) != 0 {
		t.Error("the personal API was forwarded to the back end")
	}
}

// TestForeignHostHeaderGetsNoLoginRedirect: the login redirect carries
// proxyRestUri and, through targetId, a TargetUri built from the Host
// header. A Host that is not a name of this proxy would send the login
// module's ticket request and the user (with a fresh ticket) to another
// server, so it is refused unless allowed; so is another port of an
// allowed name, which may be anyone's server.
func TestForeignHostHeaderGetsNoLoginRedirect(t *testing.T) {
	o := start(t, func(c *config.Config) {
		vp, _ := c.VirtualProxy("sessionvp")
		vp.Proxying.HostAllowList = []string{"qlik.example.com"}
	})
	b := o.browser(t)
	own := portOf(o.FrontendAddr)
	for host, want := range map[string]int{
		"evil.example.net":        http.StatusBadRequest,
		"evil.example.net:" + own: http.StatusBadRequest,
		"qlik.example.com":        http.StatusFound,
		"qlik.example.com:" + own: http.StatusFound,
		"qlik.example.com:31337":  http.StatusBadRequest,
		"localhost:" + own:        http.StatusFound,
		"localhost:31337":         http.StatusBadRequest,
		"localhost:+" + own:       http.StatusBadRequest,
	} {
		req, _ := http.NewRequest(http.MethodGet, o.frontURL("/sessionvp/hub/"), nil)
		req.Host = host
		resp, body := do(t, b, req)
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d %s, want %d", host, resp.StatusCode, body, want)
			continue
		}
		if want == http.StatusFound {
			loc, _ := resp.Location()
			if got := loc.Query().Get("proxyRestUri"); !strings.Contains(got, "://"+hostOnlyOf(host)+":") {
				t.Errorf("Host %s: proxyRestUri %q", host, got)
			}
		}
	}
}

func hostOnlyOf(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		return hostport[:i]
	}
	return hostport
}

package e2e

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/session"
)

// consoleAdmin is the admin section of the console tests: one admin by
// name, and everyone in the group OpenqpsAdmins.
var consoleAdmin = config.Admin{Users: []string{`DOMAIN\admin`}, Attribute: "Group=OpenqpsAdmins"}

var (
	csrfField   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	handleField = regexp.MustCompile(`name="session" value="([^"]+)"`)
)

// consolePage opens a console page with a session cookie and returns the
// CSRF token and the session handles it holds.
func consolePage(t *testing.T, o *openqps, path, cookie string) (csrf string, handles []string) {
	t.Helper()
	resp, body := get(t, o.browser(t), o.frontURL(path), "Cookie", cookie)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %.300s", path, resp.StatusCode, body)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("GET %s: no CSRF token in the page", path)
	}
	for _, h := range handleField.FindAllStringSubmatch(body, -1) {
		handles = append(handles, h[1])
	}
	return m[1], handles
}

// TestConsoleRefusesForgedActions: a console action without the CSRF
// token, with another session's token, from another origin or site, by
// a non-admin, or with an admin's cookie of another virtual proxy is
// refused, and nothing of it reaches the back end; the same action done
// right ends the session.
func TestConsoleRefusesForgedActions(t *testing.T) {
	o := start(t, func(c *config.Config) { c.Admin = consoleAdmin })
	admin, svAdmin, groupAdmin, user, victim := randomHex(16), randomHex(16), randomHex(16), randomHex(16), randomHex(16)
	o.addSession(t, "", "DOMAIN", "admin", admin)
	o.addSession(t, "sessionvp", "DOMAIN", "admin", svAdmin)
	o.addSession(t, "", "OTHER", "carol", groupAdmin, session.Attribute{Key: "Group", Value: "OpenqpsAdmins"})
	o.addSession(t, "", "DOMAIN", "User1", user, session.Attribute{Key: "Group", Value: "Sales"})
	o.addSession(t, "", "DOMAIN", "victim", victim)

	token, handles := consolePage(t, o, "/openqps/sessions?vp=%2F&user=victim", "X-Qlik-Session="+admin)
	if len(handles) != 1 {
		t.Fatalf("the sessions page filtered to the victim lists %d sessions, want 1", len(handles))
	}
	svToken, _ := consolePage(t, o, "/sessionvp/openqps/sessions", "X-Qlik-Session-sessionvp="+svAdmin)
	groupToken, _ := consolePage(t, o, "/openqps/sessions", "X-Qlik-Session="+groupAdmin)
	form := func(csrf string) string {
		return url.Values{"csrf": {csrf}, "session": {handles[0]}}.Encode()
	}
	post := func(path, cookie, extra, body string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: {host}\r\nCookie: " + cookie + "\r\n" + extra +
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body
	}
	adminCookie := "X-Qlik-Session=" + admin
	forbidden := []int{http.StatusForbidden}
	rows := []attackRow{
		{name: "no CSRF token", raw: post("/openqps/sessions/end?{mark}", adminCookie, "", "session="+url.QueryEscape(handles[0])), want: forbidden},
		{name: "empty CSRF token", raw: post("/openqps/sessions/end?{mark}", adminCookie, "", form("")), want: forbidden},
		{name: "wrong CSRF token", raw: post("/openqps/sessions/end?{mark}", adminCookie, "", form(strings.Repeat("A", len(token)))), want: forbidden},
		{name: "another admin's token", raw: post("/openqps/sessions/end?{mark}", adminCookie, "", form(groupToken)), want: forbidden},
		{name: "the same admin's token of another virtual proxy", raw: post("/openqps/sessions/end?{mark}", adminCookie, "", form(svToken)), want: forbidden},
		{name: "token in the query, not the form", raw: post("/openqps/sessions/end?csrf="+token+"&{mark}", adminCookie, "", "session="+url.QueryEscape(handles[0])), want: forbidden},
		{name: "another origin", raw: post("/openqps/sessions/end?{mark}", adminCookie, "Origin: https://evil.example\r\n", form(token)), want: forbidden},
		{name: "same host, plain http origin", raw: post("/openqps/sessions/end?{mark}", adminCookie, "Origin: http://{host}\r\n", form(token)), want: forbidden},
		{name: "cross-site fetch", raw: post("/openqps/sessions/end?{mark}", adminCookie, "Sec-Fetch-Site: cross-site\r\n", form(token)), want: forbidden},
		{name: "same-site fetch", raw: post("/openqps/sessions/end?{mark}", adminCookie, "Sec-Fetch-Site: same-site\r\n", form(token)), want: forbidden},
		{name: "non-admin with the admin's token", raw: post("/openqps/sessions/end?{mark}", "X-Qlik-Session="+user, "", form(token)), want: forbidden},
		{name: "non-admin page", raw: "GET /openqps/sessions?{mark} HTTP/1.1\r\nHost: {host}\r\nCookie: X-Qlik-Session=" + user + "\r\nConnection: close\r\n\r\n", want: forbidden},
		{name: "non-admin, other spelling of the segment", raw: "GET /OpenQPS/sessions?{mark} HTTP/1.1\r\nHost: {host}\r\nCookie: X-Qlik-Session=" + user + "\r\nConnection: close\r\n\r\n", want: forbidden},
		{name: "non-admin, percent-encoded segment", raw: "GET /%6Fpenqps/config?{mark} HTTP/1.1\r\nHost: {host}\r\nCookie: X-Qlik-Session=" + user + "\r\nConnection: close\r\n\r\n", want: forbidden},
		{name: "non-admin reload", raw: post("/openqps/config/reload?{mark}", "X-Qlik-Session="+user, "", "csrf="+token), want: forbidden},
		{name: "admin cookie of another virtual proxy, page", raw: "GET /openqps/sessions?{mark} HTTP/1.1\r\nHost: {host}\r\nCookie: X-Qlik-Session-sessionvp=" + svAdmin + "\r\nConnection: close\r\n\r\n",
			want: []int{http.StatusFound}, check: toLoginModule},
		{name: "admin cookie of another virtual proxy, as this one's cookie", raw: post("/openqps/sessions/end?{mark}", "X-Qlik-Session="+svAdmin, "", form(svToken)), want: []int{http.StatusUnauthorized}},
		{name: "admin cookie of another virtual proxy, action", raw: post("/openqps/sessions/end?{mark}", "X-Qlik-Session-sessionvp="+svAdmin, "", form(token)), want: []int{http.StatusUnauthorized}},
		{name: "no session, page", raw: "GET /openqps/sessions?{mark} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", want: []int{http.StatusFound}, check: toLoginModule},
		{name: "admin, other virtual proxy's console path, non-admin", raw: "GET /sessionvp/openqps/?{mark} HTTP/1.1\r\nHost: {host}\r\nCookie: X-Qlik-Session-sessionvp=" + randomHex(16) + "\r\nConnection: close\r\n\r\n",
			want: []int{http.StatusFound}, check: toLoginModule},
	}
	runAttackRows(t, o, nil, rows)
	if s, err := o.API.GetSession(context.Background(), "", victim); err != nil || s == nil {
		t.Fatalf("a refused action ended the victim's session (%v)", err)
	}

	// Over HTTP/2, the same refusal.
	h2 := o.browser(t)
	h2.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	req, _ := http.NewRequest(http.MethodPost, o.frontURL("/openqps/sessions/end"), strings.NewReader("session="+url.QueryEscape(handles[0])))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", adminCookie)
	resp, body := do(t, h2, req)
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusForbidden {
		t.Errorf("HTTP/2 action without a token: %s %d %.200s, want HTTP/2 403", resp.Proto, resp.StatusCode, body)
	}

	// Done right, the action ends the session.
	req, _ = http.NewRequest(http.MethodPost, o.frontURL("/openqps/sessions/end"), strings.NewReader(form(token)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", adminCookie)
	req.Header.Set("Origin", "https://"+o.FrontendAddr)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, body = do(t, h2, req)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the admin's own action: %d %.300s, want 303", resp.StatusCode, body)
	}
	if s, err := o.API.GetSession(context.Background(), "", victim); err != nil || s != nil {
		t.Fatalf("the admin's action did not end the victim's session (%v, %v)", s, err)
	}
	if n := len(o.Backend.requests()); n != 0 {
		t.Errorf("the back end got %d requests from console traffic", n)
	}
}

func toLoginModule(t *testing.T, resp *http.Response, _ string) {
	t.Helper()
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, loginModuleURI) {
		t.Errorf("Location %q, want the login module", loc)
	}
}

// TestConsoleShowsOnlyItsOwnMessages: a link cannot put words on an
// admin's sessions page; the redirect of the admin's own action can.
func TestConsoleShowsOnlyItsOwnMessages(t *testing.T) {
	o := start(t, func(c *config.Config) { c.Admin = consoleAdmin })
	admin := randomHex(16)
	o.addSession(t, "", "DOMAIN", "admin", admin)
	b := o.browser(t)
	const phish = "Your password expired: log in again at evil.example"
	_, body := get(t, b, o.frontURL("/openqps/sessions?done="+url.QueryEscape(phish)+"&sig=x"), "Cookie", "X-Qlik-Session="+admin)
	if strings.Contains(body, "evil.example") {
		t.Error("a link's message appears on the page")
	}
	token, _ := consolePage(t, o, "/openqps/sessions", "X-Qlik-Session="+admin)
	req, _ := http.NewRequest(http.MethodPost, o.frontURL("/openqps/users/end"), strings.NewReader(url.Values{"csrf": {token}, "vp": {""}, "dir": {"DOMAIN"}, "user": {"nobody"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", "X-Qlik-Session="+admin)
	resp, _ := do(t, b, req)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("end user: %d", resp.StatusCode)
	}
	_, body = get(t, b, o.frontURL(resp.Header.Get("Location")), "Cookie", "X-Qlik-Session="+admin)
	if !strings.Contains(body, `Ended 0 session(s) of DOMAIN\nobody`) {
		t.Errorf("the action's own message is missing:\n%.2000s", body)
	}
}

package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/pki"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/session"
)

func userReq(dir, user, id string, attrs ...string) qpsapi.UserRequest {
	r := qpsapi.UserRequest{UserDirectory: dir, UserId: user, SessionId: id}
	for i := 0; i+1 < len(attrs); i += 2 {
		r.Attributes = append(r.Attributes, session.Attribute{Key: attrs[i], Value: attrs[i+1]})
	}
	return r
}

func userReqTarget(dir, user, target string) qpsapi.UserRequest {
	return qpsapi.UserRequest{UserDirectory: dir, UserId: user, TargetId: target}
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// apiCall sends one raw request to the trusted API with the client
// certificate.
func (o *openqps) apiCall(t *testing.T, method, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	var req *http.Request
	if body == "" {
		req, _ = http.NewRequest(method, o.apiURL(path), nil)
	} else {
		req, _ = http.NewRequest(method, o.apiURL(path), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(t, o.apiClient(o.Certs.Client), req)
}

func (o *openqps) sessionCount(t *testing.T, prefix string) int {
	t.Helper()
	list, err := o.API.ListSessions(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

func TestAPIRejectsCallersWithoutTheRightCertificate(t *testing.T) {
	o := start(t, nil)
	foreign, _, err := pki.Ensure(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	expired, err := o.Certs.IssueClient("expired", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for name, certs := range map[string][]tls.Certificate{
		"no certificate":             nil,
		"certificate of other CA":    {foreign.Client},
		"expired client certificate": {expired},
	} {
		req, _ := http.NewRequest(http.MethodPost, o.apiURL("/qps/sessionvp/session?xrfkey=0123456789abcdef"), strings.NewReader(seedBody))
		req.Header.Set("X-Qlik-Xrfkey", "0123456789abcdef")
		resp, err := o.apiClient(certs...).Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want a failed handshake or 403", name, resp.StatusCode)
			}
		}
	}
	if n := o.sessionCount(t, "sessionvp"); n != 0 {
		t.Errorf("%d sessions were created by rejected callers", n)
	}
}

func TestXrfkeyRules(t *testing.T) {
	o := start(t, nil)
	cases := []struct {
		name, query string
		header      []string
	}{
		{"missing both", "", nil},
		{"query only", "?xrfkey=0123456789abcdef", nil},
		{"header only", "", []string{"X-Qlik-Xrfkey", "0123456789abcdef"}},
		{"mismatch", "?xrfkey=0123456789abcdef", []string{"X-Qlik-Xrfkey", "0123456789abcdeX"}},
		{"case differs", "?xrfkey=abcdefghijklmnop", []string{"X-Qlik-Xrfkey", "ABCDEFGHIJKLMNOP"}},
		{"too short", "?xrfkey=0123456789abcde", []string{"X-Qlik-Xrfkey", "0123456789abcde"}},
		{"too long", "?xrfkey=0123456789abcdef0", []string{"X-Qlik-Xrfkey", "0123456789abcdef0"}},
		{"bad characters", "?xrfkey=0123456789abcd-_", []string{"X-Qlik-Xrfkey", "0123456789abcd-_"}},
		{"two query keys", "?xrfkey=0123456789abcdef&Xrfkey=0123456789abcdef", []string{"X-Qlik-Xrfkey", "0123456789abcdef"}},
	}
	for _, c := range cases {
		resp, body := o.apiCall(t, http.MethodPost, "/qps/sessionvp/session"+c.query, seedBody, c.header...)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "XSRF") {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, body)
		}
	}
	if n := o.sessionCount(t, "sessionvp"); n != 0 {
		t.Fatalf("rejected calls created %d sessions", n)
	}
	// Accepted spellings: Xrfkey query name, any header case.
	resp, body := o.apiCall(t, http.MethodPost, "/qps/sessionvp/session?Xrfkey=abcdefghijklmnop", seedBody, "x-qlik-xrfkey", "abcdefghijklmnop")
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("Xrfkey spelling: %d %s", resp.StatusCode, body)
	}
}

func TestAPIPathsAndAnswers(t *testing.T) {
	o := start(t, nil)
	x := "xrfkey=0123456789abcdef"
	h := []string{"X-Qlik-Xrfkey", "0123456789abcdef"}

	// Default virtual proxy without prefix, trailing slash, "//".
	resp, body := o.apiCall(t, http.MethodPost, "/qps/session/?"+x, `{"userdirectory":" DOMAIN ","userId":"User1","sessionId":"0123456789abcdef0123","Attributes":[{"Group":"A"},{"Group":"B"},{"Email":""}]}`, h...)
	want := `{"UserDirectory":"DOMAIN","UserId":"User1","Attributes":[{"Group":"A"},{"Group":"B"},{"Email":""}],"SessionId":"0123456789abcdef0123"}`
	if resp.StatusCode != http.StatusCreated || body != want {
		t.Fatalf("POST /qps/session/: %d %s", resp.StatusCode, body)
	}
	resp, body = o.apiCall(t, http.MethodGet, "/qps//session/0123456789abcdef0123?"+x, "", h...)
	if resp.StatusCode != 200 || body != want {
		t.Errorf("GET //session/id: %d %s", resp.StatusCode, body)
	}
	resp, body = o.apiCall(t, http.MethodGet, "/qps/user/domain/user1?"+x, "", h...)
	if resp.StatusCode != 200 || body != "["+want+"]" {
		t.Errorf("GET user: %d %s", resp.StatusCode, body)
	}
	resp, body = o.apiCall(t, http.MethodGet, "/qps/sessionvp/user/DOMAIN/nobody?"+x, "", h...)
	if resp.StatusCode != 200 || body != "[]" {
		t.Errorf("GET user without sessions: %d %s", resp.StatusCode, body)
	}
	resp, body = o.apiCall(t, http.MethodGet, "/qps/session/unknown-session-id-123?"+x, "", h...)
	if resp.StatusCode != 200 || body != "null" {
		t.Errorf("GET unknown session: %d %s", resp.StatusCode, body)
	}
	resp, body = o.apiCall(t, http.MethodGet, "/qps/alive?"+x, "", h...)
	if resp.StatusCode != 200 || body != `{"value":true}` {
		t.Errorf("alive: %d %s", resp.StatusCode, body)
	}
	resp, body = o.apiCall(t, http.MethodDelete, "/qps/session/0123456789abcdef0123?"+x, "", h...)
	if resp.StatusCode != 200 || body != want {
		t.Errorf("DELETE session: %d %s", resp.StatusCode, body)
	}
	resp, body = o.apiCall(t, http.MethodGet, "/qps/session/0123456789abcdef0123?"+x, "", h...)
	if body != "null" {
		t.Errorf("GET after DELETE: %d %s", resp.StatusCode, body)
	}
}

func TestAPIRejectsBadInput(t *testing.T) {
	o := start(t, nil)
	x := "?xrfkey=0123456789abcdef"
	h := []string{"X-Qlik-Xrfkey", "0123456789abcdef"}
	o.addSession(t, "sessionvp", "DOMAIN", "Owner", "aa051074-13a1-4f2a-842b-a64aa4d21001")

	cases := []struct {
		name, method, path, body string
		status                   int
		detail                   string
	}{
		{"unknown prefix", "POST", "/qps/nosuchvp/session", seedBody, 404, `nosuchvp`},
		{"unknown resource", "GET", "/qps/sessionvp/sessions", "", 404, `unknown resource`},
		{"bad JSON", "POST", "/qps/sessionvp/session", `{"UserDirectory":`, 400, `invalid JSON`},
		{"not an object", "POST", "/qps/sessionvp/session", `[1,2]`, 400, `invalid JSON`},
		{"trailing data", "POST", "/qps/sessionvp/session", seedBody + `{}`, 400, `after the JSON`},
		{"oversized body", "POST", "/qps/sessionvp/session", `{"UserDirectory":"` + strings.Repeat("a", 70<<10) + `"}`, 413, `at most`},
		{"short session id", "POST", "/qps/sessionvp/session", `{"UserDirectory":"D","UserId":"U","SessionId":"short"}`, 400, `at least 16`},
		{"cookie-unsafe id", "POST", "/qps/sessionvp/session", `{"UserDirectory":"D","UserId":"U","SessionId":"aaaaaaaaaaaaaaaa;bbbb"}`, 400, `SessionId`},
		{"blank user", "POST", "/qps/sessionvp/session", `{"UserDirectory":"D","UserId":"  ","SessionId":"0123456789abcdef0"}`, 400, `UserId`},
		{"backslash", "POST", "/qps/sessionvp/session", `{"UserDirectory":"D\\X","UserId":"U","SessionId":"0123456789abcdef0"}`, 400, `backslash`},
		{"live duplicate", "POST", "/qps/sessionvp/session", seedBody, 409, `never overwritten`},
		{"wrong method", "PUT", "/qps/sessionvp/session", seedBody, 405, `PUT`},
	}
	for _, c := range cases {
		resp, body := o.apiCall(t, c.method, c.path+x, c.body, h...)
		if resp.StatusCode != c.status || !strings.Contains(body, c.detail) || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, resp.StatusCode, body, c.status, c.detail)
		}
	}
	// The duplicate did not take over the live session.
	s, err := o.API.GetSession(context.Background(), "sessionvp", "aa051074-13a1-4f2a-842b-a64aa4d21001")
	if err != nil || s == nil || s.UserId != "Owner" {
		t.Errorf("the live session changed: %+v %v", s, err)
	}
	if n := o.sessionCount(t, "sessionvp"); n != 1 {
		t.Errorf("%d sessions, want 1", n)
	}
	// The typed client reports the API's reason.
	_, err = o.API.AddSession(context.Background(), "sessionvp", userReq("D", "U", "short"))
	var apiErr *qpsapi.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("client error %v", err)
	}
}

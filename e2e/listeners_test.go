package e2e

import (
	"crypto/tls"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
)

// pxPlainClient is a plain-HTTP browser that keeps cookies and does not
// follow redirects.
func pxPlainClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
}

func pxWithHTTPListener(cfg *config.Config) { cfg.Frontend.HTTPListen = "127.0.0.1:0" }

// TestPlainHTTPListenerUsesTheHTTPCookie: over plain HTTP the session
// cookie is <name>-HTTP, as QPS names it; the HTTPS cookie is not
// accepted there, so a cookie that could travel in clear text never
// stands in for the HTTPS one, and neither cookie reaches the back end.
func TestPlainHTTPListenerUsesTheHTTPCookie(t *testing.T) {
	o := start(t, pxWithHTTPListener)
	if o.HTTPAddr == "" {
		t.Fatal("no plain-HTTP listener started")
	}
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	c := pxPlainClient()
	url := "http://" + o.HTTPAddr + "/sessionvp/hub/"

	resp, body := get(t, c, url, "Cookie", "X-Qlik-Session-sessionvp="+id)
	if resp.StatusCode != http.StatusFound {
		t.Errorf("HTTPS cookie over plain HTTP: %d %s, want 302 to the login module", resp.StatusCode, body)
	}
	resp, body = get(t, c, url, "Cookie", "X-Qlik-Session-sessionvp-HTTP="+id+"; other=1")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, o.Backend.Token) {
		t.Fatalf("-HTTP cookie over plain HTTP: %d %s", resp.StatusCode, body)
	}
	seen := o.Backend.last(t)
	if seen.Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("X-Forwarded-Proto %q, want http", seen.Header.Get("X-Forwarded-Proto"))
	}
	if got := seen.Header.Get("Cookie"); got != "other=1" {
		t.Errorf("back end saw Cookie %q, want only other=1", got)
	}
	// And the -HTTP cookie does nothing on the HTTPS front end.
	b := o.browser(t)
	resp, _ = get(t, b, o.frontURL("/sessionvp/hub/"), "Cookie", "X-Qlik-Session-sessionvp-HTTP="+id)
	if resp.StatusCode != http.StatusFound {
		t.Errorf("-HTTP cookie over HTTPS: %d, want 302", resp.StatusCode)
	}
}

// TestTicketOverPlainHTTPSetsTheHTTPCookie: a ticket redeemed on the
// plain-HTTP listener sets the -HTTP cookie without Secure (a browser
// would never send a Secure cookie over plain HTTP).
func TestTicketOverPlainHTTPSetsTheHTTPCookie(t *testing.T) {
	o := start(t, pxWithHTTPListener)
	ticket := pxTicket(t, o, "sessionvp")
	resp, body := get(t, pxPlainClient(), "http://"+o.HTTPAddr+"/sessionvp/hub/?qlikTicket="+ticket)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("redeem: %d %s", resp.StatusCode, body)
	}
	c := pxCookie(t, resp, "X-Qlik-Session-sessionvp-HTTP")
	if c.Secure || !c.HttpOnly || c.Path != "/" {
		t.Errorf("cookie %s: want HttpOnly, Path=/, not Secure", c.String())
	}
}

// TestCookieAttributesAndResponseHeaders: session_cookie_same_site,
// session_cookie_secure and session_cookie_domain shape the cookie;
// additional_response_headers reach every response of the virtual proxy,
// replacing a back end's value, and its rejections too.
func TestCookieAttributesAndResponseHeaders(t *testing.T) {
	o := start(t, func(cfg *config.Config) {
		cfg.Frontend.HTTPListen = "127.0.0.1:0"
		vp, _ := cfg.VirtualProxy("sessionvp")
		vp.SessionCookieDomain = "example.test"
		vp.Proxying.SessionCookieSameSite = "none"
		vp.Proxying.SessionCookieSecure = "always"
		vp.Proxying.AdditionalResponseHeaders = map[string]string{
			"Access-Control-Allow-Origin": "https://mashup.example.test",
			"X-Backend-Token":             "replaced",
		}
	})
	ticket := pxTicket(t, o, "sessionvp")
	resp, _ := get(t, pxPlainClient(), "http://"+o.HTTPAddr+"/sessionvp/hub/?qlikTicket="+ticket)
	c := pxCookie(t, resp, "X-Qlik-Session-sessionvp-HTTP")
	if !c.Secure || c.SameSite != http.SameSiteNoneMode || c.Domain != "example.test" {
		t.Errorf("cookie %s: want Secure, SameSite=None, Domain=example.test", c.String())
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://mashup.example.test" {
		t.Errorf("redirect lacks the additional header: %q", got)
	}

	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	resp, body := get(t, o.browser(t), o.frontURL("/sessionvp/hub/"), "Cookie", "X-Qlik-Session-sessionvp="+id)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://mashup.example.test" {
		t.Errorf("proxied answer: Access-Control-Allow-Origin %q", got)
	}
	if got := resp.Header.Values("X-Backend-Token"); len(got) != 1 || got[0] != "replaced" {
		t.Errorf("X-Backend-Token %q, want the configured value only", got)
	}
	// The default virtual proxy has no additional headers.
	resp, _ = get(t, o.browser(t), o.frontURL("/hub/"))
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("default virtual proxy got another's header: %q", got)
	}
}

// pxTicket asks the trusted API for a ticket for DOMAIN\User1.
func pxTicket(t *testing.T, o *openqps, prefix string) string {
	t.Helper()
	tk, err := o.API.Ticket(t.Context(), prefix, userReq("DOMAIN", "User1", ""))
	if err != nil {
		t.Fatalf("ticket: %v", err)
	}
	return tk.Ticket
}

func pxCookie(t *testing.T, resp *http.Response, name string) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cookie %s in %q", name, resp.Header.Values("Set-Cookie"))
	return nil
}

// TestBrowsersGetHTTP2: the HTTPS front end speaks HTTP/2 to clients
// that offer it, and proxies their requests like any other.
func TestBrowsersGetHTTP2(t *testing.T) {
	o := start(t, nil)
	id := randomHex(16)
	o.addSession(t, "sessionvp", "DOMAIN", "User1", id)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool}, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	for i := 0; i < 3; i++ {
		resp, body := get(t, c, o.frontURL("/sessionvp/hub/"), "Cookie", "X-Qlik-Session-sessionvp="+id)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, o.Backend.Token) || resp.ProtoMajor != 2 {
			t.Fatalf("request %d: %s %d %q, want HTTP/2 200 from the back end", i, resp.Proto, resp.StatusCode, body)
		}
	}
	if got := o.Backend.last(t).Header.Get("X-Qlik-User"); got != "UserDirectory=DOMAIN; UserId=User1" {
		t.Errorf("X-Qlik-User over HTTP/2: %q", got)
	}
}

package e2e

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/openqps/openqps/internal/config"
)

// Attacks on the sessions that openqps makes itself: header and JWT
// logins, anonymous visitors, and the tokens behind them.

// sessionsBrowser is o.browser over HTTP/1.1, or over HTTP/2 when h2.
func sessionsBrowser(t *testing.T, o *openqps, h2 bool) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Jar: jar, Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// sessionsProtocols runs f over HTTP/1.1 and HTTP/2.
func sessionsProtocols(t *testing.T, f func(t *testing.T, h2 bool)) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) { f(t, h2) })
	}
}

// sessionsCredentialVP is a header or JWT virtual proxy "auth" and the
// credential of ACME\alice on it, as a header name and value.
type sessionsCredentialVP struct {
	name  string
	start func(t *testing.T) (*openqps, [2]string)
}

func sessionsCredentialVPs() []sessionsCredentialVP {
	return []sessionsCredentialVP{
		{"header", func(t *testing.T) (*openqps, [2]string) {
			o := authStart(t, config.Auth{AuthenticationMethod: config.AuthHeaderStatic, HeaderName: "X-Remote-User", StaticUserDirectory: "ACME", AnonymousAccess: config.AnonymousNone}, false)
			return o, [2]string{"X-Remote-User", "alice"}
		}},
		{"jwt", func(t *testing.T) (*openqps, [2]string) {
			key := authNewKey(t, "ES256")
			o := authJWTStart(t, key, "")
			tok := key.sign(t, jwt.MapClaims{"sub": "alice", "dir": "ACME", "exp": o.Clock.Now().Add(time.Hour).Unix()})
			return o, [2]string{"Authorization", "Bearer " + tok}
		}},
	}
}

// sessionsLogin sends the credential and returns the session cookie the
// answer set.
func sessionsLogin(t *testing.T, o *openqps, b *http.Client, cred [2]string) string {
	t.Helper()
	resp, body := authGet(t, o, b, "/hub/", cred[0], cred[1])
	id := ticketSessionCookie(resp, "X-Qlik-Session-auth")
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("login with the credential: %d, cookie %q: %s", resp.StatusCode, id, body)
	}
	return id
}

// sessionsCookieOnly sends only the cookie X-Qlik-Session-auth=id, from
// a fresh client (a thief's), and returns the status.
func sessionsCookieOnly(t *testing.T, o *openqps, h2 bool, id string) int {
	t.Helper()
	before := len(o.Backend.requests())
	resp, _ := authGet(t, o, sessionsBrowser(t, o, h2), "/hub/", "Cookie", "X-Qlik-Session-auth="+id)
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode
	}
	if n := len(o.Backend.requests()); n != before {
		t.Errorf("the refused cookie reached the back end (%d requests, %d before)", n, before)
	}
	return resp.StatusCode
}

// TestAttackRevokedCredentialCookieStaysDead: a cookie of a header or
// JWT login that was logged out, or deleted, through the trusted API is
// refused for good, also after the user logs in again with the same
// credential; two browsers of one user have two sessions.
func TestAttackRevokedCredentialCookieStaysDead(t *testing.T) {
	revocations := []struct {
		name   string
		revoke func(o *openqps, id string) error
	}{
		{"DELETE user", func(o *openqps, _ string) error {
			_, err := o.API.LogoutUser(context.Background(), "auth", "ACME", "alice")
			return err
		}},
		{"DELETE session", func(o *openqps, id string) error {
			_, err := o.API.DeleteSession(context.Background(), "auth", id)
			return err
		}},
	}
	for _, vp := range sessionsCredentialVPs() {
		t.Run(vp.name, func(t *testing.T) {
			sessionsProtocols(t, func(t *testing.T, h2 bool) {
				o, cred := vp.start(t)
				for _, rv := range revocations {
					t.Run(rv.name, func(t *testing.T) {
						b := sessionsBrowser(t, o, h2)
						stolen := sessionsLogin(t, o, b, cred)
						if resp, _ := authGet(t, o, b, "/hub/"); resp.StatusCode != http.StatusOK {
							t.Fatalf("the cookie alone: %d", resp.StatusCode)
						}
						other := sessionsLogin(t, o, sessionsBrowser(t, o, h2), cred)
						if other == stolen {
							t.Errorf("two browsers of one user share session %s", stolen)
						}
						if err := rv.revoke(o, stolen); err != nil {
							t.Fatal(err)
						}
						if got := sessionsCookieOnly(t, o, h2, stolen); got != http.StatusUnauthorized {
							t.Errorf("revoked cookie: %d, want 401", got)
						}
						// The user logs in again, in the browser the cookie
						// was stolen from and in a fresh one.
						again := sessionsLogin(t, o, b, cred)
						fresh := sessionsLogin(t, o, sessionsBrowser(t, o, h2), cred)
						if again == stolen || fresh == stolen {
							t.Fatalf("a new login revived the revoked session %s", stolen)
						}
						if got := sessionsCookieOnly(t, o, h2, stolen); got != http.StatusUnauthorized {
							t.Errorf("revoked cookie after the user logged in again: %d, want 401", got)
						}
						if s, err := o.API.GetSession(context.Background(), "auth", stolen); err != nil || s != nil {
							t.Errorf("the revoked session is in the store again: %v %v", s, err)
						}
						o.API.LogoutUser(context.Background(), "auth", "ACME", "alice")
					})
				}
			})
		})
	}
}

// TestCredentialScriptReusesOneSessionUntilLogout: a client without a
// cookie jar that sends the same credential on every request uses one
// session, and after a logout gets a new one, never the old one back.
func TestCredentialScriptReusesOneSessionUntilLogout(t *testing.T) {
	for _, vp := range sessionsCredentialVPs() {
		t.Run(vp.name, func(t *testing.T) {
			o, cred := vp.start(t)
			script := func() string {
				c := sessionsBrowser(t, o, false)
				c.Jar = nil
				return sessionsLogin(t, o, c, cred)
			}
			first := script()
			for range 3 {
				if id := script(); id != first {
					t.Fatalf("the script got session %s, then %s", first, id)
				}
			}
			if s, _ := o.API.UserSessions(context.Background(), "auth", "ACME", "alice"); len(s) != 1 {
				t.Errorf("%d sessions for one script, want 1", len(s))
			}
			if _, err := o.API.LogoutUser(context.Background(), "auth", "ACME", "alice"); err != nil {
				t.Fatal(err)
			}
			after := script()
			if after == first {
				t.Fatalf("the script's logged-out session %s came back", first)
			}
			if id := script(); id != after {
				t.Errorf("after the logout the script got %s, then %s", after, id)
			}
		})
	}
}

package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/qpsapi"
	"github.com/openqps/openqps/internal/session"
	"github.com/openqps/openqps/internal/session/redis/redistest"
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

// sessionsJWTStart runs openqps with a JWT virtual proxy "auth" trusting
// key, its settings changed by edit.
func sessionsJWTStart(t *testing.T, key authJWTKey, edit func(*config.JWT)) *openqps {
	t.Helper()
	j := config.JWT{Key: key.signer.Public(), UserIDClaim: "sub", UserDirectoryClaim: "dir", AttributeClaims: map[string]string{"groups": "Group"}}
	if edit != nil {
		edit(&j)
	}
	return authStart(t, config.Auth{AuthenticationMethod: config.AuthJWT, AnonymousAccess: config.AnonymousNone, JWT: j}, false)
}

// sessionsSignHeader signs claims with extra header parameters.
func sessionsSignHeader(t *testing.T, k authJWTKey, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
	for name, v := range header {
		tok.Header[name] = v
	}
	s, err := tok.SignedString(k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sessionsECDSAForms returns the low-s and the high-s form of an ECDSA
// token's signature: (r, s) and (r, n-s) both verify.
func sessionsECDSAForms(t *testing.T, k authJWTKey, token string) (low, high string) {
	t.Helper()
	dot := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	n := k.signer.Public().(*ecdsa.PublicKey).Curve.Params().N
	size := len(sig) / 2
	s := new(big.Int).SetBytes(sig[size:])
	other := make([]byte, len(sig))
	copy(other, sig[:size])
	new(big.Int).Sub(n, s).FillBytes(other[size:])
	flipped := token[:dot+1] + base64.RawURLEncoding.EncodeToString(other)
	if s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		return flipped, token
	}
	return token, flipped
}

// sessionsRefused checks a 401 with a JSON body whose detail names
// reason.
func sessionsRefused(t *testing.T, name string, resp *http.Response, body, reason string) {
	t.Helper()
	var e struct{ Error, Detail string }
	if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" || !strings.Contains(e.Detail, reason) {
		t.Errorf("%s: %d %s, want 401 with a JSON detail naming %q", name, resp.StatusCode, body, reason)
	}
}

// TestAttackJWTTokensOpenqpsMustRefuse: tokens whose signature verifies
// but that a verifier must not accept.
func TestAttackJWTTokensOpenqpsMustRefuse(t *testing.T) {
	key := authNewKey(t, "ES256")
	o := sessionsJWTStart(t, key, nil)
	now := o.Clock.Now()
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "dir": "ACME", "exp": now.Add(time.Hour).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	cases := []struct{ name, token, reason string }{
		{"crit with an unknown extension", sessionsSignHeader(t, key, map[string]any{"crit": []string{"urn:example:must-understand"}, "urn:example:must-understand": true}, claims(nil)), "crit"},
		{"crit naming a registered parameter", sessionsSignHeader(t, key, map[string]any{"crit": []string{"exp"}}, claims(nil)), "crit"},
		{"crit empty", sessionsSignHeader(t, key, map[string]any{"crit": []string{}}, claims(nil)), "crit"},
		{"iat an hour in the future", key.sign(t, claims(jwt.MapClaims{"iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})), "in the future"},
		{"exp in the year 9999", key.sign(t, claims(jwt.MapClaims{"exp": time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Unix()})), "max_lifetime"},
		{"exp in 25 hours", key.sign(t, claims(jwt.MapClaims{"exp": now.Add(25 * time.Hour).Unix()})), "max_lifetime"},
		{"issued 30 hours ago, valid 31", key.sign(t, claims(jwt.MapClaims{"iat": now.Add(-30 * time.Hour).Unix()})), "max_lifetime"},
		{"iat not a number", key.sign(t, claims(jwt.MapClaims{"iat": "yesterday"})), "iat"},
	}
	sessionsProtocols(t, func(t *testing.T, h2 bool) {
		for _, c := range cases {
			resp, body := authGet(t, o, sessionsBrowser(t, o, h2), "/hub/", "Authorization", "Bearer "+c.token)
			sessionsRefused(t, c.name, resp, body, c.reason)
		}
		if n := len(o.Backend.requests()); n != 0 {
			t.Errorf("%d refused requests reached the back end", n)
		}
	})
	// What is inside the bounds still works: a small clock difference,
	// a day's lifetime, and a longer one where max_lifetime allows it.
	for _, c := range []jwt.MapClaims{
		claims(jwt.MapClaims{"iat": now.Add(30 * time.Second).Unix()}),
		claims(jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix()}),
	} {
		if resp, body := authGet(t, o, o.browser(t), "/hub/", "Authorization", "Bearer "+key.sign(t, c)); resp.StatusCode != http.StatusOK {
			t.Errorf("%v: %d %s", c, resp.StatusCode, body)
		}
	}
	long := sessionsJWTStart(t, key, func(j *config.JWT) { j.MaxLifetime = 30 * 24 * time.Hour })
	tok := key.sign(t, jwt.MapClaims{"sub": "alice", "dir": "ACME", "exp": long.Clock.Now().Add(25 * time.Hour).Unix()})
	if resp, body := authGet(t, long, long.browser(t), "/hub/", "Authorization", "Bearer "+tok); resp.StatusCode != http.StatusOK {
		t.Errorf("25 h token with max_lifetime 720h: %d %s", resp.StatusCode, body)
	}
}

// TestAttackJWTHighSSignature: the second form (r, n-s) of an ECDSA
// signature gives nothing the first does not — both are one login — and
// jwt.require_low_s refuses it.
func TestAttackJWTHighSSignature(t *testing.T) {
	for _, alg := range []string{"ES256", "ES384", "ES512"} {
		t.Run(alg, func(t *testing.T) {
			key := authNewKey(t, alg)
			o := sessionsJWTStart(t, key, nil)
			low, high := sessionsECDSAForms(t, key, key.sign(t, jwt.MapClaims{"sub": "alice", "dir": "ACME", "exp": o.Clock.Now().Add(time.Hour).Unix()}))
			script := sessionsBrowser(t, o, false)
			script.Jar = nil
			if a, b := sessionsLogin(t, o, script, [2]string{"Authorization", "Bearer " + low}), sessionsLogin(t, o, script, [2]string{"Authorization", "Bearer " + high}); a != b {
				t.Errorf("the two forms of one signature are two logins: sessions %s and %s", a, b)
			}

			strict := sessionsJWTStart(t, key, func(j *config.JWT) { j.RequireLowS = true })
			sessionsProtocols(t, func(t *testing.T, h2 bool) {
				resp, body := authGet(t, strict, sessionsBrowser(t, strict, h2), "/hub/", "Authorization", "Bearer "+high)
				sessionsRefused(t, "high-s signature", resp, body, "high s")
				if resp, body := authGet(t, strict, sessionsBrowser(t, strict, h2), "/hub/", "Authorization", "Bearer "+low); resp.StatusCode != http.StatusOK {
					t.Errorf("low-s signature: %d %s", resp.StatusCode, body)
				}
			})
		})
	}
}

// TestAttackJWTBearerTokenNeverReachesBackend: openqps consumes the
// token; a back end (and its logs) never sees it unless
// jwt.forward_token says so.
func TestAttackJWTBearerTokenNeverReachesBackend(t *testing.T) {
	key := authNewKey(t, "RS256")
	for _, forward := range []bool{false, true} {
		t.Run(fmt.Sprintf("forward_token=%v", forward), func(t *testing.T) {
			o := sessionsJWTStart(t, key, func(j *config.JWT) { j.ForwardToken = forward })
			tok := key.sign(t, jwt.MapClaims{"sub": "alice", "dir": "ACME", "exp": o.Clock.Now().Add(time.Hour).Unix()})
			payload := strings.Split(tok, ".")[1]
			sessionsProtocols(t, func(t *testing.T, h2 bool) {
				b := sessionsBrowser(t, o, h2)
				for _, auth := range []string{"Bearer " + tok, "bearer " + tok, "BEARER  " + tok} {
					// With a cookie and without one: the token goes either way.
					if resp, body := authGet(t, o, b, "/hub/", "Authorization", auth); resp.StatusCode != http.StatusOK {
						t.Fatalf("%q: %d %s", auth[:8], resp.StatusCode, body)
					}
				}
				if got := bytes.Contains(o.Backend.received(), []byte(payload)); got != forward {
					t.Errorf("the back end received the token: %v, want %v", got, forward)
				}
			})
		})
	}
}

// TestJWTFreshClaimsWinOverTheCookieSession: a browser whose cookie
// session was made from an older token of the same user is served with
// the claims of the token it sends now, and the older session ends.
func TestJWTFreshClaimsWinOverTheCookieSession(t *testing.T) {
	key := authNewKey(t, "RS256")
	o := sessionsJWTStart(t, key, nil)
	sessionsProtocols(t, func(t *testing.T, h2 bool) {
		b := sessionsBrowser(t, o, h2)
		token := func(groups ...any) [2]string {
			return [2]string{"Authorization", "Bearer " + key.sign(t, jwt.MapClaims{"sub": "alice", "dir": "ACME", "groups": groups, "exp": o.Clock.Now().Add(time.Hour).Unix()})}
		}
		old := sessionsLogin(t, o, b, token("Admins"))
		if sec := o.Backend.last(t).Header.Get("X-Qlik-Security"); !strings.Contains(sec, "Group=Admins;") {
			t.Fatalf("first token: %q", sec)
		}
		fresh := sessionsLogin(t, o, b, token("Sales"))
		if sec := o.Backend.last(t).Header.Get("X-Qlik-Security"); !strings.Contains(sec, "Group=Sales;") || strings.Contains(sec, "Admins") {
			t.Errorf("the newer token's groups must win: %q", sec)
		}
		if fresh == old {
			t.Errorf("the session of the older claims was kept")
		}
		if got := sessionsCookieOnly(t, o, h2, old); got != http.StatusUnauthorized {
			t.Errorf("the session of the older claims still works: %d", got)
		}
		// The same claims again keep the session.
		resp, _ := authGet(t, o, b, "/hub/", token("Sales")[0], token("Sales")[1])
		if resp.StatusCode != http.StatusOK || ticketSessionCookie(resp, "X-Qlik-Session-auth") != "" {
			t.Errorf("same claims again: %d, cookie reset %v", resp.StatusCode, resp.Header["Set-Cookie"])
		}
	})
}

// sessionsAnonymousVP adds virtual proxy "anon", anonymous_access: always,
// 30 minutes of inactivity timeout, to the configuration.
func sessionsAnonymousVP(c *config.Config) {
	vp := c.VirtualProxies[1]
	vp.Prefix, vp.SessionCookieName = "anon", "X-Qlik-Session-anon"
	vp.SessionInactivityTimeout = 30 * time.Minute
	vp.Auth = config.Auth{AuthenticationMethod: config.AuthTicket, AnonymousAccess: config.AnonymousAlways}
	c.VirtualProxies = append(c.VirtualProxies, vp)
}

// sessionsFlood sends n cookie-less GETs to path, over conns keep-alive
// connections of HTTP/1.1 or one HTTP/2 connection, and returns the
// cookies the answers set and how many answers were not 200.
func sessionsFlood(t *testing.T, o *openqps, h2 bool, conns, n int, path string) (cookies []string, failed int) {
	t.Helper()
	c := sessionsBrowser(t, o, h2)
	c.Jar = nil
	c.Transport.(*http.Transport).MaxConnsPerHost = conns
	type result struct {
		cookie string
		status int
	}
	results := make(chan result, n)
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	for range conns {
		go func() {
			for range work {
				resp, err := c.Get(o.frontURL(path))
				if err != nil {
					results <- result{}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				results <- result{ticketSessionCookie(resp, "X-Qlik-Session-anon"), resp.StatusCode}
			}
		}()
	}
	for range n {
		r := <-results
		if r.status != http.StatusOK {
			failed++
		}
		if r.cookie != "" {
			cookies = append(cookies, r.cookie)
		}
	}
	return cookies, failed
}

// TestAttackAnonymousFloodLeavesRoomForLogins: thousands of requests
// from strangers on an anonymous virtual proxy, without a cookie and
// with the cookies they were given, store nothing, so a store capped by
// store.max_sessions still takes the login module's session and redeems
// a ticket, on every store type.
func TestAttackAnonymousFloodLeavesRoomForLogins(t *testing.T) {
	stores := map[string]func(t *testing.T) func(*config.Config){
		"memory":   func(*testing.T) func(*config.Config) { return func(c *config.Config) { c.Store.Type = "memory" } },
		"embedded": func(t *testing.T) func(*config.Config) { return storesEmbeddedIn(t.TempDir()) },
		"redis":    func(t *testing.T) func(*config.Config) { return storesRedisAt(redistest.Start(t).Addr) },
	}
	for _, name := range []string{"memory", "embedded", "redis"} {
		t.Run(name, func(t *testing.T) {
			store := stores[name](t)
			o := start(t, func(c *config.Config) {
				store(c)
				c.Store.MaxSessions = 10
				sessionsAnonymousVP(c)
			})
			ctx := context.Background()
			var cookies []string
			for _, h2 := range []bool{false, true} {
				conns := 4
				if h2 {
					conns = 1 // one connection, many streams
				}
				got, failed := sessionsFlood(t, o, h2, conns, 1000, "/anon/hub/")
				if failed != 0 || len(got) != 1000 {
					t.Errorf("cookie-less flood (h2 %v): %d of 1000 not served, %d cookies set", h2, failed, len(got))
				}
				cookies = append(cookies, got...)
			}
			// The same strangers come back with the cookies they got.
			c := sessionsBrowser(t, o, false)
			for i, id := range cookies[:min(500, len(cookies))] {
				resp, _ := get(t, c, o.frontURL("/anon/hub/"), "Cookie", "X-Qlik-Session-anon="+id)
				if resp.StatusCode != http.StatusOK || ticketSessionCookie(resp, "X-Qlik-Session-anon") != "" {
					t.Fatalf("flood request %d with its cookie: %d, cookie replaced: %v", i, resp.StatusCode, resp.Header["Set-Cookie"])
				}
			}
			if s, err := o.API.ListSessions(ctx, "anon"); err != nil || len(s) != 0 {
				t.Errorf("anonymous visitors left %d sessions in the store (%v), want none", len(s), err)
			}
			// The login module's session and a ticket still fit.
			id := randomHex(16)
			if _, err := o.API.AddSession(ctx, "sessionvp", qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: "User1", SessionId: id}); err != nil {
				t.Fatalf("the login module's session add after the flood: %v", err)
			}
			storesWantUser(t, o, id, "/sessionvp/hub/", "User1")
			tk, err := o.API.Ticket(ctx, "sessionvp", qpsapi.UserRequest{UserDirectory: "DOMAIN", UserId: "User2"})
			if err != nil {
				t.Fatal(err)
			}
			resp, _ := get(t, o.browser(t), o.frontURL("/sessionvp/hub/?qlikTicket="+tk.Ticket))
			if resp.StatusCode != http.StatusFound || ticketSessionCookie(resp, "X-Qlik-Session-sessionvp") == "" {
				t.Fatalf("ticket after the flood: %d, want 302 with a session cookie", resp.StatusCode)
			}
		})
	}
}

// sessionsAnonymousUser sends one request with the browser's cookies to
// the "anon" virtual proxy of o and returns the user the back end saw
// and the cookie the answer set, if any.
func sessionsAnonymousUser(t *testing.T, o *openqps, b *http.Client, header ...string) (user, cookie string) {
	t.Helper()
	resp, body := get(t, b, o.frontURL("/anon/hub/"), header...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("anonymous request: %d %s", resp.StatusCode, body)
	}
	return o.Backend.last(t).Header.Get("X-Qlik-User"), ticketSessionCookie(resp, "X-Qlik-Session-anon")
}

// TestAttackAnonymousCookie: an anonymous session lives in its signed
// cookie: it slides with use, ends after its inactivity timeout and on
// logout, and a forged, altered or foreign cookie is a new visitor.
func TestAttackAnonymousCookie(t *testing.T) {
	o := start(t, func(c *config.Config) {
		sessionsAnonymousVP(c)
		other := c.VirtualProxies[len(c.VirtualProxies)-1]
		other.Prefix, other.SessionCookieName = "anon2", "X-Qlik-Session-anon2"
		c.VirtualProxies = append(c.VirtualProxies, other)
	})
	sessionsProtocols(t, func(t *testing.T, h2 bool) {
		b := sessionsBrowser(t, o, h2)
		user, cookie := sessionsAnonymousUser(t, o, b)
		if !strings.HasPrefix(user, "UserDirectory=NONE; UserId=anonymous") || cookie == "" {
			t.Fatalf("first visit: user %q, cookie %q", user, cookie)
		}
		if strings.Contains(string(o.Backend.received()), cookie[:20]) {
			t.Error("the back end received the anonymous cookie's random part")
		}
		// Used every 20 minutes, the session lives on past its 30; the
		// cookie is signed again on the way.
		for range 3 {
			o.Clock.Advance(20 * time.Minute)
			got, renewed := sessionsAnonymousUser(t, o, b)
			if got != user || renewed == "" || renewed == cookie {
				t.Fatalf("after 20 minutes: user %q (want %q), renewed cookie %q", got, user, renewed)
			}
			cookie = renewed
		}
		if got, again := sessionsAnonymousUser(t, o, b); got != user || again != "" {
			t.Errorf("a fresh cookie is not signed again: %q %q", got, again)
		}
		// 30 minutes unused: a new visitor.
		o.Clock.Advance(30 * time.Minute)
		if got, _ := sessionsAnonymousUser(t, o, sessionsBrowser(t, o, h2), "Cookie", "X-Qlik-Session-anon="+cookie); got == user {
			t.Errorf("an anonymous cookie unused for its timeout still works")
		}

		// Altered and foreign cookies are new visitors.
		b = sessionsBrowser(t, o, h2)
		user, cookie = sessionsAnonymousUser(t, o, b)
		flip := func(s string, i int) string {
			c := []byte(s)
			c[i] ^= 1
			return string(c)
		}
		for name, v := range map[string]string{
			"signature altered": flip(cookie, len(cookie)-2),
			"random altered":    flip(cookie, 3),
			"time altered":      flip(cookie, 25),
			"unsigned":          cookie[:strings.IndexByte(cookie, '.')] + "." + strings.Repeat("A", len(cookie)-strings.IndexByte(cookie, '.')-1),
		} {
			if got, set := sessionsAnonymousUser(t, o, sessionsBrowser(t, o, h2), "Cookie", "X-Qlik-Session-anon="+v); got == user || set == "" {
				t.Errorf("%s: served as %q (the cookie's user %q), new cookie %q", name, got, user, set)
			}
		}
		resp, _ := get(t, sessionsBrowser(t, o, h2), o.frontURL("/anon2/hub/"), "Cookie", "X-Qlik-Session-anon2="+cookie)
		if resp.StatusCode != http.StatusOK || o.Backend.last(t).Header.Get("X-Qlik-User") == user {
			t.Errorf("the cookie of virtual proxy anon worked on anon2")
		}

		// A logout ends it: a copy of the cookie is a new visitor.
		req, _ := http.NewRequest(http.MethodDelete, o.frontURL("/anon/qps/user"), nil)
		if resp, body := do(t, b, req); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("logout: %d %s", resp.StatusCode, body)
		}
		if got, _ := sessionsAnonymousUser(t, o, sessionsBrowser(t, o, h2), "Cookie", "X-Qlik-Session-anon="+cookie); got == user {
			t.Errorf("a copy of a logged-out anonymous cookie still works")
		}
	})
}

// TestAnonymousCookieWorksOnEveryNode: two nodes on one Redis recognise
// each other's anonymous visitors (the key is the store's).
func TestAnonymousCookieWorksOnEveryNode(t *testing.T) {
	srv := redistest.Start(t)
	edit := func(c *config.Config) { storesRedisAt(srv.Addr)(c); sessionsAnonymousVP(c) }
	a, b := start(t, edit), start(t, edit)
	user, cookie := sessionsAnonymousUser(t, a, a.browser(t))
	if got, set := sessionsAnonymousUser(t, b, b.browser(t), "Cookie", "X-Qlik-Session-anon="+cookie); got != user || set != "" {
		t.Errorf("node B: user %q, want %q; cookie replaced %q", got, user, set)
	}
}

// TestAttackTableSessions: the attack table's rows for sessions openqps
// makes itself, sent byte for byte. Virtual proxy "auth" takes JWTs,
// "hdr" the X-Remote-User header; both without a login module.
func TestAttackTableSessions(t *testing.T) {
	key := authNewKey(t, "ES256")
	o := start(t, func(c *config.Config) {
		for _, vp := range []struct {
			prefix string
			auth   config.Auth
		}{
			{"auth", config.Auth{AuthenticationMethod: config.AuthJWT, AnonymousAccess: config.AnonymousNone,
				JWT: config.JWT{Key: key.signer.Public(), UserIDClaim: "sub", UserDirectoryClaim: "dir"}}},
			{"hdr", config.Auth{AuthenticationMethod: config.AuthHeaderStatic, HeaderName: "X-Remote-User", StaticUserDirectory: "ACME", AnonymousAccess: config.AnonymousNone}},
		} {
			v := c.VirtualProxies[1]
			v.Prefix, v.SessionCookieName, v.Auth, v.AuthenticationModuleRedirectURI = vp.prefix, "X-Qlik-Session-"+vp.prefix, vp.auth, ""
			c.VirtualProxies = append(c.VirtualProxies, v)
		}
	})
	now := o.Clock.Now()
	claims := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "alice", "dir": "ACME", "exp": now.Add(time.Hour).Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	goodToken := key.sign(t, claims(nil))
	// revived logs in with the credential, logs the user out through the
	// API, and logs in again with the same credential: the first cookie
	// must stay dead.
	revived := func(prefix, header, value string) func(*testing.T, *openqps) map[string]string {
		return func(t *testing.T, o *openqps) map[string]string {
			login := func() string {
				resp, _ := get(t, o.browser(t), o.frontURL("/"+prefix+"/hub/"), header, value)
				return ticketSessionCookie(resp, "X-Qlik-Session-"+prefix)
			}
			gone := login()
			if _, err := o.API.LogoutUser(context.Background(), prefix, "ACME", "alice"); err != nil {
				t.Fatal(err)
			}
			login()
			return map[string]string{"{gone}": gone}
		}
	}
	tokenRow := func(name, token string) attackRow {
		return attackRow{name: "JWT " + name, raw: "GET /auth/hub/{mark} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer " + token + "\r\nConnection: close\r\n\r\n", want: []int{401}}
	}
	runAttackRows(t, o, nil, []attackRow{
		{name: "header cookie logged out, then the user logs in again", setup: revived("hdr", "X-Remote-User", "alice"),
			raw: "GET /hdr/hub/{mark} HTTP/1.1\r\nHost: {host}\r\nCookie: X-Qlik-Session-hdr={gone}\r\nConnection: close\r\n\r\n", want: []int{401}},
		{name: "JWT cookie logged out, then the user logs in again", setup: revived("auth", "Authorization", "Bearer "+goodToken),
			raw: "GET /auth/hub/{mark} HTTP/1.1\r\nHost: {host}\r\nCookie: X-Qlik-Session-auth={gone}\r\nConnection: close\r\n\r\n", want: []int{401}},
		tokenRow("with crit", sessionsSignHeader(t, key, map[string]any{"crit": []string{"urn:x"}, "urn:x": 1}, claims(nil))),
		tokenRow("issued tomorrow", key.sign(t, claims(jwt.MapClaims{"iat": now.Add(24 * time.Hour).Unix(), "exp": now.Add(25 * time.Hour).Unix()}))),
		tokenRow("expiring in 9999", key.sign(t, claims(jwt.MapClaims{"exp": 253402214400}))),
		tokenRow("valid for a year", key.sign(t, claims(jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(365 * 24 * time.Hour).Unix()}))),
	})
}

// TestHeaderKeepsTheSessionsAttributes: a header names a user but
// carries no attributes, so the session a login module made for the same
// user, with attributes, stays.
func TestHeaderKeepsTheSessionsAttributes(t *testing.T) {
	o, cred := sessionsCredentialVPs()[0].start(t)
	id := randomHex(16)
	o.addSession(t, "auth", "ACME", "alice", id, session.Attribute{Key: "Group", Value: "Admins"})
	b := o.browser(t)
	o.setCookie(t, b, "X-Qlik-Session-auth", id)
	resp, _ := authGet(t, o, b, "/hub/", cred[0], cred[1])
	if resp.StatusCode != http.StatusOK || ticketSessionCookie(resp, "X-Qlik-Session-auth") != "" ||
		!strings.Contains(o.Backend.last(t).Header.Get("X-Qlik-Security"), "Group=Admins;") {
		t.Errorf("the header replaced the session: %d, cookie %v, security %q", resp.StatusCode, resp.Header["Set-Cookie"], o.Backend.last(t).Header.Get("X-Qlik-Security"))
	}
}

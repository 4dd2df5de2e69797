package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"strings"
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
// reason, and that nothing reached the back end.
func sessionsRefused(t *testing.T, o *openqps, name string, resp *http.Response, body, reason string) {
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
			sessionsRefused(t, o, c.name, resp, body, c.reason)
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
				sessionsRefused(t, strict, "high-s signature", resp, body, "high s")
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

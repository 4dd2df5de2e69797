package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/openqps/openqps/internal/config"
)

// authStart runs openqps with one more virtual proxy, prefix "auth",
// authenticating with a; login says whether it has a login module.
func authStart(t *testing.T, a config.Auth, login bool) *openqps {
	t.Helper()
	return start(t, func(c *config.Config) {
		vp := c.VirtualProxies[1]
		vp.Prefix, vp.SessionCookieName, vp.Auth = "auth", "X-Qlik-Session-auth", a
		if !login {
			vp.AuthenticationModuleRedirectURI = ""
		}
		c.VirtualProxies = append(c.VirtualProxies, vp)
	})
}

// authGet sends one request to the "auth" virtual proxy with headers.
func authGet(t *testing.T, o *openqps, b *http.Client, path string, header ...string) (*http.Response, string) {
	t.Helper()
	return get(t, b, o.frontURL("/auth"+path), header...)
}

func authUser(o *openqps, t *testing.T) string {
	return o.Backend.last(t).Header.Get("X-Qlik-User")
}

func TestHeaderStaticAuthentication(t *testing.T) {
	o := authStart(t, config.Auth{AuthenticationMethod: config.AuthHeaderStatic, HeaderName: "X-Remote-User", StaticUserDirectory: "ACME", AnonymousAccess: config.AnonymousNone}, false)
	b := o.browser(t)
	resp, body := authGet(t, o, b, "/hub/", "X-Remote-User", "alice")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, o.Backend.Token) {
		t.Fatalf("with the header: %d %s", resp.StatusCode, body)
	}
	if got := authUser(o, t); got != "UserDirectory=ACME; UserId=alice" {
		t.Errorf("back end saw %q", got)
	}
	if ticketSessionCookie(resp, "X-Qlik-Session-auth") == "" {
		t.Error("no session cookie set")
	}
	// The same user again: the session is reused, no new cookie.
	resp, _ = authGet(t, o, b, "/hub/", "X-Remote-User", "ALICE")
	if resp.StatusCode != http.StatusOK || ticketSessionCookie(resp, "X-Qlik-Session-auth") != "" {
		t.Errorf("same user again: %d, cookie reset %v", resp.StatusCode, resp.Header["Set-Cookie"])
	}
	// The front now says bob: bob it is, with his own session.
	resp, _ = authGet(t, o, b, "/hub/", "X-Remote-User", "bob")
	if got := authUser(o, t); resp.StatusCode != http.StatusOK || got != "UserDirectory=ACME; UserId=bob" {
		t.Errorf("after the user changed: %d %q", resp.StatusCode, got)
	}
	if s, _ := o.API.UserSessions(context.Background(), "auth", "ACME", "alice"); len(s) != 1 {
		t.Errorf("alice has %d sessions, want 1", len(s))
	}
	// Callers without a cookie jar (scripts) share one session per
	// header value instead of piling up one per request.
	first, _ := authGet(t, o, o.browser(t), "/hub/", "X-Remote-User", "carl")
	second, _ := authGet(t, o, o.browser(t), "/hub/", "X-Remote-User", "carl")
	if a, b := ticketSessionCookie(first, "X-Qlik-Session-auth"), ticketSessionCookie(second, "X-Qlik-Session-auth"); a == "" || a != b {
		t.Errorf("two cookie-less requests of carl got sessions %q and %q, want the same", a, b)
	}
	if s, _ := o.API.UserSessions(context.Background(), "auth", "ACME", "carl"); len(s) != 1 {
		t.Errorf("carl has %d sessions, want 1", len(s))
	}
	// The cookie alone keeps working (websocket and XHR requests of the
	// same browser); no header and no cookie is a 401 naming the header.
	if resp, _ := authGet(t, o, b, "/hub/"); resp.StatusCode != http.StatusOK || authUser(o, t) != "UserDirectory=ACME; UserId=bob" {
		t.Errorf("cookie alone: %d", resp.StatusCode)
	}
	resp, body = authGet(t, o, o.browser(t), "/hub/")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "X-Remote-User") {
		t.Errorf("neither header nor cookie: %d %s", resp.StatusCode, body)
	}
	before := len(o.Backend.requests())
	for _, bad := range []string{"", "   ", `ev\il`, "a\xffb", strings.Repeat("x", 300)} {
		resp, body := authGet(t, o, o.browser(t), "/hub/", "X-Remote-User", bad)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "X-Remote-User") {
			t.Errorf("header %q: %d %s, want 400", bad, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, o.frontURL("/auth/hub/"), nil)
	req.Header.Add("X-Remote-User", "alice")
	req.Header.Add("X-Remote-User", "admin")
	if resp, body := do(t, o.browser(t), req); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "2 times") {
		t.Errorf("header twice: %d %s", resp.StatusCode, body)
	}
	if n := len(o.Backend.requests()) - before; n != 0 {
		t.Errorf("%d refused requests reached the back end", n)
	}
}

func TestHeaderDynamicAuthentication(t *testing.T) {
	for _, c := range []struct {
		pattern, value, want string
		ok                   bool
	}{
		{`$ud\$id`, `ACME\alice`, "UserDirectory=ACME; UserId=alice", true},
		{`$id@$ud`, `alice@corp@ACME`, "UserDirectory=ACME; UserId=alice%40corp", true},
		{`[$ud]:$id;`, `[ACME]:bob;`, "UserDirectory=ACME; UserId=bob", true},
		{`$ud\$id`, `alice`, "", false},
		{`$ud\$id`, `ACME\`, "", false},
		{`$ud\$id`, `\alice`, "", false},
		{`$ud\$id`, `ACME\al\ice`, "", false},
		{`[$ud]:$id;`, `ACME:bob`, "", false},
	} {
		o := authStart(t, config.Auth{AuthenticationMethod: config.AuthHeaderDynamic, HeaderName: "X-Remote-User", DynamicUserDirectory: c.pattern, AnonymousAccess: config.AnonymousNone}, false)
		resp, body := authGet(t, o, o.browser(t), "/hub/", "X-Remote-User", c.value)
		switch {
		case c.ok && (resp.StatusCode != http.StatusOK || authUser(o, t) != c.want):
			t.Errorf("%s with %q: %d %s, want %q", c.pattern, c.value, resp.StatusCode, body, c.want)
		case !c.ok && (resp.StatusCode != http.StatusBadRequest || len(o.Backend.requests()) != 0):
			t.Errorf("%s with %q: %d %s, want 400", c.pattern, c.value, resp.StatusCode, body)
		}
	}
}

func TestAnonymousAccess(t *testing.T) {
	t.Run("always", func(t *testing.T) {
		o := authStart(t, config.Auth{AuthenticationMethod: config.AuthTicket, AnonymousAccess: config.AnonymousAlways}, true)
		b := o.browser(t)
		resp, _ := authGet(t, o, b, "/hub/?forceAuthentication=yes")
		user := authUser(o, t)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(user, "UserDirectory=NONE; UserId=anonymous") || len(user) != len("UserDirectory=NONE; UserId=anonymous")+36 {
			t.Fatalf("always: %d %q, want an anonymous user with a GUID", resp.StatusCode, user)
		}
		if resp, _ := authGet(t, o, b, "/hub/"); resp.StatusCode != http.StatusOK || authUser(o, t) != user {
			t.Errorf("the anonymous session is kept by its cookie: %d %q", resp.StatusCode, authUser(o, t))
		}
		_, body := authGet(t, o, b, "/qps/user")
		if want := `{"userDirectory":"NONE","userId":"` + strings.TrimPrefix(user, "UserDirectory=NONE; UserId=") + `","session":"inactive"}`; body != want {
			t.Errorf("personal API: %s, want %s", body, want)
		}
		if resp, _ := authGet(t, o, o.browser(t), "/hub/"); resp.StatusCode != http.StatusOK || authUser(o, t) == user {
			t.Errorf("another browser must be another anonymous user: %d", resp.StatusCode)
		}
	})
	t.Run("allow", func(t *testing.T) {
		o := authStart(t, config.Auth{AuthenticationMethod: config.AuthTicket, AnonymousAccess: config.AnonymousAllow}, true)
		b := o.browser(t)
		if resp, _ := authGet(t, o, b, "/hub/"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(authUser(o, t), "UserDirectory=NONE; UserId=anonymous") {
			t.Fatalf("allow: %d", resp.StatusCode)
		}
		// forceAuthentication=yes sends the anonymous user to log in,
		// and after login the same URL is served as the real user.
		targetID := ticketLoginTarget(t, o, b, "/auth/hub/?forceAuthentication=yes")
		tk, err := o.API.Ticket(context.Background(), "auth", userReqTarget("DOMAIN", "User1", targetID))
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := get(t, b, *tk.TargetUri+"&qlikTicket="+tk.Ticket)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("redeem: %d", resp.StatusCode)
		}
		if resp, _ := get(t, b, o.frontURL(resp.Header.Get("Location"))); resp.StatusCode != http.StatusOK || authUser(o, t) != "UserDirectory=DOMAIN; UserId=User1" {
			t.Errorf("after a forced login: %d %q", resp.StatusCode, authUser(o, t))
		}
		// A refused ticket is not turned into an anonymous session.
		if resp, _ := authGet(t, o, o.browser(t), "/hub/?qlikTicket=AAAAAAAAAAAAAAAAAAAAAA"); resp.StatusCode != http.StatusFound || ticketSessionCookie(resp, "X-Qlik-Session-auth") != "" {
			t.Errorf("refused ticket on an allow VP: %d, want 302 to login and no session", resp.StatusCode)
		}
	})
	t.Run("none", func(t *testing.T) {
		o := authStart(t, config.Auth{AuthenticationMethod: config.AuthTicket, AnonymousAccess: config.AnonymousNone}, true)
		if resp, _ := authGet(t, o, o.browser(t), "/hub/"); resp.StatusCode != http.StatusFound || len(o.Backend.requests()) != 0 {
			t.Errorf("none: %d, want 302 to the login module", resp.StatusCode)
		}
	})
}

// authJWTKey is a key pair and the algorithm it signs with.
type authJWTKey struct {
	alg    string
	signer crypto.Signer
}

func authNewKey(t *testing.T, alg string) authJWTKey {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg[:2] {
	case "RS":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES":
		curve := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		k, err = ecdsa.GenerateKey(curve, rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return authJWTKey{alg: alg, signer: k}
}

func (k authJWTKey) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims).SignedString(k.signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authJWTStart runs openqps with a JWT virtual proxy trusting key.
func authJWTStart(t *testing.T, key authJWTKey, audience string) *openqps {
	return authStart(t, config.Auth{AuthenticationMethod: config.AuthJWT, AnonymousAccess: config.AnonymousNone, JWT: config.JWT{
		Key: key.signer.Public(), UserIDClaim: "sub", UserDirectoryClaim: "dir",
		AttributeClaims: map[string]string{"groups": "Group", "email": "Email"}, Audience: audience,
	}}, false)
}

func TestJWTAuthenticationAlgorithms(t *testing.T) {
	for _, alg := range []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"} {
		t.Run(alg, func(t *testing.T) {
			key := authNewKey(t, alg)
			o := authJWTStart(t, key, "qlik.api")
			tok := key.sign(t, jwt.MapClaims{"sub": "alice", "dir": "ACME", "aud": "qlik.api", "groups": []any{"Sales", "EU"}, "email": "a@acme.test",
				"exp": o.Clock.Now().Add(time.Hour).Unix()})
			b := o.browser(t)
			resp, body := authGet(t, o, b, "/hub/", "Authorization", "Bearer "+tok)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, o.Backend.Token) {
				t.Fatalf("valid %s token: %d %s", alg, resp.StatusCode, body)
			}
			got := o.Backend.last(t)
			if u := got.Header.Get("X-Qlik-User"); u != "UserDirectory=ACME; UserId=alice" {
				t.Errorf("user %q", u)
			}
			if sec := got.Header.Get("X-Qlik-Security"); !strings.Contains(sec, "Email=a%40acme.test; Group=Sales; Group=EU;") {
				t.Errorf("attributes %q", sec)
			}
			// The session cookie now works on its own.
			if resp, _ := authGet(t, o, b, "/hub/"); resp.StatusCode != http.StatusOK {
				t.Errorf("cookie after the token: %d", resp.StatusCode)
			}
			// A script sending the same token without cookies gets one
			// session of its own (the browser's came back by its cookie,
			// so it is the browser's) and reuses it.
			for range 3 {
				if resp, _ := authGet(t, o, o.browser(t), "/hub/", "Authorization", "Bearer "+tok); resp.StatusCode != http.StatusOK {
					t.Fatalf("token again: %d", resp.StatusCode)
				}
			}
			if s, _ := o.API.UserSessions(context.Background(), "auth", "ACME", "alice"); len(s) != 2 {
				t.Errorf("%d sessions for one token, want 2: the browser's and the script's", len(s))
			}
		})
	}
}

func TestJWTAuthenticationFailures(t *testing.T) {
	key := authNewKey(t, "RS256")
	other := authNewKey(t, "RS256")
	ec := authNewKey(t, "ES256")
	o := authJWTStart(t, key, "qlik.api")
	exp := o.Clock.Now().Add(time.Hour).Unix()
	good := jwt.MapClaims{"sub": "alice", "dir": "ACME", "aud": "qlik.api", "exp": exp}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for a, b := range good {
			c[a] = b
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, good).SignedString([]byte("secret"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	cases := []struct{ name, token, reason string }{
		{"expired", key.sign(t, with("exp", o.Clock.Now().Add(-time.Second).Unix())), "expired"},
		{"no expiry", key.sign(t, with("exp", nil)), "no exp"},
		{"not yet valid", key.sign(t, with("nbf", o.Clock.Now().Add(time.Hour).Unix())), "not valid yet"},
		{"wrong audience", key.sign(t, with("aud", "someone.else")), "wrong audience"},
		{"no audience", key.sign(t, with("aud", nil)), "wrong audience"},
		{"unknown key", other.sign(t, good), "unknown key"},
		{"other algorithm family", ec.sign(t, good), "not accepted"},
		{"HS256 with a guessed secret", hs, "not accepted"},
		{"alg none", none, "not accepted"},
		{"missing user claim", key.sign(t, with("sub", nil)), `no \"sub\" claim`},
		{"missing directory claim", key.sign(t, with("dir", nil)), `no \"dir\" claim`},
		{"user claim not a string", key.sign(t, with("sub", 42)), "not a string"},
		{"backslash in user", key.sign(t, with("sub", `ACME\root`)), "backslash"},
		{"bad attribute", key.sign(t, with("groups", map[string]any{"a": 1})), "attribute claims"},
		{"malformed", "not.a.jwt", "well-formed"},
		{"empty", "", "empty"},
	}
	for _, c := range cases {
		resp, body := authGet(t, o, o.browser(t), "/hub/", "Authorization", "Bearer "+c.token)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, c.reason) || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %s, want 401 naming %q", c.name, resp.StatusCode, body, c.reason)
		}
	}
	if n := len(o.Backend.requests()); n != 0 {
		t.Errorf("%d refused requests reached the back end", n)
	}
	// Expiry follows the (injected) clock: a good token stops working
	// when its hour is up.
	tok := key.sign(t, good)
	if resp, _ := authGet(t, o, o.browser(t), "/hub/", "Authorization", "Bearer "+tok); resp.StatusCode != http.StatusOK {
		t.Fatalf("good token: %d", resp.StatusCode)
	}
	o.Clock.Advance(time.Hour + time.Second)
	if resp, body := authGet(t, o, o.browser(t), "/hub/", "Authorization", "Bearer "+tok); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Errorf("after exp: %d %s", resp.StatusCode, body)
	}
	// Without a token and a cookie: 401 telling what to send.
	if resp, body := authGet(t, o, o.browser(t), "/hub/"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Bearer") {
		t.Errorf("no token: %d %s", resp.StatusCode, body)
	}
}

// TestJWTConstantDirectory: user_directory_claim "[ACME]" is a fixed
// directory, as QPS writes constants.
func TestJWTConstantDirectory(t *testing.T) {
	key := authNewKey(t, "ES256")
	o := authStart(t, config.Auth{AuthenticationMethod: config.AuthJWT, AnonymousAccess: config.AnonymousNone, JWT: config.JWT{
		Key: key.signer.Public(), UserIDClaim: "userId", UserDirectoryClaim: "[ACME]",
	}}, false)
	tok := key.sign(t, jwt.MapClaims{"userId": "carol", "exp": o.Clock.Now().Add(time.Minute).Unix()})
	if resp, body := authGet(t, o, o.browser(t), "/hub/", "Authorization", "Bearer "+tok); resp.StatusCode != http.StatusOK || authUser(o, t) != "UserDirectory=ACME; UserId=carol" {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

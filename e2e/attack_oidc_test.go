package e2e

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tamperingFront is a reverse proxy in front of a real provider that can
// replace the ID token in the token endpoint's answer: it stands for a
// token answer an attacker controls (a compromised or confused token
// endpoint), to show what openqps itself checks in the ID token. The
// provider announces the proxy's address as its issuer.
type tamperingFront struct {
	URL   string
	forge atomic.Pointer[func(claims jwt.MapClaims) string]
}

func startTamperingProvider(t *testing.T, clients []oidcClient, users ...oidcUser) (*tamperingFront, *provider) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tf := &tamperingFront{URL: "http://" + ln.Addr().String() + "/"}
	p := startProvider(t, "127.0.0.1:0", tf.URL, clients, users...)
	target, _ := url.Parse("http://" + p.Addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		forge := tf.forge.Load()
		if forge == nil || resp.Request.URL.Path != "/oauth/token" || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, _ := io.ReadAll(resp.Body)
		var answer map[string]any
		if err := json.Unmarshal(body, &answer); err != nil {
			return err
		}
		raw, _ := answer["id_token"].(string)
		parts := strings.Split(raw, ".")
		claims := jwt.MapClaims{}
		if len(parts) == 3 {
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			json.Unmarshal(payload, &claims)
		}
		answer["id_token"] = (*forge)(claims)
		body, _ = json.Marshal(answer)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return tf, p
}

// signed signs claims as the provider does (RS256, its key and kid).
func (p *provider) signed(claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = p.KeyID
	s, err := tok.SignedString(p.Key)
	if err != nil {
		panic(err)
	}
	return s
}

func TestAttackTableOIDC(t *testing.T) {
	c1, c2 := clientFor("oidc1"), clientFor("oidc2")
	tf, p1 := startTamperingProvider(t, []oidcClient{c1}, alice)
	p2 := startProvider(t, "127.0.0.1:0", "", []oidcClient{c2}, bob)
	o := startWithVPs(t, oidcVP(t, "oidc1", tf.URL, c1), oidcVP(t, "oidc2", p2.Issuer, c2))
	waitProviderReady(t, o, o.browser(t), "/oidc1/")
	waitProviderReady(t, o, o.browser(t), "/oidc2/")

	// pending logs in at the provider in a fresh browser and stops before
	// openqps's callback: {cb} is the callback's path and query, {state}
	// its state, {cookie} the browser's state cookie.
	pending := func(t *testing.T, prefix string) map[string]string {
		t.Helper()
		tf.forge.Store(nil)
		b := o.browser(t)
		user := alice
		if prefix == "oidc2" {
			user = bob
		}
		cb := loginAtProvider(t, o, b, o.frontURL("/"+prefix+"/hub/"), user)
		u, _ := url.Parse(cb)
		vars := map[string]string{"{cb}": u.RequestURI(), "{state}": u.Query().Get("state"), "{code}": u.Query().Get("code")}
		for _, c := range b.Jar.Cookies(u) {
			if strings.HasPrefix(c.Name, "openqps-oidc") {
				vars["{cookie}"] = c.Name + "=" + c.Value
				vars["{cookievalue}"] = c.Value
			}
		}
		return vars
	}
	// started starts a login in a fresh browser without finishing it.
	started := func(t *testing.T) (cookie, state string) {
		t.Helper()
		b := o.browser(t)
		resp, _ := get(t, b, o.frontURL("/oidc1/hub/"))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		for _, c := range b.Jar.Cookies(mustURL(o.frontURL("/oidc1/oidcauthn"))) {
			if c.Name == "openqps-oidc-oidc1" {
				cookie = c.Name + "=" + c.Value
			}
		}
		return cookie, loc.Query().Get("state")
	}
	forging := func(edit func(p *provider, claims jwt.MapClaims) string) func(*testing.T, *openqps) map[string]string {
		return func(t *testing.T, o *openqps) map[string]string {
			vars := pending(t, "oidc1")
			f := func(claims jwt.MapClaims) string { return edit(p1, claims) }
			tf.forge.Store(&f)
			return vars
		}
	}
	noSession := func(t *testing.T, resp *http.Response, body string) {
		for _, c := range resp.Cookies() {
			if strings.HasPrefix(c.Name, "X-Qlik-Session") && c.Value != "" {
				t.Errorf("a refused login set the session cookie %s", c.Name)
			}
		}
		if resp.StatusCode == http.StatusFound {
			t.Errorf("a refused callback redirects (to %q): it must answer, never loop", resp.Header.Get("Location"))
		}
	}
	cb := "GET {cb} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nX-Mark: {mark}\r\nConnection: close\r\n\r\n"
	rows := []attackRow{
		{name: "callback without the state cookie", setup: func(t *testing.T, _ *openqps) map[string]string { return pending(t, "oidc1") },
			raw: "GET {cb} HTTP/1.1\r\nHost: {host}\r\nX-Mark: {mark}\r\nConnection: close\r\n\r\n", want: []int{400}, check: noSession},
		{name: "callback with another browser's state cookie", setup: func(t *testing.T, _ *openqps) map[string]string {
			vars := pending(t, "oidc1")
			other, _ := started(t)
			vars["{cookie}"] = other
			return vars
		}, raw: cb, want: []int{400}, check: noSession},
		{name: "callback with the state of another login", setup: func(t *testing.T, _ *openqps) map[string]string {
			vars := pending(t, "oidc1")
			_, otherState := started(t)
			vars["{cb}"] = strings.Replace(vars["{cb}"], "state="+vars["{state}"], "state="+otherState, 1)
			return vars
		}, raw: cb, want: []int{400}, check: noSession},
		{name: "callback replayed after a completed login", setup: func(t *testing.T, o *openqps) map[string]string {
			vars := pending(t, "oidc1")
			resp, _ := get(t, o.browser(t), o.frontURL(vars["{cb}"]), "Cookie", vars["{cookie}"])
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("the genuine callback: %d", resp.StatusCode)
			}
			return vars
		}, raw: cb, want: []int{400}, check: noSession},
		{name: "code used twice, with a fresh login's state", setup: func(t *testing.T, o *openqps) map[string]string {
			vars := pending(t, "oidc1")
			resp, _ := get(t, o.browser(t), o.frontURL(vars["{cb}"]), "Cookie", vars["{cookie}"])
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("the genuine callback: %d", resp.StatusCode)
			}
			cookie, state := started(t)
			vars["{cookie}"] = cookie
			vars["{cb}"] = "/oidc1/oidcauthn?code=" + url.QueryEscape(vars["{code}"]) + "&state=" + state
			return vars
		}, raw: cb, want: []int{400}, check: noSession},
		{name: "two state parameters", setup: func(t *testing.T, _ *openqps) map[string]string { return pending(t, "oidc1") },
			raw: "GET {cb}&state=x HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nX-Mark: {mark}\r\nConnection: close\r\n\r\n", want: []int{400}, check: noSession},
		{name: "callback posted", setup: func(t *testing.T, _ *openqps) map[string]string { return pending(t, "oidc1") },
			raw: "POST {cb} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nX-Mark: {mark}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", want: []int{405}, check: noSession},
		{name: "ID token with another nonce", setup: forging(func(p *provider, c jwt.MapClaims) string {
			c["nonce"] = "someone-elses-nonce"
			return p.signed(c)
		}), raw: cb, want: []int{400}, check: noSession},
		{name: "ID token without a nonce", setup: forging(func(p *provider, c jwt.MapClaims) string {
			delete(c, "nonce")
			return p.signed(c)
		}), raw: cb, want: []int{400}, check: noSession},
		{name: "ID token for another client", setup: forging(func(p *provider, c jwt.MapClaims) string {
			c["aud"] = []string{c2.ID}
			return p.signed(c)
		}), raw: cb, want: []int{502}, check: noSession},
		{name: "ID token for several clients, azp another", setup: forging(func(p *provider, c jwt.MapClaims) string {
			c["aud"] = []string{c1.ID, c2.ID}
			c["azp"] = c2.ID
			return p.signed(c)
		}), raw: cb, want: []int{502}, check: noSession},
		{name: "ID token from another issuer", setup: forging(func(p *provider, c jwt.MapClaims) string {
			c["iss"] = p2.Issuer
			return p.signed(c)
		}), raw: cb, want: []int{502}, check: noSession},
		{name: "ID token expired", setup: forging(func(p *provider, c jwt.MapClaims) string {
			c["exp"] = o.Clock.Now().Add(-time.Hour).Unix()
			c["iat"] = o.Clock.Now().Add(-2 * time.Hour).Unix()
			return p.signed(c)
		}), raw: cb, want: []int{502}, check: noSession},
		{name: "ID token signed with alg none", setup: forging(func(p *provider, c jwt.MapClaims) string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}), raw: cb, want: []int{502}, check: noSession},
		{name: "ID token signed HS256 with the public key", setup: forging(func(p *provider, c jwt.MapClaims) string {
			der, _ := x509.MarshalPKIXPublicKey(&p.Key.PublicKey)
			pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
			tok.Header["kid"] = p.KeyID
			s, _ := tok.SignedString(pub)
			return s
		}), raw: cb, want: []int{502}, check: noSession},
		{name: "ID token signed by another key", setup: forging(func(_ *provider, c jwt.MapClaims) string {
			other := &provider{Key: p2.Key, KeyID: p1.KeyID}
			return other.signed(c)
		}), raw: cb, want: []int{502}, check: noSession},
		{name: "mix-up: callback of oidc1 sent to oidc2's path", setup: func(t *testing.T, _ *openqps) map[string]string {
			vars := pending(t, "oidc1")
			vars["{cb}"] = strings.Replace(vars["{cb}"], "/oidc1/", "/oidc2/", 1)
			return vars
		}, raw: cb, want: []int{400}, check: noSession},
		{name: "mix-up: oidc1's state cookie renamed for oidc2", setup: func(t *testing.T, _ *openqps) map[string]string {
			vars := pending(t, "oidc1")
			vars["{cb}"] = strings.Replace(vars["{cb}"], "/oidc1/", "/oidc2/", 1)
			vars["{cookie}"] = "openqps-oidc-oidc2=" + vars["{cookievalue}"]
			return vars
		}, raw: cb, want: []int{400}, check: noSession},
		{name: "mix-up: callback names another issuer", setup: func(t *testing.T, _ *openqps) map[string]string {
			vars := pending(t, "oidc1")
			vars["{cb}"] += "&iss=" + url.QueryEscape(p2.Issuer)
			return vars
		}, raw: cb, want: []int{400}, check: noSession},
		{name: "open redirect: reloadUri to another host", raw: "GET /oidc1/hub/?reloadUri=https%3A%2F%2Fevil.example%2F HTTP/1.1\r\nHost: {host}\r\nX-Mark: {mark}\r\nConnection: close\r\n\r\n", want: []int{400}},
		{name: "open redirect: reloadUri with a backslash", raw: "GET /oidc1/hub/?reloadUri=%2F%5Cevil.example%2F HTTP/1.1\r\nHost: {host}\r\nX-Mark: {mark}\r\nConnection: close\r\n\r\n", want: []int{400}},
		{name: "open redirect: protocol-relative reloadUri", raw: "GET /oidc1/hub/?reloadUri=%2F%2Fevil.example%2F HTTP/1.1\r\nHost: {host}\r\nX-Mark: {mark}\r\nConnection: close\r\n\r\n", want: []int{400}},
		{name: "open redirect: foreign Host header", raw: "GET /oidc1/hub/ HTTP/1.1\r\nHost: evil.example\r\nX-Mark: {mark}\r\nConnection: close\r\n\r\n", want: []int{400}},
	}
	t.Run("HTTP/1.1", func(t *testing.T) { runAttackRows(t, o, nil, rows) })
	t.Run("HTTP/2", func(t *testing.T) { runAttackRowsHTTP2(t, o, rows) })
	tf.forge.Store(nil)

	// After all that, a genuine login still works, and lands where it began.
	resp, _ := oidcLogin(t, o, o.browser(t), o.frontURL("/oidc1/hub/?sheet=1"), alice)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != o.frontURL("/oidc1/hub/?sheet=1") {
		t.Fatalf("genuine login: %d at %s", resp.StatusCode, resp.Request.URL)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// runAttackRowsHTTP2 sends each row's request (its raw HTTP/1.1 text,
// parsed) over HTTP/2 and checks it as runAttackRows does.
func runAttackRowsHTTP2(t *testing.T, o *openqps, rows []attackRow) {
	tr := &http.Transport{TLSClientConfig: o.frontTLS(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, row := range rows {
		mark := "zqoidch2" + strconv.Itoa(i) + randomHex(3)
		t.Run(row.name, func(t *testing.T) {
			raw := row.raw
			for k, v := range attackVars(t, o, row.setup, mark, nil) {
				raw = strings.ReplaceAll(raw, k, v)
			}
			in, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
			if err != nil {
				t.Fatalf("row %q is not a request: %v", row.name, err)
			}
			req, err := http.NewRequest(in.Method, "https://"+o.FrontendAddr+in.RequestURI, in.Body)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = in.Host
			for k, v := range in.Header {
				if k != "Connection" {
					req.Header[k] = v
				}
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Fatalf("spoke %s, want HTTP/2", resp.Proto)
			}
			if !containsInt(row.want, resp.StatusCode) {
				t.Errorf("status %d, want one of %v; body %.300q", resp.StatusCode, row.want, body)
			}
			if row.check != nil {
				row.check(t, resp, string(body))
			}
			attackNeverReachedBackend(t, o, mark, row.markInBody)
		})
	}
}

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
)

// The OpenID provider of these tests is zitadel/oidc's example provider
// (e2e/oidcop wraps its op, storage and login packages): a real,
// separately maintained provider process, which builds in under a minute
// cold and starts in a fraction of a second, where Ory Hydra takes
// minutes and half a gigabyte of build cache on every fresh CI machine.

var (
	oidcopOnce sync.Once
	oidcopBin  string
	oidcopErr  error
)

// oidcopBinary builds e2e/oidcop (its own module) once per test run; Go's
// build cache makes later runs a link step.
func oidcopBinary(t *testing.T) string {
	t.Helper()
	oidcopOnce.Do(func() {
		dir, err := os.MkdirTemp("", "openqps-oidcop-")
		if err != nil {
			oidcopErr = err
			return
		}
		oidcopBin = filepath.Join(dir, "oidcop")
		cmd := exec.Command("go", "build", "-o", oidcopBin, ".")
		cmd.Dir = "oidcop"
		if out, err := cmd.CombinedOutput(); err != nil {
			oidcopErr = fmt.Errorf("build e2e/oidcop: %v\n%s", err, out)
		}
	})
	if oidcopErr != nil {
		t.Fatal(oidcopErr)
	}
	return oidcopBin
}

// oidcUser is a user of the test provider.
type oidcUser struct {
	ID        string   `json:"id"`
	Username  string   `json:"username"`
	Password  string   `json:"password"`
	FirstName string   `json:"first_name"`
	LastName  string   `json:"last_name"`
	Email     string   `json:"email"`
	Groups    []string `json:"groups"`
}

// oidcClient is a client registered at the test provider.
type oidcClient struct {
	ID               string   `json:"id"`
	Secret           string   `json:"secret"`
	RedirectURIGlobs []string `json:"redirect_uri_globs"`
	PostLogout       []string `json:"post_logout_redirect_uris"`
}

// provider is one running provider process.
type provider struct {
	Issuer string
	Addr   string // where it listens
	Key    *rsa.PrivateKey
	KeyID  string
}

var (
	alice = oidcUser{ID: "alice-id", Username: "alice", Password: "alicepw", FirstName: "Alice", LastName: "Liddell",
		Email: "alice@acme.test", Groups: []string{"admins", "devs"}}
	bob = oidcUser{ID: "bob-id", Username: "bob", Password: "bobpw", FirstName: "Bob", LastName: "Builder",
		Email: "bob@beta.test", Groups: []string{"builders"}}
)

// startProvider runs the provider on listen (127.0.0.1:0 for a free
// port), announcing issuer (empty: its own address), with clients and
// users. The process is stopped when the test ends.
func startProvider(t *testing.T, listen, issuer string, clients []oidcClient, users ...oidcUser) *provider {
	t.Helper()
	bin := oidcopBinary(t)
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(dir, "key.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	cfg, _ := json.Marshal(map[string]any{"listen": listen, "issuer": issuer, "signing_key": keyFile,
		"key_id": "k1", "clients": clients, "users": users})
	cfgFile := filepath.Join(dir, "op.json")
	os.WriteFile(cfgFile, cfg, 0o600)
	cmd := exec.Command(bin, cfgFile)
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the provider did not start: %v", err)
	}
	go io.Copy(io.Discard, out)
	var p provider
	if _, err := fmt.Sscanf(line, "issuer=%s listen=%s", &p.Issuer, &p.Addr); err != nil {
		t.Fatalf("the provider printed %q: %v", line, err)
	}
	p.Key, p.KeyID = key, "k1"
	return &p
}

// oidcVP is the YAML of an OIDC virtual proxy of prefix at issuer's
// client c; extra lines go under its oidc key.
func oidcVP(t *testing.T, prefix, issuer string, c oidcClient, extra ...string) string {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte(c.Secret+"\n"), 0o600)
	y := `
  - prefix: ` + prefix + `
    session_cookie_name: X-Qlik-Session-` + prefix + `
    backends: ["{backend}"]
    authentication_method: oidc
    oidc:
      metadata_uri: ` + strings.TrimSuffix(issuer, "/") + `/.well-known/openid-configuration
      client_id: ` + c.ID + `
      client_secret_file: ` + secretFile + `
      realm: ACME
      attribute_claims: {family_name: surname}
`
	for _, e := range extra {
		y += "      " + e + "\n"
	}
	return y
}

// startWithVPs runs openqps with the given virtual proxies (YAML, as oidcVP)
// added, validated as a configuration file is.
func startWithVPs(t *testing.T, vps ...string) *openqps {
	t.Helper()
	return start(t, func(cfg *config.Config) {
		be := cfg.VirtualProxies[0].Backends[0]
		doc := "data_dir: " + t.TempDir() + "\nvirtual_proxies:\n" + strings.ReplaceAll(strings.Join(vps, ""), "{backend}", be)
		extra, err := config.Parse([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		cfg.VirtualProxies = append(cfg.VirtualProxies, extra.VirtualProxies...)
	})
}

func clientFor(prefix string) oidcClient {
	return oidcClient{ID: "openqps-" + prefix, Secret: "s3cret-" + randomHex(8),
		RedirectURIGlobs: []string{"https://127.0.0.1:*/" + prefix + "/oidcauthn"},
		PostLogout:       []string{"https://127.0.0.1:*/" + prefix + "/"}}
}

var authRequestID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// follow GETs u and the redirects after it until an answer that is not a
// redirect, or one to stopAt's prefix (returned unfollowed).
func follow(t *testing.T, c *http.Client, u, stopAt string) (*http.Response, string) {
	t.Helper()
	for range 20 {
		if stopAt != "" && strings.HasPrefix(u, stopAt) {
			return &http.Response{StatusCode: http.StatusFound, Header: http.Header{"Location": {u}}}, ""
		}
		resp, body := get(t, c, u, "Accept", "text/html")
		if resp.StatusCode/100 != 3 {
			return resp, body
		}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		u = loc.String()
	}
	t.Fatalf("more than 20 redirects from %s", u)
	return nil, ""
}

// loginAtProvider opens u on openqps with browser c, logs in at the
// provider as user, and returns the URL the provider sends the browser
// back to (openqps's callback), without opening it.
func loginAtProvider(t *testing.T, o *openqps, c *http.Client, u string, user oidcUser) string {
	t.Helper()
	resp, body := follow(t, c, u, "")
	m := authRequestID.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("expected the provider's login form, got %d %.300q", resp.StatusCode, body)
	}
	form := url.Values{"id": {m[1]}, "username": {user.Username}, "password": {user.Password}}
	post, err := c.PostForm(resp.Request.URL.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusFound {
		t.Fatalf("login form: %d", post.StatusCode)
	}
	loc, _ := post.Request.URL.Parse(post.Header.Get("Location"))
	cb, _ := follow(t, c, loc.String(), o.frontURL("/"))
	return cb.Header.Get("Location")
}

// oidcLogin runs the whole login of user from u and returns the page the
// browser lands on.
func oidcLogin(t *testing.T, o *openqps, c *http.Client, u string, user oidcUser) (*http.Response, string) {
	t.Helper()
	cb := loginAtProvider(t, o, c, u, user)
	return follow(t, c, cb, "")
}

func TestOIDCLoginFlowTwoProvidersSideBySide(t *testing.T) {
	c1, c2 := clientFor("oidc1"), clientFor("oidc2")
	p1 := startProvider(t, "127.0.0.1:0", "", []oidcClient{c1}, alice)
	p2 := startProvider(t, "127.0.0.1:0", "", []oidcClient{c2}, bob)
	o := startWithVPs(t, oidcVP(t, "oidc1", p1.Issuer, c1), oidcVP(t, "oidc2", p2.Issuer, c2))
	b := o.browser(t)
	waitProviderReady(t, o, b, "/oidc1/")
	waitProviderReady(t, o, b, "/oidc2/")

	resp, body := oidcLogin(t, o, b, o.frontURL("/oidc1/hub/app?x=1"), alice)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, o.Backend.Token) {
		t.Fatalf("after login: %d %.300q", resp.StatusCode, body)
	}
	if got := resp.Request.URL.String(); got != o.frontURL("/oidc1/hub/app?x=1") {
		t.Errorf("landed on %s, want the original URL", got)
	}
	last := o.Backend.last(t)
	if got, want := last.Header.Get("X-Qlik-User"), "UserDirectory=ACME; UserId=alice-id"; got != want {
		t.Errorf("X-Qlik-User %q, want %q", got, want)
	}
	sec := last.Header.Get("X-Qlik-Security")
	for _, want := range []string{"name=Alice%20Liddell;", "email=alice%40acme.test;", "group=admins;", "group=devs;", "surname=Liddell;"} {
		if !strings.Contains(sec, want) {
			t.Errorf("X-Qlik-Security %q lacks %q", sec, want)
		}
	}
	for _, h := range []string{"Cookie"} {
		if strings.Contains(last.Header.Get(h), "openqps-oidc") {
			t.Errorf("the back end got the login state cookie: %q", last.Header.Get(h))
		}
	}

	// The cookie alone works afterwards, without the provider.
	resp, _ = get(t, b, o.frontURL("/oidc1/other"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with the session cookie: %d", resp.StatusCode)
	}
	// The trusted API lists the session like any other.
	list, err := o.API.UserSessions(context.Background(), "oidc1", "ACME", "alice-id")
	if err != nil || len(list) != 1 {
		t.Fatalf("user sessions: %v %v", list, err)
	}

	// The second virtual proxy logs in at its own provider, as another
	// user; the first session is not its.
	resp, _ = get(t, b, o.frontURL("/oidc2/hub/"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), p2.Issuer) {
		t.Fatalf("oidc2 without its session: %d to %q, want the second provider", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = oidcLogin(t, o, b, o.frontURL("/oidc2/hub/"), bob)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("oidc2 login: %d", resp.StatusCode)
	}
	if got := o.Backend.last(t).Header.Get("X-Qlik-User"); got != "UserDirectory=ACME; UserId=bob-id" {
		t.Errorf("oidc2 X-Qlik-User %q", got)
	}

	// Logout ends the session; the next navigation goes to the provider.
	req, _ := http.NewRequest(http.MethodDelete, o.frontURL("/oidc1/qps/user"), nil)
	resp, _ = do(t, b, req)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	resp, _ = get(t, b, o.frontURL("/oidc1/hub/"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), p1.Issuer) {
		t.Fatalf("after logout: %d to %q, want the provider", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A script (not a navigation) gets 401, not a redirect.
	resp, body = get(t, o.browser(t), o.frontURL("/oidc1/api/x"), "X-Requested-With", "XMLHttpRequest")
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("script without session: %d %q", resp.StatusCode, body)
	}
}

// waitProviderReady waits until openqps has read the virtual proxy's
// discovery document: its navigation answers a redirect, not 503.
func waitProviderReady(t *testing.T, o *openqps, b *http.Client, path string) *http.Response {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, o.frontURL(path), nil)
		resp, err := b.Transport.RoundTrip(req) // no cookie jar: the state cookie is not kept
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers 503 after 20 s", path)
		}
		<-time.After(50 * time.Millisecond) // polling the condition itself
	}
}

func TestOIDCProviderUnreachableAtStartThenRecovers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there until the provider starts below
	c := clientFor("late")
	issuer := "http://" + addr + "/"
	o := startWithVPs(t, oidcVP(t, "late", issuer, c))
	b := o.browser(t)
	resp, body := get(t, b, o.frontURL("/late/hub/"), "Accept", "application/json")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "identity provider unreachable") {
		t.Fatalf("provider down: %d %q, want 503 identity provider unreachable", resp.StatusCode, body)
	}
	// The other virtual proxies work meanwhile.
	if resp, _ := get(t, b, o.frontURL("/sessionvp/")); resp.StatusCode != http.StatusFound {
		t.Fatalf("another virtual proxy: %d", resp.StatusCode)
	}
	startProvider(t, addr, "", []oidcClient{c}, alice)
	resp = waitProviderReady(t, o, b, "/late/hub/")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), issuer) {
		t.Fatalf("provider up: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := oidcLogin(t, o, b, o.frontURL("/late/hub/"), alice); resp.StatusCode != http.StatusOK {
		t.Fatalf("login after recovery: %d", resp.StatusCode)
	}
}

func TestOIDCProviderErrorIsAClearPage(t *testing.T) {
	c := clientFor("oidc1")
	p := startProvider(t, "127.0.0.1:0", "", []oidcClient{c}, alice)
	o := startWithVPs(t, oidcVP(t, "oidc1", p.Issuer, c))
	b := o.browser(t)
	waitProviderReady(t, o, b, "/oidc1/")
	resp, _ := get(t, b, o.frontURL("/oidc1/hub/"))
	auth, _ := url.Parse(resp.Header.Get("Location"))
	state := auth.Query().Get("state")
	resp, body := get(t, b, o.frontURL("/oidc1/oidcauthn?error=access_denied&error_description=The+user+is+not+assigned+to+the+app&state="+state), "Accept", "text/html")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "The user is not assigned to the app") ||
		!strings.Contains(body, "To log in again, open "+o.frontURL("/oidc1/hub/")) ||
		!strings.Contains(body, `<a href="`+o.frontURL("/oidc1/hub/")+`">Try again</a>`) {
		t.Fatalf("provider error: %d %.500q, want 403 with the provider's message and a link back", resp.StatusCode, body)
	}
	if len(o.Backend.requests()) != 0 {
		t.Fatal("the back end was reached")
	}
}

func TestOIDCLogoutEndsTheSessionAtTheProviderToo(t *testing.T) {
	c := clientFor("oidc1")
	p := startProvider(t, "127.0.0.1:0", "", []oidcClient{c}, alice)
	o := startWithVPs(t, oidcVP(t, "oidc1", p.Issuer, c, "end_session: true"))
	b := o.browser(t)
	waitProviderReady(t, o, b, "/oidc1/")
	if resp, _ := oidcLogin(t, o, b, o.frontURL("/oidc1/hub/"), alice); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	resp, _ := get(t, b, o.frontURL("/oidc1/qps/logout"))
	end, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(end.String(), p.Issuer) ||
		end.Query().Get("id_token_hint") == "" || end.Query().Get("post_logout_redirect_uri") != o.frontURL("/oidc1/") {
		t.Fatalf("logout: %d to %q, want the provider's end_session_endpoint with id_token_hint", resp.StatusCode, end)
	}
	if list, err := o.API.UserSessions(context.Background(), "oidc1", "ACME", "alice-id"); err != nil || len(list) != 0 {
		t.Fatalf("sessions after logout: %v %v", list, err)
	}
	// The provider ends its session and sends the browser back to the
	// virtual proxy, which has no session for it any more: off to log in.
	resp, body := follow(t, b, end.String(), p.Issuer+"auth?")
	if !strings.HasPrefix(resp.Header.Get("Location"), p.Issuer) {
		t.Fatalf("after the provider's logout: %d %q %.300q", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	// Without end_session (the other tests), logout goes back to the root.
}

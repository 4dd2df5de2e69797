package e2e

import (
	"crypto/tls"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	krb5config "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/spnego"

	"github.com/openqps/openqps/internal/config"
	"github.com/openqps/openqps/internal/kdctest"
)

// Windows authentication against a real MIT KDC (kdctest): a realm per
// test, a user, openqps's HTTP/localhost service principal exported to a
// keytab, and real clients getting service tickets from that KDC.

const (
	windowsUA   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	winRealm    = "ACME.TEST"
	winSPN      = "HTTP/localhost"
	winUser     = "alice"
	winPassword = "alicepw-9f2c"
)

// windowsRealm is a realm with alice, openqps's service principal (in
// keytab) and a second service, HTTP/other.test, whose key openqps does
// not hold.
type windowsRealm struct {
	*kdctest.KDC
	keytab string
}

func startWindowsRealm(t *testing.T) *windowsRealm {
	t.Helper()
	kdc := kdctest.Start(t, winRealm)
	kdc.AddUser(winUser, winPassword)
	kdc.AddService(winSPN)
	kdc.AddService("HTTP/other.test")
	return &windowsRealm{KDC: kdc, keytab: kdc.Keytab("http.keytab", winSPN)}
}

// windowsVP is a windows virtual proxy "win" in front of be, parsed (and
// so validated, keytab and krb5.conf loaded) like any configuration.
func windowsVP(t *testing.T, r *windowsRealm, backend, extra string) config.VirtualProxy {
	t.Helper()
	yaml := `
data_dir: ` + t.TempDir() + `
frontend: {listen: "127.0.0.1:0"}
api: {listen: "127.0.0.1:0"}
store: {type: memory}
virtual_proxies:
  - prefix: win
    session_cookie_name: X-Qlik-Session-win
    backends: ["` + backend + `"]
    authentication_method: windows
    windows:
      keytab: ` + r.keytab + `
      service_principal: ` + winSPN + `@` + winRealm + `
      krb5_conf: ` + r.Krb5Conf + `
      realm_directories: {` + winRealm + `: ACME}
` + extra
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.VirtualProxies[0]
}

func startWindows(t *testing.T, r *windowsRealm, extra string) *openqps {
	t.Helper()
	return start(t, func(c *config.Config) {
		c.VirtualProxies = append(c.VirtualProxies, windowsVP(t, r, c.VirtualProxies[0].Backends[0], extra))
	})
}

// localURL is the front end's URL by the name of the service principal:
// a Kerberos client asks a ticket for HTTP/<host in the URL>.
func (o *openqps) localURL(path string) string {
	_, port, _ := strings.Cut(o.FrontendAddr, ":")
	return "https://localhost:" + port + path
}

// krbClient logs user in with the realm's KDC: gokrb5's client, the second
// path besides MIT's kinit.
func (r *windowsRealm) krbClient(t *testing.T, user, password string) *client.Client {
	t.Helper()
	cfg, err := krb5config.Load(r.Krb5Conf)
	if err != nil {
		t.Fatal(err)
	}
	cl := client.NewWithPassword(user, r.Realm, password, cfg, client.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		t.Fatalf("kerberos login of %s: %v", user, err)
	}
	t.Cleanup(cl.Destroy)
	return cl
}

// negotiate returns an Authorization header value with a fresh service
// ticket of cl for spn.
func negotiate(t *testing.T, cl *client.Client, spn string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "https://localhost/", nil)
	if err := spnego.SetSPNEGOHeader(cl, req, spn); err != nil {
		t.Fatalf("SPNEGO token for %s: %v", spn, err)
	}
	return req.Header.Get("Authorization")
}

func TestWindowsNegotiateWithGokrb5Client(t *testing.T) {
	r := startWindowsRealm(t)
	o := startWindows(t, r, "")
	cl := r.krbClient(t, winUser, winPassword)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool}}, Timeout: 10 * time.Second}
	// gokrb5's client answers a 401 Negotiate challenge, which the
	// device pattern gives Windows browsers.
	req, _ := http.NewRequest(http.MethodGet, o.localURL("/win/hub/"), nil)
	req.Header.Set("User-Agent", windowsUA)
	resp, err := spnego.NewClient(cl, hc, winSPN).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	got := o.Backend.last(t)
	if u := got.Header.Get("X-Qlik-User"); u != "UserDirectory=ACME; UserId=alice" {
		t.Errorf("X-Qlik-User %q", u)
	}
	if a := got.Header.Get("Authorization"); a != "" {
		t.Errorf("the back end got the Negotiate token: %.40q", a)
	}
	// The session cookie carries on without Kerberos.
	resp, _ = get(t, hc, o.localURL("/win/hub/again"))
	if resp.StatusCode != http.StatusOK || o.Backend.last(t).URL.Path != "/hub/again" {
		t.Fatalf("with the session cookie: status %d", resp.StatusCode)
	}
	u, _ := url.Parse(o.localURL("/win/"))
	if len(jar.Cookies(u)) == 0 {
		t.Error("no session cookie was set")
	}
}

func TestWindowsNegotiateWithKinitAndCurl(t *testing.T) {
	r := startWindowsRealm(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	o := startWindows(t, r, "")
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.Certs.CA.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cc := filepath.Join(dir, "cc")
	kinit := r.Command(cc, "kinit", winUser+"@"+winRealm)
	kinit.Stdin = strings.NewReader(winPassword + "\n")
	if out, err := kinit.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	// curl sends its token on the first request, without waiting for a
	// 401; -w prints the status after the body.
	curl := r.Command(cc, "curl", "-sS", "--negotiate", "-u", ":", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", o.localURL("/win/hub/curl"))
	out, err := curl.CombinedOutput()
	if err != nil || string(out) != "200" {
		t.Fatalf("curl --negotiate: %v, printed %q", err, out)
	}
	if u := o.Backend.last(t).Header.Get("X-Qlik-User"); u != "UserDirectory=ACME; UserId=alice" {
		t.Errorf("X-Qlik-User %q", u)
	}
}

const iPhoneUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"

func TestWindowsDevicePatternChoosesTheLogin(t *testing.T) {
	r := startWindowsRealm(t)
	o := startWindows(t, r, "")
	b := o.browser(t)
	resp, body := get(t, b, o.frontURL("/win/hub/?x=1"), "User-Agent", windowsUA, "Accept", "text/html")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Negotiate" {
		t.Fatalf("Windows browser: %d WWW-Authenticate %q, want 401 Negotiate", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if !strings.Contains(body, "sign in with your password at /win/internal_forms_authentication/?target=") ||
		!strings.Contains(body, `<a href="/win/internal_forms_authentication/?target=`) {
		t.Errorf("the challenge page does not offer (and link to) the forms login: %.600q", body)
	}
	resp, _ = get(t, b, o.frontURL("/win/hub/?x=1"), "User-Agent", iPhoneUA, "Accept", "text/html")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || loc != "/win/internal_forms_authentication/?target="+url.QueryEscape(o.frontURL("/win/hub/?x=1")) {
		t.Fatalf("phone: %d Location %q, want 302 to the forms login", resp.StatusCode, loc)
	}
	if resp.Header.Get("WWW-Authenticate") != "" {
		t.Error("the phone got a Negotiate challenge")
	}
	// A script that is not navigating gets the challenge and JSON.
	req, _ := http.NewRequest(http.MethodPost, o.frontURL("/win/qrs/app"), nil)
	req.Header.Set("User-Agent", iPhoneUA)
	resp, body = do(t, b, req)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"error":"not authenticated"`) {
		t.Errorf("POST: %d %.200q", resp.StatusCode, body)
	}
}

func TestWindowsDevicePatternStar(t *testing.T) {
	r := startWindowsRealm(t)
	o := startWindows(t, r, "      device_pattern: \"*\"\n")
	resp, _ := get(t, o.browser(t), o.frontURL("/win/hub/"), "User-Agent", iPhoneUA, "Accept", "text/html")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Negotiate" {
		t.Fatalf("%d WWW-Authenticate %q, want 401 Negotiate for every user agent", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

var formsCSRFField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// formsLogin opens the forms login in b and posts username and password;
// it returns the answer to the post.
func formsLogin(t *testing.T, o *openqps, b *http.Client, target, username, password string) (*http.Response, string) {
	t.Helper()
	page := o.frontURL("/win/internal_forms_authentication/?target=" + url.QueryEscape(target))
	resp, body := get(t, b, page, "User-Agent", iPhoneUA, "Accept", "text/html")
	m := formsCSRFField.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("forms login page: %d %.300q", resp.StatusCode, body)
	}
	form := url.Values{"username": {username}, "password": {password}, "csrf": {m[1]}}
	req, _ := http.NewRequest(http.MethodPost, page, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Origin", "https://"+o.FrontendAddr)
	return do(t, b, req)
}

func TestWindowsFormsLogin(t *testing.T) {
	r := startWindowsRealm(t)
	o := startWindows(t, r, "")
	target := o.frontURL("/win/hub/after-login")
	for _, name := range []string{"alice", `ACME\alice`, "alice@ACME.TEST", "alice@acme.test"} {
		b := o.browser(t)
		resp, body := formsLogin(t, o, b, target, name, winPassword)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != target {
			t.Fatalf("%s: %d Location %q, want 303 to %s; %.300q", name, resp.StatusCode, resp.Header.Get("Location"), target, body)
		}
		resp, _ = get(t, b, target)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: after login: %d", name, resp.StatusCode)
		}
		if u := o.Backend.last(t).Header.Get("X-Qlik-User"); u != "UserDirectory=ACME; UserId=alice" {
			t.Errorf("%s: X-Qlik-User %q", name, u)
		}
	}
}

func TestWindowsFormsLoginWrongPasswordTellsNothing(t *testing.T) {
	r := startWindowsRealm(t)
	o := startWindows(t, r, "")
	target := o.frontURL("/win/hub/")
	answers := map[string]string{}
	for _, c := range []struct{ name, user, password string }{
		{"wrong password", "alice", "not-her-password"},
		{"unknown user", "mallory", "whatever"},
		{"unmapped domain", `EVIL\alice`, winPassword},
	} {
		resp, body := formsLogin(t, o, o.browser(t), target, c.user, c.password)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "The user name or password is wrong.") {
			t.Errorf("%s: %d %.300q", c.name, resp.StatusCode, body)
		}
		if len(resp.Cookies()) != 1 || resp.Cookies()[0].Name != "openqps-forms-csrf" {
			t.Errorf("%s: cookies %v, want only a new CSRF token", c.name, resp.Cookies())
		}
		answers[c.name] = formsCSRFField.ReplaceAllString(body, "")
	}
	if answers["wrong password"] != answers["unknown user"] || answers["unknown user"] != answers["unmapped domain"] {
		t.Errorf("the answers differ, so they tell which users exist:\n%q\n%q\n%q", answers["wrong password"], answers["unknown user"], answers["unmapped domain"])
	}
}

func TestWindowsFormsLoginKDCUnreachable(t *testing.T) {
	r := startWindowsRealm(t)
	dead := filepath.Join(t.TempDir(), "krb5.conf")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	conf := "[libdefaults]\n default_realm = ACME.TEST\n dns_lookup_kdc = false\n udp_preference_limit = 1\n[realms]\n ACME.TEST = {\n  kdc = " + closed + "\n }\n"
	if err := os.WriteFile(dead, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	o := start(t, func(c *config.Config) {
		vp := windowsVP(t, r, c.VirtualProxies[0].Backends[0], "")
		kc, err := krb5config.Load(dead)
		if err != nil {
			t.Fatal(err)
		}
		vp.Auth.Windows.Krb5Conf, vp.Auth.Windows.KrbConfig = dead, kc
		c.VirtualProxies = append(c.VirtualProxies, vp)
	})
	resp, body := formsLogin(t, o, o.browser(t), o.frontURL("/win/hub/"), "alice", winPassword)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "does not answer") {
		t.Errorf("%d %.300q, want 503 saying the login server does not answer", resp.StatusCode, body)
	}
}

// TestWindowsCrossRealmUsers: a user of OTHER.TEST, a realm ACME.TEST
// trusts, gets the ticket for openqps's HTTP/localhost@ACME.TEST through
// the trust (MIT kinit + curl); realm_directories decides whether that
// realm's users may log in, and as which directory.
func TestWindowsCrossRealmUsers(t *testing.T) {
	r := startWindowsRealm(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	other := kdctest.Start(t, "OTHER.TEST")
	other.AddUser("bob", winPassword)
	// The trust: the same cross-realm key in both KDCs.
	for _, k := range []*kdctest.KDC{r.KDC, other} {
		k.Kadmin("addprinc -pw trust-8d1e krbtgt/" + winRealm + "@OTHER.TEST")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "krb5.conf")
	krb5 := "[libdefaults]\n default_realm = OTHER.TEST\n dns_lookup_kdc = false\n dns_lookup_realm = false\n rdns = false\n dns_canonicalize_hostname = false\n udp_preference_limit = 1\n" +
		"[realms]\n " + winRealm + " = {\n  kdc = " + r.Addr + "\n }\n OTHER.TEST = {\n  kdc = " + other.Addr + "\n }\n[domain_realm]\n localhost = " + winRealm + "\n"
	if err := os.WriteFile(conf, []byte(krb5), 0o600); err != nil {
		t.Fatal(err)
	}
	cc := filepath.Join(dir, "cc")
	kinit := other.Command(cc, "kinit", "bob@OTHER.TEST")
	kinit.Env = append(kinit.Env, "KRB5_CONFIG="+conf)
	kinit.Stdin = strings.NewReader(winPassword + "\n")
	if out, err := kinit.CombinedOutput(); err != nil {
		t.Fatalf("kinit: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name        string
		directories map[string]string
		status      string
		user        string
	}{
		{"realm not mapped", map[string]string{winRealm: "ACME"}, "403", ""},
		{"realm mapped", map[string]string{winRealm: "ACME", "OTHER.TEST": "OTHERDOM"}, "200", "UserDirectory=OTHERDOM; UserId=bob"},
	} {
		o := start(t, func(cfg *config.Config) {
			v := windowsVP(t, r, cfg.VirtualProxies[0].Backends[0], "")
			v.Auth.Windows.RealmDirectories = c.directories
			cfg.VirtualProxies = append(cfg.VirtualProxies, v)
		})
		ca := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: o.Certs.CA.Raw}), 0o600)
		curl := other.Command(cc, "curl", "-sS", "--negotiate", "-u", ":", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", o.localURL("/win/hub/cross"))
		curl.Env = append(curl.Env, "KRB5_CONFIG="+conf)
		out, err := curl.CombinedOutput()
		if err != nil || string(out) != c.status {
			t.Fatalf("%s: curl: %v, printed %q, want %s", c.name, err, out, c.status)
		}
		if c.user != "" {
			if u := o.Backend.last(t).Header.Get("X-Qlik-User"); u != c.user {
				t.Errorf("%s: X-Qlik-User %q, want %q", c.name, u, c.user)
			}
		} else if n := len(o.Backend.requests()); n != 0 {
			t.Errorf("%s: the back end got %d requests", c.name, n)
		}
	}
}

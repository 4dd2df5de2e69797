package e2e

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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

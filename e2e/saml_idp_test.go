package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"math/big"
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

	"github.com/openqps/openqps/internal/config"
)

// samlIdP is a SimpleSAMLphp identity provider (Debian's package) run
// with PHP's built-in server on 127.0.0.1, over a configuration this
// test writes. Its users carry attributes; the test holds its signing
// key, to sign crafted assertions.
type samlIdP struct {
	URL      string // http://127.0.0.1:port
	EntityID string
	Key      *rsa.PrivateKey
	Cert     *x509.Certificate
	dir      string
}

const sspWebRoot = "/usr/share/simplesamlphp/www"

// startSAMLIdP starts SimpleSAMLphp, or skips the test when the machine
// has no SimpleSAMLphp (scripts/test.sh installs it).
func startSAMLIdP(t *testing.T) *samlIdP {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("SimpleSAMLphp's tests need php: apt-get install simplesamlphp php-cli php-xml php-mbstring php-curl")
	}
	if _, err := os.Stat(sspWebRoot); err != nil {
		t.Skip("SimpleSAMLphp is not installed: apt-get install simplesamlphp php-cli php-xml php-mbstring php-curl")
	}
	dir := t.TempDir()
	for _, d := range []string{"config", "cert", "log", "data", "tmp", "metadata", "sessions"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // PHP binds it next; no other process here picks ports in between
	idp := &samlIdP{URL: "http://" + addr, dir: dir}
	idp.EntityID = idp.URL + "/saml2/idp/metadata.php"
	idp.Key, idp.Cert = newIdPKey(t, dir)

	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("config/config.php", `<?php
$config = [
  'baseurlpath' => '/',
  'certdir' => '`+dir+`/cert/',
  'loggingdir' => '`+dir+`/log/',
  'datadir' => '`+dir+`/data/',
  'tempdir' => '`+dir+`/tmp/',
  'secretsalt' => '`+randomHex(16)+`',
  'auth.adminpassword' => '`+randomHex(16)+`',
  'technicalcontact_name' => 'openqps tests',
  'technicalcontact_email' => 'tests@acme.test',
  'metadata.sources' => [['type' => 'flatfile', 'directory' => '`+dir+`/metadata']],
  'enable.saml20-idp' => true,
  'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true],
  'session.cookie.secure' => false,
  'store.type' => 'phpsession',
  'session.phpsession.savepath' => '`+dir+`/sessions',
  'logging.handler' => 'file',
  'logging.logfile' => 'simplesamlphp.log',
  'logging.level' => SimpleSAML\Logger::DEBUG,
  'timezone' => 'UTC',
  'language.default' => 'en',
];
`)
	write("config/authsources.php", `<?php
$config = [
  'admin' => ['core:AdminPassword'],
  'users' => ['exampleauth:UserPass',
    'alice:alicepw' => ['uid' => ['alice'], 'groups' => ['admins', 'devs'], 'email' => ['alice@acme.test']],
    'mallory:mallorypw' => ['uid' => ['mallory'], 'groups' => ['guests'], 'email' => ['mallory@acme.test']],
  ],
];
`)
	write("metadata/saml20-idp-hosted.php", `<?php
$metadata['`+idp.EntityID+`'] = [
  'host' => '__DEFAULT__',
  'privatekey' => 'idp.key',
  'certificate' => 'idp.crt',
  'auth' => 'users',
  'saml20.sign.response' => true,
  'saml20.sign.assertion' => true,
  'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'SingleLogoutServiceBinding' => ['urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect'],
];
`)
	write("metadata/saml20-sp-remote.php", "<?php\n")

	cmd := exec.Command(php, "-S", addr, "-t", sspWebRoot)
	cmd.Env = append(os.Environ(), "SIMPLESAMLPHP_CONFIG_DIR="+dir+"/config")
	cmd.Dir = dir
	stderr, _ := cmd.StderrPipe()
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "log", "simplesamlphp.log")); err == nil {
				t.Logf("SimpleSAMLphp log (tail):\n%s", tail(string(b), 3000))
			}
		}
	})
	ready := make(chan struct{})
	go func() {
		// PHP's server says "Development Server (...) started" on stderr
		// once it listens; the rest is its access log.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "started") {
				close(ready)
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("SimpleSAMLphp's PHP server did not start within 20s")
	}
	return idp
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// newIdPKey makes the IdP's RSA key and self-signed certificate and
// writes them where SimpleSAMLphp's certdir has them.
func newIdPKey(t *testing.T, dir string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "SimpleSAMLphp test IdP"},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kpem := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	cpem := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	os.WriteFile(filepath.Join(dir, "cert", "idp.key"), kpem, 0o600)
	os.WriteFile(filepath.Join(dir, "cert", "idp.crt"), cpem, 0o600)
	return key, cert
}

// samlSP describes openqps to the IdP.
type samlSP struct {
	EntityID, ACS, SLO string
	Cert               []byte // DER; the IdP checks signed AuthnRequests with it
	Encrypt            bool
}

// addSP tells the IdP about a service provider (SimpleSAMLphp reads its
// flat-file metadata on every request).
func (idp *samlIdP) addSP(t *testing.T, sps ...samlSP) {
	t.Helper()
	var b strings.Builder
	b.WriteString("<?php\n")
	for _, sp := range sps {
		fmt.Fprintf(&b, `$metadata['%s'] = [
  'AssertionConsumerService' => '%s',
  'SingleLogoutService' => '%s',
  'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
  'simplesaml.nameidattribute' => 'uid',
  'validate.authnrequest' => true,
  'certData' => '%s',
  'assertion.encryption' => %t,
  'sharedkey_algorithm' => 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
];
`, sp.EntityID, sp.ACS, sp.SLO, base64.StdEncoding.EncodeToString(sp.Cert), sp.Encrypt)
	}
	if err := os.WriteFile(filepath.Join(idp.dir, "metadata", "saml20-sp-remote.php"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// samlVP is a SAML virtual proxy in front of backend, validated as a
// configuration file's would be; extra is more YAML of its saml section.
func samlVP(t *testing.T, idp *samlIdP, prefix, backend, extra string) config.VirtualProxy {
	t.Helper()
	cfg, err := config.Parse([]byte(`
virtual_proxies:
  - prefix: ` + prefix + `
    backends: ["` + backend + `"]
    authentication_method: saml
    saml:
      idp_metadata: ` + idp.URL + `/saml2/idp/metadata.php
      entity_id: https://openqps.test/` + prefix + `
      user_directory_attribute: "[ACME]"
      attribute_mapping: {groups: Group, email: Email}
` + extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.VirtualProxies[0]
}

// samlBrowser is a cookie-jar client that follows redirects, trusts
// openqps's CA, and speaks HTTP/2 to it when h2 is set.
func (o *openqps) samlBrowser(t *testing.T, h2 bool) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:       jar,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.Certs.CAPool}, ForceAttemptHTTP2: h2},
		Timeout:   15 * time.Second,
	}
}

var (
	hiddenInput = regexp.MustCompile(`<input[^>]*type="hidden"[^>]*>`)
	inputName   = regexp.MustCompile(`name="([^"]*)"`)
	inputValue  = regexp.MustCompile(`value="([^"]*)"`)
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
)

// htmlForm reads a page's form: its action and hidden fields.
func htmlForm(t *testing.T, page string) (string, url.Values) {
	t.Helper()
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form in the page:\n%.2000s", page)
	}
	fields := url.Values{}
	for _, in := range hiddenInput.FindAllString(page, -1) {
		n, v := inputName.FindStringSubmatch(in), inputValue.FindStringSubmatch(in)
		if n != nil && v != nil {
			fields.Set(html.UnescapeString(n[1]), html.UnescapeString(v[1]))
		}
	}
	return html.UnescapeString(m[1]), fields
}

// samlLoginAtIdP opens start on openqps, is sent to the IdP, logs in
// there as user, and returns the IdP's auto-submit form: the ACS URL and
// its SAMLResponse and RelayState, not yet posted.
func samlLoginAtIdP(t *testing.T, c *http.Client, start, user, password string) (string, url.Values) {
	t.Helper()
	resp, page := get(t, c, start)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "AuthState") {
		t.Fatalf("GET %s ended at %s with %d, want the IdP's login form:\n%.1500s", start, resp.Request.URL, resp.StatusCode, page)
	}
	_, fields := htmlForm(t, page)
	fields.Set("username", user)
	fields.Set("password", password)
	resp, err := c.PostForm(resp.Request.URL.String(), fields)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action, form := htmlForm(t, string(body))
	if form.Get("SAMLResponse") == "" {
		t.Fatalf("the IdP's answer has no SAMLResponse:\n%.1500s", body)
	}
	return action, form
}

// decodeSAMLResponse is the XML of a SAMLResponse form value.
func decodeSAMLResponse(t *testing.T, v string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

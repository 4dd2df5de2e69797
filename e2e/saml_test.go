package e2e

import (
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openqps/openqps/internal/config"
)

// startSAML runs a SimpleSAMLphp IdP and openqps with the SAML virtual
// proxy "saml" (besides the harness's two), and tells the IdP about
// openqps from openqps's own metadata.
func startSAML(t *testing.T, extra string, encrypt bool) (*openqps, *samlIdP) {
	t.Helper()
	idp := startSAMLIdP(t)
	o := start(t, func(c *config.Config) {
		c.VirtualProxies = append(c.VirtualProxies, samlVP(t, idp, "saml", c.VirtualProxies[0].Backends[0], extra))
	})
	// The IdP signs with the real time: the test clock starts there and
	// moves only when a test advances it.
	o.Clock.Set(time.Now())
	idp.addSP(t, o.samlSP(t, "saml", encrypt))
	return o, idp
}

// samlSP reads the service provider's metadata from the running openqps,
// as an IdP administrator would.
func (o *openqps) samlSP(t *testing.T, prefix string, encrypt bool) samlSP {
	t.Helper()
	resp, body := get(t, o.browser(t), o.frontURL("/"+prefix+"/samlmetadata"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "EntityDescriptor") {
		t.Fatalf("metadata: %d %.500s", resp.StatusCode, body)
	}
	m := regexp.MustCompile(`AssertionConsumerService[^>]*Location="([^"]*)"`).FindStringSubmatch(body)
	if m == nil || !strings.HasSuffix(m[1], "/"+prefix+"/samlauthn/") {
		t.Fatalf("the metadata names no ACS under /%s/samlauthn/:\n%s", prefix, body)
	}
	acs := m[1]
	certPEM, err := os.ReadFile(filepath.Join(o.Config.DataDir, "saml", prefix+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	return samlSP{EntityID: "https://openqps.test/" + prefix, ACS: acs, SLO: o.frontURL("/" + prefix + "/samllogout"), Cert: block.Bytes, Encrypt: encrypt}
}

func TestSAMLLoginRestoresTheURLAndForwardsTheUser(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h2      bool
		encrypt bool
	}{{"http1", false, false}, {"http2", true, false}, {"encrypted assertion", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			o, _ := startSAML(t, "", tc.encrypt)
			c := o.samlBrowser(t, tc.h2)
			start := o.frontURL("/saml/sense/app/abc?sheet=1&x=%2F")
			action, form := samlLoginAtIdP(t, c, start, "alice", "alicepw")
			if xml := decodeSAMLResponse(t, form.Get("SAMLResponse")); strings.Contains(xml, "EncryptedAssertion") != tc.encrypt {
				t.Fatalf("encrypted assertion: %v, want %v:\n%.800s", !tc.encrypt, tc.encrypt, xml)
			}
			resp, err := c.PostForm(action, form)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != start {
				t.Fatalf("after login: %d at %s, want 200 at %s; %.300s", resp.StatusCode, resp.Request.URL, start, body)
			}
			if tc.h2 && resp.ProtoMajor != 2 {
				t.Fatalf("proto %s, want HTTP/2", resp.Proto)
			}
			r := o.Backend.last(t)
			if got := r.Header.Get("X-Qlik-User"); got != "UserDirectory=ACME; UserId=alice" {
				t.Errorf("X-Qlik-User %q", got)
			}
			sec := r.Header.Get("X-Qlik-Security")
			for _, want := range []string{"Group=admins", "Group=devs", "Email=alice%40acme.test"} {
				if !strings.Contains(sec, want) {
					t.Errorf("X-Qlik-Security %q lacks %s", sec, want)
				}
			}
			if r.Header.Get("Cookie") != "" && strings.Contains(r.Header.Get("Cookie"), "openqps-saml") {
				t.Errorf("the back end got the login cookie: %q", r.Header.Get("Cookie"))
			}
			// The session cookie alone keeps the browser logged in.
			n := len(o.Backend.requests())
			resp, _ = get(t, c, o.frontURL("/saml/hub/"))
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Host != o.FrontendAddr || len(o.Backend.requests()) != n+1 {
				t.Fatalf("second request: %d at %s", resp.StatusCode, resp.Request.URL)
			}
			sessions, err := o.API.UserSessions(t.Context(), "saml", "ACME", "alice")
			if err != nil || len(sessions) != 1 {
				t.Fatalf("sessions of ACME\\alice: %v %v", sessions, err)
			}
		})
	}
}

func TestSAMLNonBrowserRequestGets401(t *testing.T) {
	o, _ := startSAML(t, "", false)
	req, _ := http.NewRequest(http.MethodPost, o.frontURL("/saml/qrs/app"), nil)
	resp, body := do(t, o.browser(t), req)
	if resp.StatusCode != http.StatusUnauthorized || len(o.Backend.requests()) != 0 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

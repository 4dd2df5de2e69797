package proxy

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/openqps/openqps/internal/config"
)

const (
	testIdP = "https://idp.acme.test/"
	testSP  = "https://qlik.acme.test/saml"
	testACS = "https://qlik.acme.test/saml/samlauthn/"
)

var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// testKeyPair is an RSA key with a self-signed certificate.
func testKeyPair(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: testNow.AddDate(-1, 0, 0), NotAfter: testNow.AddDate(1, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
}

func testSAMLLogin(t testing.TB, idp tls.Certificate) *samlLogin {
	yes := true
	cfg := &config.SAML{
		EntityID: testSP, UserDirectoryAttribute: "[ACME]", SignAuthnRequests: &yes, ClockSkew: time.Minute,
		SigningAlgorithm: config.SAMLSHA256, AttributeMapping: map[string]string{"groups": "Group"},
		IdP: config.SAMLIdentityProvider{EntityID: testIdP, SSOURL: testIdP + "sso", Certificates: []*x509.Certificate{idp.Leaf}},
	}
	return &samlLogin{cfg: cfg, prefix: "saml", key: testKeyPair(t), idp: &dsig.MemoryX509CertificateStore{Roots: cfg.IdP.Certificates}}
}

// testResponse is a response as an IdP writes one, its assertion signed
// with idp.
func testResponse(t testing.TB, idp tls.Certificate, nameID, inResponseTo string) string {
	t.Helper()
	at := func(d time.Duration) string { return testNow.Add(d).Format(time.RFC3339) }
	irt := ""
	if inResponseTo != "" {
		irt = ` InResponseTo="` + inResponseTo + `"`
	}
	assertion := `<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1" Version="2.0" IssueInstant="` + at(0) + `">` +
		`<saml:Issuer>` + testIdP + `</saml:Issuer>` +
		`<saml:Subject><saml:NameID>` + nameID + `</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">` +
		`<saml:SubjectConfirmationData NotOnOrAfter="` + at(5*time.Minute) + `" Recipient="` + testACS + `"` + irt + `/></saml:SubjectConfirmation></saml:Subject>` +
		`<saml:Conditions NotBefore="` + at(-time.Minute) + `" NotOnOrAfter="` + at(5*time.Minute) + `"><saml:AudienceRestriction><saml:Audience>` + testSP + `</saml:Audience></saml:AudienceRestriction></saml:Conditions>` +
		`<saml:AttributeStatement><saml:Attribute Name="groups"><saml:AttributeValue>admins</saml:AttributeValue><saml:AttributeValue>devs</saml:AttributeValue></saml:Attribute></saml:AttributeStatement>` +
		`</saml:Assertion>`
	doc := etree.NewDocument()
	if err := doc.ReadFromString(assertion); err != nil {
		t.Fatal(err)
	}
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(idp))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	signed, err := ctx.SignEnveloped(doc.Root())
	if err != nil {
		t.Fatal(err)
	}
	doc.SetRoot(signed)
	signedXML, _ := doc.WriteToString()
	return `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="` + at(0) + `" Destination="` + testACS + `"` + irt + `>` +
		`<saml:Issuer>` + testIdP + `</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
		signedXML + `</samlp:Response>`
}

func TestSAMLVerifyReadsUserAndAttributes(t *testing.T) {
	idp := testKeyPair(t)
	s := testSAMLLogin(t, idp)
	a, err := s.verify(base64.StdEncoding.EncodeToString([]byte(testResponse(t, idp, "alice", "_req1"))), testACS, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if a.directory != "ACME" || a.user != "alice" || a.inResponseTo != "_req1" || len(a.attrs) != 2 ||
		a.attrs[0].Key != "Group" || a.attrs[0].Value != "admins" || a.attrs[1].Value != "devs" {
		t.Fatalf("%+v", a)
	}
	if want := testNow.Add(6 * time.Minute); !a.usableUntil.Equal(want) {
		t.Errorf("usable until %v, want %v (NotOnOrAfter + skew)", a.usableUntil, want)
	}
}

func TestSAMLVerifyAppliesClockSkewBothWays(t *testing.T) {
	idp := testKeyPair(t)
	s := testSAMLLogin(t, idp)
	resp := base64.StdEncoding.EncodeToString([]byte(testResponse(t, idp, "alice", "_req1")))
	for _, tc := range []struct {
		at time.Duration
		ok bool
	}{{-2*time.Minute + time.Second, true}, {-2*time.Minute - time.Second, false}, {6*time.Minute - time.Second, true}, {6 * time.Minute, false}} {
		_, err := s.verify(resp, testACS, testNow.Add(tc.at))
		if (err == nil) != tc.ok {
			t.Errorf("at %v: %v, want ok=%v", tc.at, err, tc.ok)
		}
	}
}

func TestSAMLBindingRefusesForeignAndIdPInitiated(t *testing.T) {
	s := testSAMLLogin(t, testKeyPair(t))
	relay := samlRelay{RequestID: "_req1"}
	for _, tc := range []struct {
		irt   string
		bound bool
		allow bool
		ok    bool
	}{
		{"_req1", true, false, true},
		{"_req2", true, false, false},
		{"_req1", false, false, false},
		{"", true, false, false},
		{"", false, true, true},
		{"_req2", true, true, false}, // allowing IdP-initiated does not allow foreign answers
	} {
		s.cfg.AllowIdPInitiated = tc.allow
		err := s.checkBinding(samlAssertion{inResponseTo: tc.irt}, relay, tc.bound)
		if (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}

// FuzzSAMLResponse feeds the response checks any bytes: they must never
// panic, and only a response carrying the test IdP's signature over
// plain XML logs anyone in.
func FuzzSAMLResponse(f *testing.F) {
	idp := testKeyPair(f)
	s := testSAMLLogin(f, idp)
	valid := testResponse(f, idp, "alice", "_req1")
	f.Add([]byte(valid))
	f.Add([]byte(strings.Replace(valid, ">alice<", ">ali<!---->ce<", 1)))
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>`))
	f.Add([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := s.verify(base64.StdEncoding.EncodeToString(data), testACS, testNow)
		if err != nil {
			return
		}
		if config.CheckPlainXML(data) != nil || !strings.Contains(string(data), "SignatureValue") {
			t.Fatalf("accepted %+v from %q", a, data)
		}
	})
}

// samlRefusalRows are the SAML virtual proxy's rows of refusalRows.
func samlRefusalRows() []refusalRow {
	send := func(method, target, body string) func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
		return func(t *testing.T) (*Proxy, *refusalLog, *http.Request) {
			dir := t.TempDir()
			idp, sp := testKeyPair(t), testKeyPair(t)
			md := `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="` + testIdP + `"><md:IDPSSODescriptor>` +
				`<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` + base64.StdEncoding.EncodeToString(idp.Certificate[0]) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>` +
				`<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="` + testIdP + `sso"/></md:IDPSSODescriptor></md:EntityDescriptor>`
			keyDER, _ := x509.MarshalPKCS8PrivateKey(sp.PrivateKey)
			for name, data := range map[string][]byte{
				"idp.xml": []byte(md),
				"sp.pem":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sp.Certificate[0]}),
				"sp.key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
			} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			vps := "  - prefix: vp\n    backends: [\"%s\"]\n    authentication_method: saml\n    saml:\n" +
				"      idp_metadata: " + filepath.Join(dir, "idp.xml") + "\n      entity_id: " + testSP + "\n" +
				"      user_directory_attribute: \"[ACME]\"\n      certificate: " + filepath.Join(dir, "sp.pem") + "\n      key: " + filepath.Join(dir, "sp.key") + "\n"
			p, logs := refusalFrontEnd(t, okBackend(t), vps, nil)
			r := clientRequest(method, target)
			if body != "" {
				r = clientRequest(method, target, "Content-Type", "application/x-www-form-urlencoded")
				r.Body = io.NopCloser(strings.NewReader(body))
				r.ContentLength = int64(len(body))
			}
			return p, logs, r
		}
	}
	return []refusalRow{
		{"SAML assertion consumer by GET", 405, "SAML assertion consumer", send("GET", "/vp/samlauthn/", "")},
		{"SAML metadata by POST", 405, "SAML metadata", send("POST", "/vp/samlmetadata", "")},
		{"SAMLResponse not base64", 403, "SAML login refused", send("POST", "/vp/samlauthn/", "SAMLResponse=%3Cx%3E&RelayState=r")},
		{"SAMLResponse with a DTD", 403, "SAML login refused", send("POST", "/vp/samlauthn/", "SAMLResponse="+base64.StdEncoding.EncodeToString([]byte(`<!DOCTYPE x><x/>`)))},
	}
}

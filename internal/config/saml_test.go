package config

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

func samlTestCert(t testing.TB) tls.Certificate {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func samlTestMetadata(cert tls.Certificate) string {
	return `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_md" entityID="https://idp.acme.test/">` +
		`<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
		`<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` + base64.StdEncoding.EncodeToString(cert.Certificate[0]) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>` +
		`<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.acme.test/sso"/>` +
		`<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.acme.test/slo"/>` +
		`</md:IDPSSODescriptor></md:EntityDescriptor>`
}

func samlVPYAML(metadata, extra string) string {
	return authVP(`    authentication_method: saml
    saml:
      idp_metadata: ` + metadata + `
      entity_id: https://qlik.acme.test/vp
      user_directory_attribute: "[ACME]"
` + extra)
}

func TestSAMLConfigReadsMetadataAndDefaults(t *testing.T) {
	dir := t.TempDir()
	cert := samlTestCert(t)
	md := filepath.Join(dir, "idp.xml")
	os.WriteFile(md, []byte(samlTestMetadata(cert)), 0o600)
	c, err := Parse([]byte(samlVPYAML(md, "")))
	if err != nil {
		t.Fatal(err)
	}
	s := c.VirtualProxies[0].Auth.SAML
	if s.IdP.EntityID != "https://idp.acme.test/" || s.IdP.SSOURL != "https://idp.acme.test/sso" || s.IdP.SLOURL != "https://idp.acme.test/slo" ||
		len(s.IdP.Certificates) != 1 || !s.IdP.Certificates[0].Equal(cert.Leaf) {
		t.Errorf("IdP %+v", s.IdP)
	}
	if s.SigningAlgorithm != SAMLSHA256 || !*s.SignAuthnRequests || s.ClockSkew != time.Minute || s.LandingPage != "/vp/hub/" || s.AllowIdPInitiated {
		t.Errorf("defaults %+v", s)
	}
}

func TestSAMLConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	cert := samlTestCert(t)
	md := filepath.Join(dir, "idp.xml")
	os.WriteFile(md, []byte(samlTestMetadata(cert)), 0o600)
	dtd := filepath.Join(dir, "dtd.xml")
	os.WriteFile(dtd, []byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>`+samlTestMetadata(cert)), 0o600)
	signer := filepath.Join(dir, "signer.pem")
	os.WriteFile(signer, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	for _, tc := range []struct{ yaml, want string }{
		{samlVPYAML(filepath.Join(dir, "none.xml"), ""), "virtual_proxies[0].saml.idp_metadata: read"},
		{samlVPYAML(dtd, ""), "virtual_proxies[0].saml.idp_metadata: " + dtd + ": the XML holds a document type declaration"},
		{samlVPYAML(md, "      idp_metadata_certificate: "+signer+"\n"), "virtual_proxies[0].saml.idp_metadata: " + md + ": IdP metadata is not signed by idp_metadata_certificate"},
		{samlVPYAML(md, "      signing_algorithm: md5\n"), `saml.signing_algorithm: "md5": use sha256 or sha1`},
		{samlVPYAML(md, "      certificate: x.pem\n"), "saml.certificate: set both certificate and key"},
		{samlVPYAML(md, "      landing_page: https://evil.test/\n"), `saml.landing_page: "https://evil.test/": the landing page is a path`},
		{strings.Replace(samlVPYAML(md, ""), `"[ACME]"`, `"[ACME"`, 1), `saml.user_directory_attribute: "[ACME": a constant directory`},
		{strings.Replace(samlVPYAML(md, ""), "entity_id: https://qlik.acme.test/vp", "", 1), "saml.entity_id: saml needs the service provider's entity ID"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v\nwant %s", err, tc.want)
		}
	}
}

func TestSAMLSignedMetadataIsRequiredWhenConfigured(t *testing.T) {
	cert := samlTestCert(t)
	doc := etree.NewDocument()
	doc.ReadFromString(samlTestMetadata(cert))
	signed, err := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(cert)).SignEnveloped(doc.Root())
	if err != nil {
		t.Fatal(err)
	}
	doc.SetRoot(signed)
	data, _ := doc.WriteToBytes()
	if _, err := ParseSAMLMetadata(data, cert.Leaf); err != nil {
		t.Fatalf("signed metadata: %v", err)
	}
	if _, err := ParseSAMLMetadata(data, samlTestCert(t).Leaf); err == nil {
		t.Fatal("metadata signed by another key was accepted")
	}
	tampered := strings.Replace(string(data), "https://idp.acme.test/sso", "https://evil.test/sso", 1)
	if _, err := ParseSAMLMetadata([]byte(tampered), cert.Leaf); err == nil {
		t.Fatal("tampered signed metadata was accepted")
	}
}

// FuzzSAMLMetadata: the metadata parser never panics, and what it
// accepts has an IdP with a certificate and a sign-on URL.
func FuzzSAMLMetadata(f *testing.F) {
	f.Add([]byte(samlTestMetadata(samlTestCert(f))))
	f.Add([]byte(`<?xml version="1.0"?><!-- c --><x/>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		idp, err := ParseSAMLMetadata(data, nil)
		if err == nil && (len(idp.Certificates) == 0 || idp.SSOURL == "" || idp.EntityID == "") {
			t.Fatalf("accepted %+v", idp)
		}
	})
}

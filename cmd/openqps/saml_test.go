package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
)

// TestSAMLMetadataCommandPrintsTheServedKey: `openqps saml metadata`
// makes the service-provider key on first use, prints it with the entity
// ID and the assertion consumer URL, and prints the same key next time.
func TestSAMLMetadataCommandPrintsTheServedKey(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	idp := `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.acme.test/">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` + base64.StdEncoding.EncodeToString(der) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.acme.test/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`
	os.WriteFile(filepath.Join(dir, "idp.xml"), []byte(idp), 0o600)
	cfgFile := filepath.Join(dir, "openqps.yaml")
	os.WriteFile(cfgFile, []byte(`data_dir: `+filepath.Join(dir, "data")+`
virtual_proxies:
  - prefix: sso
    backends: ["http://127.0.0.1:9"]
    authentication_method: saml
    saml:
      idp_metadata: `+filepath.Join(dir, "idp.xml")+`
      entity_id: https://qlik.acme.test/sso
      host_uri: https://qlik.acme.test
      user_directory_attribute: "[ACME]"
`), 0o600)
	first, err := run(t, "saml", "metadata", "--config", cfgFile, "--vp", "sso")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`entityID="https://qlik.acme.test/sso"`, `Location="https://qlik.acme.test/sso/samlauthn/"`, `AuthnRequestsSigned="true"`, `use="encryption"`} {
		if !strings.Contains(first, want) {
			t.Errorf("metadata lacks %s:\n%s", want, first)
		}
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, "data", "saml", "sso.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	if !strings.Contains(first, base64.StdEncoding.EncodeToString(block.Bytes)) {
		t.Error("the metadata does not carry the key pair kept in data_dir/saml")
	}
	second, err := run(t, "saml", "metadata", "--config", cfgFile, "--vp", "sso")
	if err != nil || second[strings.Index(second, "KeyDescriptor"):] != first[strings.Index(first, "KeyDescriptor"):] {
		t.Errorf("a second run printed other keys (%v)", err)
	}
	if _, err := run(t, "saml", "metadata", "--config", cfgFile, "--vp", "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown prefix: %v", err)
	}
}

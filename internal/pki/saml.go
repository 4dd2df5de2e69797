package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// SAMLDir is where EnsureSAMLKey keeps service-provider keys.
func SAMLDir(dataDir string) string { return filepath.Join(dataDir, "saml") }

// EnsureSAMLKey returns the SAML service-provider key pair of a virtual
// proxy, name.pem and name_key.pem in dir, making it the first time: an
// RSA 2048 key with a self-signed certificate valid 10 years. SAML
// metadata carries the certificate itself and identity providers trust
// exactly that one, so it is not signed by openqps's CA; RSA because the
// encryption of assertions (RSA-OAEP key transport) and every IdP's
// signature check accept it, where ECDSA is patchy.
func EnsureSAMLKey(dir, name string) (tls.Certificate, error) {
	certName, keyName := name+".pem", name+"_key.pem"
	d := &certDir{dir: dir}
	if pair, found, err := d.loadLeaf(certName, keyName); found || err != nil {
		return pair, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "openqps SAML " + name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := d.writePair(certName, keyName, cert, key); err != nil {
		return tls.Certificate{}, fmt.Errorf("SAML key of %s: %w", name, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, nil
}

// LoadSAMLKey reads a configured SAML service-provider key pair.
func LoadSAMLKey(certFile, keyFile string) (tls.Certificate, error) {
	return readKeyPair(certFile, keyFile)
}

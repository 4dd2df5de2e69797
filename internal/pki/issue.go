package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

const (
	// caCommonName names the CA openqps creates.
	caCommonName = "openqps CA"
	// clientCommonName is the client certificate's name in a Qlik export.
	clientCommonName = "QlikClient"
	// serverValidity is the longest validity Apple platforms accept for a
	// server certificate, also from a private CA.
	serverValidity = 825 * 24 * time.Hour
	// backdate makes new certificates valid on machines whose clock is a
	// little behind.
	backdate = time.Hour
)

// caYears is the validity of the CA and of the client certificate.
const caYears = 10

// ErrNoCAKey means a certificate must be signed but the CA's private key is
// not at hand: root_key.pem is missing, or the bundle came from Load.
var ErrNoCAKey = errors.New("the CA private key is not available")

// IssueClient creates a client certificate signed by the bundle's CA, with
// a new P-256 key, common name cn and validity from notBefore to notAfter.
// Nothing is written to disk. It fails with ErrNoCAKey unless Ensure created
// or found the CA key. A window in the past gives an expired certificate,
// which is what tests of expiry need.
func (b *Bundle) IssueClient(cn string, notBefore, notAfter time.Time) (tls.Certificate, error) {
	if b.CA == nil || b.caKey == nil {
		return tls.Certificate{}, fmt.Errorf("issue client certificate %q: %w", cn, ErrNoCAKey)
	}
	if cn == "" {
		return tls.Certificate{}, errors.New("issue client certificate: empty common name")
	}
	if !notAfter.After(notBefore) {
		return tls.Certificate{}, fmt.Errorf("issue client certificate %q: not after (%s) is not later than not before (%s)",
			cn, notAfter.Format(time.RFC3339), notBefore.Format(time.RFC3339))
	}
	return issue(clientTemplate(cn, notBefore, notAfter), b.CA, b.caKey)
}

// newKey creates the key of every certificate openqps makes.
func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// newCA creates a self-signed CA that may sign leaf certificates only.
func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: caCommonName, Organization: []string{"openqps"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(caYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// issue signs tmpl, completed with a new key, with the CA.
func issue(tmpl, ca *x509.Certificate, caKey crypto.Signer) (tls.Certificate, error) {
	key, err := newKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// clientTemplate describes a client certificate for the trusted API.
func clientTemplate(cn string, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// serverTemplate describes a server certificate for this machine's names
// and addresses plus extraHosts, valid from now on until the CA expires at
// the latest.
func serverTemplate(now time.Time, ca *x509.Certificate, extraHosts []string) (*x509.Certificate, error) {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	cn := "localhost"
	if h, err := os.Hostname(); err == nil && h != "" {
		short, _, _ := strings.Cut(h, ".")
		hosts = append(hosts, h, short)
		cn = strings.ToLower(h)
	}
	dns, ips, err := splitHosts(append(hosts, extraHosts...))
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   now.Add(-backdate),
		NotAfter:    earliest(now.Add(serverValidity), ca.NotAfter),
		DNSNames:    dns,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, nil
}

// splitHosts sorts hosts into DNS names and IP addresses for a
// certificate's subject alternative names, without duplicates.
func splitHosts(hosts []string) (dns []string, ips []net.IP, err error) {
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			if !seen[ip.String()] {
				seen[ip.String()] = true
				ips = append(ips, ip)
			}
			continue
		}
		// A port or scheme would give a name no client ever asks for.
		if strings.ContainsAny(h, ":/ []") {
			return nil, nil, fmt.Errorf("server host %q: give a host name or an IP address, without scheme or port", h)
		}
		if !seen[h] {
			seen[h] = true
			dns = append(dns, h)
		}
	}
	return dns, ips, nil
}

// earliest returns the earlier of two times.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

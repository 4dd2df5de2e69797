package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Load reads user-supplied PEM files, e.g. exported from an existing Qlik
// site: caFile holds the CA certificate(s) client certificates must chain
// to, certFile the server certificate (optionally followed by its
// intermediates) and keyFile its unencrypted private key (PKCS #8, PKCS #1
// or SEC 1). The bundle has no client certificate and no CA key. Errors
// name the file and say what is wrong with it.
func Load(caFile, certFile, keyFile string) (*Bundle, error) {
	if caFile == "" || certFile == "" || keyFile == "" {
		return nil, errors.New("load certificates: give a CA file, a server certificate file and its key file")
	}
	cas, err := ReadCertificates(caFile)
	if err != nil {
		return nil, err
	}
	server, err := readKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &Bundle{CAPool: poolOf(cas), CA: cas[0], Server: server}, nil
}

// LoadClient reads what a client of the trusted API needs from dir — the
// files of a Qlik export or of Ensure: the client certificate and key
// (client.pem, client_key.pem) and the CA to verify the server with
// (root.pem).
func LoadClient(dir string) (cert tls.Certificate, roots *x509.CertPool, err error) {
	cas, err := ReadCertificates(filepath.Join(dir, rootFile))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err = readKeyPair(filepath.Join(dir, clientFile), filepath.Join(dir, clientKeyFile))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return cert, poolOf(cas), nil
}

// ReadCertificates reads the PEM certificates in file, in order; there
// must be at least one. Blocks of other types are skipped.
func ReadCertificates(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d in %s: %w", len(certs)+1, file, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return certs, nil
}

// readKey reads the first private key in file.
func readKey(file string) (crypto.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("no PEM private key in %s", file)
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, fmt.Errorf("the private key in %s is encrypted; openqps needs it unencrypted (protect it with file permissions)", file)
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue // e.g. the EC PARAMETERS block of `openssl ecparam -genkey`
		}
		key, err := parseKey(block)
		if err != nil {
			return nil, fmt.Errorf("private key in %s: %w", file, err)
		}
		return key, nil
	}
}

// parseKey parses the private key PEM formats OpenSSL and Qlik write.
func parseKey(block *pem.Block) (crypto.Signer, error) {
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q (want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return signer, nil
}

// readKeyPair reads a certificate chain and the private key of its first
// certificate.
func readKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certs, err := ReadCertificates(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := readKey(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	if !keyMatches(certs[0], key) {
		return tls.Certificate{}, fmt.Errorf("the key in %s does not match the certificate in %s", keyFile, certFile)
	}
	pair := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	return pair, nil
}

// keyMatches reports whether key is the private key of cert.
func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// poolOf returns a pool with certs.
func poolOf(certs []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}

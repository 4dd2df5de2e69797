// Package pki owns openqps's certificates: the CA, the server certificate
// of both listeners and the client certificate that login modules present
// to the trusted API.
//
// [Ensure] creates them on first start in a directory, with the file names
// of a Qlik Sense certificate export (root.pem, server.pem, client.pem, their
// *_key.pem files and client.pfx), so that recipes written for Qlik — curl,
// Postman, PowerShell, node's qlik-auth — work unchanged. [Load] uses
// certificates exported from an existing Qlik site instead.
package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
)

// The files of a certificate directory, named as in a Qlik Sense export.
const (
	rootFile      = "root.pem"
	rootKeyFile   = "root_key.pem"
	serverFile    = "server.pem"
	serverKeyFile = "server_key.pem"
	clientFile    = "client.pem"
	clientKeyFile = "client_key.pem"
	clientPFXFile = "client.pfx"
)

// PFXPassword is the password of client.pfx: empty, as PowerShell's
// Get-PfxCertificate, Postman and node's tls accept it. The file is
// protected by its mode (0600) like client_key.pem, which holds the same key
// unencrypted; a password would add no protection.
const PFXPassword = ""

// Bundle is what the listeners and the CLI need. A Bundle is not modified
// after Ensure or Load return it; its methods may be called concurrently
// and each returns a new value the caller may change.
type Bundle struct {
	// Dir is the certificate directory, e.g. <data dir>/certs; "" when the
	// bundle was loaded from user files.
	Dir string
	// CAPool holds the CA certificates client certificates must chain to;
	// clients verify the server with it.
	CAPool *x509.CertPool
	// CA is the CA certificate (the first of the CA file); nil when there
	// is none.
	CA *x509.Certificate
	// Server is the server certificate of both listeners (front end and
	// trusted API), with its chain and private key.
	Server tls.Certificate
	// Client is the client certificate for the trusted API; the zero
	// value when the bundle was loaded from user files.
	Client tls.Certificate

	// caKey is CA's private key, when Ensure created or found it; nil
	// otherwise, and then IssueClient fails.
	caKey crypto.Signer
}

// ServerTLS returns the front end's TLS configuration: TLS 1.2 or later,
// the server certificate, HTTP/2 and HTTP/1.1.
func (b *Bundle) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Server},
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// APITLS returns the trusted API's TLS configuration: like ServerTLS, and
// the handshake fails unless the client presents a certificate that chains
// to CAPool and is valid now.
func (b *Bundle) APITLS() *tls.Config {
	c := b.ServerTLS()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.ClientCAs = b.CAPool
	return c
}

// ClientTLS returns a client TLS configuration that presents b.Client (if
// the bundle has one) and trusts only CAPool, for the CLI, the demo login
// module and tests.
func (b *Bundle) ClientTLS() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: b.CAPool}
	if len(b.Client.Certificate) > 0 {
		c.Certificates = []tls.Certificate{b.Client}
	}
	return c
}

package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
)

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
// the handshake fails unless the client presents a client certificate
// (see VerifyAPIClient) that chains to CAPool and is valid now.
func (b *Bundle) APITLS() *tls.Config {
	c := b.ServerTLS()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.ClientCAs = b.CAPool
	c.VerifyConnection = VerifyAPIClient
	return c
}

// VerifyAPIClient refuses a client certificate of the trusted API that is
// not made for client authentication. crypto/tls has verified the chain by
// then, but it treats a certificate without extended key usage as good
// for every purpose, and the CA certificate itself chains to itself: both
// would be accepted as login modules. So the certificate must list the
// client-authentication usage itself (ExtKeyUsageAny is not enough) and
// must not be a CA. It runs as tls.Config.VerifyConnection, which, unlike
// VerifyPeerCertificate, also runs on resumed sessions.
func VerifyAPIClient(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no client certificate: present the client certificate (client.pem) of openqps's CA")
	}
	leaf := cs.PeerCertificates[0]
	if leaf.IsCA {
		return fmt.Errorf("client certificate %q is a CA certificate: present a client certificate the CA issued (client.pem), not the CA", leaf.Subject)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return fmt.Errorf("client certificate %q lacks the client-authentication extended key usage (1.3.6.1.5.5.7.3.2): present client.pem, or issue the certificate with that usage", leaf.Subject)
	}
	return nil
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

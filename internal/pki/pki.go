// Package pki owns openqps's certificates: the CA, the server certificate
// of both listeners and the client certificate that login modules present
// to the trusted API.
//
// [Ensure] creates them on first start in a directory, with the file names
// of a Qlik Sense certificate export (root.pem, server.pem, client.pem, their
// *_key.pem files and client.pfx), so that recipes written for Qlik — curl,
// Postman, PowerShell, node's qlik-auth — work unchanged. That directory is
// what users copy to login-module hosts; the CA's private key lives apart,
// in a directory of its own that never leaves this host. [Load] uses
// certificates exported from an existing Qlik site instead.
//
// The CA has no name constraints. The names it must sign server
// certificates for are not known when it is made (the machine is renamed,
// a load balancer's name is added, server.pem is deleted to be reissued
// for new names), and it is never reissued, because every login module
// trusts root.pem: a constrained CA would one day sign a server certificate
// that clients refuse. What a constraint would limit — what a stolen CA
// key can sign for — is guarded instead by keeping the key out of the
// export, owner-readable only; the CA cannot delegate (path length zero).
package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
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

// CertsDir is where a data directory keeps the exported certificates,
// and CADir where it keeps the CA's private key, apart from them.
func CertsDir(dataDir string) string { return filepath.Join(dataDir, "certs") }

// CADir: see CertsDir.
func CADir(dataDir string) string { return filepath.Join(dataDir, "ca") }

// PFXPassword is the password of client.pfx: empty, as PowerShell's
// Get-PfxCertificate, Postman and node's tls accept it. The file is
// protected by its mode (0600) like client_key.pem, which holds the same key
// unencrypted; a password would add no protection.
const PFXPassword = ""

// Bundle is what the listeners and the CLI need. A Bundle is not modified
// after Ensure or Load return it; its methods may be called concurrently
// and each returns a new value the caller may change.
type Bundle struct {
	// Dir is the exported certificate directory, e.g. <data dir>/certs;
	// "" when the bundle was loaded from user files.
	Dir string
	// CADir is the directory of the CA's private key, e.g. <data dir>/ca;
	// "" when the bundle was loaded from user files.
	CADir string
	// MovedCAKey is the path root_key.pem was moved from, out of Dir, by
	// the Ensure that returned the bundle; "" when nothing was moved.
	MovedCAKey string
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

package pki

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// pfxEncoder encodes client.pfx. LegacyDES (3DES, SHA-1 MAC) is read by
// every client we care about: Windows PowerShell 5 on every Windows it
// runs on (the AES-256 of Modern2023 needs Windows 10 1709 or Server 2019;
// Server 2016 rejects it), and node 20 with OpenSSL 3, as in qlik-auth and
// Postman (TestNodeUsesClientPFX), which refuses the RC2 of LegacyRC2 and
// the PBMAC1 of Modern2026. The password is empty, so a stronger cipher
// would protect nothing.
var pfxEncoder = pkcs12.LegacyDES

// Ensure loads the certificates in dir and the CA's private key in caDir,
// creating both directories and whatever is missing:
//
//   - root.pem (in dir), root_key.pem (in caDir): a CA, ECDSA P-256, CN
//     "openqps CA", 10 years;
//   - server.pem, server_key.pem: the server certificate, signed by the CA,
//     for localhost, 127.0.0.1, ::1, this machine's host name and its short
//     form, and extraHosts (names or IP addresses); 825 days;
//   - client.pem, client_key.pem: the client certificate for the trusted
//     API, CN "QlikClient", 10 years;
//   - client.pfx: client certificate, key and CA as PKCS #12, password
//     PFXPassword (empty).
//
// dir is what users copy to login-module hosts (a Qlik export); caDir
// holds the one key that signs certificates for this CA and must stay on
// this host, so the two are apart. A root_key.pem in dir, where versions
// before the split kept it, is moved to caDir (Bundle.MovedCAKey says
// from where, for the caller to log); the certificates stay as they are.
//
// Keys are written with mode 0600, certificates with 0644, each file
// atomically (a crash never leaves half a key), a key before its
// certificate. created reports whether any file was written, for the
// caller to log.
//
// Existing files are reused as they are. In particular, a server
// certificate that lacks one of extraHosts is kept: delete server.pem and
// server_key.pem to have a new one made. An expired server certificate is
// replaced when root_key.pem is at hand; clients trust root.pem, which does
// not change. A directory with a CA certificate but no root_key.pem (e.g. a
// Qlik export) is fine as long as nothing needs to be signed.
//
// Ensure is not meant to be called for the same dir by several processes
// at once.
func Ensure(dir, caDir string, extraHosts ...string) (b *Bundle, created bool, err error) {
	if dir == "" || caDir == "" {
		return nil, false, errors.New("certificates: give a certificate directory and a CA key directory")
	}
	if filepath.Clean(dir) == filepath.Clean(caDir) {
		return nil, false, fmt.Errorf("certificates: the CA key directory must not be the exported certificate directory %s", dir)
	}
	// Validate extraHosts even when the server certificate exists, so a
	// typo is reported the first time, not when the certificate is renewed.
	if _, _, err := splitHosts(extraHosts); err != nil {
		return nil, false, err
	}
	for _, p := range []string{dir, caDir} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, false, fmt.Errorf("certificates directory: %w", err)
		}
		removeStaleTemps(p)
	}

	d := &certDir{dir: dir, caDir: caDir, now: time.Now()}
	if err := d.moveCAKey(); err != nil {
		return nil, false, err
	}
	if err := d.ensureCA(); err != nil {
		return nil, false, err
	}
	server, err := d.ensureServer(extraHosts)
	if err != nil {
		return nil, false, err
	}
	client, clientNew, err := d.ensureClient()
	if err != nil {
		return nil, false, err
	}
	if err := d.ensurePFX(client, clientNew); err != nil {
		return nil, false, err
	}
	return &Bundle{
		Dir:        dir,
		CADir:      caDir,
		MovedCAKey: d.movedCAKey,
		CAPool:     poolOf(d.cas),
		CA:         d.cas[0],
		Server:     server,
		Client:     client,
		caKey:      d.caKey,
	}, d.created, nil
}

// certDir is the state of one Ensure call.
type certDir struct {
	dir        string // the exported certificates
	caDir      string // root_key.pem
	now        time.Time
	cas        []*x509.Certificate // root.pem; cas[0] signs what Ensure creates
	caKey      crypto.Signer       // nil when root_key.pem is missing
	created    bool                // some file was written
	movedCAKey string              // where root_key.pem was moved from
}

func (d *certDir) path(name string) string { return filepath.Join(d.dir, name) }

// caKeyPath is where the CA's private key lives.
func (d *certDir) caKeyPath() string { return filepath.Join(d.caDir, rootKeyFile) }

// moveCAKey moves a root_key.pem out of the exported directory, where
// versions before the split kept it, into caDir. The copy is written
// before the original is removed, so a crash leaves two equal files, which
// the next start settles the same way.
func (d *certDir) moveCAKey() error {
	old := d.path(rootKeyFile)
	found, err := exists(old)
	if err != nil || !found {
		return err
	}
	data, err := os.ReadFile(old)
	if err != nil {
		return err
	}
	switch current, err := os.ReadFile(d.caKeyPath()); {
	case errors.Is(err, fs.ErrNotExist):
		if err := writeFileAtomic(d.caDir, rootKeyFile, data, keyMode); err != nil {
			return err
		}
	case err != nil:
		return err
	case !bytes.Equal(current, data):
		return fmt.Errorf("two different CA keys: %s and %s; keep the one that matches %s in %s and delete the other",
			old, d.caKeyPath(), rootFile, d.caDir)
	}
	if err := os.Remove(old); err != nil {
		return fmt.Errorf("remove the CA key from the exported directory: %w", err)
	}
	syncDir(d.dir)
	d.movedCAKey = old
	return nil
}

// ensureCA loads or creates the CA.
func (d *certDir) ensureCA() error {
	found, err := exists(d.path(rootFile))
	if err != nil {
		return err
	}
	if !found {
		// Certificates signed by a CA that is gone are kept and reported,
		// before anything is written: root_key.pem may still be the key
		// the user wants to restore root.pem for.
		if err := d.refuseOrphans(); err != nil {
			return err
		}
		// A root_key.pem without root.pem and without certificates is
		// left by a crash between the two writes and is replaced.
		cert, key, err := newCA(d.now)
		if err != nil {
			return err
		}
		if err := d.writeCA(cert, key); err != nil {
			return err
		}
		d.cas, d.caKey = []*x509.Certificate{cert}, key
		return nil
	}
	if d.cas, err = ReadCertificates(d.path(rootFile)); err != nil {
		return err
	}
	keyFound, err := exists(d.caKeyPath())
	if err != nil || !keyFound {
		return err
	}
	key, err := readKey(d.caKeyPath())
	if err != nil {
		return err
	}
	if !keyMatches(d.cas[0], key) {
		return fmt.Errorf("the key in %s does not match the certificate in %s", d.caKeyPath(), d.path(rootFile))
	}
	d.caKey = key
	return nil
}

// refuseOrphans returns an error when root.pem is missing but
// certificates it signed are there.
func (d *certDir) refuseOrphans() error {
	for _, name := range []string{serverFile, clientFile} {
		found, err := exists(d.path(name))
		if err != nil {
			return err
		}
		if found {
			return fmt.Errorf("%s is missing but %s, which its CA signed, is there: restore %s, or delete %s and %s, %s, %s, %s and %s in %s to have all certificates recreated",
				d.path(rootFile), d.path(name), rootFile, d.caKeyPath(), serverFile, serverKeyFile, clientFile, clientKeyFile, clientPFXFile, d.dir)
		}
	}
	return nil
}

// ensureServer loads the server certificate or creates a new one when it is
// missing or expired.
func (d *certDir) ensureServer(extraHosts []string) (tls.Certificate, error) {
	pair, found, err := d.loadLeaf(serverFile, serverKeyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	expired := found && d.now.After(pair.Leaf.NotAfter)
	if found && !(expired && d.caKey != nil) {
		return pair, nil
	}
	tmpl, err := serverTemplate(d.now, d.cas[0], extraHosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	return d.issueLeaf(serverFile, serverKeyFile, tmpl)
}

// ensureClient loads or creates the client certificate; isNew reports
// which.
func (d *certDir) ensureClient() (pair tls.Certificate, isNew bool, err error) {
	pair, found, err := d.loadLeaf(clientFile, clientKeyFile)
	if err != nil || found {
		return pair, false, err
	}
	notAfter := earliest(d.now.AddDate(caYears, 0, 0), d.cas[0].NotAfter)
	pair, err = d.issueLeaf(clientFile, clientKeyFile, clientTemplate(clientCommonName, d.now.Add(-backdate), notAfter))
	return pair, err == nil, err
}

// ensurePFX writes client.pfx when it is missing or the client certificate
// is new.
func (d *certDir) ensurePFX(client tls.Certificate, clientNew bool) error {
	found, err := exists(d.path(clientPFXFile))
	if err != nil || (found && !clientNew) {
		return err
	}
	pfx, err := pfxEncoder.Encode(client.PrivateKey, client.Leaf, d.cas, PFXPassword)
	if err != nil {
		return fmt.Errorf("encode %s: %w", d.path(clientPFXFile), err)
	}
	if err := writeFileAtomic(d.dir, clientPFXFile, pfx, keyMode); err != nil {
		return err
	}
	d.created = true
	return nil
}

// loadLeaf reads a certificate and its key; found is false when the
// certificate file does not exist. A key without its certificate is left by
// a crash between the two writes and is replaced.
func (d *certDir) loadLeaf(certName, keyName string) (pair tls.Certificate, found bool, err error) {
	certPath, keyPath := d.path(certName), d.path(keyName)
	if found, err = exists(certPath); err != nil || !found {
		return tls.Certificate{}, false, err
	}
	keyFound, err := exists(keyPath)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if !keyFound {
		return tls.Certificate{}, false, fmt.Errorf("%s exists but its key %s does not; delete %s to have a new pair created",
			certPath, keyPath, certPath)
	}
	pair, err = readKeyPair(certPath, keyPath)
	return pair, err == nil, err
}

// issueLeaf signs tmpl with the CA and writes the certificate and its key.
func (d *certDir) issueLeaf(certName, keyName string, tmpl *x509.Certificate) (tls.Certificate, error) {
	if d.caKey == nil {
		return tls.Certificate{}, fmt.Errorf("create %s: %w (%s is missing)", d.path(certName), ErrNoCAKey, d.caKeyPath())
	}
	pair, err := issue(tmpl, d.cas[0], d.caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := d.writePair(certName, keyName, pair.Leaf, pair.PrivateKey); err != nil {
		return tls.Certificate{}, err
	}
	return pair, nil
}

// writePair writes a key, then its certificate: the certificate marks a
// complete pair.
func (d *certDir) writePair(certName, keyName string, cert *x509.Certificate, key crypto.PrivateKey) error {
	k, err := keyPEM(key)
	if err != nil {
		return fmt.Errorf("encode %s: %w", d.path(keyName), err)
	}
	if err := writeFileAtomic(d.dir, keyName, k, keyMode); err != nil {
		return err
	}
	if err := writeFileAtomic(d.dir, certName, certPEM(cert.Raw), certMode); err != nil {
		return err
	}
	d.created = true
	return nil
}

// writeCA writes the CA's key into caDir, then its certificate into dir.
func (d *certDir) writeCA(cert *x509.Certificate, key crypto.PrivateKey) error {
	k, err := keyPEM(key)
	if err != nil {
		return fmt.Errorf("encode %s: %w", d.caKeyPath(), err)
	}
	if err := writeFileAtomic(d.caDir, rootKeyFile, k, keyMode); err != nil {
		return err
	}
	if err := writeFileAtomic(d.dir, rootFile, certPEM(cert.Raw), certMode); err != nil {
		return err
	}
	d.created = true
	return nil
}

// exists reports whether path exists.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

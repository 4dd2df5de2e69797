package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// File modes: keys are readable by the owner only, certificates by all.
const (
	keyMode  os.FileMode = 0o600
	certMode os.FileMode = 0o644
)

// writeFileAtomic writes data to dir/name with the given mode so that
// dir/name either keeps its old content or has all of the new: the data
// goes to a temporary file in dir that is synced and then renamed. A crash
// leaves at most a stale ".name.tmp-*" file, which Ensure removes.
func writeFileAtomic(dir, name string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
		}
	}()
	// Chmod, not the umask-filtered mode of create, so the mode is exact.
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable where the system allows it (not on
// Windows, where opening a directory for sync fails; NTFS journals the
// rename itself).
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

// removeStaleTemps removes temporary files a crash in writeFileAtomic left
// behind; they may hold part of a key.
func removeStaleTemps(dir string) {
	for _, name := range []string{rootFile, rootKeyFile, serverFile, serverKeyFile, clientFile, clientKeyFile, clientPFXFile} {
		stale, _ := filepath.Glob(filepath.Join(dir, "."+name+".tmp-*"))
		for _, s := range stale {
			os.Remove(s)
		}
	}
}

// certPEM encodes a DER certificate as PEM.
func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// keyPEM encodes a private key as PKCS #8 PEM, which curl, node, OpenSSL
// and .NET all read.
func keyPEM(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

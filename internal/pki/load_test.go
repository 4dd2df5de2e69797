package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadUsesExportedFiles(t *testing.T) {
	t.Parallel()
	e := ensure(t)
	b, err := Load(filepath.Join(e.Dir, rootFile), filepath.Join(e.Dir, serverFile), filepath.Join(e.Dir, serverKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if b.Dir != "" || len(b.Client.Certificate) != 0 || !b.CA.Equal(e.CA) || !b.Server.Leaf.Equal(e.Server.Leaf) {
		t.Errorf("Load: Dir %q, client %d certs, CA equal %v, server equal %v",
			b.Dir, len(b.Client.Certificate), b.CA.Equal(e.CA), b.Server.Leaf.Equal(e.Server.Leaf))
	}
	if _, err := b.IssueClient("x", time.Now(), time.Now().Add(time.Hour)); !errors.Is(err, ErrNoCAKey) {
		t.Errorf("IssueClient on a loaded bundle: err = %v, want ErrNoCAKey", err)
	}
	if c := b.ClientTLS(); len(c.Certificates) != 0 {
		t.Errorf("ClientTLS of a bundle without client certificate presents %d", len(c.Certificates))
	}
	// The client certificate Ensure made is accepted by a loaded bundle's API.
	if _, err := handshake(t, b.APITLS(), e.ClientTLS()); err != nil {
		t.Errorf("handshake: %v", err)
	}
}

func TestLoadReadsKeyFormats(t *testing.T) {
	t.Parallel()
	e := ensure(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)

	tests := []struct {
		name   string
		key    crypto.Signer
		blocks []*pem.Block
	}{
		{"PKCS #1 RSA, as Qlik exports", rsaKey, []*pem.Block{{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}}},
		{"PKCS #8 RSA", rsaKey, []*pem.Block{{Type: "PRIVATE KEY", Bytes: pkcs8}}},
		{"SEC 1 EC after EC PARAMETERS, as openssl ecparam writes", ecKey, []*pem.Block{
			{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}},
			{Type: "EC PRIVATE KEY", Bytes: ecDER},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tmpl, _ := serverTemplate(time.Now(), e.CA, nil)
			der, err := x509.CreateCertificate(rand.Reader, tmpl, e.CA, tt.key.Public(), e.caKey)
			if err != nil {
				t.Fatal(err)
			}
			// A chain: server certificate, then an intermediate (here the CA).
			certFile := writeFile(t, dir, "server.pem", append(certPEM(der), certPEM(e.CA.Raw)...))
			var keyData []byte
			for _, b := range tt.blocks {
				keyData = append(keyData, pem.EncodeToMemory(b)...)
			}
			keyFile := writeFile(t, dir, "server_key.pem", keyData)

			b, err := Load(filepath.Join(e.Dir, rootFile), certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Server.Certificate) != 2 {
				t.Errorf("server chain has %d certificates, want 2", len(b.Server.Certificate))
			}
			if _, err := handshake(t, b.ServerTLS(), e.ClientTLS()); err != nil {
				t.Errorf("handshake: %v", err)
			}
		})
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	t.Parallel()
	e := ensure(t)
	dir := t.TempDir()
	root, server, serverKey := filepath.Join(e.Dir, rootFile), filepath.Join(e.Dir, serverFile), filepath.Join(e.Dir, serverKeyFile)
	empty := writeFile(t, dir, "empty.pem", []byte("not PEM at all\n"))
	keyOnly := writeFile(t, dir, "key_only.pem", mustRead(t, serverKey))
	badCert := writeFile(t, dir, "bad_cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}))
	encrypted := writeFile(t, dir, "encrypted_key.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("x")}))
	legacyEncrypted := writeFile(t, dir, "legacy_encrypted_key.pem", pem.EncodeToMemory(&pem.Block{
		Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte("x")}))
	badKey := writeFile(t, dir, "bad_key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name          string
		ca, cert, key string
		wantFile      string
		wantPhrase    string
	}{
		{"missing CA file", missing, server, serverKey, missing, "no such file"},
		{"CA file without PEM", empty, server, serverKey, empty, "no PEM certificate in"},
		{"CA file with only a key", keyOnly, server, serverKey, keyOnly, "no PEM certificate in"},
		{"corrupt certificate", root, badCert, serverKey, badCert, "certificate 1 in"},
		{"missing key file", root, server, missing, missing, "no such file"},
		{"key file without key", root, server, empty, empty, "no PEM private key in"},
		{"corrupt key", root, server, badKey, badKey, "private key in"},
		{"encrypted PKCS #8 key", root, server, encrypted, encrypted, "encrypted"},
		{"encrypted legacy key", root, server, legacyEncrypted, legacyEncrypted, "encrypted"},
		{"key of another certificate", root, server, filepath.Join(e.Dir, clientKeyFile), filepath.Join(e.Dir, clientKeyFile), "does not match the certificate in " + server},
		{"no key file given", root, server, "", "", "give a CA file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(tt.ca, tt.cert, tt.key)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantFile) || !strings.Contains(err.Error(), tt.wantPhrase) {
				t.Errorf("err = %q, want it to name %q and say %q", err, tt.wantFile, tt.wantPhrase)
			}
		})
	}
}

func TestLoadClient(t *testing.T) {
	t.Parallel()
	e := ensure(t)
	cert, roots, err := LoadClient(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.Equal(e.Client.Leaf) {
		t.Error("LoadClient returned another certificate than client.pem")
	}
	if _, err := e.Server.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: roots}); err != nil {
		t.Errorf("server does not verify with the loaded roots: %v", err)
	}

	os.Remove(filepath.Join(e.Dir, clientKeyFile))
	if _, _, err := LoadClient(e.Dir); err == nil || !strings.Contains(err.Error(), clientKeyFile) {
		t.Errorf("LoadClient without client_key.pem: err = %v, want one naming it", err)
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// allFiles are the files Ensure writes, with their modes.
var allFiles = map[string]os.FileMode{
	rootFile:      0o644,
	rootKeyFile:   0o600,
	serverFile:    0o644,
	serverKeyFile: 0o600,
	clientFile:    0o644,
	clientKeyFile: 0o600,
	clientPFXFile: 0o600,
}

// ensure runs Ensure in a new directory and fails the test on error.
func ensure(t *testing.T, extraHosts ...string) *Bundle {
	t.Helper()
	dir := t.TempDir()
	b, created, err := Ensure(filepath.Join(dir, "certs"), filepath.Join(dir, "ca"), extraHosts...)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if !created {
		t.Fatal("Ensure in an empty directory: created = false")
	}
	return b
}

// file is where Ensure keeps the file name for b: the CA's key in
// CADir, everything else in Dir.
func file(b *Bundle, name string) string {
	if name == rootKeyFile {
		return filepath.Join(b.CADir, name)
	}
	return filepath.Join(b.Dir, name)
}

// serials identifies the certificates of a bundle.
func serials(b *Bundle) [3]string {
	return [3]string{b.CA.SerialNumber.String(), b.Server.Leaf.SerialNumber.String(), b.Client.Leaf.SerialNumber.String()}
}

func TestEnsureCreatesFilesWithModes(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	for name, want := range allFiles {
		fi, err := os.Stat(file(b, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}
	var names []string
	for _, dir := range []string{b.Dir, b.CADir} {
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("directory %s: mode %v, err %v; want 0700", dir, fi.Mode().Perm(), err)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			names = append(names, filepath.Join(dir, e.Name()))
		}
	}
	if len(names) != len(allFiles) {
		t.Errorf("directories hold %v, want exactly the %d files", names, len(allFiles))
	}
}

func TestEnsureCertificateProfiles(t *testing.T) {
	t.Parallel()
	b := ensure(t, "proxy.example.com", "10.1.2.3", "[fd00::1]", "PROXY.example.com", "")
	host, _ := os.Hostname()
	now := time.Now()
	years := func(c *x509.Certificate) float64 { return c.NotAfter.Sub(c.NotBefore).Hours() / 24 / 365.25 }

	t.Run("CA", func(t *testing.T) {
		ca := b.CA
		if ca.Subject.CommonName != "openqps CA" || !ca.IsCA || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
			t.Errorf("CA: CN %q IsCA %v MaxPathLenZero %v KeyUsage %v", ca.Subject.CommonName, ca.IsCA, ca.MaxPathLenZero, ca.KeyUsage)
		}
		if y := years(ca); y < 9.99 || y > 10.01 {
			t.Errorf("CA validity %.2f years, want 10", y)
		}
		if pub, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
			t.Errorf("CA key %T, want ECDSA P-256", ca.PublicKey)
		}
	})
	t.Run("server", func(t *testing.T) {
		s := b.Server.Leaf
		wantDNS := []string{"localhost", "proxy.example.com"}
		if host != "" {
			short, _, _ := strings.Cut(strings.ToLower(host), ".")
			wantDNS = append(wantDNS, strings.ToLower(host), short)
		}
		for _, n := range wantDNS {
			if !slices.Contains(s.DNSNames, n) {
				t.Errorf("DNSNames %v lack %q", s.DNSNames, n)
			}
		}
		if n := strings.Count(strings.Join(s.DNSNames, " "), "proxy.example.com"); n != 1 {
			t.Errorf("DNSNames %v: proxy.example.com %d times, want once", s.DNSNames, n)
		}
		for _, ip := range []string{"127.0.0.1", "::1", "10.1.2.3", "fd00::1"} {
			if !slices.ContainsFunc(s.IPAddresses, func(a net.IP) bool { return a.Equal(net.ParseIP(ip)) }) {
				t.Errorf("IPAddresses %v lack %s", s.IPAddresses, ip)
			}
		}
		if !slices.Equal(s.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
			t.Errorf("ExtKeyUsage %v, want ServerAuth", s.ExtKeyUsage)
		}
		if d := s.NotAfter.Sub(now); d < 824*24*time.Hour || d > 826*24*time.Hour {
			t.Errorf("server valid for %v more, want 825 days", d)
		}
		if err := s.CheckSignatureFrom(b.CA); err != nil {
			t.Errorf("server not signed by CA: %v", err)
		}
	})
	t.Run("client", func(t *testing.T) {
		c := b.Client.Leaf
		if c.Subject.CommonName != "QlikClient" || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			t.Errorf("client: CN %q ExtKeyUsage %v", c.Subject.CommonName, c.ExtKeyUsage)
		}
		if y := years(c); y < 9.99 || y > 10.01 {
			t.Errorf("client validity %.2f years, want 10", y)
		}
		if c.NotAfter.After(b.CA.NotAfter) {
			t.Errorf("client outlives the CA: %v > %v", c.NotAfter, b.CA.NotAfter)
		}
		if err := c.CheckSignatureFrom(b.CA); err != nil {
			t.Errorf("client not signed by CA: %v", err)
		}
	})
}

func TestEnsureReusesExistingFiles(t *testing.T) {
	t.Parallel()
	first := ensure(t)
	pfx, _ := os.ReadFile(file(first, clientPFXFile))

	second, created, err := Ensure(first.Dir, first.CADir)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("second Ensure: created = true, want false")
	}
	if serials(first) != serials(second) {
		t.Errorf("serials changed: %v → %v", serials(first), serials(second))
	}
	if again, _ := os.ReadFile(file(first, clientPFXFile)); !bytes.Equal(pfx, again) {
		t.Error("client.pfx rewritten")
	}
	if second.caKey == nil {
		t.Error("CA key not loaded")
	}
}

func TestEnsureKeepsServerCertLackingNewExtraHost(t *testing.T) {
	t.Parallel()
	first := ensure(t)
	second, created, err := Ensure(first.Dir, first.CADir, "new.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if created || serials(first) != serials(second) {
		t.Errorf("created %v, serials %v → %v; want the old certificates", created, serials(first), serials(second))
	}
	if slices.Contains(second.Server.Leaf.DNSNames, "new.example.com") {
		t.Error("server certificate has the new host")
	}
}

func TestEnsureRecreatesMissingFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		remove  []string
		changed [3]bool // CA, server, client serials
		newPFX  bool
	}{
		{"pfx", []string{clientPFXFile}, [3]bool{false, false, false}, true},
		{"client pair", []string{clientFile, clientKeyFile}, [3]bool{false, false, true}, true},
		{"client cert, key left by a crash", []string{clientFile}, [3]bool{false, false, true}, true},
		{"server pair", []string{serverFile, serverKeyFile}, [3]bool{false, true, false}, false},
		{"CA and everything", []string{rootFile, rootKeyFile, serverFile, serverKeyFile, clientFile, clientKeyFile}, [3]bool{true, true, true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first := ensure(t)
			pfx, _ := os.ReadFile(file(first, clientPFXFile))
			for _, f := range tt.remove {
				if err := os.Remove(file(first, f)); err != nil {
					t.Fatal(err)
				}
			}
			second, created, err := Ensure(first.Dir, first.CADir)
			if err != nil {
				t.Fatal(err)
			}
			if !created {
				t.Error("created = false")
			}
			before, after := serials(first), serials(second)
			for i, what := range []string{"CA", "server", "client"} {
				if changed := before[i] != after[i]; changed != tt.changed[i] {
					t.Errorf("%s serial changed: %v, want %v", what, changed, tt.changed[i])
				}
			}
			newPFX, _ := os.ReadFile(file(first, clientPFXFile))
			if changed := !bytes.Equal(pfx, newPFX); changed != tt.newPFX {
				t.Errorf("client.pfx changed: %v, want %v", changed, tt.newPFX)
			}
			for name, mode := range allFiles {
				if fi, err := os.Stat(file(first, name)); err != nil || fi.Mode().Perm() != mode {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
}

func TestEnsureRefusesLeavesOfDeletedCA(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	caKey := mustRead(t, file(b, rootKeyFile))
	os.Remove(file(b, rootFile))
	_, _, err := Ensure(b.Dir, b.CADir)
	if err == nil || !strings.Contains(err.Error(), file(b, serverFile)) || !strings.Contains(err.Error(), "restore root.pem") {
		t.Errorf("err = %v, want one that names server.pem and says to restore root.pem", err)
	}
	if !bytes.Equal(caKey, mustRead(t, file(b, rootKeyFile))) {
		t.Error("root_key.pem was overwritten")
	}
	if _, err := os.Stat(file(b, rootFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root.pem was written: %v", err)
	}
}

func TestEnsureRefusesCertificateWithoutKey(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	os.Remove(file(b, serverKeyFile))
	_, _, err := Ensure(b.Dir, b.CADir)
	if err == nil || !strings.Contains(err.Error(), file(b, serverKeyFile)) {
		t.Errorf("err = %v, want one that names server_key.pem", err)
	}
}

func TestEnsureWithoutCAKey(t *testing.T) {
	t.Parallel()
	first := ensure(t)
	os.Remove(file(first, rootKeyFile))

	second, created, err := Ensure(first.Dir, first.CADir)
	if err != nil {
		t.Fatalf("Ensure with all certificates but no CA key: %v", err)
	}
	if created || serials(first) != serials(second) {
		t.Errorf("created %v, serials %v → %v; want the old certificates", created, serials(first), serials(second))
	}
	if _, err := second.IssueClient("x", time.Now(), time.Now().Add(time.Hour)); !errors.Is(err, ErrNoCAKey) {
		t.Errorf("IssueClient: err = %v, want ErrNoCAKey", err)
	}

	os.Remove(file(first, clientFile))
	if _, _, err := Ensure(first.Dir, first.CADir); !errors.Is(err, ErrNoCAKey) || !strings.Contains(err.Error(), clientFile) {
		t.Errorf("Ensure that must sign without a CA key: err = %v, want ErrNoCAKey naming client.pem", err)
	}
}

func TestEnsureRenewsExpiredServerCert(t *testing.T) {
	t.Parallel()
	first := ensure(t)
	d := &certDir{dir: first.Dir, caDir: first.CADir, cas: []*x509.Certificate{first.CA}, caKey: first.caKey}
	tmpl, err := serverTemplate(time.Now().AddDate(-3, 0, 0), first.CA, nil)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := d.issueLeaf(serverFile, serverKeyFile, tmpl)
	if err != nil {
		t.Fatal(err)
	}

	second, created, err := Ensure(first.Dir, first.CADir)
	if err != nil {
		t.Fatal(err)
	}
	if !created || second.Server.Leaf.SerialNumber.Cmp(expired.Leaf.SerialNumber) == 0 {
		t.Errorf("created %v, server serial %v; want a new server certificate", created, second.Server.Leaf.SerialNumber)
	}
	if !time.Now().Before(second.Server.Leaf.NotAfter) {
		t.Errorf("new server certificate expired at %v", second.Server.Leaf.NotAfter)
	}
	if serials(first)[0] != serials(second)[0] || serials(first)[2] != serials(second)[2] {
		t.Error("CA or client certificate changed")
	}
}

func TestEnsureRemovesStaleTempFiles(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	stale := filepath.Join(b.Dir, ".server_key.pem.tmp-123")
	os.WriteFile(stale, []byte("-----BEGIN PRIVATE KEY-----\nhalf"), 0o600)
	if _, _, err := Ensure(b.Dir, b.CADir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file still there: %v", err)
	}
}

func TestEnsureReplacesCAKeyLeftByCrash(t *testing.T) {
	t.Parallel()
	dir, caDir := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(caDir, rootKeyFile), []byte("left by a crash before root.pem was written"), 0o600)
	b, created, err := Ensure(dir, caDir)
	if err != nil || !created {
		t.Fatalf("created %v, err %v", created, err)
	}
	if b.caKey == nil {
		t.Error("no CA key")
	}
}

func TestEnsureRejectsBadExtraHost(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"https://proxy.example.com", "proxy.example.com:443", "two words"} {
		_, _, err := Ensure(t.TempDir(), t.TempDir(), h)
		if err == nil || !strings.Contains(err.Error(), h) {
			t.Errorf("Ensure(%q): err = %v, want one that names the host", h, err)
		}
	}
}

// caKeyIn returns the files in dir that hold the private key of ca, as
// PEM or inside a PKCS #12 file.
func caKeyIn(t *testing.T, dir string, ca *x509.Certificate) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		data := mustRead(t, p)
		var keys []any
		for rest := data; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			if k, err := parseKey(block); err == nil {
				keys = append(keys, k)
			}
		}
		if k, _, _, err := pkcs12.DecodeChain(data, PFXPassword); err == nil {
			keys = append(keys, k)
		}
		for _, k := range keys {
			if s, ok := k.(crypto.Signer); ok && keyMatches(ca, s) {
				found = append(found, p)
			}
		}
	}
	return found
}

func TestExportedDirectoryHoldsNoCAKey(t *testing.T) {
	t.Parallel()
	b := ensure(t)
	if found := caKeyIn(t, b.Dir, b.CA); len(found) != 0 {
		t.Errorf("the CA key is in the exported directory: %v", found)
	}
	if found := caKeyIn(t, b.CADir, b.CA); len(found) != 1 {
		t.Errorf("CA key files in %s: %v, want root_key.pem", b.CADir, found)
	}
}

// oldLayout puts the CA key back where versions before the split kept
// it: in the exported directory, with no CA directory.
func oldLayout(t *testing.T, b *Bundle) {
	t.Helper()
	if err := os.Rename(file(b, rootKeyFile), filepath.Join(b.Dir, rootKeyFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(b.CADir); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureMovesCAKeyOfOldLayout(t *testing.T) {
	t.Parallel()
	first := ensure(t)
	oldLayout(t, first)
	key := mustRead(t, filepath.Join(first.Dir, rootKeyFile))

	second, created, err := Ensure(first.Dir, first.CADir)
	if err != nil {
		t.Fatal(err)
	}
	if created || serials(first) != serials(second) {
		t.Errorf("created %v, serials %v → %v; want the old certificates", created, serials(first), serials(second))
	}
	if second.MovedCAKey != filepath.Join(first.Dir, rootKeyFile) {
		t.Errorf("MovedCAKey = %q, want the old path", second.MovedCAKey)
	}
	if found := caKeyIn(t, first.Dir, first.CA); len(found) != 0 {
		t.Errorf("the CA key is still in the exported directory: %v", found)
	}
	if got := mustRead(t, file(first, rootKeyFile)); !bytes.Equal(got, key) {
		t.Error("the moved key differs from the old one")
	}
	if fi, err := os.Stat(file(first, rootKeyFile)); err != nil || fi.Mode().Perm() != keyMode {
		t.Errorf("moved key: %v, %v", fi, err)
	}
	if _, err := second.IssueClient("after the move", time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Errorf("IssueClient after the move: %v", err)
	}
	third, _, err := Ensure(first.Dir, first.CADir)
	if err != nil || third.MovedCAKey != "" {
		t.Errorf("the next start: MovedCAKey %q, err %v; want nothing moved", third.MovedCAKey, err)
	}
}

func TestEnsureSettlesCAKeyInBothPlaces(t *testing.T) {
	t.Parallel()
	// Equal: a crash between the copy and the removal.
	b := ensure(t)
	key := mustRead(t, file(b, rootKeyFile))
	os.WriteFile(filepath.Join(b.Dir, rootKeyFile), key, 0o600)
	if _, _, err := Ensure(b.Dir, b.CADir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir, rootKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the copy in the exported directory is still there: %v", err)
	}

	// Different: openqps cannot know which one the user wants.
	other := ensure(t)
	os.WriteFile(filepath.Join(b.Dir, rootKeyFile), mustRead(t, file(other, rootKeyFile)), 0o600)
	_, _, err := Ensure(b.Dir, b.CADir)
	if err == nil || !strings.Contains(err.Error(), "two different CA keys") {
		t.Errorf("err = %v, want one about two different CA keys", err)
	}
	if got := mustRead(t, file(b, rootKeyFile)); !bytes.Equal(got, key) {
		t.Error("the CA key was overwritten")
	}
}

func TestEnsureRefusesOneDirectoryForBoth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := Ensure(dir, dir+"/"); err == nil {
		t.Error("Ensure with the CA key directory equal to the exported one: no error")
	}
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

// writeKeytab writes a keytab with a key of each principal (name@REALM).
func writeKeytab(t *testing.T, principals ...string) string {
	t.Helper()
	kt := keytab.New()
	for _, p := range principals {
		name, realm, _ := strings.Cut(p, "@")
		if err := kt.AddEntry(name, realm, "secret", time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
			t.Fatal(err)
		}
	}
	b, err := kt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "http.keytab")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func windowsYAML(keytab, extra string) string {
	return authVP("    authentication_method: windows\n    windows:\n      keytab: " + keytab + "\n      service_principal: HTTP/qlik.acme.local@ACME.LOCAL\n" + extra)
}

func TestWindowsDefaults(t *testing.T) {
	c, err := Parse([]byte(windowsYAML(writeKeytab(t, "HTTP/qlik.acme.local@ACME.LOCAL"), "")))
	if err != nil {
		t.Fatal(err)
	}
	w := c.VirtualProxies[0].Auth.Windows
	if w.DevicePattern != "Windows" || w.MaxClockSkew != 5*time.Minute || w.Realm != "ACME.LOCAL" ||
		w.RealmDirectories["ACME.LOCAL"] != "ACME" || w.Keys == nil || w.KrbConfig != nil ||
		w.FormsLoginAttempts != 5 || w.FormsLoginWindow != time.Minute {
		t.Errorf("defaults %+v", w)
	}
}

func TestWindowsErrorsNameKeyAndFix(t *testing.T) {
	good := writeKeytab(t, "HTTP/qlik.acme.local@ACME.LOCAL")
	other := writeKeytab(t, "HTTP/other.acme.local@ACME.LOCAL", "HTTP/qlik.acme.local@OTHER.LOCAL")
	notKeytab := filepath.Join(t.TempDir(), "notkeytab")
	os.WriteFile(notKeytab, []byte("hello"), 0o600)
	noKDC := filepath.Join(t.TempDir(), "krb5.conf")
	os.WriteFile(noKDC, []byte("[libdefaults]\n default_realm = ACME.LOCAL\n dns_lookup_kdc = false\n"), 0o600)
	for _, c := range []struct{ yaml, want string }{
		{windowsYAML(filepath.Join(t.TempDir(), "missing.keytab"), ""), "windows.keytab: read "},
		{windowsYAML(notKeytab, ""), "is not a keytab"},
		{windowsYAML(other, ""), "holds no key of HTTP/qlik.acme.local@ACME.LOCAL (it holds [HTTP/other.acme.local@ACME.LOCAL HTTP/qlik.acme.local@OTHER.LOCAL])"},
		{windowsYAML("", ""), "windows needs the keytab"},
		{authVP("    authentication_method: windows\n    windows: {keytab: " + good + ", service_principal: HTTP/qlik.acme.local}\n"), "name the principal browsers ask tickets for with its realm"},
		{windowsYAML(good, "      max_clock_skew: 2h\n"), "max_clock_skew: 2h0m0s: allow between"},
		{windowsYAML(good, "      realm_directories: {ACME.LOCAL: 'AC\\ME'}\n"), "realm_directories"},
		{windowsYAML(good, "      krb5_conf: "+noKDC+"\n"), "names no KDC for realm ACME.LOCAL"},
		{windowsYAML(good, "      krb5_conf: /nonexistent/krb5.conf\n"), "windows.krb5_conf: read /nonexistent/krb5.conf"},
	} {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want it to contain %q", err, c.want)
		}
	}
}

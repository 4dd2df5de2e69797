package proxy

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

// windowsVP is a windows virtual proxy "vp" for refusalRows: a keytab of
// its own (no KDC: these refusals come before any ticket is checked),
// and, with forms, a krb5.conf so that it has a forms login.
func windowsVP(t *testing.T, forms bool) string {
	t.Helper()
	dir := t.TempDir()
	kt := keytab.New()
	if err := kt.AddEntry("HTTP/proxy.example", "ACME.TEST", "secret", time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
		t.Fatal(err)
	}
	b, err := kt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ktPath := filepath.Join(dir, "http.keytab")
	if err := os.WriteFile(ktPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	vp := plainVP + "    authentication_method: windows\n    windows:\n      keytab: " + ktPath + "\n      service_principal: HTTP/proxy.example@ACME.TEST\n"
	if forms {
		conf := filepath.Join(dir, "krb5.conf")
		if err := os.WriteFile(conf, []byte("[realms]\n ACME.TEST = {\n  kdc = 127.0.0.1:1\n }\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		vp += "      krb5_conf: " + conf + "\n"
	}
	return vp
}

// spnegoOffering is a Negotiate header offering mechs, with token.
func spnegoOffering(t *testing.T, token []byte, mechs ...asn1.ObjectIdentifier) string {
	return "Negotiate " + base64.StdEncoding.EncodeToString(spnegoSeed(t, mechs, token))
}

var oidKRB5 = gssapi.OIDKRB5.OID()

// bigForm is a forms login body past maxFormsLoginBody.
var bigForm = "username=" + strings.Repeat("a", maxFormsLoginBody)
